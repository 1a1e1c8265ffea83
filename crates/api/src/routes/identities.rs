//! `/api/v1/environments/{api_key}/identities/`: identities of an environment, with their
//! traits ([`traits`]) and identity overrides ([`overrides`]). An identity of another
//! environment is not found.

mod evaluation;
mod overrides;
mod traits;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_store::environments::{self, Environment};
use flagstone_store::identities::{self, Identity, NewIdentity};
use flagstone_store::{Result, Tx};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let r = r
        .routes(routes!(list_identities, create_identity))
        .routes(routes!(get_identity, delete_identity));
    let r = traits::routes(r);
    let r = evaluation::routes(r);
    overrides::routes(r)
}

/// The environment addressed by `api_key` and its identity `id`, inside one transaction.
async fn env_and_identity(tx: &mut Tx, api_key: &str, id: i64) -> Result<(Environment, Identity)> {
    let env = environments::get_by_key(tx, api_key).await?;
    let identity = identities::get(tx, env.id, id).await?;
    Ok((env, identity))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct IdentityFilter {
    /// Only identities whose identifier starts with this (case-sensitive).
    q: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities", tag = "identities",
    params(("api_key" = String, Path), IdentityFilter),
    responses((status = 200, body = Paginated<Identity>)))]
async fn list_identities(
    State(s): State<AppState>,
    _: Permit<rules::ViewIdentities>,
    uri: Uri,
    Path(api_key): Path<String>,
    Query(f): Query<IdentityFilter>,
) -> ApiResult<Json<Paginated<Identity>>> {
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let mut tx = s.store.read().await?;
    let env = environments::get_by_key(&mut tx, &api_key).await?;
    let page = identities::list(&mut tx, env.id, f.q.as_deref(), req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(post, path = "/api/v1/environments/{api_key}/identities", tag = "identities",
    params(("api_key" = String, Path)), request_body = NewIdentity,
    responses((status = 201, body = Identity)))]
async fn create_identity(
    State(s): State<AppState>,
    permit: Permit<rules::ManageIdentities>,
    Path(api_key): Path<String>,
    Json(new): Json<NewIdentity>,
) -> ApiResult<(StatusCode, Json<Identity>)> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    let identity = identities::create(&mut ch, &env, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(identity)))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Identity)))]
async fn get_identity(
    State(s): State<AppState>,
    _: Permit<rules::ViewIdentities>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<Json<Identity>> {
    let mut tx = s.store.read().await?;
    let (_, identity) = env_and_identity(&mut tx, &api_key, id).await?;
    Ok(Json(identity))
}

/// Deletes the identity with its traits and overrides.
#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/identities/{id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)), responses((status = 204)))]
async fn delete_identity(
    State(s): State<AppState>,
    permit: Permit<rules::ManageIdentities>,
    Path((api_key, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &api_key).await?;
    identities::delete(&mut ch, &env, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
