//! The audit log: `/api/v1/audit/?project=&environment=&author=&since=&until=` and
//! `/api/v1/projects/{id}/audit/`; `/api/v1/audit/authors/` lists who appears in it.

use axum::extract::State;
use axum::http::Uri;
use flagstone_store::audit::{self, AuditRecord};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_audit))
        .routes(routes!(list_audit_authors))
        .routes(routes!(list_project_audit))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct AuditFilter {
    project: Option<i64>,
    /// Only entries about this environment (its id).
    environment: Option<i64>,
    /// Only entries by this actor, exactly as listed (`actor`).
    author: Option<String>,
    /// Only entries at or after this time (milliseconds since the epoch).
    since: Option<i64>,
    /// Only entries before this time (milliseconds since the epoch).
    until: Option<i64>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditFilter),
    responses((status = 200, body = Paginated<AuditRecord>)))]
async fn list_audit(
    State(s): State<AppState>,
    uri: Uri,
    Query(f): Query<AuditFilter>,
) -> ApiResult<Json<Paginated<AuditRecord>>> {
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let filter = audit::AuditFilter {
        project: f.project,
        environment: f.environment,
        actor: f.author.filter(|a| !a.is_empty()),
        since: f.since,
        until: f.until,
    };
    let mut tx = s.store.read().await?;
    Ok(Json(paginate(
        &uri,
        req,
        audit::search(&mut tx, &filter, req).await?,
    )))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct AuthorFilter {
    /// Only authors of this project's entries.
    project: Option<i64>,
}

/// Everyone who appears in the audit log (of a project), sorted.
#[utoipa::path(get, path = "/api/v1/audit/authors", tag = "audit", params(AuthorFilter),
    responses((status = 200, body = Vec<String>)))]
async fn list_audit_authors(
    State(s): State<AppState>,
    Query(f): Query<AuthorFilter>,
) -> ApiResult<Json<Vec<String>>> {
    let mut tx = s.store.read().await?;
    Ok(Json(audit::actors(&mut tx, f.project).await?))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/audit", tag = "audit",
    params(("id" = i64, Path), PageParams), responses((status = 200, body = Paginated<AuditRecord>)))]
async fn list_project_audit(
    State(s): State<AppState>,
    uri: Uri,
    Path(id): Path<i64>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<AuditRecord>>> {
    let mut tx = s.store.read().await?;
    flagstone_store::projects::get(&mut tx, id).await?;
    Ok(Json(paginate(
        &uri,
        p.request(),
        audit::list(&mut tx, Some(id), p.request()).await?,
    )))
}
