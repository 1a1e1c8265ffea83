//! `/api/v1/environments/{api_key}/features/{feature_id}/versions/`: the history of a
//! feature's configuration in an environment (newest first), one version with its diff against
//! the previous one, and restoring a version as a new change. Reading needs
//! `VIEW_ENVIRONMENT`; a restore needs `UPDATE_FEATURE_STATE` when it changes the environment
//! default (or changes nothing) and `MANAGE_SEGMENT_OVERRIDES` when it changes overrides,
//! decided from what it would change, before anything is written.

use axum::extract::State;
use axum::http::Uri;
use flagstone_access::{EnvironmentPermission, Need};
use flagstone_store::history::{self, FeatureVersion, FeatureVersionDetail};
use flagstone_store::{environments, StoreError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::routes::change_requests::guard::direct_edit;
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(restore_version))
}

/// 404 unless the feature has a state in the environment (it is of the environment's project).
async fn require_feature(tx: &mut flagstone_store::Tx, env: i64, feature: i64) -> ApiResult<()> {
    history::current(tx, env, feature)
        .await?
        .ok_or(StoreError::not_found("feature"))?;
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/features/{feature_id}/versions",
    tag = "history", params(("api_key" = String, Path), ("feature_id" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<FeatureVersion>), (status = 404)))]
async fn list_versions(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    uri: Uri,
    Path((api_key, feature)): Path<(String, i64)>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<FeatureVersion>>> {
    let req = p.request();
    let mut tx = s.store.read().await?;
    let env = environments::get_by_key(&mut tx, &api_key).await?;
    require_feature(&mut tx, env.id, feature).await?;
    let page = history::list(&mut tx, env.id, feature, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/features/{feature_id}/versions/{id}",
    tag = "history",
    params(("api_key" = String, Path), ("feature_id" = i64, Path), ("id" = i64, Path)),
    responses((status = 200, body = FeatureVersionDetail), (status = 404)))]
async fn get_version(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    Path((api_key, feature, id)): Path<(String, i64, i64)>,
) -> ApiResult<Json<FeatureVersionDetail>> {
    let mut tx = s.store.read().await?;
    let env = environments::get_by_key(&mut tx, &api_key).await?;
    Ok(Json(history::detail(&mut tx, env.id, feature, id).await?))
}

#[utoipa::path(post,
    path = "/api/v1/environments/{api_key}/features/{feature_id}/versions/{id}/restore",
    tag = "history",
    params(("api_key" = String, Path), ("feature_id" = i64, Path), ("id" = i64, Path)),
    responses((status = 200, body = FeatureVersionDetail,
        description = "The new version the restore recorded"),
        (status = 403), (status = 404), (status = 409)))]
async fn restore_version(
    State(s): State<AppState>,
    permit: Permit<rules::ViewEnvironment>,
    Path((api_key, feature, id)): Path<(String, i64, i64)>,
) -> ApiResult<Json<FeatureVersionDetail>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    direct_edit(&permit.caller, permit.at, &env)?;
    let plan = history::plan_restore(ch.tx(), env.id, feature, id).await?;
    // Dropping the change on a refusal rolls back: nothing is written.
    let at = permit.at;
    if plan.diff.touches_default() || plan.diff.is_empty() {
        permit.caller.require(Need::Environment(
            at,
            EnvironmentPermission::UpdateFeatureState,
        ))?;
    }
    if plan.diff.touches_overrides() {
        permit.caller.require(Need::Environment(
            at,
            EnvironmentPermission::ManageSegmentOverrides,
        ))?;
    }
    history::restore(&mut ch, &env, &plan).await?;
    ch.commit().await?;
    let mut tx = s.store.read().await?;
    let newest = history::list(
        &mut tx,
        env.id,
        feature,
        flagstone_store::PageRequest::new(1, 1),
    )
    .await?
    .results
    .into_iter()
    .next()
    .ok_or(StoreError::not_found("version"))?;
    Ok(Json(
        history::detail(&mut tx, env.id, feature, newest.id).await?,
    ))
}
