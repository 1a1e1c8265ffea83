//! `GET /api/v1/features/featurestates/?environment=&feature=&feature_segment=`: every live
//! feature state of an environment, as Flagsmith's `SimpleFeatureStateViewSet` lists them (its
//! dashboard reads a feature's default and segment override states this way): a page of
//! environment defaults (`feature_segment` and `identity` null), segment overrides' states
//! (`feature_segment` set) and identity overrides (`identity` set). `environment` is required,
//! as in Flagsmith; other query parameters are ignored, as its filter set ignores them.
//! `VIEW_ENVIRONMENT` in the environment. Flagsmith's viewset has no `DELETE` (nor a read by
//! id): `DELETE /api/v1/features/featurestates/{id}/` is a 405 there and here.

use axum::extract::State;
use axum::http::Uri;
use flagstone_access::{EnvironmentPermission, Need};
use flagstone_store::features::environment_states::{self, EnvironmentState, StateFilter};
use flagstone_store::{scopes, Page, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::flagsmith_paths::SegmentFeatureState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::pagination::{paginate, PageParams, Paginated};
use crate::AppState;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(list_feature_states))
}

/// Flagsmith's `filterset_fields` (`environment`, `feature`, `feature_segment`) and its pages.
#[derive(Deserialize, utoipa::IntoParams)]
struct StateQuery {
    /// Required.
    environment: Option<i64>,
    feature: Option<i64>,
    feature_segment: Option<i64>,
    page: Option<i64>,
    page_size: Option<i64>,
}

/// A state as Flagsmith's `WritableNestedFeatureStateSerializer` has it.
fn item(state: EnvironmentState) -> Value {
    let to_value = |v: Result<Value, serde_json::Error>| v.expect("a state serializes");
    match state {
        EnvironmentState::Default(s) => {
            let mut out = to_value(serde_json::to_value(s));
            out["feature_segment"] = Value::Null;
            out["identity"] = Value::Null;
            out
        }
        EnvironmentState::Segment(o) => {
            to_value(serde_json::to_value(SegmentFeatureState::from(o)))
        }
        EnvironmentState::Identity(o) => {
            let uuid = o.uuid.clone();
            let mut out = to_value(serde_json::to_value(o));
            out["uuid"] = json!(uuid);
            out["feature_segment"] = Value::Null;
            out["multivariate_feature_state_values"] = json!([]);
            out
        }
    }
}

#[utoipa::path(get, path = "/api/v1/features/featurestates", tag = "segment overrides",
    params(StateQuery), responses((status = 200, body = Object,
        description = "A page (`{count, next, previous, results}`) of feature states")))]
async fn list_feature_states(
    State(s): State<AppState>,
    caller: Caller,
    uri: Uri,
    Query(q): Query<StateQuery>,
) -> ApiResult<Json<Paginated<Value>>> {
    let Some(environment) = q.environment else {
        return Err(
            StoreError::invalid("environment", "'environment' GET parameter is required.").into(),
        );
    };
    let mut tx = s.store.read().await?;
    let at = scopes::environment(&mut tx, environment).await?;
    caller.require(Need::Environment(
        at,
        EnvironmentPermission::ViewEnvironment,
    ))?;
    let req = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .request();
    let filter = StateFilter {
        feature: q.feature,
        feature_segment: q.feature_segment,
    };
    let page = environment_states::list(&mut tx, environment, filter, req).await?;
    let page = Page {
        count: page.count,
        results: page.results.into_iter().map(item).collect(),
    };
    Ok(Json(paginate(&uri, req, page)))
}
