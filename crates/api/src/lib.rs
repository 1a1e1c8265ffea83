//! Flagstone's admin API: HTTP/JSON under `/api/v1/`, following Flagsmith's resource paths and
//! field names. Handlers are thin: extract, call the store inside one [`flagstone_store::Change`],
//! map the result. Every route but sign-in and sign-up is behind [`auth::caller::require_caller`]
//! (who is calling; see [`auth`]). Errors become responses in [`error::ApiError`]; the OpenAPI
//! document is generated from the handlers' annotations and served at `/api/v1/openapi.json`.

pub mod auth;
pub mod clock;
pub mod error;
pub mod extract;
pub mod mail;
mod openapi_errors;
pub mod pagination;
mod routes;

use std::sync::Arc;

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
    /// Authentication's configuration, clock, password hasher and failure limits.
    pub auth: Arc<auth::Auth>,
    /// Which webhook URLs are accepted (SSRF rules; `--webhooks-allow-private`).
    pub webhooks: routes::webhooks::WebhookPolicy,
    /// How invitations reach people: the public address of join links, and mail.
    pub invitations: Arc<Invitations>,
    /// When features count as stale where a project does not say (`--stale-unused-days`,
    /// `--stale-fixed-value-days`).
    pub staleness: flagstone_store::evaluations::StaleSettings,
}

/// How invitations reach people (`flagstone serve --public-url`, `--smtp-url`, `--smtp-from`).
#[derive(Clone, Default)]
pub struct Invitations {
    /// Where people reach this server, e.g. `https://flags.example.com`: join links start with
    /// it. Without it, a link shown in a response is built from the request's `Host`, and no
    /// mail is sent (a mailed link must not depend on a header a client chose).
    pub public_url: Option<String>,
    /// Sends emailed invitations; without it their join links are in the response.
    pub mailer: Option<Arc<dyn mail::Mailer>>,
}

impl AppState {
    /// Default authentication settings on the wall clock.
    pub fn new(store: Store) -> AppState {
        AppState::with_auth(
            store,
            auth::AuthConfig::default(),
            Arc::new(clock::SystemClock),
        )
    }

    pub fn with_auth(
        store: Store,
        config: auth::AuthConfig,
        clock: Arc<dyn clock::Clock>,
    ) -> AppState {
        AppState {
            store,
            auth: Arc::new(auth::Auth::new(config, clock)),
            webhooks: Default::default(),
            invitations: Arc::new(Invitations::default()),
            staleness: Default::default(),
        }
    }

    /// The same state with these installation defaults for stale features.
    pub fn with_staleness(
        mut self,
        staleness: flagstone_store::evaluations::StaleSettings,
    ) -> AppState {
        self.staleness = staleness;
        self
    }

    /// The same state with these invitation settings.
    pub fn with_invitations(mut self, invitations: Invitations) -> AppState {
        self.invitations = Arc::new(invitations);
        self
    }

    /// The same state accepting webhook URLs by `policy`.
    pub fn with_webhook_policy(mut self, policy: flagstone_webhooks::AddressPolicy) -> AppState {
        self.webhooks.addresses = policy;
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Flagstone admin API", description = "Flagsmith-compatible admin API. Authenticate with `Authorization: Token <token>` (from `POST /api/v1/auth/login/`), `Authorization: Api-Key <key>` (the installation key or an organisation API key), or a browser session cookie with `X-CSRF-Token`. See docs/authentication.md and docs/permissions.md."),
    modifiers(&SecurityAddon),
    security(("token" = []), ("admin_key" = []), ("session" = []))
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
                "Api-Key <key>: the installation key, or an organisation API key",
            ))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "Token <token>: a user's API token from POST /api/v1/auth/login/",
            ))),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::credentials::SESSION_COOKIE,
                "A browser session from POST /api/v1/auth/session/; requests that change something also send X-CSRF-Token",
            ))),
        );
    }
}

/// The admin API's routes and their OpenAPI description.
pub fn admin_api(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (protected, mut openapi) =
        routes::all(OpenApiRouter::with_openapi(ApiDoc::openapi())).split_for_parts();
    openapi_errors::document(&mut openapi, true);
    let (public, mut public_doc) = routes::public(OpenApiRouter::new()).split_for_parts();
    openapi_errors::document(&mut public_doc, false);
    openapi.merge(public_doc);
    let protected = protected.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::caller::require_caller,
    ));
    let router = protected
        .merge(public)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    (router, openapi)
}

/// The admin API plus its unauthenticated OpenAPI document.
pub fn router(state: AppState) -> Router {
    router_with_openapi(state, utoipa::openapi::OpenApi::default())
}

/// The admin API plus its OpenAPI document, which also describes `more`: the routes the same
/// server adds beside the admin API (the binary's `/health/*`), so one document covers them.
pub fn router_with_openapi(state: AppState, more: utoipa::openapi::OpenApi) -> Router {
    let (api, mut openapi) = admin_api(state);
    openapi.merge(more);
    let doc = serde_json::to_value(&openapi).unwrap_or_default();
    Router::new()
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { axum::Json(doc) }),
        )
        .merge(api)
}
