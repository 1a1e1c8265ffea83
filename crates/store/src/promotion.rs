//! Environments side by side: cloning an environment, comparing two environments of a project
//! feature by feature, and promoting one feature's configuration (default state, segment
//! overrides and their priorities, allocations) from one environment to another. Everything is
//! written through the same path as a restore (`history::apply_config`), so it is validated,
//! audited, versioned and published like any other change. A clone copies identity overrides
//! (with their identities and those identities' traits) only when asked.

use serde::{Deserialize, Serialize};

use crate::change_requests::{self, ChangeRequest, NewChangeRequest};
use crate::environments::{self, Environment, NewEnvironment};
use crate::history::{self, apply_config, ConfigDiff, FeatureConfig};
use crate::identities::{self, overrides::NewIdentityOverride, traits::TraitInput};
use crate::scheduled::{OverrideTarget, ScheduledFeatureState};
use crate::{sql, AuditEntry, Change, Result, StoreError, Tx};

/// `POST …/clone/`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CloneEnvironment {
    pub name: String,
    /// Also copy every identity that has an identity override, with its traits and overrides.
    #[serde(default)]
    pub clone_identity_overrides: bool,
}

/// `POST …/features/{feature_id}/promote/`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The client key of the environment to copy the feature's configuration from.
    pub from: String,
}

/// One feature that differs between two environments.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureDifference {
    pub feature: i64,
    pub name: String,
    /// From the first environment's configuration to the second's.
    pub diff: ConfigDiff,
}

/// `GET …/compare/{other}/`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comparison {
    /// Client keys: `diff`s go from `environment` to `other`.
    pub environment: String,
    pub other: String,
    pub features_compared: i64,
    /// Only the features that differ, by name.
    pub differences: Vec<FeatureDifference>,
}

/// What promoting a feature would do to the target.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromotePlan {
    pub feature: i64,
    pub name: String,
    /// Client keys.
    pub from: String,
    pub to: String,
    /// From the target's configuration to the source's.
    pub diff: ConfigDiff,
    #[serde(skip)]
    pub source: Option<FeatureConfig>,
}

fn same_project(a: &Environment, b: &Environment) -> Result<()> {
    if a.project != b.project {
        return Err(StoreError::invalid(
            "environment",
            format!(
                "environments '{}' and '{}' are in different projects; only environments of \
                 one project share features and segments",
                a.name, b.name
            ),
        ));
    }
    Ok(())
}

async fn features(tx: &mut Tx, project: i64) -> Result<Vec<(i64, String)>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as("SELECT id, name FROM features WHERE project_id = $1 ORDER BY name, id")
            .bind(project)
            .fetch_all(c)
            .await?
    }))
}

/// The configuration of `feature` in `env`.
async fn config(tx: &mut Tx, env: &Environment, feature: i64) -> Result<FeatureConfig> {
    history::current(tx, env.id, feature)
        .await?
        .ok_or(StoreError::not_found("feature"))
}

/// Compares every feature of the project in `a` and `b`.
pub async fn compare(tx: &mut Tx, a: &Environment, b: &Environment) -> Result<Comparison> {
    same_project(a, b)?;
    let all = features(tx, a.project).await?;
    let mut differences = Vec::new();
    for (feature, name) in &all {
        let diff = history::diff(
            &config(tx, a, *feature).await?,
            &config(tx, b, *feature).await?,
        );
        if !diff.is_empty() {
            differences.push(FeatureDifference {
                feature: *feature,
                name: name.clone(),
                diff,
            });
        }
    }
    Ok(Comparison {
        environment: a.api_key.clone(),
        other: b.api_key.clone(),
        features_compared: all.len() as i64,
        differences,
    })
}

/// Plans copying `feature`'s configuration from `source` to `target`. Read in the promoting
/// change's transaction.
pub async fn plan_promote(
    tx: &mut Tx,
    target: &Environment,
    source: &Environment,
    feature: i64,
) -> Result<PromotePlan> {
    same_project(target, source)?;
    if target.id == source.id {
        return Err(StoreError::invalid(
            "from",
            "is this environment: promote from another one",
        ));
    }
    let name: Option<String> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT name FROM features WHERE id = $1 AND project_id = $2")
            .bind(feature)
            .bind(target.project)
            .fetch_optional(c)
            .await?
    });
    let name = name.ok_or(StoreError::not_found("feature"))?;
    let from = config(tx, source, feature).await?;
    let now = config(tx, target, feature).await?;
    Ok(PromotePlan {
        feature,
        name,
        from: source.api_key.clone(),
        to: target.api_key.clone(),
        diff: history::diff(&now, &from),
        source: Some(from),
    })
}

/// Applies the plan to `target` as a change by `ch`'s actor. Audited.
pub async fn promote(
    ch: &mut Change,
    target: &Environment,
    source: &Environment,
    plan: &PromotePlan,
) -> Result<()> {
    let from = plan
        .source
        .as_ref()
        .ok_or(StoreError::not_found("feature"))?;
    let origin = format!("environment '{}'", source.name);
    apply_config(ch, target, plan.feature, from, &plan.diff, &origin).await?;
    ch.audit(AuditEntry {
        project_id: Some(target.project),
        environment_id: Some(target.id),
        action: "promoted",
        resource_type: "feature",
        resource_id: plan.feature.to_string(),
        log: format!(
            "Feature '{}' in environment '{}' promoted from environment '{}'",
            plan.name, target.name, source.name
        ),
        before: None,
        after: serde_json::to_value(&plan.diff).ok(),
    });
    Ok(())
}

/// The change request updates that make the target's configuration the plan's source's:
/// the default state if it differs; if any override differs, the removed ones deleted and
/// every override of the source placed at its position (created, changed, or only moved; one
/// already in place is left as it is when the request is applied).
pub fn change_request_items(plan: &PromotePlan) -> Vec<ScheduledFeatureState> {
    let Some(from) = plan.source.as_ref() else {
        return Vec::new();
    };
    let mut items = Vec::new();
    if plan.diff.touches_default() {
        items.push(ScheduledFeatureState::default_state(
            plan.feature,
            Some(from.enabled),
            Some(from.feature_state_value.clone()),
            Some(from.multivariate_feature_state_values.clone()),
        ));
    }
    if !plan.diff.touches_overrides() {
        return items;
    }
    for removed in &plan.diff.overrides_removed {
        items.push(ScheduledFeatureState {
            feature_segment: Some(OverrideTarget {
                segment: removed.segment,
                priority: None,
            }),
            delete_override: true,
            ..ScheduledFeatureState::default_state(plan.feature, None, None, None)
        });
    }
    for (i, o) in from.segment_overrides.iter().enumerate() {
        let added = plan
            .diff
            .overrides_added
            .iter()
            .any(|a| a.segment == o.segment);
        let fields_changed = plan.diff.overrides_changed.iter().any(|c| {
            c.segment == o.segment && c.fields_changed.iter().any(|f| f.field != "priority")
        });
        let target = Some(OverrideTarget {
            segment: o.segment,
            priority: Some(i as i64),
        });
        let item = if added || fields_changed {
            ScheduledFeatureState {
                feature_segment: target,
                ..ScheduledFeatureState::default_state(
                    plan.feature,
                    Some(o.enabled),
                    Some(o.feature_state_value.clone()),
                    Some(o.multivariate_feature_state_values.clone()),
                )
            }
        } else {
            ScheduledFeatureState {
                feature_segment: target,
                ..ScheduledFeatureState::default_state(plan.feature, None, None, None)
            }
        };
        items.push(item);
    }
    items
}

/// Opens a change request in `target` carrying the plan (a promotion into an environment
/// that requires approvals, by someone who may not change it directly).
pub async fn open_change_request(
    ch: &mut Change,
    target: &Environment,
    source: &Environment,
    plan: &PromotePlan,
) -> Result<ChangeRequest> {
    let new = NewChangeRequest {
        title: format!("Promote '{}' from '{}'", plan.name, source.name),
        description: None,
        feature_states: change_request_items(plan),
        live_from: None,
        approvals: Vec::new(),
    };
    change_requests::create(ch, target, &new).await
}

/// Creates an environment named `req.name` in `source`'s project with its settings and every
/// feature's configuration (default states, segment overrides, allocations), and, when asked,
/// its identity overrides. Audited as the creation, each copied object, and one `cloned` entry.
pub async fn clone(
    ch: &mut Change,
    source: &Environment,
    req: &CloneEnvironment,
) -> Result<Environment> {
    let created = environments::create(
        ch,
        &NewEnvironment {
            name: req.name.clone(),
            project: source.project,
            api_key: None,
            allow_client_traits: source.allow_client_traits,
            hide_disabled_flags: source.hide_disabled_flags,
            hide_sensitive_data: source.hide_sensitive_data,
            use_identity_composite_key_for_hashing: source.use_identity_composite_key_for_hashing,
            use_identity_overrides_in_local_eval: source.use_identity_overrides_in_local_eval,
        },
    )
    .await?;
    sql!(ch.tx(), |c| {
        sqlx::query("UPDATE environments SET minimum_change_request_approvals = $2 WHERE id = $1")
            .bind(created.id)
            .bind(source.minimum_change_request_approvals)
            .execute(c)
            .await?
            .rows_affected()
    });
    let created = environments::get(ch.tx(), created.id).await?;
    let origin = format!("environment '{}'", source.name);
    for (feature, _) in features(ch.tx(), source.project).await? {
        let from = config(ch.tx(), source, feature).await?;
        let diff = history::diff(&config(ch.tx(), &created, feature).await?, &from);
        if !diff.is_empty() {
            apply_config(ch, &created, feature, &from, &diff, &origin).await?;
        }
    }
    if req.clone_identity_overrides {
        copy_identity_overrides(ch, source, &created).await?;
    }
    ch.audit(AuditEntry {
        project_id: Some(created.project),
        environment_id: Some(created.id),
        action: "cloned",
        resource_type: "environment",
        resource_id: created.id.to_string(),
        log: format!(
            "Environment '{}' cloned from environment '{}'",
            created.name, source.name
        ),
        before: None,
        after: serde_json::to_value(&created).ok(),
    });
    Ok(created)
}

/// Copies each identity of `source` that has an identity override into `target` (same
/// identifier), with its traits and its overrides, through the ordinary write paths (so the
/// target's limits apply).
async fn copy_identity_overrides(
    ch: &mut Change,
    source: &Environment,
    target: &Environment,
) -> Result<()> {
    let ids: Vec<i64> = sql!(ch.tx(), |c| {
        sqlx::query_scalar(
            "SELECT DISTINCT identity_id FROM identity_overrides WHERE environment_id = $1 \
             ORDER BY identity_id",
        )
        .bind(source.id)
        .fetch_all(c)
        .await?
    });
    for id in ids {
        let from = identities::get(ch.tx(), source.id, id).await?;
        let copy = identities::create(
            ch,
            target,
            &identities::NewIdentity {
                identifier: from.identifier.clone(),
            },
        )
        .await?;
        let traits: Vec<TraitInput> = identities::traits::all(ch.tx(), id)
            .await?
            .into_iter()
            .map(|t| TraitInput {
                trait_key: t.trait_key,
                trait_value: t.trait_value,
            })
            .collect();
        if !traits.is_empty() {
            identities::traits::set(ch, target, &copy, &traits).await?;
        }
        for o in identities::overrides::all(ch.tx(), id).await? {
            let new = NewIdentityOverride {
                feature: o.feature,
                enabled: o.enabled,
                feature_state_value: o.feature_state_value,
            };
            identities::overrides::create(ch, target, &copy, &new).await?;
        }
    }
    Ok(())
}
