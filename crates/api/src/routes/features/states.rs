//! `/api/v1/environments/{api_key}/featurestates/`: an environment's default state of each
//! feature, read and changed in Flagsmith's shape.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flagstone_store::features::{states, FeatureState, FeatureStatePatch};
use flagstone_store::scheduled::{self, ScheduledChange, ScheduledFeatureState};
use flagstone_store::{environments, StoreError};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::routes::change_requests::guard::direct_edit;
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_feature_states)).routes(routes!(
        get_feature_state,
        put_feature_state,
        update_feature_state
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct StateFilter {
    /// Only the state of this feature.
    feature: Option<i64>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/featurestates", tag = "features",
    params(("api_key" = String, Path), StateFilter),
    responses((status = 200, body = Paginated<FeatureState>)))]
async fn list_feature_states(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    uri: Uri,
    Path(api_key): Path<String>,
    Query(f): Query<StateFilter>,
) -> ApiResult<Json<Paginated<FeatureState>>> {
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let mut tx = s.store.read().await?;
    let env = environments::get_by_key(&mut tx, &api_key).await?;
    let page = states::list(&mut tx, env.id, f.feature, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/featurestates/{id}", tag = "features",
    params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = FeatureState)))]
async fn get_feature_state(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<Json<FeatureState>> {
    let mut tx = s.store.read().await?;
    let env = environments::get_by_key(&mut tx, &api_key).await?;
    Ok(Json(states::get(&mut tx, env.id, id).await?))
}

/// Flagsmith's `PUT` of a state (what its clients send back after a read, edited): the same
/// change as `PATCH`, read-only fields ignored.
#[utoipa::path(put, path = "/api/v1/environments/{api_key}/featurestates/{id}", tag = "features",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = FeatureStatePatch,
    responses((status = 200, body = FeatureState),
        (status = 202, body = ScheduledChange, description = "Scheduled for `live_from`")))]
async fn put_feature_state(
    s: State<AppState>,
    permit: Permit<rules::UpdateFeatureState>,
    path: Path<(String, i64)>,
    body: Json<FeatureStatePatch>,
) -> ApiResult<Response> {
    update_feature_state(s, permit, path, body).await
}

/// Changes the state now, or with `live_from` (a future ISO-8601 time) schedules the change
/// for then: `202` with the scheduled change (`…/scheduled-changes/{id}/`).
#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/featurestates/{id}", tag = "features",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = FeatureStatePatch,
    responses((status = 200, body = FeatureState),
        (status = 202, body = ScheduledChange, description = "Scheduled for `live_from`")))]
async fn update_feature_state(
    State(s): State<AppState>,
    permit: Permit<rules::UpdateFeatureState>,
    Path((api_key, id)): Path<(String, i64)>,
    Json(patch): Json<FeatureStatePatch>,
) -> ApiResult<Response> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    direct_edit(&permit.caller, permit.at, &env)?;
    if let Some(live_from) = &patch.live_from {
        let at = scheduled::parse_live_from(live_from, s.store.clock().now_ms())?;
        let state = states::get(ch.tx(), env.id, id).await?;
        if patch.feature.is_some_and(|f| f != state.feature) {
            return Err(StoreError::invalid("feature", "does not match the feature state").into());
        }
        let item = ScheduledFeatureState::from_patch(state.feature, &patch);
        let change = scheduled::create(&mut ch, &env, &[item], at, None).await?;
        ch.commit().await?;
        return Ok((StatusCode::ACCEPTED, Json(change)).into_response());
    }
    let state = states::update(&mut ch, &env, id, &patch).await?;
    ch.commit().await?;
    Ok(Json(state).into_response())
}
