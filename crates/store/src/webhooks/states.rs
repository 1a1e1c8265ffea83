//! Flag states in the shape Flagsmith's webhooks send (`flagstone_webhooks::FeatureStateData`),
//! built inside the change's transaction from the rows it sees and from the before/after
//! states its audit entries recorded. [`Lookup`] caches what one change looks up many times
//! (a segment edit can touch every environment of a project).

use std::collections::HashMap;

use flagstone_webhooks::event::{
    FeatureData, FeatureSegmentData, MvValueData, Named, OptionData, SegmentData,
};
use flagstone_webhooks::FeatureStateData;
use serde_json::Value;

use crate::values::decode_value;
use crate::{sql, Result, Tx};

/// `(feature, environment, enabled, value, mv_allocations, priority, segment)`.
type OverrideOfFeature = (i64, i64, bool, Option<String>, String, i64, i64);

#[derive(Default)]
pub(super) struct Lookup {
    features: HashMap<i64, Option<FeatureData>>,
    options: HashMap<i64, HashMap<i64, Value>>,
    environments: HashMap<i64, Option<Named>>,
    segments: HashMap<i64, Option<SegmentData>>,
}

#[derive(sqlx::FromRow)]
struct FeatureRow {
    id: i64,
    created_at: i64,
    default_enabled: bool,
    description: Option<String>,
    initial_value: Option<String>,
    name: String,
    kind: String,
    project_id: i64,
    project_name: String,
}

impl Lookup {
    pub async fn feature(&mut self, tx: &mut Tx, id: i64) -> Result<Option<FeatureData>> {
        if let Some(f) = self.features.get(&id) {
            return Ok(f.clone());
        }
        let row: Option<FeatureRow> = sql!(tx, |c| {
            sqlx::query_as(
                "SELECT f.id, f.created_at, f.default_enabled, f.description, f.initial_value, \
                     f.name, f.type AS kind, p.id AS project_id, p.name AS project_name \
                 FROM features f JOIN projects p ON p.id = f.project_id WHERE f.id = $1",
            )
            .bind(id)
            .fetch_optional(c)
            .await?
        });
        let f = match row {
            None => None,
            Some(r) => Some(FeatureData {
                id: r.id,
                created_date: flagstone_webhooks::event::timestamp(r.created_at),
                default_enabled: r.default_enabled,
                description: r.description,
                initial_value: decode_value("features.initial_value", r.initial_value.as_deref())?,
                name: r.name,
                project: Named {
                    id: r.project_id,
                    name: r.project_name,
                },
                kind: r.kind,
            }),
        };
        self.features.insert(id, f.clone());
        Ok(f)
    }

    pub async fn environment(&mut self, tx: &mut Tx, id: i64) -> Result<Option<Named>> {
        if let Some(e) = self.environments.get(&id) {
            return Ok(e.clone());
        }
        let row: Option<(i64, String)> = sql!(tx, |c| {
            sqlx::query_as("SELECT id, name FROM environments WHERE id = $1")
                .bind(id)
                .fetch_optional(c)
                .await?
        });
        let e = row.map(|(id, name)| Named { id, name });
        self.environments.insert(id, e.clone());
        Ok(e)
    }

    pub async fn segment(&mut self, tx: &mut Tx, id: i64) -> Result<Option<SegmentData>> {
        if let Some(s) = self.segments.get(&id) {
            return Ok(s.clone());
        }
        let row: Option<(i64, String, Option<String>)> = sql!(tx, |c| {
            sqlx::query_as("SELECT id, name, description FROM segments WHERE id = $1")
                .bind(id)
                .fetch_optional(c)
                .await?
        });
        let s = row.map(|(id, name, description)| SegmentData {
            id,
            name,
            description,
        });
        self.segments.insert(id, s.clone());
        Ok(s)
    }

    async fn option_values(&mut self, tx: &mut Tx, feature: i64) -> Result<&HashMap<i64, Value>> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.options.entry(feature) {
            let rows: Vec<(i64, Option<String>)> = sql!(tx, |c| {
                sqlx::query_as("SELECT id, value FROM mv_options WHERE feature_id = $1")
                    .bind(feature)
                    .fetch_all(c)
                    .await?
            });
            let mut m = HashMap::new();
            for (id, v) in rows {
                m.insert(id, decode_value("mv_options.value", v.as_deref())?);
            }
            slot.insert(m);
        }
        Ok(&self.options[&feature])
    }

    /// A state from the JSON of a `FeatureState`, `SegmentOverride` or `IdentityOverride` (as
    /// the audit log records them): `None` when its feature, environment or identity no longer
    /// exists.
    pub async fn state_of_json(
        &mut self,
        tx: &mut Tx,
        v: &Value,
    ) -> Result<Option<FeatureStateData>> {
        let (Some(feature_id), Some(env_id)) = (
            v.get("feature").and_then(Value::as_i64),
            v.get("environment").and_then(Value::as_i64),
        ) else {
            return Ok(None);
        };
        let (Some(feature), Some(environment)) = (
            self.feature(tx, feature_id).await?,
            self.environment(tx, env_id).await?,
        ) else {
            return Ok(None);
        };
        // An identity override carries its identity, named as Flagsmith does (id and
        // identifier, both or neither).
        let identity = match v.get("identity").and_then(Value::as_i64) {
            None => None,
            Some(id) => {
                let identifier: Option<String> = sql!(&mut *tx, |c| {
                    sqlx::query_scalar("SELECT identifier FROM identities WHERE id = $1")
                        .bind(id)
                        .fetch_optional(c)
                        .await?
                });
                match identifier {
                    Some(identifier) => Some((id, identifier)),
                    None => return Ok(None),
                }
            }
        };
        let feature_segment = match v.get("segment").and_then(Value::as_i64) {
            None => None,
            Some(seg) => self
                .segment(tx, seg)
                .await?
                .map(|segment| FeatureSegmentData {
                    segment,
                    priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
                }),
        };
        let options = self.option_values(tx, feature_id).await?;
        let mv = v
            .get("multivariate_feature_state_values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        let id = m.get("multivariate_feature_option")?.as_i64()?;
                        Some(MvValueData {
                            id,
                            multivariate_feature_option: OptionData {
                                id,
                                value: options.get(&id).cloned().unwrap_or(Value::Null),
                            },
                            percentage_allocation: m
                                .get("percentage_allocation")
                                .and_then(Value::as_f64)
                                .unwrap_or(0.0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(FeatureStateData {
            feature,
            environment,
            identity: identity.as_ref().map(|(id, _)| *id),
            identity_identifier: identity.map(|(_, identifier)| identifier),
            feature_segment,
            enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(false),
            feature_state_value: v.get("feature_state_value").cloned().unwrap_or(Value::Null),
            multivariate_feature_state_values: mv,
        }))
    }

    /// The environment default of `feature` in every environment that has one, as it stands
    /// in this transaction.
    pub async fn defaults_of_feature(
        &mut self,
        tx: &mut Tx,
        feature: i64,
    ) -> Result<Vec<FeatureStateData>> {
        let rows: Vec<(i64, i64, bool, Option<String>, String)> = sql!(tx, |c| {
            sqlx::query_as(
                "SELECT feature_id, environment_id, enabled, value, mv_allocations \
                 FROM feature_states WHERE feature_id = $1 ORDER BY environment_id",
            )
            .bind(feature)
            .fetch_all(c)
            .await?
        });
        self.rows_to_states(tx, rows, None).await
    }

    /// Every override of `segment` (each environment, each feature), as it stands.
    pub async fn overrides_of_segment(
        &mut self,
        tx: &mut Tx,
        segment: i64,
    ) -> Result<Vec<FeatureStateData>> {
        let rows: Vec<(i64, i64, bool, Option<String>, String, i64)> = sql!(tx, |c| {
            sqlx::query_as(
                "SELECT feature_id, environment_id, enabled, value, mv_allocations, priority \
                 FROM segment_overrides WHERE segment_id = $1 ORDER BY environment_id, feature_id",
            )
            .bind(segment)
            .fetch_all(c)
            .await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for (f, e, enabled, value, mv, priority) in rows {
            let mut states = self
                .rows_to_states(
                    tx,
                    vec![(f, e, enabled, value, mv)],
                    Some((segment, priority)),
                )
                .await?;
            out.append(&mut states);
        }
        Ok(out)
    }

    /// Every state of `feature` (defaults and segment overrides), as it stands: what a
    /// deletion of the feature takes away.
    pub async fn all_of_feature(
        &mut self,
        tx: &mut Tx,
        feature: i64,
    ) -> Result<Vec<FeatureStateData>> {
        let mut out = self.defaults_of_feature(tx, feature).await?;
        let rows: Vec<OverrideOfFeature> = sql!(tx, |c| {
            sqlx::query_as(
                "SELECT feature_id, environment_id, enabled, value, mv_allocations, priority, \
                     segment_id FROM segment_overrides WHERE feature_id = $1 \
                 ORDER BY environment_id, priority",
            )
            .bind(feature)
            .fetch_all(c)
            .await?
        });
        for (f, e, enabled, value, mv, priority, seg) in rows {
            let mut s = self
                .rows_to_states(tx, vec![(f, e, enabled, value, mv)], Some((seg, priority)))
                .await?;
            out.append(&mut s);
        }
        Ok(out)
    }

    async fn rows_to_states(
        &mut self,
        tx: &mut Tx,
        rows: Vec<(i64, i64, bool, Option<String>, String)>,
        segment: Option<(i64, i64)>,
    ) -> Result<Vec<FeatureStateData>> {
        let mut out = Vec::with_capacity(rows.len());
        for (feature, environment, enabled, value, mv) in rows {
            let mut v = serde_json::json!({
                "feature": feature,
                "environment": environment,
                "enabled": enabled,
                "feature_state_value": decode_value("feature_states.value", value.as_deref())?,
                "multivariate_feature_state_values":
                    serde_json::from_str::<Value>(&mv).unwrap_or(Value::Null),
            });
            if let Some((seg, priority)) = segment {
                v["segment"] = seg.into();
                v["priority"] = priority.into();
            }
            if let Some(s) = self.state_of_json(tx, &v).await? {
                out.push(s);
            }
        }
        Ok(out)
    }
}
