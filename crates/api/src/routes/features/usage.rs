//! `GET /api/v1/projects/{id}/features/{feature}/evaluation-data/?environment_id=&period=`:
//! a feature's evaluations per day in one environment (Flagsmith's path, parameters and
//! `{day, count, labels}` items; Flagstone adds the two sources `reported` and `served`). The
//! counts come from the edges' usage flushes (docs/flag-usage.md). Reading needs the project's
//! `VIEW_PROJECT` and the environment's `VIEW_ENVIRONMENT`.

use axum::extract::State;
use flagstone_access::{EnvironmentPermission, Need};
use flagstone_store::evaluations::{self, EvaluationDay, DAY_MS};
use flagstone_store::{environments, features, StoreError};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::permit::{rules, Permit};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::AppState;

/// Days `period` may ask for, at most.
pub const MAX_PERIOD_DAYS: i64 = 366;

pub(super) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(evaluation_data))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct EvaluationQuery {
    /// The environment (id) whose evaluations to read; required.
    environment_id: Option<i64>,
    /// Days back from today, 1 to 366 (default 30).
    period: Option<i64>,
}

#[utoipa::path(get,
    path = "/api/v1/projects/{project}/features/{feature}/evaluation-data", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), EvaluationQuery),
    responses((status = 200, body = Vec<EvaluationDay>)))]
async fn evaluation_data(
    State(s): State<AppState>,
    permit: Permit<rules::ViewProject>,
    Path((project, feature)): Path<(i64, i64)>,
    Query(q): Query<EvaluationQuery>,
) -> ApiResult<Json<Vec<EvaluationDay>>> {
    let env_id = q
        .environment_id
        .ok_or_else(|| StoreError::invalid("environment_id", "This field is required."))?;
    let period = q.period.unwrap_or(30);
    if !(1..=MAX_PERIOD_DAYS).contains(&period) {
        return Err(StoreError::invalid(
            "period",
            format!("must be a number of days from 1 to {MAX_PERIOD_DAYS}"),
        )
        .into());
    }
    let mut tx = s.store.read().await?;
    features::get(&mut tx, project, feature).await?;
    let at = flagstone_store::scopes::environment(&mut tx, env_id).await?;
    permit.caller.require(Need::Environment(
        at,
        EnvironmentPermission::ViewEnvironment,
    ))?;
    let env = environments::get(&mut tx, env_id).await?;
    if env.project != project {
        return Err(
            StoreError::invalid("environment_id", "is not an environment of this project").into(),
        );
    }
    // Today and the `period - 1` days before it, whole UTC days.
    let now = s.store.clock().now_ms();
    let since = (now.div_euclid(DAY_MS) - (period - 1)) * DAY_MS;
    Ok(Json(
        evaluations::daily(&mut tx, env.id, feature, since).await?,
    ))
}
