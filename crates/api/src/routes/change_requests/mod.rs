//! Change requests (Flagsmith's workflows): `POST /environments/{api_key}/create-change-request/`
//! opens one (`CREATE_CHANGE_REQUEST`), `GET …/list-change-requests/` lists them
//! (`VIEW_ENVIRONMENT`), and `/change-requests/{id}/` shows one with its diff against the
//! current state, approves it (`APPROVE_CHANGE_REQUEST`, never its author), commits it and
//! closes it (its author, or someone with `APPROVE_CHANGE_REQUEST`). The rules are
//! `flagstone_store::change_requests::decide`; [`guard`] refuses direct edits where approvals
//! are required.

pub(crate) mod guard;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_access::{EnvironmentPermission as E, Need};
use flagstone_store::change_requests::{
    self, actor_key, decide::Refusal, ChangeRequest, CommitRefused, NewChangeRequest,
};
use flagstone_store::environments::{self, Environment};
use flagstone_store::{Change, Tx};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;
use guard::{ApproveChangeRequest, ChangeRequestAt, CreateChangeRequest, ViewChangeRequest};

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(create_change_request))
        .routes(routes!(list_change_requests))
        .routes(routes!(get_change_request, close_change_request))
        .routes(routes!(approve_change_request))
        .routes(routes!(commit_change_request))
}

#[utoipa::path(post, path = "/api/v1/environments/{api_key}/create-change-request",
    tag = "change requests", params(("api_key" = String, Path)),
    request_body = NewChangeRequest,
    responses((status = 201, body = ChangeRequest), (status = 400), (status = 403)))]
async fn create_change_request(
    State(s): State<AppState>,
    permit: Permit<CreateChangeRequest>,
    Path(api_key): Path<String>,
    Json(new): Json<NewChangeRequest>,
) -> ApiResult<(StatusCode, Json<ChangeRequest>)> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    let created = change_requests::create(&mut ch, &env, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// `true`: only committed requests; `false`: only those still open.
    committed: Option<bool>,
    /// Only the requests this user (id) is assigned to approve.
    assignee: Option<i64>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/list-change-requests",
    tag = "change requests", params(("api_key" = String, Path), ListQuery),
    responses((status = 200, body = Paginated<ChangeRequest>)))]
async fn list_change_requests(
    State(s): State<AppState>,
    _: Permit<rules::ViewEnvironment>,
    uri: Uri,
    Path(api_key): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Paginated<ChangeRequest>>> {
    let req = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .request();
    let mut tx = s.store.read().await?;
    let env = environments::get_by_key(&mut tx, &api_key).await?;
    let filter = change_requests::ListFilter {
        committed: q.committed,
        assignee: q.assignee,
    };
    let page = change_requests::list(&mut tx, env.id, filter, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(get, path = "/api/v1/change-requests/{id}", tag = "change requests",
    params(("id" = i64, Path)),
    responses((status = 200, body = ChangeRequest), (status = 404)))]
async fn get_change_request(
    State(s): State<AppState>,
    permit: Permit<ViewChangeRequest>,
) -> ApiResult<Json<ChangeRequest>> {
    let mut tx = s.store.read().await?;
    Ok(Json(change_requests::get(&mut tx, permit.at.id).await?))
}

/// `400`, or `403` when the refusal is about who asked.
fn refused(r: Refusal) -> ApiError {
    if r.is_about_the_caller() {
        ApiError::Refused {
            error: "forbidden",
            detail: r.message(),
        }
    } else {
        ApiError::NotNow {
            error: "change_request_not_ready",
            detail: r.message(),
        }
    }
}

/// The request's environment, in `ch`.
async fn environment(ch: &mut Change, at: ChangeRequestAt) -> ApiResult<Environment> {
    Ok(environments::get(ch.tx(), at.environment.environment).await?)
}

/// Whether the caller opened the request or may approve it (who may commit and close it).
async fn author_or_approver(tx: &mut Tx, caller: &Caller, at: ChangeRequestAt) -> ApiResult<bool> {
    let approver = caller
        .require(Need::Environment(at.environment, E::ApproveChangeRequest))
        .is_ok();
    Ok(approver || change_requests::is_author(tx, at.id, &actor_key(caller.actor())).await?)
}

#[utoipa::path(post, path = "/api/v1/change-requests/{id}/approve", tag = "change requests",
    params(("id" = i64, Path)),
    responses((status = 200, body = ChangeRequest),
        (status = 400, description = "Already committed or closed"),
        (status = 403, description = "Without APPROVE_CHANGE_REQUEST, or its author")))]
async fn approve_change_request(
    State(s): State<AppState>,
    permit: Permit<ApproveChangeRequest>,
) -> ApiResult<Json<ChangeRequest>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environment(&mut ch, permit.at).await?;
    let approved = change_requests::approve(&mut ch, &env, permit.at.id)
        .await?
        .map_err(refused)?;
    ch.commit().await?;
    Ok(Json(approved))
}

/// Applies the request now, or schedules it for its `live_from` (`scheduled_change` names the
/// scheduled change). Refused with `409` when what it changes was changed since it was opened.
#[utoipa::path(post, path = "/api/v1/change-requests/{id}/commit", tag = "change requests",
    params(("id" = i64, Path)),
    responses((status = 200, body = ChangeRequest),
        (status = 400, description = "Not enough approvals, or already committed or closed"),
        (status = 403, description = "Neither its author nor an approver"),
        (status = 409, description = "Stale: what it changes was changed since")))]
async fn commit_change_request(
    State(s): State<AppState>,
    permit: Permit<ViewChangeRequest>,
) -> ApiResult<Json<ChangeRequest>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environment(&mut ch, permit.at).await?;
    let may = author_or_approver(ch.tx(), &permit.caller, permit.at).await?;
    // A refusal drops the change: nothing is written.
    let done = match change_requests::commit(&mut ch, &env, permit.at.id, may).await? {
        Ok(done) => done,
        Err(CommitRefused::Refused(r)) => return Err(refused(r)),
        Err(CommitRefused::Stale(conflicts)) => {
            return Err(ApiError::Conflict {
                error: "change_request_conflict",
                detail: format!(
                    "what this change request changes was changed since it was opened \
                     ({} field(s)); close it and open a new one against the current state",
                    conflicts.len()
                ),
                conflicts: serde_json::to_value(&conflicts).unwrap_or_default(),
            })
        }
    };
    ch.commit().await?;
    Ok(Json(done))
}

#[utoipa::path(delete, path = "/api/v1/change-requests/{id}", tag = "change requests",
    params(("id" = i64, Path)),
    responses((status = 204, description = "Closed"),
        (status = 400, description = "Already committed or closed"),
        (status = 403, description = "Neither its author nor an approver")))]
async fn close_change_request(
    State(s): State<AppState>,
    permit: Permit<ViewChangeRequest>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environment(&mut ch, permit.at).await?;
    let may = author_or_approver(ch.tx(), &permit.caller, permit.at).await?;
    change_requests::close(&mut ch, &env, permit.at.id, may)
        .await?
        .map_err(refused)?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
