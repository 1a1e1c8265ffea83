//! The updates a scheduled change (and a change request) carries: each one changes either a
//! feature's environment default state or one of its segment overrides (created, updated or
//! deleted), with the fields of the direct endpoints. Checked against the environment when the
//! change is proposed, and applied through the ordinary write paths (`features::states`,
//! `segments::overrides`) so a revision, audit entries and a history version follow as for a
//! direct edit.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MAX_ITEMS;
use crate::environments::Environment;
use crate::features::allocations::validate_feature_allocations;
use crate::features::{states, FeatureStatePatch};
use crate::segments::overrides::{self, NewSegmentOverride, SegmentOverridePatch};
use crate::values::{validate_flag_value, MvAllocation};
use crate::{projects, sql, Change, Result, StoreError, Tx};

/// Which segment override an update changes: Flagsmith's `feature_segment` object as change
/// sets carry it (`{segment, priority}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OverrideTarget {
    /// The segment whose override of the feature this is (one per segment and feature).
    pub segment: i64,
    /// Moves the override to this position among the feature's overrides (0 wins first);
    /// absent: an existing override keeps its place, a new one goes last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// One update: the environment default of `feature` (no `feature_segment`), or its override
/// for `feature_segment.segment`, with the fields of `PATCH …/featurestates/{id}/` (unset
/// fields keep their value; a new override takes `false`, null and no allocations for them).
/// `delete_override` removes the override instead (no other field may be given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduledFeatureState {
    pub feature: i64,
    /// The segment override to change; absent or null: the environment default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_segment: Option<OverrideTarget>,
    /// Delete the override named by `feature_segment`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_override: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A string, number, boolean or null (clears the value); absent keeps it.
    #[serde(
        default,
        deserialize_with = "crate::features::present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Value>))]
    pub feature_state_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivariate_feature_state_values: Option<Vec<MvAllocation>>,
}

impl ScheduledFeatureState {
    /// An update of `feature`'s environment default.
    pub fn default_state(
        feature: i64,
        enabled: Option<bool>,
        feature_state_value: Option<Value>,
        multivariate_feature_state_values: Option<Vec<MvAllocation>>,
    ) -> ScheduledFeatureState {
        ScheduledFeatureState {
            feature,
            feature_segment: None,
            delete_override: false,
            enabled,
            feature_state_value,
            multivariate_feature_state_values,
        }
    }

    /// The segment whose override this changes (`None`: the environment default).
    pub fn segment(&self) -> Option<i64> {
        self.feature_segment.map(|t| t.segment)
    }

    /// What the update is about: the feature and, for an override, its segment.
    pub fn key(&self) -> (i64, Option<i64>) {
        (self.feature, self.segment())
    }

    /// The update as a patch of the feature's default state.
    pub fn patch(&self) -> FeatureStatePatch {
        FeatureStatePatch {
            enabled: self.enabled,
            feature_state_value: self.feature_state_value.clone(),
            multivariate_feature_state_values: self.multivariate_feature_state_values.clone(),
            feature: None,
            environment: None,
            live_from: None,
            ..Default::default()
        }
    }

    /// The update `patch` makes to `feature`'s default state.
    pub fn from_patch(feature: i64, patch: &FeatureStatePatch) -> ScheduledFeatureState {
        ScheduledFeatureState::default_state(
            feature,
            patch.enabled,
            patch.feature_state_value.clone(),
            patch.multivariate_feature_state_values.clone(),
        )
    }
}

/// The id of `feature`'s override for `segment` in the environment, if it has one.
pub(crate) async fn override_id(
    tx: &mut Tx,
    environment_id: i64,
    feature: i64,
    segment: i64,
) -> Result<Option<i64>> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT id FROM segment_overrides \
             WHERE environment_id = $1 AND feature_id = $2 AND segment_id = $3",
        )
        .bind(environment_id)
        .bind(feature)
        .bind(segment)
        .fetch_optional(c)
        .await?
    }))
}

async fn priority_of(tx: &mut Tx, id: i64) -> Result<i64> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar("SELECT priority FROM segment_overrides WHERE id = $1")
            .bind(id)
            .fetch_one(c)
            .await?
    }))
}

/// Checks one update against the environment as it is now: the feature is the environment's
/// project's, so is the segment of an override, the value fits the project's limits, the
/// allocations name its options, and a deletion names an override that exists and nothing
/// else.
pub(crate) async fn validate_item(
    tx: &mut Tx,
    env: &Environment,
    index: usize,
    item: &ScheduledFeatureState,
) -> Result<()> {
    let field = |f: &str| format!("feature_states[{index}].{f}");
    let project: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT project_id FROM features WHERE id = $1")
            .bind(item.feature)
            .fetch_optional(c)
            .await?
    });
    if project != Some(env.project) {
        return Err(StoreError::invalid(
            field("feature"),
            format!(
                "feature {} is not a feature of this environment's project",
                item.feature
            ),
        ));
    }
    if let Some(target) = item.feature_segment {
        validate_target(tx, env, index, item, target).await?;
    } else if item.delete_override {
        return Err(StoreError::invalid(
            field("delete_override"),
            "name the override to delete with feature_segment: {\"segment\": id}",
        ));
    }
    if let Some(v) = &item.feature_state_value {
        let limits = projects::limits(tx, env.project).await?;
        validate_flag_value(&field("feature_state_value"), v, &limits)?;
    }
    if let Some(a) = &item.multivariate_feature_state_values {
        validate_feature_allocations(
            tx,
            &field("multivariate_feature_state_values"),
            item.feature,
            a,
        )
        .await?;
    }
    Ok(())
}

async fn validate_target(
    tx: &mut Tx,
    env: &Environment,
    index: usize,
    item: &ScheduledFeatureState,
    target: OverrideTarget,
) -> Result<()> {
    let field = |f: &str| format!("feature_states[{index}].{f}");
    let segment: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT id FROM segments WHERE id = $1 AND project_id = $2")
            .bind(target.segment)
            .bind(env.project)
            .fetch_optional(c)
            .await?
    });
    if segment.is_none() {
        return Err(StoreError::invalid(
            field("feature_segment.segment"),
            format!(
                "segment {} is not a segment of this environment's project",
                target.segment
            ),
        ));
    }
    if target.priority.is_some_and(|p| p < 0) {
        return Err(StoreError::invalid(
            field("feature_segment.priority"),
            "must be 0 or more",
        ));
    }
    if item.delete_override {
        let changes_fields = item.enabled.is_some()
            || item.feature_state_value.is_some()
            || item.multivariate_feature_state_values.is_some()
            || target.priority.is_some();
        if changes_fields {
            return Err(StoreError::invalid(
                field("delete_override"),
                "a deletion names only the feature and feature_segment.segment",
            ));
        }
        if override_id(tx, env.id, item.feature, target.segment)
            .await?
            .is_none()
        {
            return Err(StoreError::invalid(
                field("feature_segment.segment"),
                format!(
                    "feature {} has no override for segment {} in this environment",
                    item.feature, target.segment
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a list of updates: at least one, at most [`MAX_ITEMS`], each valid, each default
/// state or override once.
pub(crate) async fn validate_items(
    tx: &mut Tx,
    env: &Environment,
    items: &[ScheduledFeatureState],
) -> Result<()> {
    if items.is_empty() {
        return Err(StoreError::invalid(
            "feature_states",
            "name at least one feature state to change",
        ));
    }
    if items.len() > MAX_ITEMS {
        return Err(StoreError::invalid(
            "feature_states",
            format!("at most {MAX_ITEMS} feature states per change"),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        if items[..i].iter().any(|o| o.key() == item.key()) {
            let what = match item.segment() {
                None => format!("feature {}'s default state is listed twice", item.feature),
                Some(s) => format!(
                    "feature {}'s override for segment {s} is listed twice",
                    item.feature
                ),
            };
            return Err(StoreError::invalid(format!("feature_states[{i}]"), what));
        }
        validate_item(tx, env, i, item).await?;
    }
    Ok(())
}

/// The order updates are applied in: deletions first (they free priorities), then default
/// states, then overrides by the priority they ask for (lowest first, so each lands at its
/// place without moving the ones placed before it), then the rest in the order given.
fn application_order(items: &[ScheduledFeatureState]) -> Vec<&ScheduledFeatureState> {
    let mut ordered: Vec<&ScheduledFeatureState> = items.iter().collect();
    ordered.sort_by_key(|i| match (i.delete_override, i.feature_segment) {
        (true, _) => (0, 0),
        (false, None) => (1, 0),
        (
            false,
            Some(OverrideTarget {
                priority: Some(p), ..
            }),
        ) => (2, p),
        (false, Some(_)) => (3, 0),
    });
    ordered
}

/// Applies `items` to `env` now, in `ch`, each through the ordinary write path of what it
/// changes. A default state or override that is gone (its feature deleted, an override
/// deleted since) is a `Conflict`: nothing of the change is written.
pub async fn apply_items(
    ch: &mut Change,
    env: &Environment,
    items: &[ScheduledFeatureState],
) -> Result<()> {
    for item in application_order(items) {
        match item.feature_segment {
            None => apply_default(ch, env, item).await?,
            Some(target) => apply_override(ch, env, item, target).await?,
        }
    }
    Ok(())
}

async fn apply_default(
    ch: &mut Change,
    env: &Environment,
    item: &ScheduledFeatureState,
) -> Result<()> {
    let state_id: Option<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar(
            "SELECT id FROM feature_states WHERE environment_id = $1 AND feature_id = $2",
        )
        .bind(env.id)
        .bind(item.feature)
        .fetch_optional(c)
        .await?
    });
    let state_id = state_id.ok_or_else(|| {
        StoreError::conflict(
            "feature",
            format!(
                "feature {} no longer exists in environment '{}'",
                item.feature, env.name
            ),
        )
    })?;
    states::update(ch, env, state_id, &item.patch()).await?;
    Ok(())
}

async fn apply_override(
    ch: &mut Change,
    env: &Environment,
    item: &ScheduledFeatureState,
    target: OverrideTarget,
) -> Result<()> {
    let existing = override_id(ch.tx(), env.id, item.feature, target.segment).await?;
    match (item.delete_override, existing) {
        (true, Some(id)) => {
            overrides::delete(ch, &env.api_key, id).await?;
        }
        (true, None) => {
            return Err(StoreError::conflict(
                "feature_segment",
                format!(
                    "feature {}'s override for segment {} no longer exists in environment '{}'",
                    item.feature, target.segment, env.name
                ),
            ))
        }
        (false, Some(id)) => {
            let only_moves = item.enabled.is_none()
                && item.feature_state_value.is_none()
                && item.multivariate_feature_state_values.is_none();
            if only_moves && target.priority == Some(priority_of(ch.tx(), id).await?) {
                // Already in place (a promotion names every override's position).
                return Ok(());
            }
            let patch = SegmentOverridePatch {
                enabled: item.enabled,
                feature_state_value: item
                    .feature_state_value
                    .clone()
                    .map(|v| (!v.is_null()).then_some(v)),
                multivariate_feature_state_values: item.multivariate_feature_state_values.clone(),
                priority: target.priority,
            };
            overrides::update(ch, &env.api_key, id, &patch).await?;
        }
        (false, None) => {
            let new = NewSegmentOverride {
                segment: target.segment,
                enabled: item.enabled.unwrap_or(false),
                feature_state_value: item.feature_state_value.clone().unwrap_or(Value::Null),
                priority: target.priority,
                multivariate_feature_state_values: item
                    .multivariate_feature_state_values
                    .clone()
                    .unwrap_or_default(),
                feature: None,
                environment: None,
            };
            overrides::create(ch, &env.api_key, item.feature, &new).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn over(
        feature: i64,
        segment: i64,
        priority: Option<i64>,
        delete: bool,
    ) -> ScheduledFeatureState {
        ScheduledFeatureState {
            feature_segment: Some(OverrideTarget { segment, priority }),
            delete_override: delete,
            ..ScheduledFeatureState::default_state(feature, Some(true), None, None)
        }
    }

    #[test]
    fn deletions_go_first_then_defaults_then_overrides_by_priority() {
        let items = vec![
            over(1, 5, None, false),
            over(1, 6, Some(2), false),
            ScheduledFeatureState::default_state(1, Some(true), None, None),
            over(1, 7, Some(0), false),
            over(1, 8, None, true),
        ];
        let order: Vec<(i64, Option<i64>)> =
            application_order(&items).iter().map(|i| i.key()).collect();
        assert_eq!(
            order,
            vec![
                (1, Some(8)),
                (1, None),
                (1, Some(7)),
                (1, Some(6)),
                (1, Some(5))
            ]
        );
    }

    #[test]
    fn the_stored_form_leaves_out_what_is_not_set() {
        let d = ScheduledFeatureState::default_state(3, Some(true), None, None);
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"feature": 3, "enabled": true})
        );
        let o = over(3, 9, None, true);
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(
            serde_json::from_str::<ScheduledFeatureState>(&text).unwrap(),
            o
        );
        // Flagsmith's clients send `feature_segment: null` for the default state.
        let null: ScheduledFeatureState =
            serde_json::from_value(json!({"feature": 3, "feature_segment": null})).unwrap();
        assert_eq!(null.segment(), None);
    }
}
