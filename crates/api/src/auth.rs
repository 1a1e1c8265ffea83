//! Admin authentication: `Authorization: Api-Key <admin key>`. The key is hashed and looked up;
//! the matching admin key becomes the request's `Actor` (what the audit log records). Keys are
//! never logged.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

pub async fn require_admin(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let key = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Api-Key ")
                .or_else(|| v.strip_prefix("Token "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return ApiError::Unauthenticated.into_response();
    };
    match flagstone_store::keys::authenticate_admin(&state.store, key).await {
        Ok(Some(actor)) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Ok(None) => ApiError::Unauthenticated.into_response(),
        Err(e) => ApiError::Store(e).into_response(),
    }
}
