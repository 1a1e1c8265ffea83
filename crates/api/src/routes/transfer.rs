//! Moving from Flagsmith: `POST /api/v1/environment-document/import/` takes a Flagsmith
//! environment document and creates or replaces that environment (see
//! `flagstone_store::transfer` for the exact semantics; `?project=`, `?organisation=`,
//! `?source=` and `?dry_run=true` are its `ImportOptions`); `GET
//! /api/v1/environments/{api_key}/document/` exports an environment as such a document, with
//! its identity overrides.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use flagstone_engine::EnvironmentDocument;
use flagstone_store::transfer::{self, ImportOptions, ImportReport};
use flagstone_store::Actor;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(import_document))
        .routes(routes!(export_document))
}

/// Imports a Flagsmith environment document as one change (201), or with `dry_run=true`
/// reports what it would do and writes nothing (200). The body is limited to the API's request
/// size (2 MiB); `flagstone import FILE` has no such limit.
#[utoipa::path(post, path = "/api/v1/environment-document/import", tag = "import-export",
    params(ImportOptions),
    request_body(content = Object, description = "A Flagsmith environment document"),
    responses((status = 201, body = ImportReport), (status = 200, body = ImportReport,
        description = "dry run: nothing written")))]
async fn import_document(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(opts): Query<ImportOptions>,
    Json(doc): Json<EnvironmentDocument>,
) -> ApiResult<(StatusCode, Json<ImportReport>)> {
    let report = transfer::import(&s.store, &actor, &doc, &opts).await?;
    let status = if opts.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(report)))
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
