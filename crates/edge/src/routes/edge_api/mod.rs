//! The edge-follower API (`/api/v1/edge/…`, protocol in [`crate::upstream::protocol`]): what an
//! edge without database access follows. Served by every node with an SDK API, from what it
//! holds in memory, so the core and an edge following it answer alike (edges chain).
//! Every call needs a follower key ([`crate::follower_keys`]) and sees only its environments.

mod documents;
mod writes;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::SdkError;
use crate::follower_keys::{presented, Scope};
use crate::published::Published;
use crate::upstream::protocol::{IdentityBody, ScopeBody, ServerKeyBody};
use crate::EdgeState;

pub(crate) fn router() -> Router<EdgeState> {
    Router::new()
        .route("/api/v1/edge/revisions", get(documents::revisions))
        .route(
            "/api/v1/edge/environments/{api_key}/document",
            get(documents::document),
        )
        .route(
            "/api/v1/edge/environments/{api_key}/sdk-features",
            get(documents::sdk_features),
        )
        .route("/api/v1/edge/scope", get(scope))
        .route("/api/v1/edge/server-key", get(server_key))
        .route("/api/v1/edge/identity", get(identity))
        .route("/api/v1/edge/traits", post(writes::traits))
        .route("/api/v1/edge/usage", post(writes::usage))
}

/// The follower's scope, from its `Authorization` header. Answered once this node's initial
/// load is over: what a follower is told (the environments it sees, the first list of
/// revisions) must not be part of what this node is still loading, or the follower would drop
/// the rest.
pub(crate) async fn follower(
    state: &EdgeState,
    headers: &HeaderMap,
) -> Result<Arc<Scope>, SdkError> {
    let key = presented(headers)?;
    state.registry.initial_load_finished().await;
    state.followers.resolve(&state.source, key).await
}

/// An environment the follower sees, by id (a 404 for one it does not: not a hint it exists).
pub(crate) fn visible(
    state: &EdgeState,
    scope: &Scope,
    environment_id: i64,
) -> Result<Arc<Published>, SdkError> {
    state
        .registry
        .published_by_id(environment_id)
        .filter(|s| scope.sees(s))
        .ok_or(SdkError::NotFound("Not found."))
}

/// `GET /api/v1/edge/scope`: the environments the key follows (how an edge without a store
/// checks the keys of edges following it).
async fn scope(
    State(state): State<EdgeState>,
    headers: HeaderMap,
) -> Result<Json<ScopeBody>, SdkError> {
    let scope = follower(&state, &headers).await?;
    let mut environments: Vec<i64> = state
        .registry
        .all()
        .iter()
        .filter(|s| scope.sees(s))
        .map(|s| s.environment_id)
        .collect();
    environments.sort_unstable();
    Ok(Json(ScopeBody { environments }))
}

/// `GET /api/v1/edge/server-key` with `X-Environment-Key: ser.…`: the client key of the
/// environment the server-side key belongs to; 404 when it is unknown or not followed.
async fn server_key(
    State(state): State<EdgeState>,
    headers: HeaderMap,
) -> Result<Json<ServerKeyBody>, SdkError> {
    let scope = follower(&state, &headers).await?;
    let key = headers
        .get(crate::auth::KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(SdkError::BadRequest(
            "X-Environment-Key is required.".into(),
        ))?;
    let api_key = state
        .server_keys
        .resolve(&state.source, key)
        .await?
        .ok_or(SdkError::NotFound("Not found."))?;
    let snap = state
        .registry
        .published(&api_key)
        .filter(|s| scope.sees(s))
        .ok_or(SdkError::NotFound("Not found."))?;
    Ok(Json(ServerKeyBody {
        api_key: snap.api_key.clone(),
    }))
}

#[derive(Deserialize)]
struct IdentityQuery {
    environment_id: i64,
    identifier: String,
}

/// `GET /api/v1/edge/identity?environment_id=…&identifier=…`: an identity's stored traits and
/// identity overrides (`exists: false` for one never stored).
async fn identity(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    Query(q): Query<IdentityQuery>,
) -> Result<Json<IdentityBody>, SdkError> {
    let scope = follower(&state, &headers).await?;
    visible(&state, &scope, q.environment_id)?;
    flagstone_store::identities::validate_identifier(&q.identifier)
        .map_err(super::identities::refused)?;
    let stored =
        super::identities::load_stored_identity(&state.source, q.environment_id, &q.identifier)
            .await
            .map_err(|e| {
                tracing::warn!(environment = q.environment_id, error = %e, "loading an identity for a follower failed");
                SdkError::Unavailable
            })?;
    Ok(Json(IdentityBody {
        exists: stored.exists,
        traits: stored.traits,
        overrides: stored.overrides,
    }))
}
