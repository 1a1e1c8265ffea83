//! `POST /api/v1/analytics/flags/`: SDKs report how often each flag was evaluated
//! (`{"feature_name": count}`); counted in `flagstone_sdk_flag_evaluations_total` and in
//! flag usage ([`crate::usage`]). Unknown
//! feature names and non-integer counts are dropped, as Flagsmith does, which also keeps the
//! metric's label set bounded by the environment's features.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::Value;

use super::caller;
use crate::error::SdkError;
use crate::EdgeState;

pub(crate) async fn post_analytics(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, SdkError> {
    let c = caller(&state, &headers).await?;
    let not_object = || SdkError::Invalid {
        field: "non_field_errors".into(),
        message: "Expected a JSON object.".into(),
    };
    let v: Value = serde_json::from_slice(&body).map_err(|_| not_object())?;
    let counts = v.as_object().ok_or_else(not_object)?;
    let environment = c.snap.environment_id.to_string();
    metrics::counter!(crate::metrics::ANALYTICS_REPORTS_TOTAL).increment(1);
    for (&id, meta) in &c.snap.features {
        if let Some(n) = counts.get(&meta.name).and_then(Value::as_u64) {
            c.snap.usage.reported(id, n);
            metrics::counter!(crate::metrics::ANALYTICS_EVALUATIONS_TOTAL).increment(n);
            metrics::counter!(
                "flagstone_sdk_flag_evaluations_total",
                "environment" => environment.clone(),
                "feature" => meta.name.clone()
            )
            .increment(n);
        }
    }
    Ok(StatusCode::OK)
}
