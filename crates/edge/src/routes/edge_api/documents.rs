//! `GET /api/v1/edge/revisions` (the revision stream) and
//! `GET /api/v1/edge/environments/{api_key}/document` (one compiled document).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use super::follower;
use crate::error::SdkError;
use crate::follower_keys::Scope;
use crate::registry::RegistryChange;
use crate::upstream::protocol::{
    Heartbeat, Removed, Revision, Snapshot, EVENT_HEARTBEAT, EVENT_REMOVED, EVENT_REVISION,
    EVENT_SNAPSHOT, HEADER_DOCUMENT_ETAG, HEADER_ENVIRONMENT_ID, HEADER_REVISION,
    HEADER_SHARES_SECOND,
};
use crate::EdgeState;

/// Client keys a follower may list, at most.
const MAX_LISTED: usize = 10_000;

#[derive(Deserialize)]
pub(super) struct RevisionsQuery {
    /// Comma-separated client keys: follow only these.
    environments: Option<String>,
}

/// Which environments a stream carries: the key's, narrowed to a listed subset if any.
struct Filter {
    scope: Arc<Scope>,
    listed: Option<HashSet<String>>,
}

impl Filter {
    fn wants(&self, state: &EdgeState, api_key: &str) -> bool {
        if self.listed.as_ref().is_some_and(|l| !l.contains(api_key)) {
            return false;
        }
        state
            .registry
            .published(api_key)
            .is_some_and(|s| self.scope.sees(&s))
    }
}

pub(super) async fn revisions(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    Query(q): Query<RevisionsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, SdkError> {
    let scope = follower(&state, &headers).await?;
    let listed = match q.environments.as_deref() {
        None => None,
        Some(list) => {
            let keys: HashSet<String> = list
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect();
            if keys.is_empty() || keys.len() > MAX_LISTED {
                return Err(SdkError::BadRequest(format!(
                    "environments: list between 1 and {MAX_LISTED} client keys"
                )));
            }
            Some(keys)
        }
    };
    let filter = Arc::new(Filter { scope, listed });
    // Subscribed before the snapshot is read: a change in between is sent twice at worst.
    let changes = BroadcastStream::new(state.registry.changes());
    let mut environments: Vec<Revision> = state
        .registry
        .all()
        .iter()
        .filter(|s| filter.wants(&state, &s.api_key))
        .map(|s| Revision {
            environment_id: s.environment_id,
            api_key: s.api_key.clone(),
            revision: s.revision,
        })
        .collect();
    environments.sort_by_key(|r| r.environment_id);
    let first = Event::default()
        .event(EVENT_SNAPSHOT)
        .data(serde_json::to_string(&Snapshot { environments }).unwrap_or_default());
    let state2 = state.clone();
    let later = changes
        // A follower that lags loses its place: the stream ends and its reconnect resyncs.
        .take_while(|c| std::future::ready(c.is_ok()))
        .filter_map(move |c| {
            let event = match c {
                Ok(RegistryChange::Installed {
                    environment_id,
                    api_key,
                    revision,
                }) if filter.wants(&state2, &api_key) => Some(
                    Event::default().event(EVENT_REVISION).data(
                        serde_json::to_string(&Revision {
                            environment_id,
                            api_key,
                            revision,
                        })
                        .unwrap_or_default(),
                    ),
                ),
                // Removed environments are no longer in the registry to check the scope
                // against; announcing one the follower never held costs it nothing.
                Ok(RegistryChange::Removed {
                    environment_id,
                    api_key,
                }) if filter.listed.as_ref().is_none_or(|l| l.contains(&api_key)) => Some(
                    Event::default().event(EVENT_REMOVED).data(
                        serde_json::to_string(&Removed {
                            environment_id,
                            api_key,
                        })
                        .unwrap_or_default(),
                    ),
                ),
                _ => None,
            };
            std::future::ready(event)
        });
    // The first tick is immediate: the follower learns at once how current this node is, and
    // again as soon as that changes (this node confirmed, or cut off), not only every period.
    let health = state.health.clone();
    let ticks = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(
        state.config.follower_heartbeat,
    ))
    .map(|_| ());
    let changes_of_health = stream::unfold(health.clone(), |h| async move {
        h.changed().await;
        Some(((), h))
    });
    let heartbeats = stream::select(ticks, changes_of_health).map(move |_| {
        let beat = Heartbeat {
            confirmed_at_ms: health.confirmed_at_ms(),
            serving_from_cache: health.serving_from_cache(),
        };
        Event::default()
            .event(EVENT_HEARTBEAT)
            .data(serde_json::to_string(&beat).unwrap_or_default())
    });
    // The stream ends when the changes do (a lagging follower resyncs on reconnect).
    let changes = stream::once(std::future::ready(first)).chain(later);
    let events = stream::select(
        changes
            .map(Some)
            .chain(stream::once(std::future::ready(None))),
        heartbeats.map(Some),
    )
    .take_while(|e| std::future::ready(e.is_some()))
    .filter_map(std::future::ready)
    .map(Ok::<_, Infallible>);
    Ok(Sse::new(events))
}

/// The compiled document as published (gzip), `ETag` = its revision.
pub(super) async fn document(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    Path(api_key): Path<String>,
) -> Result<Response, SdkError> {
    let scope = follower(&state, &headers).await?;
    let snap = state
        .registry
        .published(&api_key)
        .filter(|s| scope.sees(s))
        .ok_or(SdkError::NotFound("Not found."))?;
    let etag = format!("\"{}\"", snap.revision);
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    let meta = [
        (header::ETAG, value(&etag)),
        (
            header::HeaderName::from_static(HEADER_REVISION),
            value(&snap.revision.to_string()),
        ),
        (
            header::HeaderName::from_static(HEADER_ENVIRONMENT_ID),
            value(&snap.environment_id.to_string()),
        ),
        (
            header::HeaderName::from_static(HEADER_DOCUMENT_ETAG),
            value(&snap.etag),
        ),
        (
            header::HeaderName::from_static(HEADER_SHARES_SECOND),
            HeaderValue::from_static(if snap.shares_second { "true" } else { "false" }),
        ),
    ];
    let held = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|inm| inm.split(',').any(|t| t.trim() == etag));
    if held {
        return Ok((StatusCode::NOT_MODIFIED, meta).into_response());
    }
    let body = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        // Already compressed: the compression layer leaves it as it is.
        (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
    ];
    Ok((meta, body, snap.document_gz.clone()).into_response())
}

/// The SDK fields of the environment's features, as published beside its document (JSON), with
/// the revision they belong to; 204 when the document was published without them.
pub(super) async fn sdk_features(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    Path(api_key): Path<String>,
) -> Result<Response, SdkError> {
    let scope = follower(&state, &headers).await?;
    let snap = state
        .registry
        .published(&api_key)
        .filter(|s| scope.sees(s))
        .ok_or(SdkError::NotFound("Not found."))?;
    let revision = [(
        header::HeaderName::from_static(HEADER_REVISION),
        HeaderValue::from_str(&snap.revision.to_string()).unwrap_or(HeaderValue::from_static("")),
    )];
    Ok(match snap.sdk_features_json() {
        Some(json) => (
            revision,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        None => (StatusCode::NO_CONTENT, revision).into_response(),
    })
}
