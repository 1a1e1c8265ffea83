//! Flagstone's admin API: HTTP/JSON under `/api/v1/`, following Flagsmith's resource paths and
//! field names. Handlers are thin: extract, call the store inside one [`flagstone_store::Change`],
//! map the result. Errors become responses in [`error::ApiError`]; the OpenAPI document is
//! generated from the handlers' annotations and served at `/api/v1/openapi.json`.

pub mod auth;
pub mod error;
pub mod extract;
pub mod pagination;
mod routes;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use flagstone_store::Store;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Request bodies above this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Flagstone admin API", description = "Flagsmith-compatible admin API. Authenticate with `Authorization: Api-Key <admin key>`."),
    modifiers(&SecurityAddon),
    security(("admin_key" = []))
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "Api-Key <admin key>",
            ))),
        );
    }
}

/// The admin API's routes and their OpenAPI description.
pub fn admin_api(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, openapi) =
        routes::all(OpenApiRouter::with_openapi(ApiDoc::openapi())).split_for_parts();
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    (router, openapi)
}

/// The admin API plus its unauthenticated OpenAPI document.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = admin_api(state);
    let doc = serde_json::to_value(&openapi).unwrap_or_default();
    Router::new()
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { axum::Json(doc) }),
        )
        .merge(api)
}
