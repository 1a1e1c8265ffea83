//! `/api/v1/organisations/{id}/groups/`: groups of an organisation's members, and who is in
//! them. Organisation `ADMIN`s only. What a group may do is granted in projects and
//! environments (`…/user-group-permissions/`).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_store::accounts::groups::{self, Group, GroupPatch, NewGroup};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::require_org_admin;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, put_group, patch_group, delete_group))
        .routes(routes!(add_users))
        .routes(routes!(remove_users))
}

#[utoipa::path(get, path = "/api/v1/organisations/{id}/groups", tag = "people",
    params(("id" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<Group>),
        (status = 403, description = "Not an admin of the organisation")))]
async fn list_groups(
    State(s): State<AppState>,
    caller: Caller,
    uri: Uri,
    Path(org): Path<i64>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<Group>>> {
    require_org_admin(&s, &caller, org).await?;
    let mut tx = s.store.read().await?;
    let page = groups::list(&mut tx, org, p.request()).await?;
    Ok(Json(paginate(&uri, p.request(), page)))
}

#[utoipa::path(post, path = "/api/v1/organisations/{id}/groups", tag = "people",
    params(("id" = i64, Path)), request_body = NewGroup,
    responses((status = 201, body = Group),
        (status = 400, description = "Blank or duplicate name, or a user who is not a member")))]
async fn create_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(org): Path<i64>,
    Json(new): Json<NewGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    require_org_admin(&s, &caller, org).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    let group = groups::create(&mut ch, org, &new, s.auth.now_ms()).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(group)))
}

#[utoipa::path(get, path = "/api/v1/organisations/{id}/groups/{group_id}", tag = "people",
    params(("id" = i64, Path), ("group_id" = i64, Path)),
    responses((status = 200, body = Group), (status = 404, description = "No such group")))]
async fn get_group(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, group)): Path<(i64, i64)>,
) -> ApiResult<Json<Group>> {
    require_org_admin(&s, &caller, org).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(groups::get(&mut tx, org, group).await?))
}

async fn update(
    s: AppState,
    caller: Caller,
    org: i64,
    group: i64,
    patch: GroupPatch,
) -> ApiResult<Json<Group>> {
    require_org_admin(&s, &caller, org).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    let g = groups::update(&mut ch, org, group, &patch).await?;
    ch.commit().await?;
    Ok(Json(g))
}

/// Renames a group or changes `is_default`. Members change through `add-users` and
/// `remove-users` (a `users` field is accepted and ignored).
#[utoipa::path(put, path = "/api/v1/organisations/{id}/groups/{group_id}", tag = "people",
    params(("id" = i64, Path), ("group_id" = i64, Path)), request_body = GroupPatch,
    responses((status = 200, body = Group)))]
async fn put_group(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, group)): Path<(i64, i64)>,
    Json(patch): Json<GroupPatch>,
) -> ApiResult<Json<Group>> {
    update(s, caller, org, group, patch).await
}

/// As `PUT`.
#[utoipa::path(patch, path = "/api/v1/organisations/{id}/groups/{group_id}", tag = "people",
    params(("id" = i64, Path), ("group_id" = i64, Path)), request_body = GroupPatch,
    responses((status = 200, body = Group)))]
async fn patch_group(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, group)): Path<(i64, i64)>,
    Json(patch): Json<GroupPatch>,
) -> ApiResult<Json<Group>> {
    update(s, caller, org, group, patch).await
}

/// Deletes a group and its grants; its members lose what the group gave them at their next
/// request.
#[utoipa::path(delete, path = "/api/v1/organisations/{id}/groups/{group_id}", tag = "people",
    params(("id" = i64, Path), ("group_id" = i64, Path)),
    responses((status = 204), (status = 404, description = "No such group")))]
async fn delete_group(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, group)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    require_org_admin(&s, &caller, org).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    groups::delete(&mut ch, org, group).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserIds {
    /// Ids of members of the organisation.
    user_ids: Vec<i64>,
}

/// Adds members of the organisation to the group. One id that is not a member refuses the
/// whole request.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/groups/{group_id}/add-users",
    tag = "people", params(("id" = i64, Path), ("group_id" = i64, Path)),
    request_body = UserIds,
    responses((status = 200, body = Group),
        (status = 400, description = "A user who is not a member, or no users")))]
async fn add_users(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, group)): Path<(i64, i64)>,
    Json(req): Json<UserIds>,
) -> ApiResult<Json<Group>> {
    require_org_admin(&s, &caller, org).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    let g = groups::add_users(&mut ch, org, group, &req.user_ids).await?;
    ch.commit().await?;
    Ok(Json(g))
}

/// Removes users from the group; what the group gave them ends at their next request.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/groups/{group_id}/remove-users",
    tag = "people", params(("id" = i64, Path), ("group_id" = i64, Path)),
    request_body = UserIds, responses((status = 200, body = Group)))]
async fn remove_users(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, group)): Path<(i64, i64)>,
    Json(req): Json<UserIds>,
) -> ApiResult<Json<Group>> {
    require_org_admin(&s, &caller, org).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    let g = groups::remove_users(&mut ch, org, group, &req.user_ids).await?;
    ch.commit().await?;
    Ok(Json(g))
}
