//! The audit log: `/api/v1/audit/?project=` and `/api/v1/projects/{id}/audit/`.

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
        .routes(routes!(list_project_audit))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct AuditFilter {
    project: Option<i64>,
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
    let mut tx = s.store.read().await?;
    Ok(Json(paginate(
        &uri,
        req,
        audit::list(&mut tx, f.project, req).await?,
    )))
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
