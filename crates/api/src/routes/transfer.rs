//! Moving from Flagsmith: `POST /api/v1/environment-document/import/` takes a Flagsmith
//! environment document and creates or replaces that environment (see
//! `flagstone_store::transfer` for the exact semantics); `GET
//! /api/v1/environments/{api_key}/document/` exports an environment as such a document, with
//! its identity overrides.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use flagstone_engine::EnvironmentDocument;
use flagstone_store::transfer::{self, ImportReport};
use flagstone_store::Actor;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(import_document))
        .routes(routes!(export_document))
}

/// Imports a Flagsmith environment document as one change. The body is limited to the API's
/// request size (2 MiB); `flagstone import FILE` has no such limit.
#[utoipa::path(post, path = "/api/v1/environment-document/import", tag = "import-export",
    request_body(content = Object, description = "A Flagsmith environment document"),
    responses((status = 201, body = ImportReport)))]
async fn import_document(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Json(doc): Json<EnvironmentDocument>,
) -> ApiResult<(StatusCode, Json<ImportReport>)> {
    let report = transfer::import(&s.store, &actor, &doc).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// The environment as a Flagsmith environment document, identity overrides included.
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/document", tag = "import-export",
    params(("api_key" = String, Path)),
    responses((status = 200, body = Object, description = "A Flagsmith environment document")))]
async fn export_document(
    State(s): State<AppState>,
    Path(api_key): Path<String>,
) -> ApiResult<Response> {
    let (body, _) = transfer::export_to_vec(&s.store, &api_key).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
