//! SDK errors in Flagsmith's shape: `{"detail": "…"}` with Flagsmith's status codes, so SDKs
//! that parse these messages behave as they do against Flagsmith.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// No key, or a client key where a server key is required.
    #[error("Invalid or missing Environment key")]
    MissingKey,
    /// The key is unknown (or revoked).
    #[error("Invalid or missing Environment Key")]
    UnknownKey,
    #[error("Organisation is disabled from serving flags.")]
    ServingDisabled,
    #[error("Given feature not found")]
    FeatureNotFound,
    #[error("{0}")]
    BadRequest(String),
    /// A field-keyed validation error, like DRF's `{field: [messages]}`.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(&'static str),
    /// The caller may not do this here (Flagsmith's permission message).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the flag store is unreachable; try again")]
    Unavailable,
    /// A project limit (the store's rule): the same body as the admin API's.
    #[error("{detail}")]
    LimitExceeded {
        limit: flagstone_store::LimitName,
        max: i64,
        detail: String,
    },
    /// A cap on open connections is reached; the message names it.
    #[error("{0}")]
    Busy(String),
    /// This edge created its allowance of new identities in the environment for now.
    #[error("Too many new identities in this environment: at most {max} per minute are created (max_new_identities_per_minute); retry in {retry_after_secs} s")]
    TooManyNewIdentities { max: u32, retry_after_secs: u64 },
}

impl IntoResponse for SdkError {
    fn into_response(self) -> Response {
        let status = match &self {
            SdkError::MissingKey
            | SdkError::UnknownKey
            | SdkError::ServingDisabled
            | SdkError::Forbidden(_) => StatusCode::FORBIDDEN,
            SdkError::FeatureNotFound | SdkError::NotFound(_) => StatusCode::NOT_FOUND,
            SdkError::BadRequest(_) | SdkError::Invalid { .. } | SdkError::LimitExceeded { .. } => {
                StatusCode::BAD_REQUEST
            }
            SdkError::Unavailable | SdkError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            SdkError::TooManyNewIdentities { .. } => StatusCode::TOO_MANY_REQUESTS,
        };
        let body = match &self {
            SdkError::Invalid { field, message } => json!({ field.as_str(): [message] }),
            SdkError::LimitExceeded { limit, max, detail } => {
                let mut body = json!({
                    "error": "limit_exceeded", "limit": limit, "max": max, "detail": detail,
                });
                // Flagsmith's own answer for a long trait value, which SDKs may show, as well.
                if *limit == flagstone_store::LimitName::MaxTraitValueChars {
                    body["trait_value"] = json!([format!(
                        "Value string is too long. Must be less than {max} character"
                    )]);
                }
                body
            }
            SdkError::TooManyNewIdentities { max, .. } => json!({
                "detail": self.to_string(),
                "error": "limit_exceeded",
                "limit": "max_new_identities_per_minute",
                "max": max,
            }),
            other => json!({"detail": other.to_string()}),
        };
        if let SdkError::TooManyNewIdentities {
            retry_after_secs, ..
        } = self
        {
            let retry = [(
                axum::http::header::RETRY_AFTER,
                retry_after_secs.to_string(),
            )];
            return (status, retry, axum::Json(body)).into_response();
        }
        (status, axum::Json(body)).into_response()
    }
}
