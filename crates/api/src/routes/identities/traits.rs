//! `/api/v1/environments/{api_key}/identities/{id}/traits/`: an identity's traits, addressed
//! by `trait_key`. As in Flagsmith, `trait_value: null` deletes a trait.
//!
//! - `GET  …/traits/` lists (paginated, by key); `POST` sets one `{trait_key, trait_value}`;
//!   `PUT` sets many at once (`[{trait_key, trait_value}, …]`).
//! - `GET/PATCH/DELETE …/traits/{trait_key}/`: read, change the value of (`{trait_value}`), or
//!   delete one existing trait.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flagstone_store::identities::traits::{self, Trait, TraitInput};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::env_and_identity;
use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_traits, set_trait, set_traits))
        .routes(routes!(get_trait, update_trait, delete_trait))
}

/// A trait when it holds a value, 204 when it was deleted (`null`).
fn trait_or_deleted(t: Option<Trait>, created: StatusCode) -> Response {
    match t {
        Some(t) => (created, Json(t)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/traits", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<Trait>)))]
async fn list_traits(
    State(s): State<AppState>,
    _: Permit<rules::ViewIdentities>,
    uri: Uri,
    Path((api_key, id)): Path<(String, i64)>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<Trait>>> {
    let req = p.request();
    let mut tx = s.store.read().await?;
    let (_, identity) = env_and_identity(&mut tx, &api_key, id).await?;
    let page = traits::list(&mut tx, identity.id, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

/// Sets one trait (creating or replacing it); `trait_value: null` deletes it and answers 204.
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/identities/{id}/traits", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = TraitInput,
    responses((status = 201, body = Trait), (status = 204, description = "trait_value was null: the trait was deleted")))]
async fn set_trait(
    State(s): State<AppState>,
    permit: Permit<rules::ManageIdentities>,
    Path((api_key, id)): Path<(String, i64)>,
    Json(input): Json<TraitInput>,
) -> ApiResult<Response> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let (env, identity) = env_and_identity(ch.tx(), &api_key, id).await?;
    let mut set = traits::set(&mut ch, &env, &identity, &[input]).await?;
    ch.commit().await?;
    Ok(trait_or_deleted(set.pop(), StatusCode::CREATED))
}

/// Sets many traits in one change; each `trait_value: null` deletes that trait. Answers the
/// traits that hold a value afterwards, in request order.
#[utoipa::path(put, path = "/api/v1/environments/{api_key}/identities/{id}/traits", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = Vec<TraitInput>,
    responses((status = 200, body = Vec<Trait>)))]
async fn set_traits(
    State(s): State<AppState>,
    permit: Permit<rules::ManageIdentities>,
    Path((api_key, id)): Path<(String, i64)>,
    Json(inputs): Json<Vec<TraitInput>>,
) -> ApiResult<Json<Vec<Trait>>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let (env, identity) = env_and_identity(ch.tx(), &api_key, id).await?;
    let set = traits::set(&mut ch, &env, &identity, &inputs).await?;
    ch.commit().await?;
    Ok(Json(set))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/traits/{trait_key}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("trait_key" = String, Path)),
    responses((status = 200, body = Trait)))]
async fn get_trait(
    State(s): State<AppState>,
    _: Permit<rules::ViewIdentities>,
    Path((api_key, id, key)): Path<(String, i64, String)>,
) -> ApiResult<Json<Trait>> {
    let mut tx = s.store.read().await?;
    let (_, identity) = env_and_identity(&mut tx, &api_key, id).await?;
    Ok(Json(traits::get(&mut tx, identity.id, &key).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TraitValue {
    /// A string, integer, float or boolean; `null` deletes the trait.
    trait_value: Value,
}

/// Changes an existing trait's value; `null` deletes it and answers 204.
#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/identities/{id}/traits/{trait_key}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("trait_key" = String, Path)),
    request_body = TraitValue,
    responses((status = 200, body = Trait), (status = 204, description = "trait_value was null: the trait was deleted")))]
async fn update_trait(
    State(s): State<AppState>,
    permit: Permit<rules::ManageIdentities>,
    Path((api_key, id, key)): Path<(String, i64, String)>,
    Json(body): Json<TraitValue>,
) -> ApiResult<Response> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let (env, identity) = env_and_identity(ch.tx(), &api_key, id).await?;
    let t = traits::update(&mut ch, &env, &identity, &key, &body.trait_value).await?;
    ch.commit().await?;
    Ok(trait_or_deleted(t, StatusCode::OK))
}

#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/identities/{id}/traits/{trait_key}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("trait_key" = String, Path)),
    responses((status = 204)))]
async fn delete_trait(
    State(s): State<AppState>,
    permit: Permit<rules::ManageIdentities>,
    Path((api_key, id, key)): Path<(String, i64, String)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let (env, identity) = env_and_identity(ch.tx(), &api_key, id).await?;
    traits::delete(&mut ch, &env, &identity, &key).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
