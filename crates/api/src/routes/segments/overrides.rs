//! Segment overrides: created per feature under an environment
//! (`/environments/{api_key}/features/{feature_id}/create-segment-override/`), read and changed
//! under `/environments/{api_key}/segment-overrides/`, and re-ordered in bulk at
//! `/features/feature-segments/update-priorities/` as in Flagsmith. Reading needs the
//! environment's `VIEW_ENVIRONMENT`; every change `MANAGE_SEGMENT_OVERRIDES` (in the environment
//! of each override re-ordered).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_access::{EnvironmentPermission, Need};
use flagstone_store::segments::overrides::{
    self, NewSegmentOverride, OverrideFilter, PriorityUpdate, SegmentOverride, SegmentOverridePatch,
};
use flagstone_store::{environments, scopes};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::routes::change_requests::guard::{direct_edit, direct_edit_in};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(create_override))
        .routes(routes!(list_overrides))
        .routes(routes!(get_override, update_override, delete_override))
        .routes(routes!(update_priorities))
}

#[utoipa::path(post,
    path = "/api/v1/environments/{api_key}/features/{feature_id}/create-segment-override",
    tag = "segment overrides", params(("api_key" = String, Path), ("feature_id" = i64, Path)),
    request_body = NewSegmentOverride, responses((status = 201, body = SegmentOverride)))]
async fn create_override(
    State(s): State<AppState>,
    permit: Permit<rules::ManageSegmentOverrides>,
    Path((api_key, feature)): Path<(String, i64)>,
    Json(new): Json<NewSegmentOverride>,
) -> ApiResult<(StatusCode, Json<SegmentOverride>)> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    direct_edit(&permit.caller, permit.at, &env)?;
    let created = overrides::create(&mut ch, &api_key, feature, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct OverrideQuery {
    /// Only overrides of this feature.
    feature: Option<i64>,
    /// Only overrides for this segment.
    segment: Option<i64>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/segment-overrides",
    tag = "segment overrides", params(("api_key" = String, Path), OverrideQuery),
    responses((status = 200, body = Paginated<SegmentOverride>)))]
async fn list_overrides(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    uri: Uri,
    Path(api_key): Path<String>,
    Query(q): Query<OverrideQuery>,
) -> ApiResult<Json<Paginated<SegmentOverride>>> {
    let req = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .request();
    let filter = OverrideFilter {
        feature: q.feature,
        segment: q.segment,
    };
    let mut tx = s.store.read().await?;
    let page = overrides::list(&mut tx, &api_key, filter, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/segment-overrides/{id}",
    tag = "segment overrides", params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = SegmentOverride)))]
async fn get_override(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<Json<SegmentOverride>> {
    let mut tx = s.store.read().await?;
    Ok(Json(overrides::get(&mut tx, &api_key, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/segment-overrides/{id}",
    tag = "segment overrides", params(("api_key" = String, Path), ("id" = i64, Path)),
    request_body = SegmentOverridePatch, responses((status = 200, body = SegmentOverride)))]
async fn update_override(
    State(s): State<AppState>,
    permit: Permit<rules::ManageSegmentOverrides>,
    Path((api_key, id)): Path<(String, i64)>,
    Json(patch): Json<SegmentOverridePatch>,
) -> ApiResult<Json<SegmentOverride>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    direct_edit(&permit.caller, permit.at, &env)?;
    let updated = overrides::update(&mut ch, &api_key, id, &patch).await?;
    ch.commit().await?;
    Ok(Json(updated))
}

#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/segment-overrides/{id}",
    tag = "segment overrides", params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 204)))]
async fn delete_override(
    State(s): State<AppState>,
    permit: Permit<rules::ManageSegmentOverrides>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    direct_edit(&permit.caller, permit.at, &env)?;
    overrides::delete(&mut ch, &api_key, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets many overrides' priorities in one change; returns them as they are afterwards.
#[utoipa::path(post, path = "/api/v1/features/feature-segments/update-priorities",
    tag = "segment overrides", request_body = Vec<PriorityUpdate>,
    responses((status = 200, body = Vec<SegmentOverride>)))]
async fn update_priorities(
    State(s): State<AppState>,
    caller: Caller,
    Json(updates): Json<Vec<PriorityUpdate>>,
) -> ApiResult<Json<Vec<SegmentOverride>>> {
    // The overrides are named in the body: MANAGE_SEGMENT_OVERRIDES in each one's environment.
    let ids: Vec<i64> = updates.iter().map(|u| u.id).collect();
    let environments = {
        let mut tx = s.store.read().await?;
        scopes::segment_override_environments(&mut tx, &ids).await?
    };
    for &e in &environments {
        caller.require(Need::Environment(
            e,
            EnvironmentPermission::ManageSegmentOverrides,
        ))?;
    }
    let mut ch = s.store.change(caller.actor()).await?;
    for e in environments {
        direct_edit_in(ch.tx(), &caller, e).await?;
    }
    let updated = overrides::reorder(&mut ch, &updates).await?;
    if !updated.is_empty() {
        ch.commit().await?;
    }
    Ok(Json(updated))
}
