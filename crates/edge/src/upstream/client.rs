//! The HTTP client of an edge following an upstream: one connection pool, the upstream's base
//! URL and the organisation API key it presents (never logged: reqwest's errors name the URL,
//! not the headers).

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, IF_NONE_MATCH};
use reqwest::StatusCode;

use super::protocol::{
    IdentityBody, ScopeBody, ServerKeyBody, TraitBatch, UsageBatch, HEADER_DOCUMENT_ETAG,
    HEADER_ENVIRONMENT_ID, HEADER_REVISION, HEADER_SHARES_SECOND, MAX_BATCH_ITEMS,
};
use crate::identity_cache::StoredIdentity;
use crate::traits_writer::TraitWrite;
use crate::usage::UsageRow;

/// How long a request other than the revision stream may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Identity data is fetched on a request's path: an unreachable upstream must not hold it up
/// for long (the identity is then evaluated with the request's traits alone).
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("upstream answered {0}")]
    Status(StatusCode),
    #[error("upstream sent an unreadable answer: {0}")]
    Body(String),
}

impl UpstreamError {
    /// The upstream refused the request as such (retrying it unchanged cannot succeed).
    pub fn is_refusal(&self) -> bool {
        matches!(self, UpstreamError::Status(s) if s.is_client_error()
            && *s != StatusCode::REQUEST_TIMEOUT && *s != StatusCode::TOO_MANY_REQUESTS)
    }
}

fn unreachable(e: reqwest::Error) -> UpstreamError {
    // Without the URL: it is the configured upstream, and is logged once at start.
    UpstreamError::Unreachable(e.without_url().to_string())
}

/// A document fetched from the upstream.
pub struct FetchedDocument {
    pub environment_id: i64,
    pub revision: i64,
    pub etag: String,
    pub shares_second: bool,
    /// gzip-compressed JSON, as published.
    pub body: Bytes,
    /// The SDK fields of its features (JSON), as published beside it.
    pub sdk_features: Option<String>,
}

pub enum Fetched {
    /// The held revision is current.
    NotModified,
    Document(FetchedDocument),
    /// The upstream no longer serves this environment.
    Gone,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    /// `base`: the upstream's URL (`https://flags.example.com`); `key`: an organisation API key.
    pub fn new(base: &str, key: &str) -> Result<Client, UpstreamError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(unreachable)?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.url(path))
            .header(AUTHORIZATION, format!("Api-Key {}", self.key))
    }

    /// Opens the revision stream (`wanted`: only these client keys).
    pub async fn revisions(
        &self,
        wanted: Option<&[String]>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut req = self
            .get("/api/v1/edge/revisions")
            .header("accept", "text/event-stream");
        if let Some(keys) = wanted {
            req = req.query(&[("environments", keys.join(","))]);
        }
        let resp = req.send().await.map_err(unreachable)?;
        ok(resp)
    }

    /// An environment's document, unless `held` (a revision) is current.
    pub async fn document(
        &self,
        api_key: &str,
        held: Option<i64>,
    ) -> Result<Fetched, UpstreamError> {
        let path = format!(
            "/api/v1/edge/environments/{}/document",
            percent_encoding::utf8_percent_encode(api_key, percent_encoding::NON_ALPHANUMERIC)
        );
        let mut req = self.get(&path).timeout(REQUEST_TIMEOUT);
        if let Some(revision) = held {
            req = req.header(IF_NONE_MATCH, format!("\"{revision}\""));
        }
        let resp = req.send().await.map_err(unreachable)?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => return Ok(Fetched::NotModified),
            StatusCode::NOT_FOUND => return Ok(Fetched::Gone),
            _ => {}
        }
        let resp = ok(resp)?;
        let h = resp.headers();
        let text = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let number = |name: &str| {
            text(name)
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| UpstreamError::Body(format!("missing header {name}")))
        };
        let environment_id = number(HEADER_ENVIRONMENT_ID)?;
        let revision = number(HEADER_REVISION)?;
        let etag = text(HEADER_DOCUMENT_ETAG).unwrap_or_default();
        // Unknown: assume the worst (If-Modified-Since never wrongly answers 304).
        let shares_second = text(HEADER_SHARES_SECOND).is_none_or(|v| v != "false");
        let body = resp.bytes().await.map_err(unreachable)?;
        let sdk_features = self.sdk_features(api_key, revision).await?;
        Ok(Fetched::Document(FetchedDocument {
            environment_id,
            revision,
            etag,
            shares_second,
            body: gzipped(body),
            sdk_features,
        }))
    }

    /// The SDK feature fields published beside revision `revision` of an environment's document
    /// (`None`: published without them). A newer revision in between is an error: the caller's
    /// resync fetches both again.
    async fn sdk_features(
        &self,
        api_key: &str,
        revision: i64,
    ) -> Result<Option<String>, UpstreamError> {
        let path = format!(
            "/api/v1/edge/environments/{}/sdk-features",
            percent_encoding::utf8_percent_encode(api_key, percent_encoding::NON_ALPHANUMERIC)
        );
        let resp = self
            .get(&path)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let resp = ok(resp)?;
        let theirs = resp
            .headers()
            .get(HEADER_REVISION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        if theirs != Some(revision) {
            return Err(UpstreamError::Body(format!(
                "SDK feature fields of revision {theirs:?} beside document revision {revision}"
            )));
        }
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(resp.text().await.map_err(unreachable)?))
    }

    /// The environments a follower key sees, or `None` if the upstream refuses the key.
    pub async fn scope(&self, key: &str) -> Result<Option<HashSet<i64>>, UpstreamError> {
        let resp = self
            .http
            .get(self.url("/api/v1/edge/scope"))
            .header(AUTHORIZATION, format!("Api-Key {key}"))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        if matches!(
            resp.status(),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
        ) {
            return Ok(None);
        }
        let body: ScopeBody = json(ok(resp)?).await?;
        Ok(Some(body.environments.into_iter().collect()))
    }

    /// The client key of the environment a server-side key belongs to (`None`: unknown).
    pub async fn resolve_server_key(&self, key: &str) -> Result<Option<String>, UpstreamError> {
        let resp = self
            .get("/api/v1/edge/server-key")
            .header(crate::auth::KEY_HEADER, key)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: ServerKeyBody = json(ok(resp)?).await?;
        Ok(Some(body.api_key))
    }

    /// An identity's stored traits and identity overrides.
    pub async fn stored_identity(
        &self,
        environment_id: i64,
        identifier: &str,
    ) -> Result<StoredIdentity, UpstreamError> {
        let resp = self
            .get("/api/v1/edge/identity")
            .query(&[
                ("environment_id", environment_id.to_string()),
                ("identifier", identifier.to_string()),
            ])
            .timeout(IDENTITY_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let body: IdentityBody = json(ok(resp)?).await?;
        Ok(StoredIdentity {
            exists: body.exists,
            traits: body.traits,
            overrides: body.overrides,
        })
    }

    /// Sends SDK trait writes (a batch of at most [`MAX_BATCH_ITEMS`] per POST).
    pub async fn send_traits(&self, writes: &[TraitWrite]) -> Result<(), UpstreamError> {
        for chunk in writes.chunks(MAX_BATCH_ITEMS) {
            let body = TraitBatch {
                writes: chunk.to_vec(),
            };
            self.post("/api/v1/edge/traits", &body).await?;
        }
        Ok(())
    }

    /// Sends flag usage rows.
    pub async fn send_usage(&self, rows: &[UsageRow]) -> Result<(), UpstreamError> {
        for chunk in rows.chunks(MAX_BATCH_ITEMS) {
            let body = UsageBatch {
                rows: chunk.to_vec(),
            };
            self.post("/api/v1/edge/usage", &body).await?;
        }
        Ok(())
    }

    async fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<(), UpstreamError> {
        let resp = self
            .http
            .post(self.url(path))
            .header(AUTHORIZATION, format!("Api-Key {}", self.key))
            .json(body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        ok(resp).map(drop)
    }
}

fn ok(resp: reqwest::Response) -> Result<reqwest::Response, UpstreamError> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(UpstreamError::Status(resp.status()))
    }
}

async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, UpstreamError> {
    let bytes = resp.bytes().await.map_err(unreachable)?;
    serde_json::from_slice(&bytes).map_err(|e| UpstreamError::Body(e.to_string()))
}

/// The body as gzip: the upstream sends the published gzip as is, but a proxy in between may
/// have decoded it.
fn gzipped(body: Bytes) -> Bytes {
    if body.starts_with(&[0x1f, 0x8b]) {
        return body;
    }
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(&body);
    Bytes::from(enc.finish().unwrap_or_default())
}
