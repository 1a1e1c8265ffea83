//! Environment default feature states: one per feature and environment, created with the
//! feature or the environment. Clients read and change them; they are never created or deleted
//! on their own. An update touches only its environment.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::allocations::validate_feature_allocations;
use super::lock_feature;
use crate::values::{
    decode_allocations, decode_value, encode_allocations, encode_value, validate_flag_value,
    MvAllocation,
};
use crate::{
    clock::now_ms, environments::Environment, projects, sql, AuditEntry, Change, Page, PageRequest,
    Result, StoreError, Tx,
};

/// An environment's default state of a feature, in Flagsmith's shape.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureState {
    pub id: i64,
    /// Flagsmith's `featurestate_uuid`; clients address the state by it (`get-by-uuid`).
    pub uuid: String,
    pub feature: i64,
    pub environment: i64,
    pub enabled: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub feature_state_value: Value,
    /// Allocations that differ from the options' defaults; an unlisted option gets its default.
    pub multivariate_feature_state_values: Vec<MvAllocation>,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
    /// When an edge last served this feature in this environment or an SDK last reported
    /// evaluating it (to within an edge's usage flush interval); null if never. ISO 8601 like
    /// every timestamp of the API.
    #[serde(serialize_with = "crate::clock::iso::option::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_evaluated_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    id: i64,
    uuid: String,
    feature_id: i64,
    environment_id: i64,
    enabled: bool,
    value: Option<String>,
    mv_allocations: String,
    updated_at: i64,
    last_evaluated_at: Option<i64>,
}

impl TryFrom<StateRow> for FeatureState {
    type Error = StoreError;
    fn try_from(r: StateRow) -> Result<FeatureState> {
        Ok(FeatureState {
            id: r.id,
            uuid: r.uuid,
            feature: r.feature_id,
            environment: r.environment_id,
            enabled: r.enabled,
            feature_state_value: decode_value("feature_states.value", r.value.as_deref())?,
            multivariate_feature_state_values: decode_allocations(&r.mv_allocations)?,
            updated_at: r.updated_at,
            last_evaluated_at: r.last_evaluated_at,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FeatureStatePatch {
    pub enabled: Option<bool>,
    /// A string, number, boolean or null (clears the value), plain or as Flagsmith's
    /// `{"type": "unicode"|"int"|"bool", "string_value"|"integer_value"|"boolean_value": …}`.
    #[serde(default, deserialize_with = "crate::values::typed_value_present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub feature_state_value: Option<Value>,
    /// Replaces the state's allocations.
    pub multivariate_feature_state_values: Option<Vec<MvAllocation>>,
    /// Flagsmith clients repeat these in the body; they must match the addressed state.
    pub feature: Option<i64>,
    pub environment: Option<i64>,
    /// An ISO-8601 date-time in the future: the update is scheduled to take effect then
    /// instead of now (`docs/change-management.md`). Not part of the update itself.
    #[serde(default)]
    pub live_from: Option<String>,
    /// Read-only fields a client sends back with a `PUT` of the state it read (`id`, `uuid`,
    /// times): ignored, as Flagsmith ignores them.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub uuid: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub created_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub updated_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub last_evaluated_at: Option<serde::de::IgnoredAny>,
}

/// The state's columns, and when it was last evaluated (the hourly usage rows of its feature
/// and environment, read through their primary key).
const COLUMNS: &str = "id, uuid, feature_id, environment_id, enabled, value, mv_allocations, \
     updated_at, \
     (SELECT MAX(u.last_evaluated_at) FROM feature_evaluations u \
      WHERE u.environment_id = feature_states.environment_id \
      AND u.feature_id = feature_states.feature_id) AS last_evaluated_at";

/// The state `id` of this environment; `NotFound` if it belongs to another one.
pub async fn get(tx: &mut Tx, environment_id: i64, id: i64) -> Result<FeatureState> {
    let row: Option<StateRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM feature_states WHERE id = $1 AND environment_id = $2"
        ))
        .bind(id)
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("feature state"))?
        .try_into()
}

/// The environment's states by id, optionally of one feature only.
pub async fn list(
    tx: &mut Tx,
    environment_id: i64,
    feature: Option<i64>,
    page: PageRequest,
) -> Result<Page<FeatureState>> {
    list_at(tx, environment_id, feature, page.offset(), page.page_size).await
}

async fn list_at(
    tx: &mut Tx,
    environment_id: i64,
    feature: Option<i64>,
    offset: i64,
    limit: i64,
) -> Result<Page<FeatureState>> {
    let mut filter = crate::filter::Where::new()
        .bound("environment_id = ?")
        .bound_if(feature.is_some(), "feature_id = ?");
    let (limit_p, offset_p) = (filter.placeholder(), filter.placeholder());
    let filter = filter.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM feature_states WHERE {filter}"
            ))
            .bind(environment_id),
            feature
        )
        .fetch_one(c)
        .await?
    });
    let rows: Vec<StateRow> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM feature_states WHERE {filter} ORDER BY id \
                 LIMIT {limit_p} OFFSET {offset_p}"
            ))
            .bind(environment_id),
            feature
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await?
    });
    let results = rows
        .into_iter()
        .map(FeatureState::try_from)
        .collect::<Result<_>>()?;
    Ok(Page { count, results })
}

/// How many of the environment's states there are (of one feature only, if given), and those
/// at `offset..offset + limit` by id: one part of Flagsmith's list of every state of an
/// environment ([`super::environment_states`]).
pub(crate) async fn window(
    tx: &mut Tx,
    environment_id: i64,
    feature: Option<i64>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<FeatureState>)> {
    let page = list_at(tx, environment_id, feature, offset, limit).await?;
    Ok((page.count, page.results))
}

/// The environment's states of the features with ids in `first..=last`, by feature id (one
/// query for a page of features).
pub async fn in_range(
    tx: &mut Tx,
    environment_id: i64,
    first: i64,
    last: i64,
) -> Result<std::collections::HashMap<i64, FeatureState>> {
    let rows: Vec<StateRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM feature_states WHERE environment_id = $1 \
             AND feature_id >= $2 AND feature_id <= $3"
        ))
        .bind(environment_id)
        .bind(first)
        .bind(last)
        .fetch_all(c)
        .await?
    });
    rows.into_iter()
        .map(|r| FeatureState::try_from(r).map(|s| (s.feature, s)))
        .collect()
}

/// Changes an environment default: enabled, value and/or allocations.
pub async fn update(
    ch: &mut Change,
    env: &Environment,
    id: i64,
    patch: &FeatureStatePatch,
) -> Result<FeatureState> {
    let before = get(ch.tx(), env.id, id).await?;
    crate::history::track(ch, env.id, before.feature).await?;
    if patch.feature.is_some_and(|f| f != before.feature) {
        return Err(StoreError::invalid(
            "feature",
            "does not match the feature state",
        ));
    }
    if patch.environment.is_some_and(|e| e != env.id) {
        return Err(StoreError::invalid(
            "environment",
            "does not match the environment in the path",
        ));
    }
    let limits = projects::limits(ch.tx(), env.project).await?;
    let value = patch
        .feature_state_value
        .clone()
        .unwrap_or_else(|| before.feature_state_value.clone());
    validate_flag_value("feature_state_value", &value, &limits)?;
    let allocs = match &patch.multivariate_feature_state_values {
        Some(a) => {
            // Lock the feature so its options cannot change between this check and commit.
            lock_feature(ch.tx(), before.feature).await?;
            validate_feature_allocations(
                ch.tx(),
                "multivariate_feature_state_values",
                before.feature,
                a,
            )
            .await?;
            a.clone()
        }
        None => before.multivariate_feature_state_values.clone(),
    };
    let row: StateRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE feature_states SET enabled = $2, value = $3, mv_allocations = $4, \
                 updated_at = $5 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(patch.enabled.unwrap_or(before.enabled))
        .bind(encode_value(&value))
        .bind(encode_allocations(&allocs))
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    let after = FeatureState::try_from(row)?;
    let feature_name: String = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT name FROM features WHERE id = $1")
            .bind(after.feature)
            .fetch_one(c)
            .await?
    });
    ch.touch_environment(env.id);
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "updated",
        resource_type: "feature_state",
        resource_id: id.to_string(),
        log: format!(
            "State of feature '{feature_name}' in environment '{}' updated",
            env.name
        ),
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&after).ok(),
    });
    Ok(after)
}
