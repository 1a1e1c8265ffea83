//! One error type for every admin handler, turned into a JSON response in one place. A client's
//! mistake is always a 4xx that names the field or the limit; a store that cannot take writes for
//! now (disk full, database unreachable) is a 503 with its reason; only the store failing
//! otherwise is a 500.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flagstone_access::Refusal;
use flagstone_store::StoreError;
use serde_json::json;

use crate::auth::throttle::RetryAfter;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated, but not allowed: the refusal names the missing permission.
    #[error("forbidden: {0}")]
    Forbidden(Refusal),
    /// A cookie-authenticated request that changes something without its CSRF token.
    #[error("CSRF token missing or wrong")]
    Csrf,
    /// Sign-in failed. One answer for an unknown email, a wrong password and a deactivated
    /// account (Flagsmith's body), so it never tells whether an account exists.
    #[error("unable to log in with provided credentials")]
    InvalidCredentials,
    /// Too many failures from this client or for this account.
    #[error("too many failed attempts")]
    TooManyRequests(RetryAfter),
    /// Sign-up is closed and no valid invite was given.
    #[error("{0}")]
    SignupClosed(String),
    #[error("{0}")]
    BadJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body too large")]
    PayloadTooLarge,
    /// Refused for what the request is rather than a missing permission: `403` with `error`
    /// naming the rule (an edit that must go through a change request; an author approving
    /// their own request).
    #[error("{detail}")]
    Refused { error: &'static str, detail: String },
    /// The request's object is not in a state that allows it (a committed change request):
    /// `400` with `error` naming the rule.
    #[error("{detail}")]
    NotNow { error: &'static str, detail: String },
    /// The request conflicts with changes made since it was prepared: `409`, with what
    /// conflicts.
    #[error("{detail}")]
    Conflict {
        error: &'static str,
        detail: String,
        conflicts: serde_json::Value,
    },
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            // serde's message names the field and the problem ("unknown field `x`", "invalid
            // type: string \"a\", expected a boolean at line 1 column 12").
            other => ApiError::BadJson(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Store(StoreError::NotFound { resource }) => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "detail": format!("{resource} not found")}),
            ),
            ApiError::Store(StoreError::Invalid { field, detail }) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid", "field": field, "detail": detail}),
            ),
            ApiError::Store(StoreError::Conflict { field, detail }) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "conflict", "field": field, "detail": detail}),
            ),
            ApiError::Store(StoreError::LimitExceeded { limit, max, detail }) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "limit_exceeded", "limit": limit, "max": max, "detail": detail}),
            ),
            ApiError::Store(e) if e.unavailable().is_some() => {
                let why = e.unavailable().expect("checked");
                tracing::error!(error = %e, reason = why.as_str(), "store unavailable");
                let body = json!({
                    "error": "unavailable",
                    "reason": why.as_str(),
                    "detail": why.detail(),
                });
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, "5")],
                    axum::Json(body),
                )
                    .into_response();
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal", "detail": "internal error; see the server log"}),
                )
            }
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthenticated", "detail": "authentication required: send 'Authorization: Token <token>' (from POST /api/v1/auth/login/) or 'Authorization: Api-Key <key>', or sign in"}),
            ),
            ApiError::Forbidden(r) => {
                let scope = r
                    .need
                    .scope()
                    .map(|(kind, id)| json!({"type": kind.as_str(), "id": id}));
                (
                    StatusCode::FORBIDDEN,
                    json!({
                        "error": "forbidden",
                        "detail": r.to_string(),
                        "missing_permission": r.need.missing_permission(),
                        "reason": r.reason.as_str(),
                        "scope": scope,
                    }),
                )
            }
            ApiError::Csrf => (
                StatusCode::FORBIDDEN,
                json!({"error": "csrf", "detail": "CSRF token missing or wrong"}),
            ),
            ApiError::InvalidCredentials => (
                StatusCode::BAD_REQUEST,
                json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
            ),
            ApiError::TooManyRequests(RetryAfter(secs)) => {
                let body = json!({
                    "error": "too_many_requests",
                    "detail": format!("Too many failed attempts. Try again in {secs} seconds."),
                    "retry_after": secs,
                });
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, secs.to_string())],
                    axum::Json(body),
                )
                    .into_response();
            }
            ApiError::SignupClosed(detail) => (
                StatusCode::FORBIDDEN,
                json!({"error": "signup_closed", "detail": detail}),
            ),
            ApiError::BadJson(detail) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_json", "detail": detail}),
            ),
            ApiError::BadRequest(detail) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid", "detail": detail}),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "limit_exceeded", "limit": "max_request_body_bytes", "detail": "request body too large"}),
            ),
            ApiError::Refused { error, detail } => (
                StatusCode::FORBIDDEN,
                json!({"error": error, "detail": detail}),
            ),
            ApiError::NotNow { error, detail } => (
                StatusCode::BAD_REQUEST,
                json!({"error": error, "detail": detail}),
            ),
            ApiError::Conflict {
                error,
                detail,
                conflicts,
            } => (
                StatusCode::CONFLICT,
                json!({"error": error, "detail": detail, "conflicts": conflicts}),
            ),
        };
        (status, axum::Json(body)).into_response()
    }
}
