//! `/api/v1/environments/` (addressed by client key) and their server-side keys. Listed as far
//! as the caller may view them (`VIEW_ENVIRONMENT`); created with the project's
//! `CREATE_ENVIRONMENT`; changed, deleted and their server-side keys managed by environment
//! admins.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_access::{EnvironmentPermission, Need, ProjectPermission, Visible};
use flagstone_store::environments::{self, Environment, EnvironmentPatch, NewEnvironment};
use flagstone_store::keys::{self, ServerKey};
use flagstone_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{self, rules, Permit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_environments, create_environment))
        .routes(routes!(
            get_environment,
            update_environment,
            delete_environment
        ))
        .routes(routes!(list_server_keys, create_server_key))
        .routes(routes!(delete_server_key))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct EnvironmentFilter {
    /// Only environments of this project.
    project: Option<i64>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/environments", tag = "environments", params(EnvironmentFilter),
    responses((status = 200, body = Paginated<Environment>)))]
async fn list_environments(
    State(s): State<AppState>,
    caller: Caller,
    uri: Uri,
    Query(f): Query<EnvironmentFilter>,
) -> ApiResult<Json<Paginated<Environment>>> {
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let visible = caller.grants().visible(Visible::Environments(
        EnvironmentPermission::ViewEnvironment,
    ));
    let mut tx = s.store.read().await?;
    let page = environments::list_visible(&mut tx, f.project, &visible, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(post, path = "/api/v1/environments", tag = "environments", request_body = NewEnvironment,
    responses((status = 201, body = Environment)))]
async fn create_environment(
    State(s): State<AppState>,
    caller: Caller,
    Json(new): Json<NewEnvironment>,
) -> ApiResult<(StatusCode, Json<Environment>)> {
    let project = permit::project(&s, new.project)
        .await
        .map_err(|e| match e {
            ApiError::Store(StoreError::NotFound { .. }) => {
                StoreError::invalid("project", "no such project").into()
            }
            e => e,
        })?;
    caller.require(Need::Project(project, ProjectPermission::CreateEnvironment))?;
    let mut ch = s.store.change(caller.actor()).await?;
    let env = environments::create(&mut ch, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(env)))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}", tag = "environments",
    params(("api_key" = String, Path)), responses((status = 200, body = Environment)))]
async fn get_environment(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    Path(api_key): Path<String>,
) -> ApiResult<Json<Environment>> {
    let mut tx = s.store.read().await?;
    Ok(Json(environments::get_by_key(&mut tx, &api_key).await?))
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}", tag = "environments",
    params(("api_key" = String, Path)), request_body = EnvironmentPatch, responses((status = 200, body = Environment)))]
async fn update_environment(
    State(s): State<AppState>,
    p: Permit<rules::EnvironmentAdmin>,
    Path(api_key): Path<String>,
    Json(patch): Json<EnvironmentPatch>,
) -> ApiResult<Json<Environment>> {
    let mut ch = s.store.change(p.caller.actor()).await?;
    let env = environments::update(&mut ch, &api_key, &patch).await?;
    ch.commit().await?;
    Ok(Json(env))
}

#[utoipa::path(delete, path = "/api/v1/environments/{api_key}", tag = "environments",
    params(("api_key" = String, Path)), responses((status = 204)))]
async fn delete_environment(
    State(s): State<AppState>,
    p: Permit<rules::EnvironmentAdmin>,
    Path(api_key): Path<String>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(p.caller.actor()).await?;
    environments::delete(&mut ch, &api_key).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewServerKey {
    name: String,
}

/// A new server-side key: `key` is shown this once and never again.
#[derive(Serialize, utoipa::ToSchema)]
struct CreatedServerKey {
    #[serde(flatten)]
    row: ServerKey,
    key: String,
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/api-keys", tag = "environments",
    params(("api_key" = String, Path)), responses((status = 200, body = Vec<ServerKey>)))]
async fn list_server_keys(
    State(s): State<AppState>,
    p: Permit<rules::EnvironmentAdmin>,
) -> ApiResult<Json<Vec<ServerKey>>> {
    let mut tx = s.store.read().await?;
    Ok(Json(
        keys::list_server_keys(&mut tx, p.at.environment).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/environments/{api_key}/api-keys", tag = "environments",
    params(("api_key" = String, Path)), request_body = NewServerKey, responses((status = 201, body = CreatedServerKey)))]
async fn create_server_key(
    State(s): State<AppState>,
    p: Permit<rules::EnvironmentAdmin>,
    Path(api_key): Path<String>,
    Json(new): Json<NewServerKey>,
) -> ApiResult<(StatusCode, Json<CreatedServerKey>)> {
    let mut ch = s.store.change(p.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    let (row, key) = keys::create_server_key(&mut ch, env.id, env.project, &new.name).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedServerKey { row, key })))
}

#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/api-keys/{id}", tag = "environments",
    params(("api_key" = String, Path), ("id" = i64, Path)), responses((status = 204)))]
async fn delete_server_key(
    State(s): State<AppState>,
    p: Permit<rules::EnvironmentAdmin>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(p.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    keys::delete_server_key(&mut ch, env.id, env.project, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
