//! Flagsmith's `get-by-uuid` routes: a project, environment, feature, multivariate option or
//! segment addressed by
//! its `uuid` instead of its id (the Terraform provider keeps uuids in its state and reads
//! objects back this way). Each answers what its id route answers, with the same permission:
//! `VIEW_PROJECT` on the object's project, `VIEW_ENVIRONMENT` on an environment.

use axum::extract::State;
use flagstone_access::{EnvironmentPermission, Need, ProjectPermission};
use flagstone_store::environments::{self, Environment};
use flagstone_store::features::{self, Feature, MvOption};
use flagstone_store::projects::{self, Project};
use flagstone_store::scopes::{self, ByUuid};
use flagstone_store::segments::{self, Segment};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(project_by_uuid))
        .routes(routes!(environment_by_uuid))
        .routes(routes!(feature_by_uuid))
        .routes(routes!(segment_by_uuid))
        .routes(routes!(mv_option_by_uuid))
}

/// Finds the object's ids and checks the caller may view its project.
async fn view_in_project(
    tx: &mut flagstone_store::Tx,
    caller: &Caller,
    kind: ByUuid,
    uuid: &str,
) -> ApiResult<(i64, i64)> {
    let (id, project) = scopes::by_uuid(tx, kind, uuid).await?;
    let at = scopes::project(tx, project).await?;
    caller.require(Need::Project(at, ProjectPermission::ViewProject))?;
    Ok((id, project))
}

#[utoipa::path(get, path = "/api/v1/projects/get-by-uuid/{uuid}", tag = "projects",
    params(("uuid" = String, Path)), responses((status = 200, body = Project)))]
async fn project_by_uuid(
    State(s): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Project>> {
    let mut tx = s.store.read().await?;
    let (id, _) = view_in_project(&mut tx, &caller, ByUuid::Project, &uuid).await?;
    Ok(Json(projects::get(&mut tx, id).await?))
}

#[utoipa::path(get, path = "/api/v1/environments/get-by-uuid/{uuid}", tag = "environments",
    params(("uuid" = String, Path)), responses((status = 200, body = Environment)))]
async fn environment_by_uuid(
    State(s): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Environment>> {
    let mut tx = s.store.read().await?;
    let (id, _) = scopes::by_uuid(&mut tx, ByUuid::Environment, &uuid).await?;
    let at = scopes::environment(&mut tx, id).await?;
    caller.require(Need::Environment(
        at,
        EnvironmentPermission::ViewEnvironment,
    ))?;
    Ok(Json(environments::get(&mut tx, id).await?))
}

#[utoipa::path(get, path = "/api/v1/features/get-by-uuid/{uuid}", tag = "features",
    params(("uuid" = String, Path)), responses((status = 200, body = Feature)))]
async fn feature_by_uuid(
    State(s): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Feature>> {
    let mut tx = s.store.read().await?;
    let (id, project) = view_in_project(&mut tx, &caller, ByUuid::Feature, &uuid).await?;
    Ok(Json(features::get(&mut tx, project, id).await?))
}

#[utoipa::path(get, path = "/api/v1/segments/get-by-uuid/{uuid}", tag = "segments",
    params(("uuid" = String, Path)), responses((status = 200, body = Segment)))]
async fn segment_by_uuid(
    State(s): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Segment>> {
    let mut tx = s.store.read().await?;
    let (id, project) = view_in_project(&mut tx, &caller, ByUuid::Segment, &uuid).await?;
    Ok(Json(segments::get(&mut tx, project, id).await?))
}

/// Flagsmith's `get_mv_feature_option_by_uuid` (`/api/v1/multivariate/options/get-by-uuid/`):
/// the option as `…/features/{id}/mv-options/{option}/` answers it.
#[utoipa::path(get, path = "/api/v1/multivariate/options/get-by-uuid/{uuid}", tag = "features",
    params(("uuid" = String, Path)), responses((status = 200, body = MvOption)))]
async fn mv_option_by_uuid(
    State(s): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> ApiResult<Json<MvOption>> {
    let mut tx = s.store.read().await?;
    let (id, feature, project) = scopes::mv_option_by_uuid(&mut tx, &uuid).await?;
    let at = scopes::project(&mut tx, project).await?;
    caller.require(Need::Project(at, ProjectPermission::ViewProject))?;
    Ok(Json(
        features::options::get(&mut tx, project, feature, id).await?,
    ))
}
