//! Environments side by side: `POST /environments/{api_key}/clone/` (`VIEW_ENVIRONMENT` there,
//! `VIEW_IDENTITIES` too to copy identity overrides, and `CREATE_ENVIRONMENT` in the project), `GET /environments/{a}/compare/{b}/`
//! (`VIEW_ENVIRONMENT` in both) and `POST /environments/{target}/features/{id}/promote/`
//! (`VIEW_ENVIRONMENT` in the source; in the target what the change needs, as a restore). A
//! promotion into an environment that requires approvals becomes a change request for callers
//! without environment admin.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flagstone_access::{EnvironmentPermission as E, Need, ProjectPermission};
use flagstone_store::change_requests::{decide, ChangeRequest};
use flagstone_store::environments::{self, Environment};
use flagstone_store::promotion::{self, CloneEnvironment, Comparison, Promote, PromotePlan};
use flagstone_store::scopes;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(clone_environment))
        .routes(routes!(compare_environments))
        .routes(routes!(promote_feature))
}

#[utoipa::path(post, path = "/api/v1/environments/{api_key}/clone", tag = "environments",
    params(("api_key" = String, Path)), request_body = CloneEnvironment,
    responses((status = 201, body = Environment), (status = 400), (status = 403)))]
async fn clone_environment(
    State(s): State<AppState>,
    permit: Permit<rules::ViewEnvironment>,
    Path(api_key): Path<String>,
    Json(body): Json<CloneEnvironment>,
) -> ApiResult<(StatusCode, Json<Environment>)> {
    permit.caller.require(Need::Project(
        permit.at.project_ref(),
        ProjectPermission::CreateEnvironment,
    ))?;
    if body.clone_identity_overrides {
        permit
            .caller
            .require(Need::Environment(permit.at, E::ViewIdentities))?;
    }
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let source = environments::get_by_key(ch.tx(), &api_key).await?;
    let created = promotion::clone(&mut ch, &source, &body).await?;
    ch.commit().await?;
    let mut tx = s.store.read().await?;
    let created = environments::get(&mut tx, created.id).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `VIEW_ENVIRONMENT` in the environment with client key `key` (named in the path or body).
async fn view(s: &AppState, caller: &crate::auth::Caller, key: &str) -> ApiResult<Environment> {
    let mut tx = s.store.read().await?;
    let at = scopes::environment_by_key(&mut tx, key).await?;
    caller.require(Need::Environment(at, E::ViewEnvironment))?;
    Ok(environments::get_by_key(&mut tx, key).await?)
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/compare/{other}", tag = "environments",
    params(("api_key" = String, Path), ("other" = String, Path, description = "Client key")),
    responses((status = 200, body = Comparison), (status = 400), (status = 403), (status = 404)))]
async fn compare_environments(
    State(s): State<AppState>,
    permit: Permit<rules::ViewEnvironment>,
    Path((api_key, other)): Path<(String, String)>,
) -> ApiResult<Json<Comparison>> {
    view(&s, &permit.caller, &other).await?;
    let mut tx = s.store.read().await?;
    let a = environments::get_by_key(&mut tx, &api_key).await?;
    let b = environments::get_by_key(&mut tx, &other).await?;
    Ok(Json(promotion::compare(&mut tx, &a, &b).await?))
}

/// Copies the feature's configuration from `from`: `200` with what changed; or, where the
/// target requires approvals and the caller is not its admin, `202` with the change request
/// it opened (carrying the default state and the segment overrides that differ).
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/features/{feature_id}/promote",
    tag = "environments", params(("api_key" = String, Path), ("feature_id" = i64, Path)),
    request_body = Promote,
    responses((status = 200, body = PromotePlan, description = "Applied"),
        (status = 202, body = ChangeRequest, description = "Opened as a change request"),
        (status = 400), (status = 403), (status = 404)))]
async fn promote_feature(
    State(s): State<AppState>,
    permit: Permit<rules::ViewEnvironment>,
    Path((api_key, feature)): Path<(String, i64)>,
    Json(body): Json<Promote>,
) -> ApiResult<Response> {
    let source = view(&s, &permit.caller, &body.from).await?;
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let target = environments::get_by_key(ch.tx(), &api_key).await?;
    let plan = promotion::plan_promote(ch.tx(), &target, &source, feature).await?;
    let (at, caller) = (permit.at, &permit.caller);
    let admin = caller.require(Need::EnvironmentAdmin(at)).is_ok();
    let gate = decide::direct_edit(target.minimum_change_request_approvals, admin);
    if gate != decide::DirectEdit::Allowed && !plan.diff.is_empty() {
        caller.require(Need::Environment(at, E::CreateChangeRequest))?;
        let opened = promotion::open_change_request(&mut ch, &target, &source, &plan).await?;
        ch.commit().await?;
        return Ok((StatusCode::ACCEPTED, Json(opened)).into_response());
    }
    if plan.diff.touches_default() || plan.diff.is_empty() {
        caller.require(Need::Environment(at, E::UpdateFeatureState))?;
    }
    if plan.diff.touches_overrides() {
        caller.require(Need::Environment(at, E::ManageSegmentOverrides))?;
    }
    // Nothing differs: nothing to write (dropping the change writes nothing).
    if !plan.diff.is_empty() {
        promotion::promote(&mut ch, &target, &source, &plan).await?;
        ch.commit().await?;
    }
    Ok(Json(plan).into_response())
}
