//! `/api/v1/organisations/`. Members see their organisations; `ADMIN`s change them; any user
//! may create one and becomes its `ADMIN`.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_access::{Need, Role, Visible};
use flagstone_store::accounts::members;
use flagstone_store::organisations::{self, NewOrganisation, Organisation, OrganisationPatch};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_organisations, create_organisation))
        .routes(routes!(get_organisation, update_organisation))
}

#[utoipa::path(get, path = "/api/v1/organisations", tag = "organisations", params(PageParams),
    responses((status = 200, body = Paginated<Organisation>)))]
async fn list_organisations(
    State(s): State<AppState>,
    caller: Caller,
    uri: Uri,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<Organisation>>> {
    let visible = caller.grants().visible(Visible::Organisations);
    let mut tx = s.store.read().await?;
    let page = organisations::list_visible(&mut tx, &visible, p.request()).await?;
    Ok(Json(paginate(&uri, p.request(), page)))
}

#[utoipa::path(post, path = "/api/v1/organisations", tag = "organisations", request_body = NewOrganisation,
    responses((status = 201, body = Organisation)))]
async fn create_organisation(
    State(s): State<AppState>,
    caller: Caller,
    Json(new): Json<NewOrganisation>,
) -> ApiResult<(StatusCode, Json<Organisation>)> {
    // A person (or the installation's superusers), not an organisation's key.
    if !caller.grants().superuser {
        caller.require(Need::UserAccount)?;
    }
    let mut ch = s.store.change(caller.actor()).await?;
    let org = organisations::create(&mut ch, &new).await?;
    if let Some(user) = caller.user_id() {
        let now = s.auth.now_ms();
        let email = caller.actor().name.clone();
        members::add(&mut ch, org.id, user, &email, Role::Admin.as_str(), now).await?;
    }
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(org)))
}

#[utoipa::path(get, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = i64, Path)), responses((status = 200, body = Organisation)))]
async fn get_organisation(
    State(s): State<AppState>,
    p: Permit<rules::Member>,
) -> ApiResult<Json<Organisation>> {
    let mut tx = s.store.read().await?;
    Ok(Json(organisations::get(&mut tx, p.at.0).await?))
}

#[utoipa::path(patch, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = i64, Path)), request_body = OrganisationPatch, responses((status = 200, body = Organisation)))]
async fn update_organisation(
    State(s): State<AppState>,
    p: Permit<rules::OrganisationAdmin>,
    Json(patch): Json<OrganisationPatch>,
) -> ApiResult<Json<Organisation>> {
    let mut ch = s.store.change(p.caller.actor()).await?;
    let org = organisations::update(&mut ch, p.at.0, &patch).await?;
    ch.commit().await?;
    Ok(Json(org))
}
