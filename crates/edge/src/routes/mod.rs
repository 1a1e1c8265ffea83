//! The SDK routes. Paths are Flagsmith's (with or without the trailing slash: the server
//! normalises them). Responses are gzip-compressed when the client asks (SSE excepted). CORS is
//! answered for browser SDKs ([`crate::cors`]).

mod analytics;
mod document;
mod edge_api;
mod flags;
mod identities;
mod mv_options;
mod ofrep;
mod realtime;
mod traits;

use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post, put};
use axum::Router;
use tower_http::compression::CompressionLayer;

use crate::auth::{authenticate, Caller};
use crate::error::SdkError;
use crate::EdgeState;

pub(crate) fn router(state: EdgeState) -> Router {
    Router::new()
        .route("/api/v1/flags", get(flags::get_flags))
        .route(
            "/api/v1/flags/{feature_id}/multivariate-options",
            get(mv_options::get_mv_options),
        )
        .route(
            "/api/v1/identities",
            get(identities::get_identity).post(identities::post_identity),
        )
        .route("/api/v1/traits", post(traits::post_trait))
        .route("/api/v1/traits/bulk", put(traits::put_bulk))
        .route(
            "/api/v1/traits/increment-value",
            post(traits::post_increment),
        )
        .route("/api/v1/environment-document", get(document::get_document))
        .route("/api/v1/analytics/flags", post(analytics::post_analytics))
        .route("/ofrep/v1/evaluate/flags", post(ofrep::evaluate_flags))
        .route("/ofrep/v1/evaluate/flags/{key}", post(ofrep::evaluate_flag))
        .route(
            "/sse/environments/{client_key}/stream",
            get(realtime::stream),
        )
        .merge(edge_api::router())
        .layer(CompressionLayer::new())
        // Outermost, so preflights are answered before anything else runs.
        .layer(crate::cors::layer(&state.config.cors_origins))
        .with_state(state)
}

pub(crate) async fn caller(state: &EdgeState, headers: &HeaderMap) -> Result<Caller, SdkError> {
    authenticate(headers, &state.registry, &state.server_keys, &state.source).await
}

pub(crate) const UPDATED_AT_HEADER: &str = "x-flagsmith-document-updated-at";

pub(crate) fn json_headers(updated_at: &HeaderValue) -> [(&'static str, HeaderValue); 2] {
    [
        ("content-type", HeaderValue::from_static("application/json")),
        (UPDATED_AT_HEADER, updated_at.clone()),
    ]
}
