//! `POST /api/v1/edge/traits` and `POST /api/v1/edge/usage`: what SDKs sent to an edge
//! following this node. Each item must be of an environment the follower key sees (others are
//! refused, and nothing of the batch is taken); accepted items join this node's own trait
//! writer and usage flusher, so they reach the store (here, or further up a chain) the way
//! this node's own do.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::{follower, visible};
use crate::error::SdkError;
use crate::upstream::protocol::{TraitBatch, UsageBatch, MAX_BATCH_ITEMS};
use crate::EdgeState;

pub(super) async fn traits(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Result<Json<TraitBatch>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), SdkError> {
    let scope = follower(&state, &headers).await?;
    let Json(batch) = body.map_err(|e| SdkError::BadRequest(e.body_text()))?;
    if batch.writes.len() > MAX_BATCH_ITEMS {
        return Err(SdkError::BadRequest(format!(
            "writes: at most {MAX_BATCH_ITEMS} per request"
        )));
    }
    for w in &batch.writes {
        visible(&state, &scope, w.environment_id)?;
        flagstone_store::identities::validate_identifier(&w.identifier)
            .map_err(super::super::identities::refused)?;
    }
    let accepted = batch.writes.len();
    for w in batch.writes {
        state.traits.submit(w).await;
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": accepted }))))
}

pub(super) async fn usage(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Result<Json<UsageBatch>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), SdkError> {
    let scope = follower(&state, &headers).await?;
    let Json(batch) = body.map_err(|e| SdkError::BadRequest(e.body_text()))?;
    if batch.rows.len() > MAX_BATCH_ITEMS {
        return Err(SdkError::BadRequest(format!(
            "rows: at most {MAX_BATCH_ITEMS} per request"
        )));
    }
    for r in &batch.rows {
        visible(&state, &scope, r.environment_id)?;
        // Only features of the environment are counted (as for this node's own SDKs).
        let known = state
            .registry
            .get_by_id(r.environment_id)
            .await
            .is_some_and(|snap| snap.features.contains_key(&r.feature_id));
        if !known {
            return Err(SdkError::BadRequest(format!(
                "rows: feature {} is not in environment {}",
                r.feature_id, r.environment_id
            )));
        }
        if r.hour % flagstone_store::evaluations::HOUR_MS != 0 {
            return Err(SdkError::BadRequest("rows: hour must start an hour".into()));
        }
    }
    let dropped = state.usage.add_rows(&batch.rows).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": batch.rows.len(), "dropped": dropped })),
    ))
}
