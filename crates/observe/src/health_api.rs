//! `/health/liveness`, `/health/readiness` and `/health/status` ([`health_router`]), with their
//! OpenAPI description ([`openapi`]), which the admin API's document at `/api/v1/openapi.json`
//! includes. Every role serves these, unauthenticated: they say nothing secret (environment ids
//! and names, job states and their last error) and load balancers must reach them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;

use crate::health::{Check, CheckName, HealthReport, Lagging, PublisherState, Status};
use crate::probe::HealthEndpoints;

/// What `/health/readiness` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadinessBody {
    /// Whether this process should receive traffic.
    pub ready: bool,
    /// The store answered a transaction within 2 s.
    pub store_reachable: bool,
    /// Roles with an SDK API (`serve`, `edge`) only: the initial load of documents finished
    /// (from the store or from the last-good cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents_loaded: Option<bool>,
    /// Roles with an SDK API only: environments whose documents are held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environments: Option<usize>,
    /// Roles with an SDK API only: the documents come from the cache (the store was unreachable
    /// at start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_from_cache: Option<bool>,
    /// Roles with an SDK API only: seconds since the documents were last confirmed current
    /// (`null` until known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staleness_seconds: Option<Option<f64>>,
    /// Roles with an SDK API only: the last-good cache directory is still being read (the SDK
    /// API already answers from what is read; `documents_loaded` is false meanwhile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loading_cache: Option<bool>,
    /// Roles with an SDK API only: documents read from the cache directory so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_loaded: Option<usize>,
    /// `serve` and `worker` with `--documents-nats` only: the NATS document publisher (does not
    /// affect `ready`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents_nats: Option<PublisherState>,
}

#[derive(OpenApi)]
#[openapi(
    paths(liveness, readiness, status),
    components(schemas(ReadinessBody, PublisherState, HealthReport, Check, CheckName, Lagging, Status)),
    tags((name = "health", description = "Liveness, readiness and the publishing pipeline's health (docs/observability.md). Served by every role, without authentication."))
)]
struct HealthDoc;

/// The OpenAPI description of the health endpoints.
pub fn openapi() -> utoipa::openapi::OpenApi {
    HealthDoc::openapi()
}

/// The health endpoints of one process.
pub fn health_router(h: HealthEndpoints) -> Router {
    Router::new()
        .route("/health/liveness", get(liveness))
        .route("/health/readiness", get(readiness))
        .route("/health/status", get(status))
        .with_state(h)
}

/// The process answers (nothing else is checked: restart it only when this fails).
#[utoipa::path(get, path = "/health/liveness", tag = "health", security(()),
    responses((status = 200, description = "The process answers", body = String, content_type = "text/plain", example = "ok")))]
async fn liveness() -> &'static str {
    "ok"
}

/// Whether this process should receive traffic: `serve` and `worker` need the store; an `edge`
/// with documents is ready even while the store is unreachable (it serves its cache).
#[utoipa::path(get, path = "/health/readiness", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready", body = ReadinessBody),
        (status = 503, description = "Not ready; the body says what is missing", body = ReadinessBody),
    ))]
async fn readiness(State(h): State<HealthEndpoints>) -> Response {
    let r = h.readiness().await;
    let ready = r.ready(h.rule);
    let docs = r.documents.as_ref();
    let body = ReadinessBody {
        ready,
        store_reachable: r.store_reachable,
        documents_loaded: docs.map(|d| d.loaded),
        environments: docs.map(|d| d.environments),
        serving_from_cache: docs.map(|d| d.serving_from_cache),
        staleness_seconds: docs.map(|d| d.staleness_seconds),
        loading_cache: docs.map(|d| d.loading_cache),
        cache_loaded: docs.map(|d| d.cache_loaded),
        documents_nats: h.publisher(),
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The publishing pipeline's health: `ok` or `degraded`, each check with its value and
/// threshold, and the environments and tasks responsible.
#[utoipa::path(get, path = "/health/status", tag = "health", security(()),
    responses(
        (status = 200, description = "The report, `ok` or `degraded` (a degraded pipeline still answers 200: the body says why)", body = HealthReport),
        (status = 503, description = "The store cannot be read: a degraded report with the `store_reachable` check", body = HealthReport),
    ))]
async fn status(State(h): State<HealthEndpoints>) -> Response {
    let report = h.monitor.check(&h.store).await;
    let code = if report
        .checks
        .iter()
        .any(|c| c.name == CheckName::StoreReachable)
    {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(report)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_health_endpoint_with_its_statuses() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let paths = &doc["paths"];
        assert_eq!(
            paths["/health/liveness"]["get"]["responses"]["200"]["content"]["text/plain"]
                ["example"],
            "ok"
        );
        for path in ["/health/readiness", "/health/status"] {
            let responses = &paths[path]["get"]["responses"];
            for code in ["200", "503"] {
                assert!(
                    responses[code]["content"]["application/json"]["schema"]["$ref"].is_string(),
                    "{path} {code}: {responses}"
                );
            }
        }
        let schemas = &doc["components"]["schemas"];
        let report = &schemas["HealthReport"]["properties"];
        assert!(report["status"].is_object() && report["checks"].is_object());
        assert_eq!(
            schemas["Status"]["enum"],
            serde_json::json!(["ok", "degraded"])
        );
        assert!(schemas["ReadinessBody"]["properties"]["store_reachable"].is_object());
        assert!(schemas["Lagging"]["properties"]["task_id"].is_object());
    }
}
