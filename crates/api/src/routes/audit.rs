//! The audit log: `/api/v1/audit/?project=&environment=&author=&since=&until=` and
//! `/api/v1/projects/{id}/audit/`; `/api/v1/audit/authors/` lists who appears in it. Each shows
//! only the entries of projects where the caller holds `VIEW_AUDIT_LOG`, and of organisations
//! it administers (their organisation-level entries too).

use axum::extract::State;
use axum::http::Uri;
use flagstone_access::{Need, ProjectPermission, Visibility, Visible};
use flagstone_store::audit::{self, AuditRecord};
use flagstone_store::StoreError;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{self, rules, Permit};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
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
    /// Only entries at or after this time: an ISO-8601 date-time with a zone, or milliseconds
    /// since the epoch.
    since: Option<String>,
    /// Only entries before this time (as `since`).
    until: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

fn time_param(field: &str, text: Option<&str>) -> Result<Option<i64>, StoreError> {
    text.filter(|t| !t.is_empty())
        .map(|t| flagstone_store::clock::parse_time(field, t))
        .transpose()
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditFilter),
    responses((status = 200, body = Paginated<AuditRecord>)))]
async fn list_audit(
    State(s): State<AppState>,
    caller: Caller,
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
        since: time_param("since", f.since.as_deref())?,
        until: time_param("until", f.until.as_deref())?,
        visible: Some(visible(&s, &caller, f.project).await?),
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
    caller: Caller,
    Query(f): Query<AuthorFilter>,
) -> ApiResult<Json<Vec<String>>> {
    let visible = visible(&s, &caller, f.project).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(
        audit::actors_visible(&mut tx, f.project, Some(&visible)).await?,
    ))
}

/// What of the audit log the caller may read; asking for one project needs `VIEW_AUDIT_LOG`
/// there (403 otherwise, rather than an empty list).
async fn visible(s: &AppState, caller: &Caller, project: Option<i64>) -> ApiResult<Visibility> {
    if let Some(id) = project {
        let p = permit::project(s, id).await?;
        caller.require(Need::Project(p, ProjectPermission::ViewAuditLog))?;
    }
    Ok(caller
        .grants()
        .visible(Visible::Projects(ProjectPermission::ViewAuditLog)))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/audit", tag = "audit",
    params(("id" = i64, Path), PageParams), responses((status = 200, body = Paginated<AuditRecord>)))]
async fn list_project_audit(
    State(s): State<AppState>,
    permit: Permit<rules::ViewAuditLog>,
    uri: Uri,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<AuditRecord>>> {
    let mut tx = s.store.read().await?;
    Ok(Json(paginate(
        &uri,
        p.request(),
        audit::list(&mut tx, Some(permit.at.project), p.request()).await?,
    )))
}
