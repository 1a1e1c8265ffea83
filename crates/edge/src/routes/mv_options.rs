//! `GET /api/v1/flags/{feature_id}/multivariate-options/`: Flagsmith's legacy SDK listing of a
//! feature's variants (`get_multivariate_options`, `FeatureMVOptionsValuesResponseSerializer`):
//! `{"control_value": <the environment default's value>, "options": [{"value": …}, …]}`, with
//! the environment key of a client or server key. A feature of another project, or an id that
//! is not a number, is a 404. Flagstone addition: a server-key-only feature is a 404 for client
//! keys too, as it is everywhere else on the SDK API.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{caller, json_headers};
use crate::error::SdkError;
use crate::EdgeState;

pub(crate) async fn get_mv_options(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    Path(feature_id): Path<String>,
) -> Result<Response, SdkError> {
    let c = caller(&state, &headers).await?;
    let not_found = SdkError::NotFound("Not found.");
    // Flagsmith's route only matches digits.
    if feature_id.is_empty() || !feature_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_found);
    }
    let Ok(id) = feature_id.parse::<i64>() else {
        return Err(not_found);
    };
    let Some(meta) = c.snap.features.get(&id) else {
        return Err(not_found);
    };
    if !c.server && c.snap.server_key_only.contains(&id) {
        return Err(not_found);
    }
    let options: Vec<Value> = meta
        .mv
        .options
        .iter()
        .map(|v| json!({ "value": v }))
        .collect();
    let body = json!({"control_value": meta.mv.control_value, "options": options});
    Ok((json_headers(&c.snap.updated_at_header), axum::Json(body)).into_response())
}
