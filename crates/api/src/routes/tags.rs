//! `/api/v1/projects/{id}/tags/`: a project's tags, as Flagsmith's `TagViewSet` serves them
//! (list, create, read, `PUT`, `PATCH`, delete, `get-by-uuid`). Reading needs the project's
//! `VIEW_PROJECT`; creating, changing and deleting its `MANAGE_TAGS` (Flagsmith's rules).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_store::tags::{self, NewTag, Tag, TagPatch};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_tags, create_tag))
        .routes(routes!(tag_by_uuid))
        .routes(routes!(get_tag, put_tag, patch_tag, delete_tag))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/tags", tag = "tags",
    params(("project" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<Tag>)))]
async fn list_tags(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
    uri: Uri,
    Path(project): Path<i64>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<Tag>>> {
    let req = p.request();
    let mut tx = s.store.read().await?;
    let page = tags::list(&mut tx, project, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/tags", tag = "tags",
    params(("project" = i64, Path)), request_body = NewTag,
    responses((status = 201, body = Tag)))]
async fn create_tag(
    State(s): State<AppState>,
    permit: Permit<rules::ManageTags>,
    Path(project): Path<i64>,
    Json(new): Json<NewTag>,
) -> ApiResult<(StatusCode, Json<Tag>)> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let tag = tags::create(&mut ch, project, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(tag)))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/tags/get-by-uuid/{uuid}", tag = "tags",
    params(("project" = i64, Path), ("uuid" = String, Path)),
    responses((status = 200, body = Tag)))]
async fn tag_by_uuid(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
    Path((project, uuid)): Path<(i64, String)>,
) -> ApiResult<Json<Tag>> {
    let mut tx = s.store.read().await?;
    Ok(Json(tags::get_by_uuid(&mut tx, project, &uuid).await?))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/tags/{tag}", tag = "tags",
    params(("project" = i64, Path), ("tag" = i64, Path)),
    responses((status = 200, body = Tag)))]
async fn get_tag(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
    Path((project, tag)): Path<(i64, i64)>,
) -> ApiResult<Json<Tag>> {
    let mut tx = s.store.read().await?;
    Ok(Json(tags::get(&mut tx, project, tag).await?))
}

/// Replaces every writable field (what Flagsmith's dashboard sends: the tag it read, edited).
#[utoipa::path(put, path = "/api/v1/projects/{project}/tags/{tag}", tag = "tags",
    params(("project" = i64, Path), ("tag" = i64, Path)), request_body = NewTag,
    responses((status = 200, body = Tag)))]
async fn put_tag(
    State(s): State<AppState>,
    permit: Permit<rules::ManageTags>,
    Path((project, tag)): Path<(i64, i64)>,
    Json(body): Json<NewTag>,
) -> ApiResult<Json<Tag>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let tag = tags::update(&mut ch, project, tag, &TagPatch::from(&body)).await?;
    ch.commit().await?;
    Ok(Json(tag))
}

#[utoipa::path(patch, path = "/api/v1/projects/{project}/tags/{tag}", tag = "tags",
    params(("project" = i64, Path), ("tag" = i64, Path)), request_body = TagPatch,
    responses((status = 200, body = Tag)))]
async fn patch_tag(
    State(s): State<AppState>,
    permit: Permit<rules::ManageTags>,
    Path((project, tag)): Path<(i64, i64)>,
    Json(patch): Json<TagPatch>,
) -> ApiResult<Json<Tag>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let tag = tags::update(&mut ch, project, tag, &patch).await?;
    ch.commit().await?;
    Ok(Json(tag))
}

/// Deletes the tag and takes it off every feature.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/tags/{tag}", tag = "tags",
    params(("project" = i64, Path), ("tag" = i64, Path)), responses((status = 204)))]
async fn delete_tag(
    State(s): State<AppState>,
    permit: Permit<rules::ManageTags>,
    Path((project, tag)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    tags::delete(&mut ch, project, tag).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
