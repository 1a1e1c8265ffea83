//! Flagsmith's project-wide paths for segment overrides, as the Terraform provider's client
//! uses them: `/api/v1/features/feature-segments/` (create, read, list by environment and
//! feature, delete) and `/api/v1/features/featurestates/` (create the state of a feature
//! segment, `PUT`/`PATCH` a state, read one by uuid). Flagsmith keeps a feature segment and its feature state as
//! two objects; in Flagstone a segment override is both, with one id: the feature segment's id
//! is the override's id, and so is its state's. A feature segment is created serving what the
//! environment default serves (enabled, value and allocations copied), so nothing changes for
//! anyone until its state is written. Every change needs `MANAGE_SEGMENT_OVERRIDES` in the
//! override's environment (`UPDATE_FEATURE_STATE` for a default state), reads
//! `VIEW_ENVIRONMENT`.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use flagstone_access::{EnvironmentPermission, EnvironmentRef, Need};
use flagstone_store::features::states::{self as states, FeatureStatePatch};
use flagstone_store::scopes::StateByUuid;
use flagstone_store::segments::overrides::{
    self, FeatureSegment, NewSegmentOverride, OverrideFilter, SegmentOverride, SegmentOverridePatch,
};
use flagstone_store::values::MvAllocation;
use flagstone_store::{environments, scopes, PageRequest, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_feature_segments, create_feature_segment))
        .routes(routes!(get_feature_segment, delete_feature_segment))
        .routes(routes!(create_feature_state))
        .routes(routes!(feature_state_by_uuid))
        .routes(routes!(put_feature_state, patch_feature_state))
}

/// `FeatureSegmentCreateSerializer`'s fields (`priority` is Flagstone's addition: Flagsmith
/// ignores it here and sets it with `update-priorities/`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewFeatureSegment {
    feature: i64,
    segment: i64,
    environment: i64,
    #[serde(default)]
    priority: Option<i64>,
}

/// The environment of override `id` (404 when there is none) and the caller's `need` there.
async fn override_env(
    s: &AppState,
    caller: &Caller,
    id: i64,
    need: EnvironmentPermission,
) -> ApiResult<(EnvironmentRef, String)> {
    let mut tx = s.store.read().await?;
    let at = scopes::segment_override_environments(&mut tx, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::not_found("feature segment"))?;
    caller.require(Need::Environment(at, need))?;
    let key = environments::get(&mut tx, at.environment).await?.api_key;
    Ok((at, key))
}

/// The environment `id` (named in a body or query) and the caller's `need` there.
async fn env_by_id(
    s: &AppState,
    caller: &Caller,
    id: i64,
    need: EnvironmentPermission,
) -> ApiResult<String> {
    let mut tx = s.store.read().await?;
    let at = scopes::environment(&mut tx, id).await?;
    caller.require(Need::Environment(at, need))?;
    Ok(environments::get(&mut tx, id).await?.api_key)
}

#[utoipa::path(post, path = "/api/v1/features/feature-segments", tag = "segment overrides",
    request_body = NewFeatureSegment, responses((status = 201, body = FeatureSegment)))]
async fn create_feature_segment(
    State(s): State<AppState>,
    caller: Caller,
    Json(new): Json<NewFeatureSegment>,
) -> ApiResult<(StatusCode, Json<FeatureSegment>)> {
    let key = env_by_id(
        &s,
        &caller,
        new.environment,
        EnvironmentPermission::ManageSegmentOverrides,
    )
    .await?;
    let mut ch = s.store.change(caller.actor()).await?;
    let default = states::list(
        ch.tx(),
        new.environment,
        Some(new.feature),
        PageRequest::new(1, 1),
    )
    .await?
    .results
    .pop()
    .ok_or(StoreError::not_found("feature"))?;
    let o = NewSegmentOverride {
        segment: new.segment,
        enabled: default.enabled,
        feature_state_value: default.feature_state_value,
        priority: new.priority,
        multivariate_feature_state_values: default.multivariate_feature_state_values,
        feature: None,
        environment: None,
    };
    let created = overrides::create(&mut ch, &key, new.feature, &o).await?;
    let out = overrides::feature_segment(ch.tx(), &created).await?;
    ch.commit().await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// `FeatureSegmentQuerySerializer`: both are required.
#[derive(Deserialize, utoipa::IntoParams)]
struct FeatureSegmentQuery {
    environment: i64,
    feature: i64,
    page: Option<i64>,
    page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/features/feature-segments", tag = "segment overrides",
    params(FeatureSegmentQuery), responses((status = 200, body = Paginated<FeatureSegment>)))]
async fn list_feature_segments(
    State(s): State<AppState>,
    caller: Caller,
    uri: Uri,
    Query(q): Query<FeatureSegmentQuery>,
) -> ApiResult<Json<Paginated<FeatureSegment>>> {
    let key = env_by_id(
        &s,
        &caller,
        q.environment,
        EnvironmentPermission::ViewEnvironment,
    )
    .await?;
    let req = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .request();
    let mut tx = s.store.read().await?;
    let filter = OverrideFilter {
        feature: Some(q.feature),
        segment: None,
    };
    let page = overrides::list(&mut tx, &key, filter, req).await?;
    let mut results = Vec::with_capacity(page.results.len());
    for o in &page.results {
        results.push(overrides::feature_segment(&mut tx, o).await?);
    }
    let page = flagstone_store::Page {
        count: page.count,
        results,
    };
    Ok(Json(paginate(&uri, req, page)))
}

#[utoipa::path(get, path = "/api/v1/features/feature-segments/{id}", tag = "segment overrides",
    params(("id" = i64, Path)), responses((status = 200, body = FeatureSegment)))]
async fn get_feature_segment(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<FeatureSegment>> {
    let (_, key) = override_env(&s, &caller, id, EnvironmentPermission::ViewEnvironment).await?;
    let mut tx = s.store.read().await?;
    let o = overrides::get(&mut tx, &key, id).await?;
    Ok(Json(overrides::feature_segment(&mut tx, &o).await?))
}

/// Deletes the feature segment, and with it its state (the override).
#[utoipa::path(delete, path = "/api/v1/features/feature-segments/{id}", tag = "segment overrides",
    params(("id" = i64, Path)), responses((status = 204)))]
async fn delete_feature_segment(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let (_, key) = override_env(
        &s,
        &caller,
        id,
        EnvironmentPermission::ManageSegmentOverrides,
    )
    .await?;
    let mut ch = s.store.change(caller.actor()).await?;
    overrides::delete(&mut ch, &key, id).await?;
    ch.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A feature state as Flagsmith's `/features/featurestates/` takes it
/// (`WritableNestedFeatureStateSerializer`): the state of a feature segment when
/// `feature_segment` is set, else the environment default state. Read-only fields sent back
/// after a read are ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FeatureStateBody {
    #[serde(default)]
    feature: Option<i64>,
    #[serde(default)]
    environment: Option<i64>,
    #[serde(default)]
    feature_segment: Option<i64>,
    /// Identity overrides have their own path (`…/identities/{id}/featurestates/`).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    identity: Option<Value>,
    #[serde(default)]
    enabled: Option<bool>,
    /// A plain value or Flagsmith's `{"type": …, "string_value": …}` object.
    #[serde(
        default,
        deserialize_with = "flagstone_store::values::typed_value_present"
    )]
    #[schema(value_type = Object)]
    feature_state_value: Option<Value>,
    #[serde(default)]
    multivariate_feature_state_values: Option<Vec<MvAllocation>>,
    // Read-only fields: accepted so a state read can be sent back, never used.
    #[serde(default)]
    #[schema(ignore)]
    #[allow(dead_code)]
    id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    #[allow(dead_code)]
    uuid: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    #[allow(dead_code)]
    created_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    #[allow(dead_code)]
    updated_at: Option<serde::de::IgnoredAny>,
}

/// A segment override answered as Flagsmith's feature state of a feature segment.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SegmentFeatureState {
    #[serde(flatten)]
    state: SegmentOverride,
    feature_segment: i64,
    #[schema(value_type = Option<i64>)]
    identity: Option<()>,
}

impl From<SegmentOverride> for SegmentFeatureState {
    fn from(state: SegmentOverride) -> Self {
        SegmentFeatureState {
            feature_segment: state.id,
            state,
            identity: None,
        }
    }
}

impl FeatureStateBody {
    fn refuse_identity(&self) -> Result<(), StoreError> {
        match &self.identity {
            None | Some(Value::Null) => Ok(()),
            Some(_) => Err(StoreError::invalid(
                "identity",
                "identity overrides are written under \
                 /api/v1/environments/{api_key}/identities/{id}/featurestates/",
            )),
        }
    }

    fn override_patch(&self) -> SegmentOverridePatch {
        SegmentOverridePatch {
            enabled: self.enabled,
            feature_state_value: self
                .feature_state_value
                .clone()
                .map(|v| (!v.is_null()).then_some(v)),
            multivariate_feature_state_values: self.multivariate_feature_state_values.clone(),
            priority: None,
        }
    }

    /// Changes the override `id` (the feature segment's state); its feature and environment,
    /// if sent, must be the override's.
    async fn write_override(
        &self,
        s: &AppState,
        caller: &Caller,
        id: i64,
    ) -> ApiResult<SegmentOverride> {
        let (at, key) =
            override_env(s, caller, id, EnvironmentPermission::ManageSegmentOverrides).await?;
        if self.environment.is_some_and(|e| e != at.environment) {
            return Err(StoreError::invalid("environment", "is not the feature segment's").into());
        }
        let mut ch = s.store.change(caller.actor()).await?;
        let before = overrides::get(ch.tx(), &key, id).await?;
        if self.feature.is_some_and(|f| f != before.feature) {
            return Err(StoreError::invalid("feature", "is not the feature segment's").into());
        }
        let after = overrides::update(&mut ch, &key, id, &self.override_patch()).await?;
        ch.commit().await?;
        Ok(after)
    }
}

/// Creates the state of a feature segment (the Terraform client's second step of a segment
/// override, after `POST /features/feature-segments/`). Flagstone's environment default
/// states exist with their features and identity overrides have their own path, so
/// `feature_segment` is required.
#[utoipa::path(post, path = "/api/v1/features/featurestates", tag = "segment overrides",
    request_body = FeatureStateBody, responses((status = 201, body = SegmentFeatureState)))]
async fn create_feature_state(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<FeatureStateBody>,
) -> ApiResult<(StatusCode, Json<SegmentFeatureState>)> {
    body.refuse_identity()?;
    let Some(fs) = body.feature_segment else {
        return Err(StoreError::invalid(
            "feature_segment",
            "is required: environment default states exist with their features \
             (change them with PUT), identity overrides are created under the identity",
        )
        .into());
    };
    let written = body.write_override(&s, &caller, fs).await?;
    Ok((StatusCode::CREATED, Json(written.into())))
}

/// A state changed by id: the feature segment's state when `feature_segment` is set (it must
/// be this id, as one override is both), else the default state of `environment` (required).
async fn write_state(
    s: &AppState,
    caller: &Caller,
    id: i64,
    body: FeatureStateBody,
) -> ApiResult<Value> {
    body.refuse_identity()?;
    if let Some(fs) = body.feature_segment {
        if fs != id {
            return Err(StoreError::invalid(
                "feature_segment",
                "a feature segment's state has the feature segment's id",
            )
            .into());
        }
        let written = body.write_override(s, caller, id).await?;
        return Ok(
            serde_json::to_value(SegmentFeatureState::from(written)).expect("a state serializes")
        );
    }
    let Some(env) = body.environment else {
        return Err(StoreError::invalid(
            "environment",
            "is required to change an environment's default state",
        )
        .into());
    };
    let key = env_by_id(s, caller, env, EnvironmentPermission::UpdateFeatureState).await?;
    let patch = FeatureStatePatch {
        enabled: body.enabled,
        feature_state_value: body.feature_state_value,
        multivariate_feature_state_values: body.multivariate_feature_state_values,
        feature: body.feature,
        environment: body.environment,
        ..Default::default()
    };
    let mut ch = s.store.change(caller.actor()).await?;
    let env = environments::get_by_key(ch.tx(), &key).await?;
    let state = states::update(&mut ch, &env, id, &patch).await?;
    ch.commit().await?;
    let mut out = serde_json::to_value(state).expect("a state serializes");
    out["feature_segment"] = Value::Null;
    out["identity"] = Value::Null;
    Ok(out)
}

#[utoipa::path(put, path = "/api/v1/features/featurestates/{id}", tag = "segment overrides",
    params(("id" = i64, Path)), request_body = FeatureStateBody,
    responses((status = 200, body = Object)))]
async fn put_feature_state(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<FeatureStateBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(write_state(&s, &caller, id, body).await?))
}

#[utoipa::path(patch, path = "/api/v1/features/featurestates/{id}", tag = "segment overrides",
    params(("id" = i64, Path)), request_body = FeatureStateBody,
    responses((status = 200, body = Object)))]
async fn patch_feature_state(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<FeatureStateBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(write_state(&s, &caller, id, body).await?))
}

/// A default state or a feature segment's state by its uuid (the Terraform client's
/// `GetFeatureState`); `VIEW_ENVIRONMENT` in its environment.
#[utoipa::path(get, path = "/api/v1/features/featurestates/get-by-uuid/{uuid}",
    tag = "segment overrides", params(("uuid" = String, Path)),
    responses((status = 200, body = Object)))]
async fn feature_state_by_uuid(
    State(s): State<AppState>,
    caller: Caller,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut tx = s.store.read().await?;
    let found = scopes::feature_state_by_uuid(&mut tx, &uuid).await?;
    let (StateByUuid::Default { environment, .. }
    | StateByUuid::SegmentOverride { environment, .. }) = found;
    let at = scopes::environment(&mut tx, environment).await?;
    caller.require(Need::Environment(
        at,
        EnvironmentPermission::ViewEnvironment,
    ))?;
    let out = match found {
        StateByUuid::Default { id, environment } => {
            let state = states::get(&mut tx, environment, id).await?;
            let mut out = serde_json::to_value(state).expect("a state serializes");
            out["feature_segment"] = Value::Null;
            out["identity"] = Value::Null;
            out
        }
        StateByUuid::SegmentOverride { id, environment } => {
            let key = environments::get(&mut tx, environment).await?.api_key;
            let o = overrides::get(&mut tx, &key, id).await?;
            serde_json::to_value(SegmentFeatureState::from(o)).expect("a state serializes")
        }
    };
    Ok(Json(out))
}
