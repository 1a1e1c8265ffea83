//! One environment's entry in the bucket: what an edge needs to serve it, the same as the HTTP
//! edge-follower protocol transfers per environment (`flagstone_edge::upstream::protocol`): the
//! compiled document and the SDK feature fields published beside it.
//!
//! The metadata is in the message's headers (a KV put is a JetStream publish on the key's
//! subject, which may carry headers; `nats kv get` shows the value, `nats stream get` the
//! headers too):
//!
//! | header | value |
//! |---|---|
//! | `Flagstone-Format` | `1` |
//! | `Flagstone-Environment-Id` | the environment's id |
//! | `Flagstone-Api-Key` | its client key (informational; edges read it from the document) |
//! | `Flagstone-Revision` | the document's revision |
//! | `Flagstone-Updated-At` | the document's `updated_at`, Unix ms (absent: not recorded) |
//! | `Flagstone-Etag` | the store's tag of the document body |
//! | `Flagstone-Shares-Second` | `true` when the previous document's `updated_at` is in the same second |
//! | `Flagstone-Sdk-Features-Bytes` | length of the SDK feature fields (absent: published without them) |
//!
//! The payload is the SDK feature fields (JSON, that many bytes) followed by the document,
//! gzip-compressed as published. (async-nats's KV `put` cannot attach headers, so the publisher
//! publishes on the key's subject itself; its watch does not return them, so the follower reads
//! the bucket's stream with an ordered consumer, as the KV watch does.)

use async_nats::HeaderMap;
use bytes::Bytes;

pub const FORMAT: &str = "1";
pub const H_FORMAT: &str = "Flagstone-Format";
pub const H_ENVIRONMENT_ID: &str = "Flagstone-Environment-Id";
pub const H_API_KEY: &str = "Flagstone-Api-Key";
pub const H_REVISION: &str = "Flagstone-Revision";
pub const H_UPDATED_AT: &str = "Flagstone-Updated-At";
pub const H_ETAG: &str = "Flagstone-Etag";
pub const H_SHARES_SECOND: &str = "Flagstone-Shares-Second";
pub const H_SDK_FEATURES_BYTES: &str = "Flagstone-Sdk-Features-Bytes";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("header {0} is not valid")]
    Invalid(&'static str),
    #[error("unknown format {0:?} (a newer publisher?)")]
    Format(String),
    #[error("payload shorter than its SDK feature fields")]
    Truncated,
    #[error("SDK feature fields are not UTF-8")]
    NotUtf8,
    #[error("the document is not gzip")]
    NotGzip,
}

/// One environment's entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentValue {
    pub environment_id: i64,
    pub api_key: String,
    pub revision: i64,
    pub updated_at: Option<i64>,
    pub etag: String,
    pub shares_second: bool,
    /// The SDK fields of its features (JSON), as published beside it.
    pub sdk_features: Option<String>,
    /// gzip-compressed JSON, as published.
    pub document_gz: Bytes,
}

impl DocumentValue {
    /// Headers and payload of the entry.
    pub fn encode(&self) -> (HeaderMap, Bytes) {
        let mut h = HeaderMap::new();
        h.insert(H_FORMAT, FORMAT);
        h.insert(H_ENVIRONMENT_ID, self.environment_id.to_string().as_str());
        h.insert(H_REVISION, self.revision.to_string().as_str());
        if header_safe(&self.api_key) {
            h.insert(H_API_KEY, self.api_key.as_str());
        }
        if let Some(at) = self.updated_at {
            h.insert(H_UPDATED_AT, at.to_string().as_str());
        }
        if header_safe(&self.etag) {
            h.insert(H_ETAG, self.etag.as_str());
        }
        h.insert(
            H_SHARES_SECOND,
            if self.shares_second { "true" } else { "false" },
        );
        let features = self.sdk_features.as_deref().unwrap_or("");
        if self.sdk_features.is_some() {
            h.insert(H_SDK_FEATURES_BYTES, features.len().to_string().as_str());
        }
        let mut payload = Vec::with_capacity(features.len() + self.document_gz.len());
        payload.extend_from_slice(features.as_bytes());
        payload.extend_from_slice(&self.document_gz);
        (h, Bytes::from(payload))
    }

    /// Reads an entry (`payload` shares its buffer with the document: no copy).
    pub fn decode(h: &HeaderMap, payload: Bytes) -> Result<DocumentValue, ValueError> {
        let text = |name: &'static str| h.get(name).map(|v| v.as_str().to_string());
        let number = |name: &'static str| -> Result<Option<i64>, ValueError> {
            match text(name) {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| ValueError::Invalid(name)),
            }
        };
        let format = text(H_FORMAT).ok_or(ValueError::Missing(H_FORMAT))?;
        if format != FORMAT {
            return Err(ValueError::Format(format));
        }
        let environment_id =
            number(H_ENVIRONMENT_ID)?.ok_or(ValueError::Missing(H_ENVIRONMENT_ID))?;
        let revision = number(H_REVISION)?.ok_or(ValueError::Missing(H_REVISION))?;
        let shares_second = match text(H_SHARES_SECOND).as_deref() {
            Some("false") => false,
            // Unknown: assume the worst (If-Modified-Since never wrongly answers 304).
            _ => true,
        };
        let (sdk_features, document_gz) = match number(H_SDK_FEATURES_BYTES)? {
            None => (None, payload),
            Some(n) => {
                let n =
                    usize::try_from(n).map_err(|_| ValueError::Invalid(H_SDK_FEATURES_BYTES))?;
                if n > payload.len() {
                    return Err(ValueError::Truncated);
                }
                let features = std::str::from_utf8(&payload[..n])
                    .map_err(|_| ValueError::NotUtf8)?
                    .to_string();
                (Some(features), payload.slice(n..))
            }
        };
        if !document_gz.starts_with(&[0x1f, 0x8b]) {
            return Err(ValueError::NotGzip);
        }
        Ok(DocumentValue {
            environment_id,
            api_key: text(H_API_KEY).unwrap_or_default(),
            revision,
            updated_at: number(H_UPDATED_AT)?,
            etag: text(H_ETAG).unwrap_or_default(),
            shares_second,
            sdk_features,
            document_gz,
        })
    }
}

/// The revision of an entry, from its headers alone (for reading the bucket without payloads).
pub fn revision_of(h: Option<&HeaderMap>) -> Option<(i64, i64)> {
    let h = h?;
    let env = h.get(H_ENVIRONMENT_ID)?.as_str().parse().ok()?;
    let revision = h.get(H_REVISION)?.as_str().parse().ok()?;
    Some((env, revision))
}

/// Printable ASCII without line breaks (what a header value may hold).
fn header_safe(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(features: Option<&str>) -> DocumentValue {
        DocumentValue {
            environment_id: 7,
            api_key: "abc.DEF_1".into(),
            revision: 12,
            updated_at: Some(1_700_000_000_123),
            etag: "\"9f8e\"".into(),
            shares_second: false,
            sdk_features: features.map(str::to_string),
            document_gz: Bytes::from_static(&[0x1f, 0x8b, 8, 0, 1, 2, 3]),
        }
    }

    #[test]
    fn round_trips_with_and_without_sdk_features() {
        for features in [Some("{\"1\":{\"description\":\"é\"}}"), Some(""), None] {
            let v = sample(features);
            let (h, payload) = v.encode();
            assert_eq!(DocumentValue::decode(&h, payload).unwrap(), v);
            assert_eq!(revision_of(Some(&h)), Some((7, 12)));
        }
    }

    #[test]
    fn refuses_malformed_entries() {
        let (h, payload) = sample(Some("{}")).encode();
        assert_eq!(
            DocumentValue::decode(&HeaderMap::new(), payload.clone()),
            Err(ValueError::Missing(H_FORMAT))
        );
        let mut newer = h.clone();
        newer.insert(H_FORMAT, "2");
        assert!(matches!(
            DocumentValue::decode(&newer, payload.clone()),
            Err(ValueError::Format(_))
        ));
        let mut long = h.clone();
        long.insert(H_SDK_FEATURES_BYTES, "999");
        assert_eq!(
            DocumentValue::decode(&long, payload.clone()),
            Err(ValueError::Truncated)
        );
        let mut bad = h.clone();
        bad.insert(H_REVISION, "x");
        assert_eq!(
            DocumentValue::decode(&bad, payload),
            Err(ValueError::Invalid(H_REVISION))
        );
        assert_eq!(
            DocumentValue::decode(&h, Bytes::from_static(b"{}{not gzip}")),
            Err(ValueError::NotGzip)
        );
    }
}
