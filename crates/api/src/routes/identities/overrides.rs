//! `/api/v1/environments/{api_key}/identities/{id}/featurestates/`: identity overrides, one
//! feature's state for one identity. Each change bumps the environment's revision (local
//! evaluation SDKs receive overrides with the environment document) and is audited.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_store::identities::overrides::{
    self, IdentityOverride, IdentityOverridePatch, NewIdentityOverride,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::env_and_identity;
use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_overrides, create_override))
        .routes(routes!(get_override, update_override, delete_override))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<IdentityOverride>)))]
async fn list_overrides(
    State(s): State<AppState>,
    _: Permit<rules::ViewIdentities>,
    uri: Uri,
    Path((api_key, id)): Path<(String, i64)>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<IdentityOverride>>> {
    let req = p.request();
    let mut tx = s.store.read().await?;
    let (_, identity) = env_and_identity(&mut tx, &api_key, id).await?;
    let page = overrides::list(&mut tx, identity.id, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

/// Overrides a feature for this identity. One override per feature and identity.
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = NewIdentityOverride,
    responses((status = 201, body = IdentityOverride)))]
async fn create_override(
    State(s): State<AppState>,
    permit: Permit<rules::UpdateFeatureState>,
    Path((api_key, id)): Path<(String, i64)>,
    Json(new): Json<NewIdentityOverride>,
) -> ApiResult<(StatusCode, Json<IdentityOverride>)> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let (env, identity) = env_and_identity(ch.tx(), &api_key, id).await?;
    let created = overrides::create(&mut ch, &env, &identity, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates/{override_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("override_id" = i64, Path)),
    responses((status = 200, body = IdentityOverride)))]
async fn get_override(
    State(s): State<AppState>,
    _: Permit<rules::ViewIdentities>,
    Path((api_key, id, override_id)): Path<(String, i64, i64)>,
) -> ApiResult<Json<IdentityOverride>> {
    let mut tx = s.store.read().await?;
    let (_, identity) = env_and_identity(&mut tx, &api_key, id).await?;
    Ok(Json(
        overrides::get(&mut tx, identity.id, override_id).await?,
    ))
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates/{override_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("override_id" = i64, Path)),
    request_body = IdentityOverridePatch, responses((status = 200, body = IdentityOverride)))]
async fn update_override(
    State(s): State<AppState>,
    permit: Permit<rules::UpdateFeatureState>,
    Path((api_key, id, override_id)): Path<(String, i64, i64)>,
    Json(patch): Json<IdentityOverridePatch>,
) -> ApiResult<Json<IdentityOverride>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let (env, identity) = env_and_identity(ch.tx(), &api_key, id).await?;
    let updated = overrides::update(&mut ch, &env, &identity, override_id, &patch).await?;
    ch.commit().await?;
    Ok(Json(updated))
}

#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates/{override_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("override_id" = i64, Path)),
    responses((status = 204)))]
async fn delete_override(
    State(s): State<AppState>,
    permit: Permit<rules::UpdateFeatureState>,
    Path((api_key, id, override_id)): Path<(String, i64, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let (env, identity) = env_and_identity(ch.tx(), &api_key, id).await?;
    overrides::delete(&mut ch, &env, &identity, override_id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
