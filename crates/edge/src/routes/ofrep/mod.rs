//! The OpenFeature Remote Evaluation Protocol (OFREP, `service/openapi.yaml` of
//! open-feature/protocol): `POST /ofrep/v1/evaluate/flags/{key}` and the bulk
//! `POST /ofrep/v1/evaluate/flags` (with `ETag` / `If-None-Match`). Beyond Flagsmith, which does
//! not speak it; see docs/ofrep.md.
//!
//! Served from the same compiled documents as the SDK API and evaluated exactly as
//! `POST /api/v1/identities/` evaluates (stored traits, identity overrides), with the context's
//! `targetingKey` as the identifier and its other fields as transient traits: nothing is
//! persisted and no identity is created. The environment key is accepted as
//! `Authorization: Bearer <key>`, Flagsmith's `X-Environment-Key`, or the spec's `X-API-Key`.

mod answer;
mod context;

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flagstone_engine::IdentityContext;
use sha2::{Digest, Sha256};

use self::answer::{ErrorCode, Failure, Item, Resolved, Source};
use crate::auth::{authenticate_key, Caller};
use crate::error::SdkError;
use crate::identity_cache::StoredIdentity;
use crate::routes::identities::identify;
use crate::EdgeState;

/// Headers an OFREP client may carry the environment key in, in the order they are read.
const KEY_HEADERS: [&str; 2] = [crate::auth::KEY_HEADER, "x-api-key"];

/// A refused request: the status and body the spec gives for it.
enum Refused {
    /// 401: no key, or one no environment has.
    Unauthorized(&'static str),
    /// 403: the organisation is disabled from serving flags.
    Forbidden(String),
    /// 400 (404 for `FLAG_NOT_FOUND`) with an OFREP failure body.
    Failure { code: ErrorCode, details: String },
    /// 500 with `errorDetails`.
    General(String),
}

impl From<SdkError> for Refused {
    fn from(e: SdkError) -> Refused {
        match e {
            SdkError::MissingKey | SdkError::UnknownKey => {
                Refused::Unauthorized("Invalid or missing environment key")
            }
            SdkError::ServingDisabled | SdkError::Forbidden(_) => Refused::Forbidden(e.to_string()),
            SdkError::FeatureNotFound | SdkError::NotFound(_) => Refused::Failure {
                code: ErrorCode::FlagNotFound,
                details: e.to_string(),
            },
            // The request's context broke a rule the identities endpoint applies (identifier
            // characters, trait limits).
            SdkError::BadRequest(_) | SdkError::Invalid { .. } | SdkError::LimitExceeded { .. } => {
                Refused::Failure {
                    code: ErrorCode::InvalidContext,
                    details: e.to_string(),
                }
            }
            // OFREP evaluates transiently and never creates an identity, so the new-identity
            // bound cannot refuse it; mapped for completeness.
            SdkError::Unavailable | SdkError::Busy(_) | SdkError::TooManyNewIdentities { .. } => {
                Refused::General(e.to_string())
            }
        }
    }
}

impl Refused {
    /// The response; `key` is the flag asked for by the single-flag endpoint.
    fn into_response(self, key: Option<&str>) -> Response {
        let (status, body) = match self {
            Refused::Unauthorized(details) => (
                StatusCode::UNAUTHORIZED,
                serde_json::json!({ "errorDetails": details }),
            ),
            Refused::Forbidden(details) => (
                StatusCode::FORBIDDEN,
                serde_json::json!({ "errorDetails": details }),
            ),
            Refused::General(details) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "errorCode": ErrorCode::General, "errorDetails": details }),
            ),
            Refused::Failure { code, details } => {
                let status = if code == ErrorCode::FlagNotFound {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                };
                let failure = Failure {
                    key,
                    code,
                    details: Cow::Owned(details),
                };
                (status, serde_json::to_value(failure).unwrap_or_default())
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

async fn caller(state: &EdgeState, headers: &HeaderMap) -> Result<Caller, Refused> {
    let header_key = KEY_HEADERS
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()));
    let bearer = || {
        let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token)
    };
    let key = header_key
        .or_else(bearer)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(Refused::Unauthorized("Missing environment key: send `Authorization: Bearer <environment key>` or `X-Environment-Key`"))?;
    Ok(authenticate_key(key, &state.registry, &state.server_keys, &state.source).await?)
}

/// The identity an evaluation is for: its context and stored data.
struct Subject {
    ctx: IdentityContext,
    stored: std::sync::Arc<StoredIdentity>,
}

/// Authenticates and reads the request; loads the identity named by `targetingKey`.
async fn subject(
    state: &EdgeState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Caller, Option<Subject>), Refused> {
    let c = caller(state, headers).await?;
    let context::Context {
        targeting_key,
        mut traits,
    } = context::parse(body).map_err(|r| Refused::Failure {
        code: r.code,
        details: r.details,
    })?;
    // As the identities endpoint: client keys send traits only where the environment allows.
    if !(c.server || c.snap.allow_client_traits) {
        traits.clear();
    }
    let Some(identifier) = targeting_key else {
        return Ok((c, None));
    };
    // Transient: evaluated with the identity's stored traits and overrides, nothing written.
    let r = identify(state, &c, identifier, traits, true).await?;
    let subject = Subject {
        ctx: IdentityContext::new(r.identifier, r.traits),
        stored: r.stored,
    };
    Ok((c, Some(subject)))
}

/// Evaluates every flag the caller is served (only `only`, if given) and hands each to `emit`.
fn evaluate<'a>(
    c: &'a Caller,
    subject: Option<&'a Subject>,
    only: Option<&str>,
    mut emit: impl FnMut(Item<'_>),
) {
    let snap = &c.snap;
    let eval = snap.compiled.evaluate_detailed(subject.map(|s| &s.ctx));
    let overrides: &[(i64, bool, serde_json::Value)] =
        subject.map_or(&[], |s| s.stored.overrides.as_slice());
    for f in &eval.flags {
        let Some(feature_id) = f.feature_id else {
            continue;
        };
        let Some(meta) = snap.features.get(&feature_id) else {
            continue;
        };
        if only.is_some_and(|name| name != meta.name) {
            continue;
        }
        let resolved = match overrides.iter().find(|o| o.0 == feature_id) {
            Some((_, enabled, value)) => Resolved {
                key: &meta.name,
                feature_id,
                enabled: *enabled,
                value,
                source: Source::IdentityOverride,
            },
            None => Resolved {
                key: &meta.name,
                feature_id,
                enabled: f.enabled,
                value: f.value,
                source: Source::of(f),
            },
        };
        if !c.serves(feature_id, resolved.enabled) {
            continue;
        }
        if subject.is_none() && snap.targeted.contains(&feature_id) {
            emit(Item::Failure(Failure {
                key: Some(&meta.name),
                code: ErrorCode::TargetingKeyMissing,
                details: Cow::Borrowed(
                    "This flag is targeted (segment overrides or a multivariate split): \
                     the context needs a targetingKey",
                ),
            }));
            continue;
        }
        emit(Item::Success(resolved.success()));
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `POST /ofrep/v1/evaluate/flags/{key}`.
pub(crate) async fn evaluate_flag(
    State(state): State<EdgeState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (c, subject) = match subject(&state, &headers, &body).await {
        Ok(s) => s,
        Err(r) => return r.into_response(Some(&key)),
    };
    let mut answer = None;
    evaluate(&c, subject.as_ref(), Some(&key), |item| {
        answer = Some(match item {
            Item::Success(s) => (StatusCode::OK, serde_json::to_vec(&s)),
            // Only TARGETING_KEY_MISSING is decided per flag: the request's fault.
            Item::Failure(f) => (StatusCode::BAD_REQUEST, serde_json::to_vec(&f)),
        });
    });
    match answer {
        Some((status, Ok(body))) => json_response(status, body),
        Some((_, Err(e))) => Refused::General(e.to_string()).into_response(Some(&key)),
        None => Refused::Failure {
            code: ErrorCode::FlagNotFound,
            details: format!("Flag '{key}' was not found"),
        }
        .into_response(Some(&key)),
    }
}

/// `POST /ofrep/v1/evaluate/flags`: every flag the caller is served. The `ETag` is the body's
/// hash, so `If-None-Match` gets a 304 exactly when this context would get the same answer
/// (a publish, a stored trait or an identity override that changes nothing keeps it).
pub(crate) async fn evaluate_flags(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (c, subject) = match subject(&state, &headers, &body).await {
        Ok(s) => s,
        Err(r) => return r.into_response(None),
    };
    let mut out = Vec::with_capacity(c.snap.flags_server.len() + 64);
    out.extend_from_slice(b"{\"flags\":[");
    let mut first = true;
    let mut failed = None;
    evaluate(&c, subject.as_ref(), None, |item| {
        if !first {
            out.push(b',');
        }
        first = false;
        if let Err(e) = serde_json::to_writer(&mut out, &item) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Refused::General(e.to_string()).into_response(None);
    }
    out.extend_from_slice(b"]}");
    let etag = etag(&out);
    let matched = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| none_match_hits(v, &etag));
    if matched {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mut resp = json_response(StatusCode::OK, out);
    resp.headers_mut().insert(header::ETAG, etag);
    resp
}

/// A strong tag: the first 128 bits of the body's SHA-256.
fn etag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    HeaderValue::from_str(&tag).expect("hex is a valid header value")
}

/// `If-None-Match`: `*` or a list of tags, compared weakly (RFC 9110 §13.1.2).
fn none_match_hits(header: &str, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags_match_and_others_do_not() {
        let tag = etag(b"{\"flags\":[]}");
        let t = tag.to_str().unwrap().to_string();
        assert!(none_match_hits(&t, &tag));
        assert!(none_match_hits(&format!("\"x\", W/{t}"), &tag));
        assert!(none_match_hits("*", &tag));
        assert!(!none_match_hits("\"x\"", &tag));
        assert!(!none_match_hits(t.trim_matches('"'), &tag));
        assert_ne!(etag(b"{\"flags\":[1]}"), tag);
    }
}
