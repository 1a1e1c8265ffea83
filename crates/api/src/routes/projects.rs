//! `/api/v1/projects/`: listed as far as the caller may view them (`VIEW_PROJECT`); created
//! with the organisation's `CREATE_PROJECT`; changed and deleted by project admins.
//!
//! The list is a plain JSON array, as Flagsmith's `ProjectViewSet` returns it (no pagination;
//! its clients index the answer as a list). Sending `page` or `page_size` asks for Flagstone's
//! usual page object instead.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_access::{Need, OrganisationPermission, ProjectPermission, Visible};
use flagstone_store::projects::{self, LimitLowering, NewProject, Project, ProjectPatch};
use flagstone_store::usage::{self, ProjectUsage};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(project_usage))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ProjectFilter {
    /// Only projects of this organisation.
    organisation: Option<i64>,
    page: Option<i64>,
    page_size: Option<i64>,
}

/// The projects list: every visible project (Flagsmith's shape), or one page when asked.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum ProjectList {
    All(Vec<Project>),
    Page(Paginated<Project>),
}

/// Projects of one listing without `page`/`page_size`, at most: an organisation holds far
/// fewer; past it, a client pages.
const MAX_UNPAGED: i64 = 1000;

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(ProjectFilter),
    responses((status = 200, body = ProjectList,
        description = "A plain array, or a page object when `page` or `page_size` is sent")))]
async fn list_projects(
    State(s): State<AppState>,
    caller: Caller,
    uri: Uri,
    Query(f): Query<ProjectFilter>,
) -> ApiResult<Json<ProjectList>> {
    let paged = f.page.is_some() || f.page_size.is_some();
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let visible = caller
        .grants()
        .visible(Visible::Projects(ProjectPermission::ViewProject));
    let mut tx = s.store.read().await?;
    if !paged {
        let req = PageParams {
            page: Some(1),
            page_size: Some(MAX_UNPAGED),
        }
        .request();
        let all = projects::list_visible(&mut tx, f.organisation, &visible, req).await?;
        return Ok(Json(ProjectList::All(all.results)));
    }
    let page = projects::list_visible(&mut tx, f.organisation, &visible, req).await?;
    Ok(Json(ProjectList::Page(paginate(&uri, req, page))))
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = NewProject,
    responses((status = 201, body = Project)))]
async fn create_project(
    State(s): State<AppState>,
    caller: Caller,
    Json(new): Json<NewProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    caller.require(Need::Organisation(
        new.organisation,
        OrganisationPermission::CreateProject,
    ))?;
    let mut ch = s.store.change(caller.actor()).await?;
    let project = projects::create(&mut ch, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(project)))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path)), responses((status = 200, body = Project)))]
async fn get_project(
    State(s): State<AppState>,
    p: Permit<rules::ViewProject>,
) -> ApiResult<Json<Project>> {
    let mut tx = s.store.read().await?;
    Ok(Json(projects::get(&mut tx, p.at.project).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct UpdateOptions {
    /// Lower a limit even below what the project already uses (Flagstone addition). Without
    /// it such a change is a 400 naming each limit and the environments over it.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path), UpdateOptions), request_body = ProjectPatch,
    responses((status = 200, body = Project),
        (status = 400, description = "Invalid, or a limit lowered below what is used (without `force`)")))]
async fn update_project(
    State(s): State<AppState>,
    p: Permit<rules::ProjectAdmin>,
    Query(o): Query<UpdateOptions>,
    Json(patch): Json<ProjectPatch>,
) -> ApiResult<Json<Project>> {
    let lowering = if o.force {
        LimitLowering::Force
    } else {
        LimitLowering::Refuse
    };
    let mut ch = s.store.change(p.caller.actor()).await?;
    let project = projects::update(&mut ch, p.at.project, &patch, lowering).await?;
    ch.commit().await?;
    Ok(Json(project))
}

#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path)), responses((status = 204)))]
async fn delete_project(
    State(s): State<AppState>,
    p: Permit<rules::ProjectAdmin>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(p.caller.actor()).await?;
    projects::delete(&mut ch, p.at.project).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the project uses of each of its limits, per environment where the limit is, with each
/// published document's size against `max_document_bytes`. Beyond Flagsmith.
#[utoipa::path(get, path = "/api/v1/projects/{id}/usage", tag = "projects",
    params(("id" = i64, Path)), responses((status = 200, body = ProjectUsage)))]
async fn project_usage(
    State(s): State<AppState>,
    p: Permit<rules::ViewProject>,
) -> ApiResult<Json<ProjectUsage>> {
    let mut tx = s.store.read().await?;
    Ok(Json(usage::project(&mut tx, p.at.project).await?))
}
