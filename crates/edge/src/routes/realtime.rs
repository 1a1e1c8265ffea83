//! `GET /sse/environments/{client_key}/stream`: Flagsmith's real-time protocol. Each publish of
//! the environment sends `event: environment_updated` with `{"updated_at": <epoch seconds>}`;
//! SDKs re-fetch when it is newer than what they hold. The current value is sent on connect, so
//! a client that reconnects after missing events catches up at once. Keep-alives hold idle
//! connections open through proxies. Open subscriptions are capped ([`crate::sse_slots`]).
//! When the environment is deleted the stream ends with `event: error` and
//! `{"detail": "Not found."}` (what a new subscription would get as a 404), never silently.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::error::SdkError;
use crate::EdgeState;

pub(crate) async fn stream(
    State(state): State<EdgeState>,
    Path(client_key): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, SdkError> {
    // The stream needs no compiled snapshot: a subscriber does not make its environment resident.
    let snap = state
        .registry
        .published_waiting(&client_key, crate::auth::INITIAL_LOAD_WAIT)
        .await
        .ok_or(SdkError::NotFound("Not found."))?;
    // Decided before the status line: past a cap the subscriber gets a 503 naming it.
    let slot = state
        .sse
        .acquire(snap.environment_id)
        .map_err(|refusal| SdkError::Busy(refusal.reason()))?;
    let updates = BroadcastStream::new(state.registry.subscribe(&client_key))
        // A lagging subscriber skips to the next event, which carries the newest time anyway.
        .filter_map(|r| async move { r.ok() });
    let events = stream::once(async move { snap.updated_at })
        .chain(updates)
        .map(|updated_at| {
            Event::default()
                .event("environment_updated")
                .data(serde_json::json!({ "updated_at": updated_at }).to_string())
        })
        // The channel closes only when the environment is removed (deleted): say so, rather
        // than end a 200 stream without a reason.
        .chain(stream::once(async {
            Event::default()
                .event("error")
                .data(serde_json::json!({ "detail": "Not found." }).to_string())
        }))
        .map(move |event| {
            // The stream owns the slot: it is freed when the client goes away.
            let _slot = &slot;
            Ok(event)
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(state.config.sse_keep_alive)))
}
