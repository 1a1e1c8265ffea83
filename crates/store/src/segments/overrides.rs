//! Segment overrides: for one feature in one environment, the state identities in a segment
//! get instead of the environment default. When several of a feature's overrides match, the
//! lowest `priority` wins; priorities of a feature in an environment are kept dense (0, 1, 2…)
//! by [`super::priorities`]. Every change touches only the override's environment.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::override_body::{FeatureSegment, FeatureSegmentRef, SegmentOverrideBody};
use super::priorities::renumber;
pub use super::priorities::{reorder, PriorityUpdate};
use crate::values::{self, MvAllocation};
use crate::{
    clock::now_ms, environments, features, projects, sql, AuditEntry, Change, LimitName, Limits,
    Page, PageRequest, Result, StoreError, Tx,
};

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentOverride {
    pub id: i64,
    /// Flagsmith's `featurestate_uuid`; clients address the state by it (`get-by-uuid`).
    pub uuid: String,
    pub feature: i64,
    pub segment: i64,
    pub environment: i64,
    /// Lower wins when several of a feature's overrides match.
    pub priority: i64,
    pub enabled: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub feature_state_value: Value,
    pub multivariate_feature_state_values: Vec<MvAllocation>,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct OverrideRow {
    id: i64,
    uuid: String,
    feature_id: i64,
    segment_id: i64,
    environment_id: i64,
    priority: i64,
    enabled: bool,
    value: Option<String>,
    mv_allocations: String,
    updated_at: i64,
}

impl TryFrom<OverrideRow> for SegmentOverride {
    type Error = StoreError;
    fn try_from(r: OverrideRow) -> Result<SegmentOverride> {
        Ok(SegmentOverride {
            feature_state_value: values::decode_value(
                "segment_overrides.value",
                r.value.as_deref(),
            )?,
            multivariate_feature_state_values: values::decode_allocations(&r.mv_allocations)?,
            id: r.id,
            uuid: r.uuid,
            feature: r.feature_id,
            segment: r.segment_id,
            environment: r.environment_id,
            priority: r.priority,
            enabled: r.enabled,
            updated_at: r.updated_at,
        })
    }
}

pub(super) const COLUMNS: &str =
    "id, uuid, feature_id, segment_id, environment_id, priority, enabled, value, \
    mv_allocations, updated_at";

/// A new override, read from a [`SegmentOverrideBody`] (`segment` at the top level, or
/// Flagsmith's `feature_segment` object).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "SegmentOverrideBody")]
pub struct NewSegmentOverride {
    pub segment: i64,
    pub enabled: bool,
    pub feature_state_value: Value,
    /// Position among the feature's overrides in this environment; after the last when absent.
    pub priority: Option<i64>,
    pub multivariate_feature_state_values: Vec<MvAllocation>,
    /// Repeated by Flagsmith clients; must match the feature and environment addressed.
    pub feature: Option<i64>,
    pub environment: Option<i64>,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for NewSegmentOverride {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <SegmentOverrideBody as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for NewSegmentOverride {
    fn name() -> std::borrow::Cow<'static, str> {
        "SegmentOverrideBody".into()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SegmentOverridePatch {
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::values::typed_value_double")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub feature_state_value: Option<Option<Value>>,
    pub multivariate_feature_state_values: Option<Vec<MvAllocation>>,
    pub priority: Option<i64>,
}

/// Which overrides of an environment to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverrideFilter {
    pub feature: Option<i64>,
    pub segment: Option<i64>,
}

/// The feature's name, if it belongs to the project.
async fn feature_name(tx: &mut Tx, project_id: i64, feature_id: i64) -> Result<Option<String>> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar("SELECT name FROM features WHERE id = $1 AND project_id = $2")
            .bind(feature_id)
            .bind(project_id)
            .fetch_optional(c)
            .await?
    }))
}

async fn segment_name(tx: &mut Tx, project_id: i64, segment_id: i64) -> Result<Option<String>> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar("SELECT name FROM segments WHERE id = $1 AND project_id = $2")
            .bind(segment_id)
            .bind(project_id)
            .fetch_optional(c)
            .await?
    }))
}

/// The override as Flagsmith's feature segment (its id, uuid, segment and priority).
pub async fn feature_segment(tx: &mut Tx, o: &SegmentOverride) -> Result<FeatureSegment> {
    let env = environments::get(tx, o.environment).await?;
    let segment_name = segment_name(tx, env.project, o.segment)
        .await?
        .ok_or(StoreError::not_found("segment"))?;
    Ok(FeatureSegment {
        id: o.id,
        uuid: o.uuid.clone(),
        feature: o.feature,
        segment: o.segment,
        environment: o.environment,
        priority: o.priority,
        segment_name,
        is_feature_specific: false,
    })
}

fn check_priority(p: i64) -> Result<()> {
    if p < 0 {
        Err(StoreError::invalid("priority", "must be 0 or more"))
    } else {
        Ok(())
    }
}

/// Checks a value and allocations against the project's limits and the feature's options
/// (with the feature row-locked, so its options cannot change underneath the check).
async fn check_state(
    tx: &mut Tx,
    limits: &Limits,
    feature_id: i64,
    value: Option<&Value>,
    allocations: Option<&[MvAllocation]>,
) -> Result<()> {
    if let Some(v) = value {
        values::validate_flag_value("feature_state_value", v, limits)?;
    }
    if let Some(allocs) = allocations {
        features::lock_feature(tx, feature_id).await?;
        features::states::validate_feature_allocations(
            tx,
            "multivariate_feature_state_values",
            feature_id,
            allocs,
        )
        .await?;
    }
    Ok(())
}

/// Row-locks the environment so concurrent creates count its overrides (and pick priorities)
/// one after another on PostgreSQL; SQLite already serialises writers.
async fn lock_environment(tx: &mut Tx, environment_id: i64) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query("UPDATE environments SET name = name WHERE id = $1")
            .bind(environment_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(())
}

fn audit_entry(
    project_id: i64,
    o: &SegmentOverride,
    action: &'static str,
    feature: &str,
    segment: &str,
    before: Option<&SegmentOverride>,
    after: Option<&SegmentOverride>,
) -> AuditEntry {
    AuditEntry {
        project_id: Some(project_id),
        environment_id: Some(o.environment),
        action,
        resource_type: "segment_override",
        resource_id: o.id.to_string(),
        log: format!("Segment override of feature '{feature}' for segment '{segment}' {action}"),
        before: before.and_then(|b| serde_json::to_value(b).ok()),
        after: after.and_then(|a| serde_json::to_value(a).ok()),
    }
}

/// Creates an override of `feature_id` in the environment with client key `api_key`.
pub async fn create(
    ch: &mut Change,
    api_key: &str,
    feature_id: i64,
    new: &NewSegmentOverride,
) -> Result<SegmentOverride> {
    let env = environments::get_by_key(ch.tx(), api_key).await?;
    if new.feature.is_some_and(|f| f != feature_id) {
        return Err(StoreError::invalid(
            "feature",
            "does not match the feature in the path",
        ));
    }
    if new.environment.is_some_and(|e| e != env.id) {
        return Err(StoreError::invalid(
            "environment",
            "does not match the environment in the path",
        ));
    }
    let feature = feature_name(ch.tx(), env.project, feature_id)
        .await?
        .ok_or(StoreError::not_found("feature"))?;
    let segment = segment_name(ch.tx(), env.project, new.segment)
        .await?
        .ok_or_else(|| StoreError::invalid("segment", "no such segment in this project"))?;
    if let Some(p) = new.priority {
        check_priority(p)?;
    }
    crate::history::track(ch, env.id, feature_id).await?;
    lock_environment(ch.tx(), env.id).await?;
    let limits = projects::limits(ch.tx(), env.project).await?;
    check_state(
        ch.tx(),
        &limits,
        feature_id,
        Some(&new.feature_state_value),
        Some(&new.multivariate_feature_state_values),
    )
    .await?;
    let (exists, count, next): (i64, i64, i64) = sql!(ch.tx(), |c| {
        sqlx::query_as(
            "SELECT \
               (SELECT COUNT(*) FROM segment_overrides \
                  WHERE environment_id = $1 AND feature_id = $2 AND segment_id = $3), \
               (SELECT COUNT(*) FROM segment_overrides WHERE environment_id = $1), \
               (SELECT COALESCE(MAX(priority) + 1, 0) FROM segment_overrides \
                  WHERE environment_id = $1 AND feature_id = $2)",
        )
        .bind(env.id)
        .bind(feature_id)
        .bind(new.segment)
        .fetch_one(c)
        .await?
    });
    let duplicate = || {
        StoreError::conflict(
            "segment",
            "this segment already overrides this feature in this environment",
        )
    };
    if exists > 0 {
        return Err(duplicate());
    }
    Limits::check(
        LimitName::MaxSegmentOverrides,
        limits.max_segment_overrides,
        count + 1,
        || format!("the environment already has {count} segment overrides"),
    )?;
    let row: OverrideRow = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO segment_overrides (feature_id, segment_id, environment_id, priority, \
                 enabled, value, mv_allocations, uuid, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(feature_id)
        .bind(new.segment)
        .bind(env.id)
        .bind(next)
        .bind(new.enabled)
        .bind(values::encode_value(&new.feature_state_value))
        .bind(values::encode_allocations(
            &new.multivariate_feature_state_values,
        ))
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(now_ms())
        .fetch_one(c)
        .await
        .map_err(|e| match StoreError::from(e) {
            e if e.is_unique_violation() => duplicate(),
            e => e,
        })?
    });
    let id = row.id;
    if let Some(p) = new.priority {
        renumber(ch.tx(), env.id, feature_id, &[], Some((id, p))).await?;
    }
    let created = get_by_id(ch.tx(), env.id, id).await?;
    ch.touch_environment(env.id);
    ch.audit(audit_entry(
        env.project,
        &created,
        "created",
        &feature,
        &segment,
        None,
        Some(&created),
    ));
    Ok(created)
}

pub(super) async fn get_by_id(
    tx: &mut Tx,
    environment_id: i64,
    id: i64,
) -> Result<SegmentOverride> {
    let row: Option<OverrideRow> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM segment_overrides WHERE id = $1 AND environment_id = $2"
        ))
        .bind(id)
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("segment override"))?
        .try_into()
}

/// An override of the environment with client key `api_key`.
pub async fn get(tx: &mut Tx, api_key: &str, id: i64) -> Result<SegmentOverride> {
    let env = environments::get_by_key(tx, api_key).await?;
    get_by_id(tx, env.id, id).await
}

/// The environment's overrides, by feature then priority.
pub async fn list(
    tx: &mut Tx,
    api_key: &str,
    filter: OverrideFilter,
    page: PageRequest,
) -> Result<Page<SegmentOverride>> {
    let env = environments::get_by_key(tx, api_key).await?;
    let mut condition = crate::filter::Where::new()
        .bound("environment_id = ?")
        .bound_if(filter.feature.is_some(), "feature_id = ?")
        .bound_if(filter.segment.is_some(), "segment_id = ?");
    let (limit, offset) = (condition.placeholder(), condition.placeholder());
    let condition = condition.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM segment_overrides WHERE {condition}"
            ))
            .bind(env.id),
            filter.feature,
            filter.segment
        )
        .fetch_one(c)
        .await?
    });
    let rows: Vec<OverrideRow> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM segment_overrides WHERE {condition} \
                 ORDER BY feature_id, priority, id LIMIT {limit} OFFSET {offset}"
            ))
            .bind(env.id),
            filter.feature,
            filter.segment
        )
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    let results = rows
        .into_iter()
        .map(SegmentOverride::try_from)
        .collect::<Result<_>>()?;
    Ok(Page { count, results })
}

/// How many of the environment's overrides there are (of one feature, and with one id, when
/// given), and those at `offset..offset + limit` by feature, priority and id: one part of
/// Flagsmith's list of every state of an environment
/// ([`crate::features::environment_states`]).
pub(crate) async fn window(
    tx: &mut Tx,
    environment_id: i64,
    feature: Option<i64>,
    id: Option<i64>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<SegmentOverride>)> {
    let mut filter = crate::filter::Where::new()
        .bound("environment_id = ?")
        .bound_if(feature.is_some(), "feature_id = ?")
        .bound_if(id.is_some(), "id = ?");
    let (limit_p, offset_p) = (filter.placeholder(), filter.placeholder());
    let filter = filter.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM segment_overrides WHERE {filter}"
            ))
            .bind(environment_id),
            feature,
            id
        )
        .fetch_one(c)
        .await?
    });
    if limit <= 0 || offset >= count {
        return Ok((count, Vec::new()));
    }
    let rows: Vec<OverrideRow> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM segment_overrides WHERE {filter} \
                 ORDER BY feature_id, priority, id LIMIT {limit_p} OFFSET {offset_p}"
            ))
            .bind(environment_id),
            feature,
            id
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await?
    });
    let results = rows
        .into_iter()
        .map(SegmentOverride::try_from)
        .collect::<Result<_>>()?;
    Ok((count, results))
}

/// Updates the fields given; a new `priority` moves the override to that position.
pub async fn update(
    ch: &mut Change,
    api_key: &str,
    id: i64,
    patch: &SegmentOverridePatch,
) -> Result<SegmentOverride> {
    let env = environments::get_by_key(ch.tx(), api_key).await?;
    let before = get_by_id(ch.tx(), env.id, id).await?;
    crate::history::track(ch, env.id, before.feature).await?;
    if let Some(p) = patch.priority {
        check_priority(p)?;
    }
    let limits = projects::limits(ch.tx(), env.project).await?;
    let value = patch
        .feature_state_value
        .as_ref()
        .map(|v| v.clone().unwrap_or(Value::Null));
    check_state(
        ch.tx(),
        &limits,
        before.feature,
        value.as_ref(),
        patch.multivariate_feature_state_values.as_deref(),
    )
    .await?;
    let value = value.unwrap_or_else(|| before.feature_state_value.clone());
    let allocs = patch
        .multivariate_feature_state_values
        .as_ref()
        .unwrap_or(&before.multivariate_feature_state_values);
    sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE segment_overrides SET enabled = $2, value = $3, mv_allocations = $4, \
                 updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(patch.enabled.unwrap_or(before.enabled))
        .bind(values::encode_value(&value))
        .bind(values::encode_allocations(allocs))
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    if let Some(p) = patch.priority {
        renumber(ch.tx(), env.id, before.feature, &[], Some((id, p))).await?;
    }
    let after = get_by_id(ch.tx(), env.id, id).await?;
    let (feature, segment) = names(ch.tx(), env.project, &after).await?;
    ch.touch_environment(env.id);
    ch.audit(audit_entry(
        env.project,
        &after,
        "updated",
        &feature,
        &segment,
        Some(&before),
        Some(&after),
    ));
    Ok(after)
}

async fn names(tx: &mut Tx, project_id: i64, o: &SegmentOverride) -> Result<(String, String)> {
    let feature = feature_name(tx, project_id, o.feature).await?;
    let segment = segment_name(tx, project_id, o.segment).await?;
    Ok((feature.unwrap_or_default(), segment.unwrap_or_default()))
}

pub async fn delete(ch: &mut Change, api_key: &str, id: i64) -> Result<SegmentOverride> {
    let env = environments::get_by_key(ch.tx(), api_key).await?;
    let before = get_by_id(ch.tx(), env.id, id).await?;
    crate::history::track(ch, env.id, before.feature).await?;
    let (feature, segment) = names(ch.tx(), env.project, &before).await?;
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM segment_overrides WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    renumber(ch.tx(), env.id, before.feature, &[], None).await?;
    ch.touch_environment(env.id);
    ch.audit(audit_entry(
        env.project,
        &before,
        "deleted",
        &feature,
        &segment,
        Some(&before),
        None,
    ));
    Ok(before)
}
