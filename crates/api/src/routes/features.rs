//! `/api/v1/projects/{id}/features/` and their multivariate options (`…/mv-options/`); the
//! environment feature states are in [`states`]. Reading needs the project's `VIEW_PROJECT`;
//! creating and changing features and their options `CREATE_FEATURE`; deleting a feature
//! `DELETE_FEATURE` (Flagsmith's rules).

mod owners;
mod states;
mod usage;
mod versions;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_access::{EnvironmentPermission, Need};
use flagstone_store::evaluations::{self, StaleReason};
use flagstone_store::features::{
    self, options, Feature, FeaturePatch, FeatureState, IdFilter, MvOption, MvOptionPatch,
    NewFeature, NewMvOption,
};
use flagstone_store::{environments, StoreError};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let r = r
        .routes(routes!(list_features, create_feature))
        .routes(routes!(
            get_feature,
            put_feature,
            update_feature,
            delete_feature
        ))
        .routes(routes!(list_options, create_option))
        .routes(routes!(
            get_option,
            put_option,
            update_option,
            delete_option
        ));
    owners::routes(usage::routes(versions::routes(states::routes(r))))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct FeatureFilter {
    /// Only features whose name contains this text (ignoring case).
    search: Option<String>,
    /// Comma-separated tag ids: only features carrying all of them (as Flagsmith filters).
    tags: Option<String>,
    /// `true`: only archived features; `false`: only live ones; absent: both.
    is_archived: Option<bool>,
    /// `true`: only stale features (served to nobody, or one fixed value everywhere, for the
    /// project's number of days: docs/flag-usage.md); `false`: only the others. Each listed
    /// feature then says why it is stale (`stale`).
    stale: Option<bool>,
    /// An environment id of the project: each feature then carries that environment's state as
    /// `environment_feature_state` (as Flagsmith's dashboard reads it).
    environment: Option<i64>,
    page: Option<i64>,
    page_size: Option<i64>,
}

/// A listed feature; with `?environment=`, its state in that environment.
#[derive(Serialize, utoipa::ToSchema)]
struct FeatureListItem {
    #[serde(flatten)]
    feature: Feature,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment_feature_state: Option<FeatureState>,
    /// With `?stale=`: why the feature is stale, null if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<Option<StaleReason>>,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features", tag = "features",
    params(("project" = i64, Path), FeatureFilter),
    responses((status = 200, body = Paginated<FeatureListItem>)))]
async fn list_features(
    State(s): State<AppState>,
    permit: Permit<rules::ViewProject>,
    uri: Uri,
    Path(project): Path<i64>,
    Query(f): Query<FeatureFilter>,
) -> ApiResult<Json<Paginated<FeatureListItem>>> {
    let req = PageParams {
        page: f.page,
        page_size: f.page_size,
    }
    .request();
    let filter = features::FeatureFilter {
        search: f.search,
        tags: tag_ids(f.tags.as_deref())?,
        is_archived: f.is_archived,
        ids: IdFilter::Any,
    };
    let mut filter = filter;
    let mut tx = s.store.read().await?;
    let stale = match f.stale {
        Some(wanted) => {
            let now = s.store.clock().now_ms();
            let stale = evaluations::stale(&mut tx, project, s.staleness, now).await?;
            let ids: Vec<i64> = stale.keys().copied().collect();
            filter.ids = if wanted {
                IdFilter::Only(ids)
            } else {
                IdFilter::Except(ids)
            };
            Some(stale)
        }
        None => None,
    };
    let page = features::list(&mut tx, project, &filter, req).await?;
    let mut states = match (f.environment, page.results.first(), page.results.last()) {
        (Some(env_id), first, last) => {
            // The states are the environment's: reading them needs VIEW_ENVIRONMENT there.
            let at = flagstone_store::scopes::environment(&mut tx, env_id).await?;
            permit.caller.require(Need::Environment(
                at,
                EnvironmentPermission::ViewEnvironment,
            ))?;
            let env = environments::get(&mut tx, env_id).await?;
            if env.project != project {
                return Err(StoreError::invalid(
                    "environment",
                    "is not an environment of this project",
                )
                .into());
            }
            match (first, last) {
                (Some(a), Some(b)) => {
                    features::states::in_range(&mut tx, env.id, a.id, b.id).await?
                }
                _ => Default::default(),
            }
        }
        (None, ..) => Default::default(),
    };
    let page = flagstone_store::Page {
        count: page.count,
        results: page
            .results
            .into_iter()
            .map(|feature| FeatureListItem {
                environment_feature_state: states.remove(&feature.id),
                stale: stale.as_ref().map(|s| s.get(&feature.id).copied()),
                feature,
            })
            .collect(),
    };
    Ok(Json(paginate(&uri, req, page)))
}

/// `?tags=1,2`: tag ids, as Flagsmith's `FeatureQuerySerializer` takes them.
fn tag_ids(raw: Option<&str>) -> Result<Vec<i64>, StoreError> {
    raw.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| StoreError::invalid("tags", "tag ids must be integers"))
        })
        .collect()
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/features", tag = "features",
    params(("project" = i64, Path)), request_body = NewFeature,
    responses((status = 201, body = Feature)))]
async fn create_feature(
    State(s): State<AppState>,
    permit: Permit<rules::CreateFeature>,
    Path(project): Path<i64>,
    Json(new): Json<NewFeature>,
) -> ApiResult<(StatusCode, Json<Feature>)> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let mut feature = features::create(&mut ch, project, &new).await?;
    // Flagsmith's owners on create: those named, else the person creating it (not a key).
    let named = new.owners.clone().unwrap_or_default();
    let people = if named.is_empty() {
        permit.caller.user_id().into_iter().collect()
    } else {
        owners::check_may_own(ch.tx(), permit.at, &named).await?;
        named
    };
    if !people.is_empty() {
        feature = features::owners::add(
            &mut ch,
            project,
            feature.id,
            features::owners::OwnerKind::People,
            &people,
        )
        .await?;
    }
    if let Some(groups) = new.group_owners.as_deref().filter(|g| !g.is_empty()) {
        feature = features::owners::add(
            &mut ch,
            project,
            feature.id,
            features::owners::OwnerKind::Groups,
            groups,
        )
        .await?;
    }
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(feature)))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{feature}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path)),
    responses((status = 200, body = Feature)))]
async fn get_feature(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
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
    permit: Permit<rules::CreateFeature>,
    Path((project, feature)): Path<(i64, i64)>,
    Json(patch): Json<FeaturePatch>,
) -> ApiResult<Json<Feature>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let feature = features::update(&mut ch, project, feature, &patch).await?;
    ch.commit().await?;
    Ok(Json(feature))
}

/// Flagsmith's `PUT` (the Terraform provider's update: the feature it read, edited): the name
/// is required; other absent fields keep their value, as Django REST framework's update keeps
/// them; read-only fields are ignored.
#[utoipa::path(put, path = "/api/v1/projects/{project}/features/{feature}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path)), request_body = FeaturePatch,
    responses((status = 200, body = Feature)))]
async fn put_feature(
    s: State<AppState>,
    permit: Permit<rules::CreateFeature>,
    path: Path<(i64, i64)>,
    Json(patch): Json<FeaturePatch>,
) -> ApiResult<Json<Feature>> {
    if patch.name.is_none() {
        return Err(StoreError::invalid("name", "is required").into());
    }
    update_feature(s, permit, path, Json(patch)).await
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/features/{feature}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path)), responses((status = 204)))]
async fn delete_feature(
    State(s): State<AppState>,
    permit: Permit<rules::DeleteFeature>,
    Path((project, feature)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    features::delete(&mut ch, project, feature).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{feature}/mv-options",
    tag = "features", params(("project" = i64, Path), ("feature" = i64, Path), PageParams),
    responses((status = 200, body = Paginated<MvOption>)))]
async fn list_options(
    State(s): State<AppState>,
    _: Permit<rules::ViewProject>,
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
    permit: Permit<rules::CreateFeature>,
    Path((project, feature)): Path<(i64, i64)>,
    Json(new): Json<NewMvOption>,
) -> ApiResult<(StatusCode, Json<MvOption>)> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
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
    _: Permit<rules::ViewProject>,
    Path((project, feature, option)): Path<(i64, i64, i64)>,
) -> ApiResult<Json<MvOption>> {
    let mut tx = s.store.read().await?;
    Ok(Json(options::get(&mut tx, project, feature, option).await?))
}

/// Replaces every field of the option (Flagsmith's `PUT`, what the Terraform provider sends).
#[utoipa::path(put, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{option}",
    tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("option" = i64, Path)),
    request_body = NewMvOption, responses((status = 200, body = MvOption)))]
async fn put_option(
    State(s): State<AppState>,
    permit: Permit<rules::CreateFeature>,
    Path((project, feature, option)): Path<(i64, i64, i64)>,
    Json(body): Json<NewMvOption>,
) -> ApiResult<Json<MvOption>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    let patch = MvOptionPatch::from(&body);
    let option = options::update(&mut ch, project, feature, option, &patch).await?;
    ch.commit().await?;
    Ok(Json(option))
}

#[utoipa::path(patch, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{option}",
    tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("option" = i64, Path)),
    request_body = MvOptionPatch, responses((status = 200, body = MvOption)))]
async fn update_option(
    State(s): State<AppState>,
    permit: Permit<rules::CreateFeature>,
    Path((project, feature, option)): Path<(i64, i64, i64)>,
    Json(patch): Json<MvOptionPatch>,
) -> ApiResult<Json<MvOption>> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
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
    permit: Permit<rules::CreateFeature>,
    Path((project, feature, option)): Path<(i64, i64, i64)>,
) -> ApiResult<StatusCode> {
    let mut ch = s.store.change(permit.caller.actor()).await?;
    options::delete(&mut ch, project, feature, option).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
