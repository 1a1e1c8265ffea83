//! `GET /api/v1/flags/[?feature=NAME]`: environment defaults, serialized once per revision.
//! Each answer counts as one evaluation of every flag it lists ([`crate::usage`]).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{caller, json_headers};
use crate::error::SdkError;
use crate::query::StrictQuery;
use crate::EdgeState;

pub(crate) async fn get_flags(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery,
) -> Result<Response, SdkError> {
    let c = caller(&state, &headers).await?;
    let body = c.snap.flags_body(c.server);
    let Some(name) = q.get("feature") else {
        c.snap.usage.listed(c.server);
        return Ok((json_headers(&c.snap.updated_at_header), body).into_response());
    };
    // One flag: pick it out of the pre-serialized list (rare path; the list is small).
    let items: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
    let item = items
        .into_iter()
        .find(|i| i["feature"]["name"].as_str() == Some(name.as_str()))
        .ok_or(SdkError::FeatureNotFound)?;
    if let Some(id) = item["feature"]["id"].as_i64() {
        c.snap.usage.served_one(id);
    }
    Ok((json_headers(&c.snap.updated_at_header), axum::Json(item)).into_response())
}
