//! Moving from Flagsmith: `POST /api/v1/environment-document/import/` takes a Flagsmith
//! environment document and creates or replaces that environment (see
//! `flagstone_store::transfer` for the exact semantics; `?project=`, `?organisation=`,
//! `?source=` and `?dry_run=true` are its `ImportOptions`); `GET
//! /api/v1/environments/{api_key}/document/` exports an environment as such a document, with
//! its identity overrides.
//!
//! Permissions (Flagstone's choice): exporting needs admin of the environment (the document
//! holds every flag, segment and identity override). Importing needs `ADMIN` of every
//! organisation it may write into — the one named by `?organisation=`, the organisation of
//! `?project=`, and that of an existing environment with the document's `api_key` — so a
//! non-superuser must name one of them; importing into a new organisation is for superusers.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use flagstone_access::Need;
use flagstone_engine::EnvironmentDocument;
use flagstone_store::transfer::{self, ImportOptions, ImportReport};
use flagstone_store::{scopes, StoreError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
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
    caller: Caller,
    Query(opts): Query<ImportOptions>,
    Json(doc): Json<EnvironmentDocument>,
) -> ApiResult<(StatusCode, Json<ImportReport>)> {
    may_import(&s, &caller, &doc, &opts).await?;
    let report = transfer::import(&s.store, caller.actor(), &doc, &opts).await?;
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
    _: Permit<rules::EnvironmentAdmin>,
    Path(api_key): Path<String>,
) -> ApiResult<Response> {
    let (body, _) = transfer::export_to_vec(&s.store, &api_key).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Whether the caller administers every organisation the import may write into (see the
/// module docs). Superusers may import anywhere.
async fn may_import(
    s: &AppState,
    caller: &Caller,
    doc: &EnvironmentDocument,
    opts: &ImportOptions,
) -> ApiResult<()> {
    if caller.grants().superuser {
        return Ok(());
    }
    if opts.project.is_none() && opts.organisation.is_none() {
        // Without a named target the import may create an organisation.
        return caller.require(Need::Superuser);
    }
    let mut tx = s.store.read().await?;
    let mut organisations = Vec::new();
    if let Some(o) = opts.organisation {
        organisations.push(o);
    }
    if let Some(p) = opts.project {
        match scopes::project(&mut tx, p).await {
            Ok(p) => organisations.push(p.organisation),
            Err(StoreError::NotFound { .. }) => {
                return Err(StoreError::invalid("project", "no such project").into())
            }
            Err(e) => return Err(ApiError::Store(e)),
        }
    }
    match scopes::environment_by_key(&mut tx, &doc.api_key).await {
        Ok(e) => organisations.push(e.organisation),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(ApiError::Store(e)),
    }
    drop(tx);
    for o in organisations {
        caller.require(Need::OrganisationAdmin(o))?;
    }
    Ok(())
}
