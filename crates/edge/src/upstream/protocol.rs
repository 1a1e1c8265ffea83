//! The edge-follower protocol's wire shapes, shared by the endpoints that serve it
//! (`routes::edge_api`) and the client that follows them ([`super::Client`]).
//!
//! - `GET /api/v1/edge/revisions[?environments=k1,k2]`: Server-Sent Events. On connect
//!   `event: snapshot` with every followed environment's revision; then `event: revision` per
//!   new revision and `event: removed` per deleted environment; `event: heartbeat` at once and
//!   then periodically, saying how current the sender itself is (so staleness carries down a
//!   chain).
//!   A follower that falls behind the stream sees it end, and resynchronises on reconnect.
//! - `GET /api/v1/edge/environments/{api_key}/document`: the compiled document, gzip as
//!   published; `ETag` is the revision (`If-None-Match` answers 304); headers below say what
//!   is needed to serve it.
//! - `GET /api/v1/edge/environments/{api_key}/sdk-features`: the SDK fields of its features
//!   (created date, description, initial value…) published beside the document, JSON; 204
//!   when the document predates them. Fetched with each new document.
//! - `GET /api/v1/edge/scope`, `GET /api/v1/edge/server-key`, `GET /api/v1/edge/identity`:
//!   what a key follows, a server-side key's environment, an identity's stored data.
//! - `POST /api/v1/edge/traits`, `POST /api/v1/edge/usage`: what SDKs sent to a follower.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::traits_writer::TraitWrite;
use crate::usage::UsageRow;

pub const EVENT_SNAPSHOT: &str = "snapshot";
pub const EVENT_REVISION: &str = "revision";
pub const EVENT_REMOVED: &str = "removed";
pub const EVENT_HEARTBEAT: &str = "heartbeat";

pub const HEADER_ENVIRONMENT_ID: &str = "x-flagstone-environment-id";
pub const HEADER_REVISION: &str = "x-flagstone-revision";
/// The store's tag of the document body (SDK `ETag`s are built from it and the revision).
pub const HEADER_DOCUMENT_ETAG: &str = "x-flagstone-document-etag";
/// `true` when an earlier document of the environment has an `updated_at` in the same second.
pub const HEADER_SHARES_SECOND: &str = "x-flagstone-shares-second";

/// Writes or rows per POST, at most.
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// One environment's revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub environment_id: i64,
    pub api_key: String,
    pub revision: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub environments: Vec<Revision>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removed {
    pub environment_id: i64,
    pub api_key: String,
}

/// A heartbeat: how current the sending node is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    /// When the sender's own source (store or upstream) last confirmed its documents (Unix ms).
    pub confirmed_at_ms: Option<i64>,
    /// The sender serves last good copies (its own source is unreachable).
    pub serving_from_cache: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScopeBody {
    pub environments: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerKeyBody {
    /// The client key of the environment the server-side key belongs to.
    pub api_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityBody {
    pub exists: bool,
    pub traits: IndexMap<String, Value>,
    /// `(feature id, enabled, value)`.
    pub overrides: Vec<(i64, bool, Value)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraitBatch {
    pub writes: Vec<TraitWrite>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageBatch {
    pub rows: Vec<UsageRow>,
}

/// One Server-Sent Event: its name and data (lines joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Splits complete events off the front of `buf` (an SSE stream read so far); what remains is
/// an incomplete event. Comments (`:` lines) count as nothing but contact.
pub fn take_events(buf: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some((end, sep)) = find_blank_line(buf) {
        let block: Vec<u8> = buf.drain(..end + sep).collect();
        let text = String::from_utf8_lossy(&block[..end]);
        let mut event = String::from("message");
        let mut data: Vec<&str> = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim_start().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            out.push(SseEvent {
                event,
                data: data.join("\n"),
            });
        }
    }
    out
}

/// Where the first blank line (`\n\n` or `\r\n\r\n`) ends an event: its offset and length.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_and_keeps_the_incomplete_rest() {
        let mut buf =
            b"event: snapshot\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: revision\r\ndata: x\r\n\r\nevent: rev"
                .to_vec();
        let got = take_events(&mut buf);
        assert_eq!(
            got,
            [
                SseEvent {
                    event: "snapshot".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "revision".into(),
                    data: "x".into()
                },
            ]
        );
        assert_eq!(buf, b"event: rev");
        buf.extend_from_slice(b"ision\ndata: y\n\n");
        assert_eq!(take_events(&mut buf)[0].data, "y");
        assert!(buf.is_empty());
    }
}
