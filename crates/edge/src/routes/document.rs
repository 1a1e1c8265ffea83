//! `GET /api/v1/environment-document/` (server-side keys only): the published document, with
//! the environment's identity overrides streamed into its `identity_overrides` list one identity
//! at a time, so a million overrides never sit in memory. `ETag`/`If-None-Match` and
//! `Last-Modified`/`If-Modified-Since` answer 304 when nothing changed.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{caller, UPDATED_AT_HEADER};
use crate::error::SdkError;
use crate::snapshot::EnvSnapshot;
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
    let slot = match snap.overrides_slot {
        Some(slot) if snap.use_identity_overrides_in_local_eval => slot,
        _ => return Ok((meta, updated, snap.document.clone()).into_response()),
    };
    // Open the read before answering 200, so an unreachable store is a clean 503 (the SDK
    // keeps its previous document) rather than a truncated body.
    let mut tx = state
        .store
        .read()
        .await
        .map_err(|_| SdkError::Unavailable)?;
    let (send, recv) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let doc = snap.document.clone();
    let environment_id = snap.environment_id;
    tokio::spawn(async move {
        if send.send(Ok(doc.slice(..slot.at))).await.is_err() {
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
                let _ = send.send(Ok(doc.slice(slot.at..))).await;
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
    if let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let since = ims
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        // HTTP dates have whole seconds.
        return snap.updated_at.floor() <= since;
    }
    false
}
