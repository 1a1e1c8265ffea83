//! Checks the feature states of a document — environment defaults, segment overrides and
//! identity overrides — registering their features and multivariate options as they appear,
//! and keeping what bucketing hashes (`django_id`, `featurestate_uuid`, the variants' value ids
//! and uuids) exactly as the document has it.

use std::collections::HashMap;

use flagstone_engine::{FeatureState, MultivariateFeatureStateValue};

use super::plan::{at, PlanAllocation, PlanFeature, PlanOption, PlanState};
use crate::organisations::validate_name;
use crate::values::validate_flag_value;
use crate::{Limits, Result, StoreError};

pub(super) struct Builder<'a> {
    pub limits: &'a Limits,
    pub features: Vec<PlanFeature>,
    pub by_id: HashMap<i64, usize>,
    pub names: HashMap<String, i64>,
    pub warnings: Vec<String>,
}

impl Builder<'_> {
    /// The plan index of a state's feature, registering it on first sight.
    pub fn feature(&mut self, path: &str, fs: &FeatureState) -> Result<usize> {
        let f = &fs.feature;
        let name = validate_name("name", &f.name).map_err(at(&format!("{path}.feature")))?;
        if let Some(&i) = self.by_id.get(&f.id) {
            if self.features[i].name != name {
                return Err(StoreError::invalid(
                    format!("{path}.feature.name"),
                    format!(
                        "feature {} is called {:?} elsewhere in the document",
                        f.id, self.features[i].name
                    ),
                ));
            }
            return Ok(i);
        }
        let kind = match f.feature_type.as_str() {
            "STANDARD" => "STANDARD",
            "MULTIVARIATE" => "MULTIVARIATE",
            other => {
                return Err(StoreError::invalid(
                    format!("{path}.feature.type"),
                    format!("unknown feature type {other:?}; expected STANDARD or MULTIVARIATE"),
                ))
            }
        };
        if let Some(other) = self.names.insert(name.to_lowercase(), f.id) {
            return Err(StoreError::conflict(
                format!("{path}.feature.name"),
                format!(
                    "features {other} and {} are both called {name:?} (names ignore case)",
                    f.id
                ),
            ));
        }
        self.features.push(PlanFeature {
            doc_id: f.id,
            name,
            kind,
            server_key_only: false,
            options: Vec::new(),
        });
        self.by_id.insert(f.id, self.features.len() - 1);
        Ok(self.features.len() - 1)
    }

    /// The index of a multivariate value's option within its feature, registering it.
    fn option(
        &mut self,
        path: &str,
        feature: usize,
        mv: &MultivariateFeatureStateValue,
        pct: f64,
    ) -> Result<usize> {
        let o = &mv.multivariate_feature_option;
        validate_flag_value(
            &format!("{path}.multivariate_feature_option.value"),
            &o.value,
            self.limits,
        )?;
        let opts = &mut self.features[feature].options;
        let found = opts.iter().position(|p| match (o.id, p.doc_id) {
            (Some(a), Some(b)) => a == b,
            _ => match (&o.key, &p.key) {
                (Some(a), Some(b)) => a == b,
                _ => p.value == o.value,
            },
        });
        Ok(match found {
            Some(i) => i,
            None => {
                opts.push(PlanOption {
                    doc_id: o.id,
                    value: o.value.clone(),
                    key: o.key.clone(),
                    default_allocation: pct,
                });
                opts.len() - 1
            }
        })
    }

    pub fn state(&mut self, path: &str, fs: &FeatureState) -> Result<PlanState> {
        let feature = self.feature(path, fs)?;
        validate_flag_value(
            &format!("{path}.feature_state_value"),
            &fs.feature_state_value,
            self.limits,
        )?;
        let mut allocations = Vec::new();
        let mut total = 0.0;
        for (k, mv) in fs.multivariate_feature_state_values.iter().enumerate() {
            let mpath = format!("{path}.multivariate_feature_state_values[{k}]");
            let pct = mv.percentage_allocation.as_f64().unwrap_or(f64::NAN);
            if !(0.0..=100.0).contains(&pct) {
                return Err(StoreError::invalid(
                    format!("{mpath}.percentage_allocation"),
                    "must be between 0 and 100",
                ));
            }
            total += pct;
            let option = self.option(&mpath, feature, mv, pct)?;
            if allocations
                .iter()
                .any(|a: &PlanAllocation| a.option == option)
            {
                return Err(StoreError::invalid(
                    format!("{mpath}.multivariate_feature_option"),
                    "the option is listed twice in this feature state",
                ));
            }
            // The ids order the variants (Flagsmith's engine sorts by them); two equal ids
            // leave the order to chance, and no Flagsmith document has them (they are primary
            // keys).
            if let Some(id) = mv
                .id
                .filter(|id| allocations.iter().any(|a| a.value_id == Some(*id)))
            {
                return Err(StoreError::invalid(
                    format!("{mpath}.id"),
                    format!("another value of this feature state has id {id}; the ids order the variants, so each must be different"),
                ));
            }
            allocations.push(PlanAllocation {
                option,
                percentage: pct,
                value_id: mv.id,
                value_uuid: kept_uuid(&format!("{mpath}.mv_fs_value_uuid"), &mv.mv_fs_value_uuid)?,
            });
        }
        if total > 100.0 + 1e-9 {
            return Err(StoreError::invalid(
                format!("{path}.multivariate_feature_state_values"),
                format!("allocations sum to {total}, more than 100"),
            ));
        }
        Ok(PlanState {
            feature,
            hash_id: Some(fs.django_id.unwrap_or(0)),
            uuid: kept_uuid(&format!("{path}.featurestate_uuid"), &fs.featurestate_uuid)?,
            enabled: fs.enabled,
            value: fs.feature_state_value.clone(),
            allocations,
        })
    }
}

/// Longest uuid text kept. Flagsmith's are 36 characters; the text is hashed as it is, so it
/// is stored as it is rather than normalised.
const MAX_UUID_CHARS: usize = 100;

/// A document uuid to keep verbatim: `None` when absent or empty (one is generated).
pub(super) fn kept_uuid(field: &str, uuid: &Option<String>) -> Result<Option<String>> {
    match uuid.as_deref() {
        None | Some("") => Ok(None),
        Some(u) if u.chars().count() <= MAX_UUID_CHARS && !u.chars().any(char::is_control) => {
            Ok(Some(u.to_string()))
        }
        Some(_) => Err(StoreError::invalid(
            field,
            format!("must be at most {MAX_UUID_CHARS} characters without control characters"),
        )),
    }
}
