//! `/api/v1/organisations/`.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Extension;
use flagstone_store::organisations::{self, NewOrganisation, Organisation, OrganisationPatch};
use flagstone_store::Actor;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
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
    uri: Uri,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<Organisation>>> {
    let mut tx = s.store.read().await?;
    let page = organisations::list(&mut tx, p.request()).await?;
    Ok(Json(paginate(&uri, p.request(), page)))
}

#[utoipa::path(post, path = "/api/v1/organisations", tag = "organisations", request_body = NewOrganisation,
    responses((status = 201, body = Organisation)))]
async fn create_organisation(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Json(new): Json<NewOrganisation>,
) -> ApiResult<(StatusCode, Json<Organisation>)> {
    let mut ch = s.store.change(&actor).await?;
    let org = organisations::create(&mut ch, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(org)))
}

#[utoipa::path(get, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = i64, Path)), responses((status = 200, body = Organisation)))]
async fn get_organisation(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Organisation>> {
    let mut tx = s.store.read().await?;
    Ok(Json(organisations::get(&mut tx, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = i64, Path)), request_body = OrganisationPatch, responses((status = 200, body = Organisation)))]
async fn update_organisation(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<i64>,
    Json(patch): Json<OrganisationPatch>,
) -> ApiResult<Json<Organisation>> {
    let mut ch = s.store.change(&actor).await?;
    let org = organisations::update(&mut ch, id, &patch).await?;
    ch.commit().await?;
    Ok(Json(org))
}
