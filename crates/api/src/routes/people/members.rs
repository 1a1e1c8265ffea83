//! `/api/v1/organisations/{id}/users/`: an organisation's members, their roles, removing them.
//! Organisation `ADMIN`s only; the last admin can be neither demoted nor removed.

use axum::extract::State;
use axum::http::StatusCode;
use flagstone_access::Role;
use flagstone_store::accounts::members::{self, Member};
use flagstone_store::StoreError;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::require_org_admin;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_members))
        .routes(routes!(remove_member))
        .routes(routes!(update_role))
}

/// The organisation's members with their roles (not paginated, like Flagsmith's).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/users", tag = "people",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Member>),
        (status = 403, description = "Not an admin of the organisation")))]
async fn list_members(
    State(s): State<AppState>,
    caller: Caller,
    Path(org): Path<i64>,
) -> ApiResult<Json<Vec<Member>>> {
    require_org_admin(&s, &caller, org).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(members::list(&mut tx, org).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    /// `ADMIN` or `USER`.
    role: String,
}

pub(crate) fn parse_role(field: &str, role: &str) -> Result<Role, StoreError> {
    Role::parse(role)
        .ok_or_else(|| StoreError::invalid(field, format!("{role:?} is not a role: ADMIN or USER")))
}

/// Changes a member's role. The organisation's last admin cannot be made a `USER`.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/users/{user_id}/update-role",
    tag = "people", params(("id" = i64, Path), ("user_id" = i64, Path)),
    request_body = RoleChange,
    responses((status = 200, body = Member),
        (status = 400, description = "Unknown role, or the last admin"),
        (status = 403, description = "Not an admin of the organisation"),
        (status = 404, description = "Not a member")))]
async fn update_role(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, user)): Path<(i64, i64)>,
    Json(req): Json<RoleChange>,
) -> ApiResult<Json<Member>> {
    require_org_admin(&s, &caller, org).await?;
    let role = parse_role("role", &req.role)?;
    let mut ch = s.store.change(caller.actor()).await?;
    let member = members::set_role(&mut ch, org, user, role).await?;
    ch.commit().await?;
    Ok(Json(member))
}

/// Removes a member from the organisation, with its group memberships and grants there. Its
/// next request is refused. The last admin cannot be removed.
#[utoipa::path(delete, path = "/api/v1/organisations/{id}/users/{user_id}", tag = "people",
    params(("id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 204),
        (status = 400, description = "The last admin"),
        (status = 403, description = "Not an admin of the organisation"),
        (status = 404, description = "Not a member")))]
async fn remove_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((org, user)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    require_org_admin(&s, &caller, org).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    members::remove(&mut ch, org, user).await?;
    ch.commit().await?;
    tracing::info!(organisation = org, user, "member removed");
    Ok(StatusCode::NO_CONTENT)
}
