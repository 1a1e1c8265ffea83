//! Permission grants: who may do what in an organisation, a project or an environment.
//!
//! - `…/user-permissions/`, `…/user-group-permissions/` (Flagsmith's) and
//!   `…/master-api-key-permissions/` (Flagstone's: grants to a non-admin organisation API key)
//!   under `/api/v1/organisations/{id}/`, `/api/v1/projects/{id}/` and
//!   `/api/v1/environments/{api_key}/`: list, grant, change, remove. Managing them needs admin
//!   of the scope (organisation `ADMIN` for the organisation's).
//! - `/api/v1/{projects,environments,organisations}/permissions/`: the catalogues.
//! - `/api/v1/{projects/{id},environments/{api_key}}/my-permissions/`: what the caller holds.

use axum::extract::State;
use axum::http::StatusCode;
use flagstone_access::{
    EnvironmentPermission, Need, OrganisationPermission, Permission, ProjectPermission,
};
use flagstone_store::accounts::permission_grants::{self, GrantView, Holder, HolderKind, Scope};
use flagstone_store::scopes;
use flagstone_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::AppState;

/// Which kind of scope a route is under.
#[derive(Clone, Copy, Debug)]
enum At {
    Organisation,
    Project,
    Environment,
}

fn id_of(raw: &str, what: &str) -> ApiResult<i64> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be an integer, not {raw:?}")))
}

/// The scope a path names, once the caller is known to be its admin.
async fn admin_scope(s: &AppState, caller: &Caller, at: At, raw: &str) -> ApiResult<Scope> {
    let mut tx = s.store.read().await?;
    let scope = match at {
        At::Organisation => {
            let org = id_of(raw, "organisation")?;
            caller.require(Need::OrganisationAdmin(org))?;
            scopes::organisation(&mut tx, org).await?;
            Scope::Organisation(org)
        }
        At::Project => {
            let p = scopes::project(&mut tx, id_of(raw, "project")?).await?;
            caller.require(Need::ProjectAdmin(p))?;
            Scope::Project(p)
        }
        At::Environment => {
            let e = scopes::environment_by_key(&mut tx, raw).await?;
            caller.require(Need::EnvironmentAdmin(e))?;
            Scope::Environment(e)
        }
    };
    Ok(scope)
}

/// `POST …-permissions/`: the holder (`user`, `group` or `master_api_key`, as the path says),
/// the permission keys of the scope, and `admin`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    /// A member of the organisation (`…/user-permissions/`).
    user: Option<i64>,
    /// A group of the organisation (`…/user-group-permissions/`).
    group: Option<i64>,
    /// An organisation API key's id (`…/master-api-key-permissions/`).
    master_api_key: Option<i64>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    admin: bool,
    /// Accepted for Flagsmith clients, which repeat the scope; the path decides.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[allow(dead_code)]
    project: Option<serde_json::Value>,
    /// As `project`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[allow(dead_code)]
    environment: Option<serde_json::Value>,
}

/// `PUT`/`PATCH …-permissions/{grant_id}/`: absent fields stay as they are. The holder
/// fields are accepted and ignored (a grant's holder does not change).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantChange {
    permissions: Option<Vec<String>>,
    admin: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[allow(dead_code)]
    user: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[allow(dead_code)]
    group: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[allow(dead_code)]
    master_api_key: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[allow(dead_code)]
    project: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[allow(dead_code)]
    environment: Option<serde_json::Value>,
}

async fn list(
    s: AppState,
    caller: Caller,
    at: At,
    raw: String,
    kind: HolderKind,
) -> ApiResult<Json<Vec<GrantView>>> {
    let scope = admin_scope(&s, &caller, at, &raw).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(permission_grants::list(&mut tx, scope, kind).await?))
}

async fn create(
    s: AppState,
    caller: Caller,
    at: At,
    raw: String,
    kind: HolderKind,
    req: NewGrant,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let scope = admin_scope(&s, &caller, at, &raw).await?;
    let given = [
        (HolderKind::User, req.user),
        (HolderKind::Group, req.group),
        (HolderKind::ApiKey, req.master_api_key),
    ];
    let mut holder = None;
    for (k, id) in given {
        match (k == kind, id) {
            (true, Some(id)) => holder = Some(Holder::from_kind(kind, id)),
            (true, None) => {}
            (false, Some(_)) => {
                return Err(StoreError::invalid(
                    k.field(),
                    format!("not accepted here: this path grants to a {}", kind.field()),
                )
                .into())
            }
            (false, None) => {}
        }
    }
    let holder = holder.ok_or_else(|| StoreError::invalid(kind.field(), "is required"))?;
    let mut ch = s.store.change(caller.actor()).await?;
    let g = permission_grants::create(
        &mut ch,
        scope,
        holder,
        &req.permissions,
        req.admin,
        s.auth.now_ms(),
    )
    .await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(g)))
}

async fn get(
    s: AppState,
    caller: Caller,
    at: At,
    raw: String,
    kind: HolderKind,
    id: i64,
) -> ApiResult<Json<GrantView>> {
    let scope = admin_scope(&s, &caller, at, &raw).await?;
    let mut tx = s.store.read().await?;
    Ok(Json(
        permission_grants::get(&mut tx, scope, kind, id).await?,
    ))
}

async fn update(
    s: AppState,
    caller: Caller,
    at: At,
    raw: String,
    kind: HolderKind,
    id: i64,
    req: GrantChange,
) -> ApiResult<Json<GrantView>> {
    let scope = admin_scope(&s, &caller, at, &raw).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    let g = permission_grants::update(
        &mut ch,
        scope,
        kind,
        id,
        req.permissions.as_deref(),
        req.admin,
        s.auth.now_ms(),
    )
    .await?;
    ch.commit().await?;
    Ok(Json(g))
}

async fn delete(
    s: AppState,
    caller: Caller,
    at: At,
    raw: String,
    kind: HolderKind,
    id: i64,
) -> ApiResult<StatusCode> {
    let scope = admin_scope(&s, &caller, at, &raw).await?;
    let mut ch = s.store.change(caller.actor()).await?;
    permission_grants::delete(&mut ch, scope, kind, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The six handlers of one holder kind under one kind of scope, in a module of their own, with
/// their OpenAPI annotations.
macro_rules! grant_endpoints {
    ($module:ident, $at:expr, $kind:expr, $base:tt, $item:tt, $param:tt, $ptype:ty, $op:tt) => {
        mod $module {
            use super::*;

            pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
                r.routes(routes!(list_grants, create_grant))
                    .routes(routes!(get_grant, put_grant, patch_grant, delete_grant))
            }

            /// The grants of this kind here. Admins of the scope only.
            #[utoipa::path(get, path = $base, tag = "permissions",
                operation_id = concat!("list_", $op),
                params(($param = $ptype, Path)),
                responses((status = 200, body = Vec<GrantView>),
                    (status = 403, description = "Not an admin here")))]
            async fn list_grants(
                State(s): State<AppState>,
                caller: Caller,
                Path(scope): Path<String>,
            ) -> ApiResult<Json<Vec<GrantView>>> {
                list(s, caller, $at, scope, $kind).await
            }

            /// Grants permissions (keys of this scope's catalogue) or admin.
            #[utoipa::path(post, path = $base, tag = "permissions",
                operation_id = concat!("create_", $op),
                params(($param = $ptype, Path)), request_body = NewGrant,
                responses((status = 201, body = GrantView),
                    (status = 400, description = "Unknown permission, a holder from elsewhere, or one that already has a grant here"),
                    (status = 403, description = "Not an admin here")))]
            async fn create_grant(
                State(s): State<AppState>,
                caller: Caller,
                Path(scope): Path<String>,
                Json(req): Json<NewGrant>,
            ) -> ApiResult<(StatusCode, Json<GrantView>)> {
                create(s, caller, $at, scope, $kind, req).await
            }

            #[utoipa::path(get, path = $item, tag = "permissions",
                operation_id = concat!("get_", $op),
                params(($param = $ptype, Path), ("grant_id" = i64, Path)),
                responses((status = 200, body = GrantView), (status = 404, description = "No such grant here")))]
            async fn get_grant(
                State(s): State<AppState>,
                caller: Caller,
                Path((scope, id)): Path<(String, i64)>,
            ) -> ApiResult<Json<GrantView>> {
                get(s, caller, $at, scope, $kind, id).await
            }

            /// Changes a grant (absent fields stay).
            #[utoipa::path(put, path = $item, tag = "permissions",
                operation_id = concat!("put_", $op),
                params(($param = $ptype, Path), ("grant_id" = i64, Path)), request_body = GrantChange,
                responses((status = 200, body = GrantView)))]
            async fn put_grant(
                State(s): State<AppState>,
                caller: Caller,
                Path((scope, id)): Path<(String, i64)>,
                Json(req): Json<GrantChange>,
            ) -> ApiResult<Json<GrantView>> {
                update(s, caller, $at, scope, $kind, id, req).await
            }

            /// As `PUT`.
            #[utoipa::path(patch, path = $item, tag = "permissions",
                operation_id = concat!("patch_", $op),
                params(($param = $ptype, Path), ("grant_id" = i64, Path)), request_body = GrantChange,
                responses((status = 200, body = GrantView)))]
            async fn patch_grant(
                State(s): State<AppState>,
                caller: Caller,
                Path((scope, id)): Path<(String, i64)>,
                Json(req): Json<GrantChange>,
            ) -> ApiResult<Json<GrantView>> {
                update(s, caller, $at, scope, $kind, id, req).await
            }

            /// Removes a grant; the holder loses it at its next request.
            #[utoipa::path(delete, path = $item, tag = "permissions",
                operation_id = concat!("delete_", $op),
                params(($param = $ptype, Path), ("grant_id" = i64, Path)),
                responses((status = 204), (status = 404, description = "No such grant here")))]
            async fn delete_grant(
                State(s): State<AppState>,
                caller: Caller,
                Path((scope, id)): Path<(String, i64)>,
            ) -> ApiResult<StatusCode> {
                delete(s, caller, $at, scope, $kind, id).await
            }
        }
    };
}

grant_endpoints!(
    project_users,
    At::Project,
    HolderKind::User,
    "/api/v1/projects/{id}/user-permissions",
    "/api/v1/projects/{id}/user-permissions/{grant_id}",
    "id",
    i64,
    "project_user_permission"
);
grant_endpoints!(
    project_groups,
    At::Project,
    HolderKind::Group,
    "/api/v1/projects/{id}/user-group-permissions",
    "/api/v1/projects/{id}/user-group-permissions/{grant_id}",
    "id",
    i64,
    "project_group_permission"
);
grant_endpoints!(
    project_keys,
    At::Project,
    HolderKind::ApiKey,
    "/api/v1/projects/{id}/master-api-key-permissions",
    "/api/v1/projects/{id}/master-api-key-permissions/{grant_id}",
    "id",
    i64,
    "project_key_permission"
);
grant_endpoints!(
    environment_users,
    At::Environment,
    HolderKind::User,
    "/api/v1/environments/{api_key}/user-permissions",
    "/api/v1/environments/{api_key}/user-permissions/{grant_id}",
    "api_key",
    String,
    "environment_user_permission"
);
grant_endpoints!(
    environment_groups,
    At::Environment,
    HolderKind::Group,
    "/api/v1/environments/{api_key}/user-group-permissions",
    "/api/v1/environments/{api_key}/user-group-permissions/{grant_id}",
    "api_key",
    String,
    "environment_group_permission"
);
grant_endpoints!(
    environment_keys,
    At::Environment,
    HolderKind::ApiKey,
    "/api/v1/environments/{api_key}/master-api-key-permissions",
    "/api/v1/environments/{api_key}/master-api-key-permissions/{grant_id}",
    "api_key",
    String,
    "environment_key_permission"
);
grant_endpoints!(
    organisation_users,
    At::Organisation,
    HolderKind::User,
    "/api/v1/organisations/{id}/user-permissions",
    "/api/v1/organisations/{id}/user-permissions/{grant_id}",
    "id",
    i64,
    "organisation_user_permission"
);
grant_endpoints!(
    organisation_groups,
    At::Organisation,
    HolderKind::Group,
    "/api/v1/organisations/{id}/user-group-permissions",
    "/api/v1/organisations/{id}/user-group-permissions/{grant_id}",
    "id",
    i64,
    "organisation_group_permission"
);
grant_endpoints!(
    organisation_keys,
    At::Organisation,
    HolderKind::ApiKey,
    "/api/v1/organisations/{id}/master-api-key-permissions",
    "/api/v1/organisations/{id}/master-api-key-permissions/{grant_id}",
    "id",
    i64,
    "organisation_key_permission"
);

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let r = project_users::routes(r);
    let r = project_groups::routes(r);
    let r = project_keys::routes(r);
    let r = environment_users::routes(r);
    let r = environment_groups::routes(r);
    let r = environment_keys::routes(r);
    let r = organisation_users::routes(r);
    let r = organisation_groups::routes(r);
    let r = organisation_keys::routes(r);
    r.routes(routes!(project_catalogue))
        .routes(routes!(environment_catalogue))
        .routes(routes!(organisation_catalogue))
        .routes(routes!(my_project_permissions))
        .routes(routes!(my_environment_permissions))
}

/// One permission of a catalogue.
#[derive(Serialize, utoipa::ToSchema)]
struct PermissionInfo {
    key: &'static str,
    description: &'static str,
    /// Always false: permissions are not limited to tagged features here (Flagsmith's field).
    supports_tag: bool,
}

fn catalogue<P: Permission>() -> Json<Vec<PermissionInfo>> {
    Json(
        P::ALL
            .iter()
            .map(|p| PermissionInfo {
                key: p.key(),
                description: p.description(),
                supports_tag: false,
            })
            .collect(),
    )
}

/// The permissions that can be granted on a project.
#[utoipa::path(get, path = "/api/v1/projects/permissions", tag = "permissions",
    responses((status = 200, body = Vec<PermissionInfo>)))]
async fn project_catalogue() -> Json<Vec<PermissionInfo>> {
    catalogue::<ProjectPermission>()
}

/// The permissions that can be granted on an environment.
#[utoipa::path(get, path = "/api/v1/environments/permissions", tag = "permissions",
    responses((status = 200, body = Vec<PermissionInfo>)))]
async fn environment_catalogue() -> Json<Vec<PermissionInfo>> {
    catalogue::<EnvironmentPermission>()
}

/// The permissions that can be granted on an organisation.
#[utoipa::path(get, path = "/api/v1/organisations/permissions", tag = "permissions",
    responses((status = 200, body = Vec<PermissionInfo>)))]
async fn organisation_catalogue() -> Json<Vec<PermissionInfo>> {
    catalogue::<OrganisationPermission>()
}

/// What the caller holds somewhere: `admin` implies every permission.
#[derive(Serialize, utoipa::ToSchema)]
struct MyPermissions {
    /// The permissions held (all of them for an admin).
    permissions: Vec<&'static str>,
    admin: bool,
    /// Always empty (Flagsmith's field).
    #[schema(value_type = Vec<Object>)]
    tag_based_permissions: Vec<serde_json::Value>,
}

/// What the caller may do in the project. Members of the project's organisation only.
#[utoipa::path(get, path = "/api/v1/projects/{id}/my-permissions", tag = "permissions",
    params(("id" = i64, Path)),
    responses((status = 200, body = MyPermissions),
        (status = 403, description = "Not a member of the project's organisation")))]
async fn my_project_permissions(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<i64>,
) -> ApiResult<Json<MyPermissions>> {
    let p = {
        let mut tx = s.store.read().await?;
        scopes::project(&mut tx, project).await?
    };
    caller.require(Need::Member(p.organisation))?;
    let g = caller.grants().project_permissions(p);
    Ok(Json(MyPermissions {
        permissions: g.effective().keys(),
        admin: g.admin,
        tag_based_permissions: Vec::new(),
    }))
}

/// What the caller may do in the environment. Members of its organisation only.
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/my-permissions", tag = "permissions",
    params(("api_key" = String, Path)),
    responses((status = 200, body = MyPermissions),
        (status = 403, description = "Not a member of the environment's organisation")))]
async fn my_environment_permissions(
    State(s): State<AppState>,
    caller: Caller,
    Path(api_key): Path<String>,
) -> ApiResult<Json<MyPermissions>> {
    let e = {
        let mut tx = s.store.read().await?;
        scopes::environment_by_key(&mut tx, &api_key).await?
    };
    caller.require(Need::Member(e.organisation))?;
    let g = caller.grants().environment_permissions(e);
    Ok(Json(MyPermissions {
        permissions: g.effective().keys(),
        admin: g.admin,
        tag_based_permissions: Vec::new(),
    }))
}
