//! The bucket both sides share: how to connect, its configuration, and what its keys are.
//!
//! Keys: `env.<environment id>` per environment, and `core.heartbeat`, which the core's
//! publishers rewrite every few seconds so edges can tell a silent bucket (nothing changed)
//! from a stale one (no publisher alive). Ids rather than client keys: an id never changes and
//! is always a valid subject token, whereas a client key may contain `.` (an empty or split
//! token); the client key is in the document (and a header), which is how edges index it.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};

/// The bucket used when none is configured.
pub const DEFAULT_BUCKET: &str = "flagstone-documents";
/// How often a publisher rewrites the heartbeat key.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

const ENV_PREFIX: &str = "env.";
const HEARTBEAT_KEY: &str = "core.heartbeat";

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("bucket entry: {0}")]
    Value(#[from] crate::value::ValueError),
    #[error(transparent)]
    Store(#[from] flagstone_store::StoreError),
}

impl NatsError {
    pub(crate) fn nats(e: impl std::fmt::Display) -> NatsError {
        NatsError::Nats(e.to_string())
    }
}

/// A key of the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKey {
    Environment(i64),
    Heartbeat,
}

impl BucketKey {
    /// The key as stored.
    pub fn key(self) -> String {
        match self {
            BucketKey::Environment(id) => format!("{ENV_PREFIX}{id}"),
            BucketKey::Heartbeat => HEARTBEAT_KEY.to_string(),
        }
    }

    /// The subject a put of this key is published on.
    pub fn subject(self, bucket: &str) -> String {
        format!("$KV.{bucket}.{}", self.key())
    }

    /// A stored key (`None`: not one of ours; ignored).
    pub fn parse(key: &str) -> Option<BucketKey> {
        if key == HEARTBEAT_KEY {
            return Some(BucketKey::Heartbeat);
        }
        key.strip_prefix(ENV_PREFIX)?
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(BucketKey::Environment)
    }

    /// The key of a message's subject in `bucket`.
    pub fn of_subject(bucket: &str, subject: &str) -> Option<BucketKey> {
        let rest = subject.strip_prefix("$KV.")?.strip_prefix(bucket)?;
        BucketKey::parse(rest.strip_prefix('.')?)
    }
}

/// The heartbeat key's value: when a publisher last confirmed that the bucket holds the
/// store's published documents.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Heartbeat {
    pub confirmed_at_ms: i64,
}

/// A bucket name NATS accepts (it becomes the stream `KV_<name>`).
pub fn valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `clap` value parser for a bucket name.
pub fn parse_bucket_name(s: &str) -> Result<String, String> {
    if valid_bucket_name(s) {
        Ok(s.to_string())
    } else {
        Err("must be 1-64 characters of [A-Za-z0-9_-]".into())
    }
}

/// `clap` value parser for a NATS URL (`nats://host:port`, `tls://…`, or `host:port`).
pub fn parse_nats_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let rest = ["nats://", "tls://", "ws://", "wss://"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    if rest.is_empty() || rest.starts_with(['/', ':']) {
        return Err("must name a host (nats://host:4222)".into());
    }
    if s.contains(['?', '#', ' ']) {
        return Err("must not have a query, fragment or spaces".into());
    }
    s.parse::<async_nats::ServerAddr>()
        .map_err(|e| format!("not a NATS server address: {e}"))?;
    Ok(s.to_string())
}

/// Connects in the background: this returns at once, and the client keeps (re)connecting for
/// as long as it lives, each attempt at most 2 s after the previous one failed.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, NatsError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(3))
        .ping_interval(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            let ms = 100u64.saturating_mul(1 << attempts.min(5));
            Duration::from_millis(ms.min(2_000))
        })
        .connect(url)
        .await
        .map_err(NatsError::nats)
}

/// The bucket, created if it does not exist yet (by whichever side comes first; creating it
/// again with the same configuration is a no-op for the server).
///
/// Created as the stream a KV bucket is (what `create_key_value` would make), directly:
/// async-nats's `create_key_value` first asks for the account's limits, whose answer from
/// NATS 2.9 servers it cannot parse.
pub async fn open(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, NatsError> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(
            "Flagstone's published environment documents (one key per environment)".into(),
        ),
        subjects: vec![format!("$KV.{bucket}.>")],
        // Only the latest value of a key matters; older ones are removed on each put.
        max_messages_per_subject: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(NatsError::nats)?;
    js.get_key_value(bucket).await.map_err(NatsError::nats)
}

/// The stream behind the bucket.
pub async fn stream(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<jetstream::stream::Stream, NatsError> {
    open(js, bucket).await?;
    js.get_stream(format!("KV_{bucket}"))
        .await
        .map_err(NatsError::nats)
}

/// An ordered consumer delivering the latest entry of every key, then every change
/// (`headers_only`: without the payloads, for reading the bucket's revisions).
pub async fn watch_latest(
    client: &async_nats::Client,
    stream: &jetstream::stream::Stream,
    bucket: &str,
    headers_only: bool,
) -> Result<(u64, jetstream::consumer::push::Ordered), NatsError> {
    let consumer = stream
        .create_consumer(jetstream::consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            description: Some("flagstone bucket watch".into()),
            filter_subject: format!("$KV.{bucket}.>"),
            deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
            replay_policy: jetstream::consumer::ReplayPolicy::Instant,
            headers_only,
            ..Default::default()
        })
        .await
        .map_err(NatsError::nats)?;
    let pending = consumer.cached_info().num_pending;
    let messages = consumer.messages().await.map_err(NatsError::nats)?;
    Ok((pending, messages))
}

/// Whether a message of the bucket's stream removes its key.
pub fn is_removal(headers: Option<&async_nats::HeaderMap>) -> bool {
    headers
        .and_then(|h| h.get("KV-Operation"))
        .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_ignored() {
        assert_eq!(BucketKey::Environment(42).key(), "env.42");
        assert_eq!(BucketKey::parse("env.42"), Some(BucketKey::Environment(42)));
        assert_eq!(
            BucketKey::parse("core.heartbeat"),
            Some(BucketKey::Heartbeat)
        );
        assert_eq!(BucketKey::parse("env.x"), None);
        assert_eq!(BucketKey::parse("env.-1"), None);
        assert_eq!(BucketKey::parse("other"), None);
        assert_eq!(
            BucketKey::of_subject("b-1", "$KV.b-1.env.7"),
            Some(BucketKey::Environment(7))
        );
        assert_eq!(BucketKey::of_subject("b", "$KV.b-1.env.7"), None);
        assert_eq!(
            BucketKey::Environment(7).subject("flagstone-documents"),
            "$KV.flagstone-documents.env.7"
        );
    }

    #[test]
    fn urls_and_bucket_names_are_checked() {
        assert!(parse_nats_url("nats://127.0.0.1:4222").is_ok());
        assert!(parse_nats_url("127.0.0.1:4222").is_ok());
        assert!(parse_nats_url("nats://").is_err());
        assert!(parse_nats_url("nats://h:4222/?x=1").is_err());
        assert!(parse_bucket_name("flagstone-documents").is_ok());
        assert!(parse_bucket_name("a.b").is_err());
        assert!(parse_bucket_name("").is_err());
    }
}
