//! `/api/v1/projects/{id}/segments/{segment_id}/versions/`: the history of a segment's
//! definition (newest first, including a deleted segment's), one version with its diff against
//! the previous one, and restoring a version as a new change. Reading needs `VIEW_PROJECT`, as
//! reading the segment does; a restore needs `MANAGE_SEGMENTS`, as editing it does.

use axum::extract::State;
use axum::http::Uri;
use flagstone_store::segments::versions;
use flagstone_store::segments::{SegmentVersion, SegmentVersionDetail};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(restore_version))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/segments/{segment_id}/versions",
    tag = "history", params(("id" = i64, Path), ("segment_id" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<SegmentVersion>), (status = 404)))]
async fn list_versions(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
    uri: Uri,
    Path((project, segment)): Path<(i64, i64)>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<SegmentVersion>>> {
    let req = p.request();
    let mut tx = s.store.read().await?;
    versions::require_segment(&mut tx, project, segment).await?;
    let page = versions::list(&mut tx, project, segment, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/segments/{segment_id}/versions/{version_id}",
    tag = "history",
    params(("id" = i64, Path), ("segment_id" = i64, Path), ("version_id" = i64, Path)),
    responses((status = 200, body = SegmentVersionDetail), (status = 404)))]
async fn get_version(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
    Path((project, segment, id)): Path<(i64, i64, i64)>,
) -> ApiResult<Json<SegmentVersionDetail>> {
    let mut tx = s.store.read().await?;
    Ok(Json(versions::detail(&mut tx, project, segment, id).await?))
}

#[utoipa::path(post,
    path = "/api/v1/projects/{id}/segments/{segment_id}/versions/{version_id}/restore",
    tag = "history",
    params(("id" = i64, Path), ("segment_id" = i64, Path), ("version_id" = i64, Path)),
    responses((status = 200, body = SegmentVersionDetail,
        description = "The new version the restore recorded"),
        (status = 400, description = "The definition is no longer valid (a name taken since, \
            a limit lowered since) or the segment has been deleted"),
        (status = 403), (status = 404)))]
async fn restore_version(
    State(s): State<AppState>,
    permit: Permit<rules::ManageSegments>,
    Path((project, segment, id)): Path<(i64, i64, i64)>,
) -> ApiResult<Json<SegmentVersionDetail>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    versions::restore(&mut ch, project, segment, id).await?;
    ch.commit().await?;
    let mut tx = s.store.read().await?;
    Ok(Json(versions::newest(&mut tx, project, segment).await?))
}
