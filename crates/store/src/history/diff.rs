//! What changed between two configurations of a feature in an environment, structured for
//! people and for the permission check of a restore: the default state's fields, and the
//! overrides added, removed and changed (matched by segment — a feature has at most one
//! override per segment in an environment). Pure.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::config::{FeatureConfig, OverrideConfig};

/// One field that differs, with its value before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    /// `enabled`, `feature_state_value`, `multivariate_feature_state_values` or (of an
    /// override) `priority`.
    pub field: &'static str,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub before: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub after: Value,
}

/// An override present before and after, with the fields that differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverrideChange {
    pub segment: i64,
    pub fields_changed: Vec<FieldChange>,
}

/// The difference between two configurations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigDiff {
    /// Fields of the environment default that differ.
    pub fields_changed: Vec<FieldChange>,
    pub overrides_added: Vec<OverrideConfig>,
    pub overrides_removed: Vec<OverrideConfig>,
    pub overrides_changed: Vec<OverrideChange>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.fields_changed.is_empty() && !self.touches_overrides()
    }

    /// Whether the environment default differs (applying it needs `UPDATE_FEATURE_STATE`).
    pub fn touches_default(&self) -> bool {
        !self.fields_changed.is_empty()
    }

    /// Whether any override differs (applying it needs `MANAGE_SEGMENT_OVERRIDES`).
    pub fn touches_overrides(&self) -> bool {
        !(self.overrides_added.is_empty()
            && self.overrides_removed.is_empty()
            && self.overrides_changed.is_empty())
    }
}

fn state_fields(
    out: &mut Vec<FieldChange>,
    (e0, v0, m0): (bool, &Value, &[crate::values::MvAllocation]),
    (e1, v1, m1): (bool, &Value, &[crate::values::MvAllocation]),
) {
    if e0 != e1 {
        out.push(FieldChange {
            field: "enabled",
            before: json!(e0),
            after: json!(e1),
        });
    }
    if v0 != v1 {
        out.push(FieldChange {
            field: "feature_state_value",
            before: v0.clone(),
            after: v1.clone(),
        });
    }
    if m0 != m1 {
        out.push(FieldChange {
            field: "multivariate_feature_state_values",
            before: json!(m0),
            after: json!(m1),
        });
    }
}

/// What turns `before` into `after`.
pub fn diff(before: &FeatureConfig, after: &FeatureConfig) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    state_fields(
        &mut d.fields_changed,
        (
            before.enabled,
            &before.feature_state_value,
            &before.multivariate_feature_state_values,
        ),
        (
            after.enabled,
            &after.feature_state_value,
            &after.multivariate_feature_state_values,
        ),
    );
    let old: HashMap<i64, &OverrideConfig> = before
        .segment_overrides
        .iter()
        .map(|o| (o.segment, o))
        .collect();
    let new: HashMap<i64, &OverrideConfig> = after
        .segment_overrides
        .iter()
        .map(|o| (o.segment, o))
        .collect();
    for o in &after.segment_overrides {
        let Some(b) = old.get(&o.segment) else {
            d.overrides_added.push(o.clone());
            continue;
        };
        let mut fields = Vec::new();
        if b.priority != o.priority {
            fields.push(FieldChange {
                field: "priority",
                before: json!(b.priority),
                after: json!(o.priority),
            });
        }
        state_fields(
            &mut fields,
            (
                b.enabled,
                &b.feature_state_value,
                &b.multivariate_feature_state_values,
            ),
            (
                o.enabled,
                &o.feature_state_value,
                &o.multivariate_feature_state_values,
            ),
        );
        if !fields.is_empty() {
            d.overrides_changed.push(OverrideChange {
                segment: o.segment,
                fields_changed: fields,
            });
        }
    }
    d.overrides_removed = before
        .segment_overrides
        .iter()
        .filter(|o| !new.contains_key(&o.segment))
        .cloned()
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(segment: i64, priority: i64, value: &str) -> OverrideConfig {
        OverrideConfig {
            segment,
            priority,
            enabled: true,
            feature_state_value: json!(value),
            multivariate_feature_state_values: vec![],
        }
    }

    fn config(enabled: bool, overrides: Vec<OverrideConfig>) -> FeatureConfig {
        FeatureConfig {
            enabled,
            feature_state_value: json!("v"),
            multivariate_feature_state_values: vec![],
            segment_overrides: overrides,
        }
    }

    #[test]
    fn names_each_field_and_override_that_differs() {
        let a = config(false, vec![o(1, 0, "x"), o(2, 1, "y"), o(3, 2, "z")]);
        let b = config(true, vec![o(2, 0, "y"), o(1, 1, "x2"), o(4, 2, "w")]);
        let d = diff(&a, &b);
        assert_eq!(
            d.fields_changed,
            vec![FieldChange {
                field: "enabled",
                before: json!(false),
                after: json!(true)
            }]
        );
        assert_eq!(d.overrides_added, vec![o(4, 2, "w")]);
        assert_eq!(d.overrides_removed, vec![o(3, 2, "z")]);
        let changed: Vec<(i64, Vec<&str>)> = d
            .overrides_changed
            .iter()
            .map(|c| {
                (
                    c.segment,
                    c.fields_changed.iter().map(|f| f.field).collect(),
                )
            })
            .collect();
        assert_eq!(
            changed,
            vec![
                (2, vec!["priority"]),
                (1, vec!["priority", "feature_state_value"])
            ]
        );
        assert!(d.touches_default() && d.touches_overrides());
        assert!(diff(&a, &a).is_empty());
        let only_default = diff(&a, &config(true, a.segment_overrides.clone()));
        assert!(only_default.touches_default() && !only_default.touches_overrides());
    }
}
