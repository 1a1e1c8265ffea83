//! `GET /api/v1/environment-document/` (server-side keys only): the published document, with
//! the environment's identity overrides streamed into its `identity_overrides` list one identity
//! at a time, so a million overrides never sit in memory. `ETag`/`If-None-Match` and
//! `Last-Modified`/`If-Modified-Since` answer 304 only when the client provably holds this
//! document ([`not_modified`]).
//!
//! The edge holds the document gzip-compressed, as published: without identity overrides to
//! splice in, a client that accepts gzip gets those bytes as they are. An edge without a store
//! (following an upstream over HTTP) serves the document without identity overrides.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{caller, UPDATED_AT_HEADER};
use crate::error::SdkError;
use crate::snapshot::{EnvSnapshot, Gunzip};
use crate::EdgeState;

pub(crate) async fn get_document(
    State(state): State<EdgeState>,
    headers: HeaderMap,
) -> Result<Response, SdkError> {
    let c = caller(&state, &headers).await?;
    if !c.server {
        return Err(SdkError::MissingKey);
    }
    let snap = c.snap;
    let meta = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::ETAG, snap.etag.clone()),
        (header::LAST_MODIFIED, snap.last_modified.clone()),
    ];
    let updated = [(UPDATED_AT_HEADER, snap.updated_at_header.clone())];
    if not_modified(&headers, &snap) {
        return Ok((StatusCode::NOT_MODIFIED, meta, updated).into_response());
    }
    // An edge without a store has no identity overrides to splice in (docs/topologies.md).
    let store = state.source.store();
    let splice = snap.use_identity_overrides_in_local_eval && store.is_some();
    let Some(slot) = snap.overrides_slot.filter(|_| splice) else {
        // Nothing to splice: the stored gzip as is to the clients that take it (SDKs do), so
        // neither memory nor CPU is spent on the JSON; decompressed on the fly for the others.
        if accepts_gzip(&headers) {
            let encoding = [
                (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                (header::VARY, HeaderValue::from_static("accept-encoding")),
            ];
            return Ok((meta, updated, encoding, snap.document_gz.clone()).into_response());
        }
        let (send, recv) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let mut doc = Gunzip::new(snap.document_gz.clone());
        tokio::spawn(async move {
            send_gunzipped(&mut doc, &send, usize::MAX).await;
        });
        let body = Body::from_stream(ReceiverStream::new(recv));
        return Ok((meta, updated, body).into_response());
    };
    // Open the read before answering 200, so an unreachable store is a clean 503 (the SDK
    // keeps its previous document) rather than a truncated body.
    let Some(store) = store else {
        return Err(SdkError::Unavailable);
    };
    let mut tx = store.read().await.map_err(|_| SdkError::Unavailable)?;
    let environment_id = snap.environment_id;
    // Decided in the same read as the overrides, before the status line: an environment
    // deleted since this edge last heard is a 403 (its key is gone), not a 200 whose body
    // ends early or lists nothing.
    match flagstone_store::environments::get(&mut tx, environment_id).await {
        Ok(_) => {}
        Err(flagstone_store::StoreError::NotFound { .. }) => return Err(SdkError::UnknownKey),
        Err(_) => return Err(SdkError::Unavailable),
    }
    let (send, recv) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    // The document is decompressed as it is sent (the compression layer gzips the whole
    // response again for clients that accept it).
    let mut doc = Gunzip::new(snap.document_gz.clone());
    tokio::spawn(async move {
        if !send_gunzipped(&mut doc, &send, slot.at).await {
            return;
        }
        let mut first = true;
        let streamed = flagstone_store::document::identity_overrides::stream(
            &mut tx,
            environment_id,
            |json| {
                let mut chunk = Vec::with_capacity(json.len() + 1);
                if !first {
                    chunk.push(b',');
                }
                first = false;
                chunk.extend_from_slice(&json);
                let send = send.clone();
                async move { send.send(Ok(Bytes::from(chunk))).await.is_ok() }
            },
        )
        .await;
        match streamed {
            Ok(_) => {
                send_gunzipped(&mut doc, &send, usize::MAX).await;
            }
            Err(e) => {
                tracing::warn!(environment = environment_id, error = %e, "streaming identity overrides failed");
                let _ = send
                    .send(Err(std::io::Error::other("identity overrides")))
                    .await;
            }
        }
    });
    let body = Body::from_stream(ReceiverStream::new(recv));
    Ok((meta, updated, body).into_response())
}

/// Decompressed pieces of the document sent per chunk.
const CHUNK: usize = 64 * 1024;

/// Sends the next `len` bytes of the document (or up to its end), decompressed. Returns false
/// if the client went away or the document cannot be decompressed (the body then ends in an
/// error, so the client sees a truncated response, not a shorter document).
async fn send_gunzipped(
    doc: &mut Gunzip,
    send: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    mut len: usize,
) -> bool {
    while len > 0 {
        match doc.next_chunk(len.min(CHUNK)) {
            Ok(chunk) if chunk.is_empty() => return true,
            Ok(chunk) => {
                len -= chunk.len();
                if send.send(Ok(chunk)).await.is_err() {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "decompressing a held document failed");
                let _ = send.send(Err(e)).await;
                return false;
            }
        }
    }
    true
}

/// Whether `Accept-Encoding` admits gzip (`gzip` or `x-gzip` without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            if !name.eq_ignore_ascii_case("gzip") && !name.eq_ignore_ascii_case("x-gzip") {
                return false;
            }
            parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
                })
                .all(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0))
        })
}

/// Whether the client holds this very document. `If-None-Match` decides when it is sent (the
/// tag names the revision). `If-Modified-Since` has whole seconds, and Flagsmith's edge-proxy
/// builds it from the `updated_at` of the document it holds, truncated: it proves the client
/// current only when this document's second is before it, or is that second and no earlier
/// published document shares it (two changes in one second would otherwise leave the second
/// one unseen until a third).
fn not_modified(headers: &HeaderMap, snap: &EnvSnapshot) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let ours = snap.etag.to_str().unwrap_or("");
        return inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t == ours || t.strip_prefix("W/") == Some(ours)
        });
    }
    let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
    else {
        return false;
    };
    let second = snap.updated_at.max(0.0).floor() as u64;
    second < since || (second == since && !snap.shares_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(v: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        accepts_gzip(&h)
    }

    #[test]
    fn reads_accept_encoding() {
        assert!(accepts("gzip"));
        assert!(accepts("gzip, deflate, br"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts("x-gzip"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.000"));
        assert!(!accepts("deflate, br"));
        assert!(!accepts("identity"));
        assert!(!accepts("gzipx"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
