//! Restoring a version: its configuration is applied as a new change through the ordinary
//! write paths (default state, overrides created, changed, deleted, then re-ordered), so the
//! usual validation, audit entries, revision bump and publish apply, and the change is itself
//! recorded as a version of kind `restore`. Planning is separate so the API can check the
//! permissions the restore needs (what it changes) before anything is written.

use serde_json::Value;

use super::config::{current, FeatureConfig};
use super::diff::{diff, ConfigDiff};
use super::{get, restoring, track, FeatureVersion};
use crate::environments::Environment;
use crate::features::{states, FeatureStatePatch};
use crate::segments::overrides::{self, NewSegmentOverride, PriorityUpdate, SegmentOverridePatch};
use crate::{sql, AuditEntry, Change, Result, StoreError, Tx};

/// What restoring a version would do to the current configuration.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub version: FeatureVersion,
    pub target: FeatureConfig,
    /// From the current configuration to the version's.
    pub diff: ConfigDiff,
}

/// Plans restoring version `id` of `feature_id` in the environment (`NotFound` for a version
/// of something else). Read in the restoring change's transaction, so it cannot go stale.
pub async fn plan_restore(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
    id: i64,
) -> Result<RestorePlan> {
    let (version, target) = get(tx, environment_id, feature_id, id).await?;
    let now = current(tx, environment_id, feature_id)
        .await?
        .ok_or(StoreError::not_found("feature"))?;
    Ok(RestorePlan {
        version,
        diff: diff(&now, &target),
        target,
    })
}

/// The feature's overrides in the environment: (id, segment), in priority order.
async fn override_ids(
    tx: &mut Tx,
    environment_id: i64,
    feature_id: i64,
) -> Result<Vec<(i64, i64)>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, segment_id FROM segment_overrides \
             WHERE environment_id = $1 AND feature_id = $2 ORDER BY priority, id",
        )
        .bind(environment_id)
        .bind(feature_id)
        .fetch_all(c)
        .await?
    }))
}

/// Applies the plan's version as a change made by `ch`'s actor.
pub async fn restore(ch: &mut Change, env: &Environment, plan: &RestorePlan) -> Result<()> {
    let feature = plan.version.feature;
    restoring(ch, plan.version.id);
    let target = &plan.target;
    let origin = format!("version {}", plan.version.id);
    apply_config(ch, env, feature, target, &plan.diff, &origin).await?;

    let name: String = sql!(ch.tx(), |c| {
        sqlx::query_scalar("SELECT name FROM features WHERE id = $1")
            .bind(feature)
            .fetch_one(c)
            .await?
    });
    ch.touch_environment(env.id);
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "restored",
        resource_type: "feature",
        resource_id: feature.to_string(),
        log: format!(
            "Feature '{name}' in environment '{}' restored to version {}",
            env.name, plan.version.id
        ),
        before: None,
        after: serde_json::to_value(target).ok().or(Some(Value::Null)),
    });
    Ok(())
}

/// Makes `feature`'s configuration in `env` equal to `target`, given `diff` (from the current
/// configuration to `target`), through the ordinary write paths: the default state, then
/// overrides deleted, changed, created and re-ordered. Tracked as a version of the feature.
/// `origin` names where `target` comes from, for the refusal when it overrides a segment the
/// project does not have.
pub(crate) async fn apply_config(
    ch: &mut Change,
    env: &Environment,
    feature: i64,
    target: &FeatureConfig,
    diff: &ConfigDiff,
    origin: &str,
) -> Result<()> {
    track(ch, env.id, feature).await?;
    if diff.touches_default() {
        let state_id: i64 = sql!(ch.tx(), |c| {
            sqlx::query_scalar(
                "SELECT id FROM feature_states WHERE environment_id = $1 AND feature_id = $2",
            )
            .bind(env.id)
            .bind(feature)
            .fetch_one(c)
            .await?
        });
        let patch = FeatureStatePatch {
            enabled: Some(target.enabled),
            feature_state_value: Some(target.feature_state_value.clone()),
            multivariate_feature_state_values: Some(
                target.multivariate_feature_state_values.clone(),
            ),
            feature: None,
            environment: None,
            live_from: None,
            ..Default::default()
        };
        states::update(ch, env, state_id, &patch).await?;
    }

    if diff.touches_overrides() {
        let existing = override_ids(ch.tx(), env.id, feature).await?;
        let id_of = |segment: i64| {
            existing
                .iter()
                .find(|(_, s)| *s == segment)
                .map(|(i, _)| *i)
        };
        for removed in &diff.overrides_removed {
            if let Some(id) = id_of(removed.segment) {
                overrides::delete(ch, &env.api_key, id).await?;
            }
        }
        for changed in &diff.overrides_changed {
            let (Some(id), Some(o)) = (
                id_of(changed.segment),
                target
                    .segment_overrides
                    .iter()
                    .find(|o| o.segment == changed.segment),
            ) else {
                continue;
            };
            // Priorities are set once, for all overrides, below.
            if changed.fields_changed.iter().all(|f| f.field == "priority") {
                continue;
            }
            let patch = SegmentOverridePatch {
                enabled: Some(o.enabled),
                feature_state_value: Some(Some(o.feature_state_value.clone())),
                multivariate_feature_state_values: Some(
                    o.multivariate_feature_state_values.clone(),
                ),
                priority: None,
            };
            overrides::update(ch, &env.api_key, id, &patch).await?;
        }
        for added in &diff.overrides_added {
            let exists: Option<i64> = sql!(ch.tx(), |c| {
                sqlx::query_scalar("SELECT id FROM segments WHERE id = $1 AND project_id = $2")
                    .bind(added.segment)
                    .bind(env.project)
                    .fetch_optional(c)
                    .await?
            });
            if exists.is_none() {
                return Err(StoreError::conflict(
                    "segment",
                    format!(
                        "{origin} overrides segment {}, which does not exist in this \
                         project; it cannot be applied",
                        added.segment
                    ),
                ));
            }
            let new = NewSegmentOverride {
                segment: added.segment,
                enabled: added.enabled,
                feature_state_value: added.feature_state_value.clone(),
                priority: None,
                multivariate_feature_state_values: added.multivariate_feature_state_values.clone(),
                feature: None,
                environment: None,
            };
            overrides::create(ch, &env.api_key, feature, &new).await?;
        }
        let now = override_ids(ch.tx(), env.id, feature).await?;
        let wanted: Vec<PriorityUpdate> = target
            .segment_overrides
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                now.iter()
                    .find(|(_, s)| *s == o.segment)
                    .map(|(id, _)| PriorityUpdate {
                        id: *id,
                        priority: i as i64,
                    })
            })
            .collect();
        let in_order = now
            .iter()
            .map(|(id, _)| *id)
            .eq(wanted.iter().map(|u| u.id));
        if !in_order {
            overrides::reorder(ch, &wanted).await?;
        }
    }
    ch.touch_environment(env.id);
    Ok(())
}
