//! `/api/v1/environments/{api_key}/scheduled-changes/`: feature-state updates scheduled for a
//! later `live_from` (made with `PATCH …/featurestates/{id}/` carrying `live_from`, or by a
//! committed change request), listed soonest first and cancellable while pending. The task
//! processor applies them (`flagstone_tasks::schedule`). Reading needs `VIEW_ENVIRONMENT`;
//! cancelling needs `UPDATE_FEATURE_STATE`, what scheduling needs.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_store::environments;
use flagstone_store::scheduled::{self, ScheduledChange, ScheduledState};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_scheduled_changes))
        .routes(routes!(get_scheduled_change, cancel_scheduled_change))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ScheduledFilter {
    /// Only changes in this state: `pending`, `applied`, `cancelled` or `parked`.
    state: Option<ScheduledState>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/scheduled-changes", tag = "history",
    params(("api_key" = String, Path), ScheduledFilter),
    responses((status = 200, body = Paginated<ScheduledChange>)))]
async fn list_scheduled_changes(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    uri: Uri,
    Path(api_key): Path<String>,
    Query(f): Query<ScheduledFilter>,
) -> ApiResult<axum::Json<Paginated<ScheduledChange>>> {
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let mut tx = s.store.read().await?;
    let env = environments::get_by_key(&mut tx, &api_key).await?;
    let page = scheduled::list(&mut tx, env.id, f.state, req).await?;
    Ok(axum::Json(paginate(&uri, req, page)))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/scheduled-changes/{id}",
    tag = "history", params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = ScheduledChange), (status = 404)))]
async fn get_scheduled_change(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<axum::Json<ScheduledChange>> {
    let mut tx = s.store.read().await?;
    let env = environments::get_by_key(&mut tx, &api_key).await?;
    Ok(axum::Json(scheduled::get(&mut tx, env.id, id).await?))
}

#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/scheduled-changes/{id}",
    tag = "history", params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 204, description = "Cancelled"), (status = 403), (status = 404),
        (status = 409, description = "Already applied, cancelled or parked")))]
async fn cancel_scheduled_change(
    State(s): State<AppState>,
    permit: Permit<rules::UpdateFeatureState>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    scheduled::cancel(&mut ch, &env, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
