//! `/api/v1/projects/{id}/segments/`: segments and their rules. Segment overrides (per
//! environment) are in [`overrides`]; the history of a segment's definition in [`versions`].

mod flagsmith_paths;
mod overrides;
mod state_list;
mod versions;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_store::segments::{self, NewSegment, Segment, SegmentPatch};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let r = r
        .routes(routes!(list_segments, create_segment))
        .routes(routes!(
            get_segment,
            replace_segment,
            update_segment,
            delete_segment
        ));
    state_list::routes(flagsmith_paths::routes(versions::routes(
        overrides::routes(r),
    )))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/segments", tag = "segments",
    params(("id" = i64, Path), PageParams), responses((status = 200, body = Paginated<Segment>)))]
async fn list_segments(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
    uri: Uri,
    Path(project): Path<i64>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<Segment>>> {
    let req = p.request();
    let mut tx = s.store.read().await?;
    let page = segments::list(&mut tx, project, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(post, path = "/api/v1/projects/{id}/segments", tag = "segments",
    params(("id" = i64, Path)), request_body = NewSegment, responses((status = 201, body = Segment)))]
async fn create_segment(
    State(s): State<AppState>,
    permit: Permit<rules::ManageSegments>,
    Path(project): Path<i64>,
    Json(new): Json<NewSegment>,
) -> ApiResult<(StatusCode, Json<Segment>)> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let segment = segments::create(&mut ch, project, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(segment)))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/segments/{segment_id}", tag = "segments",
    params(("id" = i64, Path), ("segment_id" = i64, Path)), responses((status = 200, body = Segment)))]
async fn get_segment(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
    Path((project, id)): Path<(i64, i64)>,
) -> ApiResult<Json<Segment>> {
    let mut tx = s.store.read().await?;
    Ok(Json(segments::get(&mut tx, project, id).await?))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}/segments/{segment_id}", tag = "segments",
    params(("id" = i64, Path), ("segment_id" = i64, Path)), request_body = NewSegment,
    responses((status = 200, body = Segment)))]
async fn replace_segment(
    State(s): State<AppState>,
    permit: Permit<rules::ManageSegments>,
    Path((project, id)): Path<(i64, i64)>,
    Json(new): Json<NewSegment>,
) -> ApiResult<Json<Segment>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let segment = segments::replace(&mut ch, project, id, &new).await?;
    ch.commit().await?;
    Ok(Json(segment))
}

#[utoipa::path(patch, path = "/api/v1/projects/{id}/segments/{segment_id}", tag = "segments",
    params(("id" = i64, Path), ("segment_id" = i64, Path)), request_body = SegmentPatch,
    responses((status = 200, body = Segment)))]
async fn update_segment(
    State(s): State<AppState>,
    permit: Permit<rules::ManageSegments>,
    Path((project, id)): Path<(i64, i64)>,
    Json(patch): Json<SegmentPatch>,
) -> ApiResult<Json<Segment>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let segment = segments::update(&mut ch, project, id, &patch).await?;
    ch.commit().await?;
    Ok(Json(segment))
}

#[utoipa::path(delete, path = "/api/v1/projects/{id}/segments/{segment_id}", tag = "segments",
    params(("id" = i64, Path), ("segment_id" = i64, Path)), responses((status = 204)))]
async fn delete_segment(
    State(s): State<AppState>,
    permit: Permit<rules::ManageSegments>,
    Path((project, id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    segments::delete(&mut ch, project, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
