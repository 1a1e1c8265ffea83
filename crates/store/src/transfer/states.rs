//! Checks the feature states of a document — environment defaults, segment overrides and
//! identity overrides — registering their features and multivariate options as they appear, and
//! notes where Flagstone cannot reproduce Flagsmith's bucketing ids (as warnings).

use std::collections::HashMap;

use flagstone_engine::{FeatureState, MultivariateFeatureStateValue};

use super::plan::{at, PlanFeature, PlanOption, PlanState};
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
            if allocations.iter().any(|(o, _)| *o == option) {
                return Err(StoreError::invalid(
                    format!("{mpath}.multivariate_feature_option"),
                    "the option is listed twice in this feature state",
                ));
            }
            allocations.push((option, pct));
        }
        if total > 100.0 + 1e-9 {
            return Err(StoreError::invalid(
                format!("{path}.multivariate_feature_state_values"),
                format!("allocations sum to {total}, more than 100"),
            ));
        }
        // Variants are walked in value-id order; Flagstone walks them in option-id order.
        // They agree when value ids and option ids sort the options alike.
        if !fs.multivariate_feature_state_values.is_empty() {
            let name = &self.features[feature].name;
            let keyed = fs.django_id.is_some_and(|d| d != 0);
            if !keyed {
                self.warnings.push(format!(
                    "{path} (feature {name:?}): django_id is {}, so Flagsmith bucketed on the \
                     featurestate_uuid; Flagstone buckets on its row id, so variant assignment \
                     of this feature changes",
                    fs.django_id.map_or("null".to_string(), |d| d.to_string())
                ));
            }
            if !variant_order_kept(&fs.multivariate_feature_state_values) {
                self.warnings.push(format!(
                    "{path} (feature {name:?}): the variants' value ids order them differently \
                     from their option ids; variant assignment of this feature changes"
                ));
            }
        }
        Ok(PlanState {
            feature,
            django_id: fs.django_id.filter(|d| *d > 0),
            uuid: fs.featurestate_uuid.clone(),
            enabled: fs.enabled,
            value: fs.feature_state_value.clone(),
            allocations,
        })
    }
}

/// True when sorting the variants by value id (Flagsmith) and by option id (Flagstone's export)
/// gives the same sequence.
fn variant_order_kept(mvs: &[MultivariateFeatureStateValue]) -> bool {
    let mut by_value: Vec<_> = mvs.iter().collect();
    by_value.sort_by_key(|m| m.id.unwrap_or(i64::MAX));
    let options: Vec<Option<i64>> = by_value
        .iter()
        .map(|m| m.multivariate_feature_option.id)
        .collect();
    mvs.iter().all(|m| m.id.is_some())
        && options.iter().all(Option::is_some)
        && options.windows(2).all(|w| w[0] < w[1])
}
