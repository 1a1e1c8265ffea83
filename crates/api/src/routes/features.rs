//! `/api/v1/projects/{id}/features/` and their multivariate options (`…/mv-options/`); the
//! environment feature states are in [`states`].

mod states;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Extension;
use flagstone_store::features::{
    self, options, Feature, FeaturePatch, MvOption, MvOptionPatch, NewFeature, NewMvOption,
};
use flagstone_store::Actor;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let r = r
        .routes(routes!(list_features, create_feature))
        .routes(routes!(get_feature, update_feature, delete_feature))
        .routes(routes!(list_options, create_option))
        .routes(routes!(get_option, update_option, delete_option));
    states::routes(r)
}

#[derive(Deserialize, utoipa::IntoParams)]
struct FeatureFilter {
    /// Only features whose name contains this text (ignoring case).
    search: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features", tag = "features",
    params(("project" = i64, Path), FeatureFilter),
    responses((status = 200, body = Paginated<Feature>)))]
async fn list_features(
    State(s): State<AppState>,
    uri: Uri,
    Path(project): Path<i64>,
    Query(f): Query<FeatureFilter>,
) -> ApiResult<Json<Paginated<Feature>>> {
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let mut tx = s.store.read().await?;
    let page = features::list(&mut tx, project, f.search.as_deref(), req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/features", tag = "features",
    params(("project" = i64, Path)), request_body = NewFeature,
    responses((status = 201, body = Feature)))]
async fn create_feature(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(project): Path<i64>,
    Json(new): Json<NewFeature>,
) -> ApiResult<(StatusCode, Json<Feature>)> {
    let mut ch = s.store.change(&actor).await?;
    let feature = features::create(&mut ch, project, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(feature)))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{feature}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path)),
    responses((status = 200, body = Feature)))]
async fn get_feature(
    State(s): State<AppState>,
    Path((project, feature)): Path<(i64, i64)>,
) -> ApiResult<Json<Feature>> {
    let mut tx = s.store.read().await?;
    Ok(Json(features::get(&mut tx, project, feature).await?))
}

#[utoipa::path(patch, path = "/api/v1/projects/{project}/features/{feature}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path)), request_body = FeaturePatch,
    responses((status = 200, body = Feature)))]
async fn update_feature(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((project, feature)): Path<(i64, i64)>,
    Json(patch): Json<FeaturePatch>,
) -> ApiResult<Json<Feature>> {
    let mut ch = s.store.change(&actor).await?;
    let feature = features::update(&mut ch, project, feature, &patch).await?;
    ch.commit().await?;
    Ok(Json(feature))
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/features/{feature}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path)), responses((status = 204)))]
async fn delete_feature(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((project, feature)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(&actor).await?;
    features::delete(&mut ch, project, feature).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{feature}/mv-options",
    tag = "features", params(("project" = i64, Path), ("feature" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<MvOption>)))]
async fn list_options(
    State(s): State<AppState>,
    uri: Uri,
    Path((project, feature)): Path<(i64, i64)>,
    Query(p): Query<PageParams>,
) -> ApiResult<Json<Paginated<MvOption>>> {
    let req = p.request();
    let mut tx = s.store.read().await?;
    let page = options::list(&mut tx, project, feature, req).await?;
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/features/{feature}/mv-options",
    tag = "features", params(("project" = i64, Path), ("feature" = i64, Path)),
    request_body = NewMvOption, responses((status = 201, body = MvOption)))]
async fn create_option(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((project, feature)): Path<(i64, i64)>,
    Json(new): Json<NewMvOption>,
) -> ApiResult<(StatusCode, Json<MvOption>)> {
    let mut ch = s.store.change(&actor).await?;
    let option = options::create(&mut ch, project, feature, &new).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(option)))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{option}",
    tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("option" = i64, Path)),
    responses((status = 200, body = MvOption)))]
async fn get_option(
    State(s): State<AppState>,
    Path((project, feature, option)): Path<(i64, i64, i64)>,
) -> ApiResult<Json<MvOption>> {
    let mut tx = s.store.read().await?;
    Ok(Json(options::get(&mut tx, project, feature, option).await?))
}

#[utoipa::path(patch, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{option}",
    tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("option" = i64, Path)),
    request_body = MvOptionPatch, responses((status = 200, body = MvOption)))]
async fn update_option(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((project, feature, option)): Path<(i64, i64, i64)>,
    Json(patch): Json<MvOptionPatch>,
) -> ApiResult<Json<MvOption>> {
    let mut ch = s.store.change(&actor).await?;
    let option = options::update(&mut ch, project, feature, option, &patch).await?;
    ch.commit().await?;
    Ok(Json(option))
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{option}",
    tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("option" = i64, Path)),
    responses((status = 204)))]
async fn delete_option(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((project, feature, option)): Path<(i64, i64, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(&actor).await?;
    options::delete(&mut ch, project, feature, option).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
