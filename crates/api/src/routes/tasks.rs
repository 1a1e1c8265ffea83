//! `/api/v1/tasks/`: the publish queue as operators see it. One job per environment (its id is
//! the environment id); parked jobs carry their reason and last error and can be retried or
//! discarded. `/api/v1/tasks/status` summarises depth, age, parked jobs and staleness.
//!
//! Permissions (beyond Flagsmith, which has no such endpoints): jobs are listed and read as far
//! as the caller may view their environment (`VIEW_ENVIRONMENT`); retrying or discarding one
//! needs admin of its environment; the installation-wide status is for superusers.

use axum::extract::State;
use axum::http::Uri;
use flagstone_access::{EnvironmentPermission, Need, Visible};
use flagstone_store::queue::{self, JobState, PublishJob, QueueStatus};
use flagstone_store::StoreError;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_tasks))
        .routes(routes!(queue_status))
        .routes(routes!(get_task))
        .routes(routes!(retry_task))
        .routes(routes!(discard_task))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct TaskFilter {
    /// Only jobs in this state: `pending`, `running` or `parked`.
    state: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(TaskFilter),
    responses((status = 200, body = Paginated<PublishJob>)))]
async fn list_tasks(
    State(s): State<AppState>,
    caller: Caller,
    uri: Uri,
    Query(f): Query<TaskFilter>,
) -> ApiResult<Json<Paginated<PublishJob>>> {
    let state = f
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|_| StoreError::invalid("state", "must be pending, running or parked"))?;
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let visible = caller.grants().visible(Visible::Environments(
        EnvironmentPermission::ViewEnvironment,
    ));
    let mut tx = s.store.read().await?;
    let page = queue::jobs_visible(&mut tx, state, &visible, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(get, path = "/api/v1/tasks/status", tag = "tasks",
    responses((status = 200, body = QueueStatus)))]
async fn queue_status(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<QueueStatus>> {
    caller.require(Need::Superuser)?;
    let mut tx = s.store.read().await?;
    Ok(Json(
        queue::status(&mut tx, s.store.clock().now_ms()).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = i64, Path, description = "The environment id")),
    responses((status = 200, body = PublishJob)))]
async fn get_task(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<PublishJob>> {
    let env = permit::environment(&s, id).await?;
    caller.require(Need::Environment(
        env,
        EnvironmentPermission::ViewEnvironment,
    ))?;
    let mut tx = s.store.read().await?;
    let job = queue::get_job(&mut tx, id)
        .await?
        .ok_or(StoreError::not_found("publish job"))?;
    Ok(Json(job))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", tag = "tasks",
    params(("id" = i64, Path, description = "The environment id")),
    responses((status = 200, body = PublishJob, description = "The job, due now with fresh attempts")))]
async fn retry_task(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<PublishJob>> {
    caller.require(Need::EnvironmentAdmin(permit::environment(&s, id).await?))?;
    Ok(Json(queue::retry(&s.store, caller.actor(), id).await?))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/discard", tag = "tasks",
    params(("id" = i64, Path, description = "The environment id")),
    responses((status = 200, body = PublishJob, description = "The discarded job")))]
async fn discard_task(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<PublishJob>> {
    caller.require(Need::EnvironmentAdmin(permit::environment(&s, id).await?))?;
    Ok(Json(queue::discard(&s.store, caller.actor(), id).await?))
}
