//! Stale features: the decision ([`decide`], pure) and the facts it is made from ([`stale`]
//! reads them for a project). A feature is stale when either:
//!
//! - **unused**: it is older than N days and nobody was served it (no evaluation reported by
//!   an SDK or made by an edge, in any environment) in the last N days — a feature never
//!   evaluated at all is stale once it is N days old;
//! - **fixed value**: for M days it has served one value everywhere: the same `enabled` and
//!   value in every environment, no segment or identity override, no multivariate split, and no
//!   change to any of that in those M days.
//!
//! A feature carrying a permanent tag (`is_permanent`, as Flagsmith has it) is never stale.
//!
//! N is the project's `stale_flags_limit_days` (Flagsmith's name), M its
//! `stale_fixed_value_days`; either falls back to the installation's default.

use std::collections::HashMap;

use serde::Serialize;

use crate::values::decode_allocations;
use crate::{projects, sql, Result, Tx};

use super::DAY_MS;

/// The installation's defaults (`flagstone serve --stale-unused-days/--stale-fixed-value-days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleSettings {
    pub unused_days: i64,
    pub fixed_value_days: i64,
}

impl Default for StaleSettings {
    fn default() -> Self {
        StaleSettings {
            unused_days: 30,
            fixed_value_days: 30,
        }
    }
}

/// The rule applied to one project at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleRule {
    pub now: i64,
    pub unused_days: i64,
    pub fixed_value_days: i64,
}

/// Why a feature is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StaleReason {
    /// Served to nobody for the project's `stale_flags_limit_days`; `last_evaluated_at` is
    /// null if it never was.
    Unused {
        #[serde(serialize_with = "crate::clock::iso::option::serialize")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
        last_evaluated_at: Option<i64>,
    },
    /// The same value everywhere, unchanged since `since`, for `stale_fixed_value_days`.
    FixedValue {
        #[serde(serialize_with = "crate::clock::iso::serialize")]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
        since: i64,
    },
}

/// What the decision looks at, for one feature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureFacts {
    pub created_at: i64,
    pub last_evaluated_at: Option<i64>,
    /// `(enabled, stored value)` of the default state in each environment.
    pub states: Vec<(bool, Option<String>)>,
    /// The latest change to its states, overrides or configuration history.
    pub last_changed_at: i64,
    /// Whether some identity can be served something else than the default: a segment or
    /// identity override, or a multivariate option with a share of identities.
    pub varies: bool,
}

/// The pure decision. Unused wins when both hold (it says more: nobody asks for it).
pub fn decide(f: &FeatureFacts, rule: &StaleRule) -> Option<StaleReason> {
    let unused_since = rule.now - rule.unused_days.saturating_mul(DAY_MS);
    if f.created_at <= unused_since && f.last_evaluated_at.is_none_or(|t| t <= unused_since) {
        return Some(StaleReason::Unused {
            last_evaluated_at: f.last_evaluated_at,
        });
    }
    let fixed_since = rule.now - rule.fixed_value_days.saturating_mul(DAY_MS);
    let one_value = f
        .states
        .first()
        .is_some_and(|s0| f.states.iter().all(|s| s == s0));
    if one_value && !f.varies && f.last_changed_at <= fixed_since {
        return Some(StaleReason::FixedValue {
            since: f.last_changed_at,
        });
    }
    None
}

/// The stale features of a project at `now`, by feature id.
pub async fn stale(
    tx: &mut Tx,
    project_id: i64,
    defaults: StaleSettings,
    now: i64,
) -> Result<HashMap<i64, StaleReason>> {
    let project = projects::get(tx, project_id).await?;
    let rule = StaleRule {
        now,
        unused_days: project
            .stale_flags_limit_days
            .unwrap_or(defaults.unused_days),
        fixed_value_days: project
            .stale_fixed_value_days
            .unwrap_or(defaults.fixed_value_days),
    };
    let facts = facts(tx, project_id).await?;
    Ok(facts
        .into_iter()
        .filter_map(|(id, f)| decide(&f, &rule).map(|r| (id, r)))
        .collect())
}

type StateFact = (i64, bool, Option<String>, String, i64);

async fn facts(tx: &mut Tx, project_id: i64) -> Result<HashMap<i64, FeatureFacts>> {
    let features: Vec<(i64, i64)> = sql!(&mut *tx, |c| {
        // A feature carrying a permanent tag is never stale (Flagsmith's `is_permanent`).
        sqlx::query_as(
            "SELECT id, created_at FROM features WHERE project_id = $1 AND id NOT IN \
             (SELECT ft.feature_id FROM feature_tags ft JOIN tags t ON t.id = ft.tag_id \
              WHERE t.is_permanent)",
        )
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    let mut out: HashMap<i64, FeatureFacts> = features
        .into_iter()
        .map(|(id, created_at)| {
            (
                id,
                FeatureFacts {
                    created_at,
                    last_changed_at: created_at,
                    ..Default::default()
                },
            )
        })
        .collect();
    for (id, at) in super::last_evaluated_by_feature(tx, project_id).await? {
        if let Some(f) = out.get_mut(&id) {
            f.last_evaluated_at = Some(at);
        }
    }
    // Default shares of each multivariate option, by feature.
    let options: Vec<(i64, i64, f64)> = sql!(&mut *tx, |c| {
        sqlx::query_as(
            "SELECT o.feature_id, o.id, o.default_percentage_allocation FROM mv_options o \
             JOIN features f ON f.id = o.feature_id WHERE f.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    let mut option_defaults: HashMap<i64, Vec<(i64, f64)>> = HashMap::new();
    for (feature, option, pct) in options {
        option_defaults
            .entry(feature)
            .or_default()
            .push((option, pct));
    }
    let states: Vec<StateFact> = sql!(&mut *tx, |c| {
        sqlx::query_as(
            "SELECT s.feature_id, s.enabled, s.value, s.mv_allocations, s.updated_at \
             FROM feature_states s JOIN features f ON f.id = s.feature_id \
             WHERE f.project_id = $1",
        )
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    for (feature, enabled, value, allocations, updated_at) in states {
        let Some(f) = out.get_mut(&feature) else {
            continue;
        };
        f.states.push((enabled, value));
        f.last_changed_at = f.last_changed_at.max(updated_at);
        let own = decode_allocations(&allocations)?;
        let splits = option_defaults.get(&feature).is_some_and(|opts| {
            opts.iter().any(|(option, default)| {
                let pct = own
                    .iter()
                    .find(|a| a.multivariate_feature_option == *option)
                    .map_or(*default, |a| a.percentage_allocation);
                pct > 0.0
            })
        });
        f.varies |= splits;
    }
    let overridden: Vec<(i64, i64)> = sql!(&mut *tx, |c| {
        sqlx::query_as(
            "SELECT o.feature_id, MAX(o.updated_at) FROM segment_overrides o \
             JOIN features f ON f.id = o.feature_id WHERE f.project_id = $1 \
             GROUP BY o.feature_id",
        )
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    for (feature, updated_at) in overridden {
        if let Some(f) = out.get_mut(&feature) {
            f.varies = true;
            f.last_changed_at = f.last_changed_at.max(updated_at);
        }
    }
    let per_identity: Vec<i64> = sql!(&mut *tx, |c| {
        sqlx::query_scalar(
            "SELECT f.id FROM features f WHERE f.project_id = $1 AND EXISTS \
             (SELECT 1 FROM identity_overrides o WHERE o.feature_id = f.id)",
        )
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    for feature in per_identity {
        if let Some(f) = out.get_mut(&feature) {
            f.varies = true;
        }
    }
    // Versions record changes the rows no longer show (an override added, then removed).
    let versions: Vec<(i64, i64)> = sql!(&mut *tx, |c| {
        sqlx::query_as(
            "SELECT v.feature_id, MAX(v.created_at) FROM feature_versions v \
             JOIN features f ON f.id = v.feature_id \
             WHERE f.project_id = $1 AND v.kind <> 'baseline' GROUP BY v.feature_id",
        )
        .bind(project_id)
        .fetch_all(c)
        .await?
    });
    for (feature, at) in versions {
        if let Some(f) = out.get_mut(&feature) {
            f.last_changed_at = f.last_changed_at.max(at);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000 * DAY_MS;

    fn rule() -> StaleRule {
        StaleRule {
            now: NOW,
            unused_days: 30,
            fixed_value_days: 7,
        }
    }

    fn on(value: &str) -> (bool, Option<String>) {
        (true, Some(value.to_string()))
    }

    #[test]
    fn a_never_evaluated_feature_is_stale_once_old_enough() {
        let mut f = FeatureFacts {
            created_at: NOW - 31 * DAY_MS,
            states: vec![on("1"), on("2")],
            ..Default::default()
        };
        assert_eq!(
            decide(&f, &rule()),
            Some(StaleReason::Unused {
                last_evaluated_at: None
            })
        );
        f.created_at = NOW - 29 * DAY_MS;
        assert_eq!(decide(&f, &rule()), None, "new features get their N days");
    }

    #[test]
    fn a_recent_evaluation_keeps_a_feature_live() {
        let mut f = FeatureFacts {
            created_at: NOW - 100 * DAY_MS,
            last_evaluated_at: Some(NOW - DAY_MS),
            states: vec![on("1"), on("2")],
            ..Default::default()
        };
        assert_eq!(decide(&f, &rule()), None);
        f.last_evaluated_at = Some(NOW - 30 * DAY_MS);
        assert!(matches!(
            decide(&f, &rule()),
            Some(StaleReason::Unused { .. })
        ));
    }

    #[test]
    fn one_value_everywhere_unchanged_for_m_days_is_stale() {
        let mut f = FeatureFacts {
            created_at: NOW - 100 * DAY_MS,
            last_evaluated_at: Some(NOW),
            states: vec![on("1"), on("1")],
            last_changed_at: NOW - 8 * DAY_MS,
            varies: false,
        };
        assert_eq!(
            decide(&f, &rule()),
            Some(StaleReason::FixedValue {
                since: NOW - 8 * DAY_MS
            })
        );
        f.last_changed_at = NOW - 6 * DAY_MS;
        assert_eq!(decide(&f, &rule()), None, "changed within M days");
        f.last_changed_at = NOW - 8 * DAY_MS;
        f.varies = true;
        assert_eq!(decide(&f, &rule()), None, "an override or split");
        f.varies = false;
        f.states = vec![on("1"), (false, Some("1".into()))];
        assert_eq!(decide(&f, &rule()), None, "enabled differs");
        f.states.clear();
        assert_eq!(decide(&f, &rule()), None, "no environment serves it");
    }
}
