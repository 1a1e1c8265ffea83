//! Per-project limits that bound every environment document. Enforced when a change is written,
//! so an oversized document is refused at the API instead of choking the task processor (the
//! July 2023 incident). Projects store only the limits they override; the rest are defaults.

use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};

/// The name of a limit, as reported in `{"error": "limit_exceeded", "limit": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitName {
    MaxFeatures,
    MaxSegments,
    MaxSegmentOverrides,
    MaxConditionsPerSegment,
    MaxRuleDepth,
    MaxFeatureValueBytes,
    MaxConditionValueBytes,
    MaxInConditionValueBytes,
    MaxTraitValueChars,
    MaxTraitsPerIdentity,
    MaxTraitsPerRequest,
    MaxIdentityOverrides,
    MaxDocumentBytes,
}

impl LimitName {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitName::MaxFeatures => "max_features",
            LimitName::MaxSegments => "max_segments",
            LimitName::MaxSegmentOverrides => "max_segment_overrides",
            LimitName::MaxConditionsPerSegment => "max_conditions_per_segment",
            LimitName::MaxRuleDepth => "max_rule_depth",
            LimitName::MaxFeatureValueBytes => "max_feature_value_bytes",
            LimitName::MaxConditionValueBytes => "max_condition_value_bytes",
            LimitName::MaxInConditionValueBytes => "max_in_condition_value_bytes",
            LimitName::MaxTraitValueChars => "max_trait_value_chars",
            LimitName::MaxTraitsPerIdentity => "max_traits_per_identity",
            LimitName::MaxTraitsPerRequest => "max_traits_per_request",
            LimitName::MaxIdentityOverrides => "max_identity_overrides",
            LimitName::MaxDocumentBytes => "max_document_bytes",
        }
    }
}

impl std::fmt::Display for LimitName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The effective limits of a project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Features per project.
    pub max_features: i64,
    /// Segments per project.
    pub max_segments: i64,
    /// Segment overrides per environment.
    pub max_segment_overrides: i64,
    /// Conditions in one segment, counted across all its rules.
    pub max_conditions_per_segment: i64,
    /// Nesting depth of segment rules (a top-level rule is depth 1).
    pub max_rule_depth: i64,
    /// Bytes of a feature or override value.
    pub max_feature_value_bytes: i64,
    /// Bytes of a condition value (other than IN).
    pub max_condition_value_bytes: i64,
    /// Bytes of an IN condition's value list.
    pub max_in_condition_value_bytes: i64,
    /// Characters of a trait value.
    pub max_trait_value_chars: i64,
    /// Traits one identity may hold. An identity already past a lowered limit may still change
    /// or delete the traits it has, but not add more.
    pub max_traits_per_identity: i64,
    /// Traits one request may send (SDK `POST /identities/`, the admin API's trait writes).
    pub max_traits_per_request: i64,
    /// Identity overrides per environment (they live outside the main document).
    pub max_identity_overrides: i64,
    /// Bytes of a built environment document; a build past it is parked.
    pub max_document_bytes: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_features: 5_000,
            max_segments: 5_000,
            max_segment_overrides: 50_000,
            max_conditions_per_segment: 100,
            max_rule_depth: 3,
            max_feature_value_bytes: 20_000,
            max_condition_value_bytes: 1_000,
            max_in_condition_value_bytes: 10_000,
            max_trait_value_chars: 2_000,
            max_traits_per_identity: 1_000,
            max_traits_per_request: 200,
            max_identity_overrides: 1_000_000,
            max_document_bytes: 32 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Reads the stored overrides of a project on top of the defaults.
    pub(crate) fn from_stored(json: &str) -> Result<Limits> {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
            what: "projects.limits",
            detail: e.to_string(),
        })
    }

    /// Applies a partial update (`{"max_features": 10}`) and checks every value is positive.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Limits> {
        let mut current = serde_json::to_value(self).expect("limits serialize");
        let Some(patch) = patch.as_object() else {
            return Err(StoreError::invalid("limits", "must be an object"));
        };
        for (k, v) in patch {
            let slot = current
                .get_mut(k)
                .ok_or_else(|| StoreError::invalid(format!("limits.{k}"), "unknown limit"))?;
            match v.as_i64() {
                Some(n) if n > 0 => *slot = v.clone(),
                _ => {
                    return Err(StoreError::invalid(
                        format!("limits.{k}"),
                        "must be a positive integer",
                    ))
                }
            }
        }
        serde_json::from_value(current).map_err(|e| StoreError::invalid("limits", e.to_string()))
    }

    /// Fails with `LimitExceeded` when `value > max`.
    pub fn check(
        name: LimitName,
        max: i64,
        value: i64,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        if value > max {
            Err(StoreError::LimitExceeded {
                limit: name,
                max,
                detail: what(),
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_rejects_unknown_and_non_positive() {
        let l = Limits::default();
        assert_eq!(
            l.merged(&serde_json::json!({"max_features": 3}))
                .unwrap()
                .max_features,
            3
        );
        assert!(l.merged(&serde_json::json!({"nope": 3})).is_err());
        assert!(l.merged(&serde_json::json!({"max_features": 0})).is_err());
        assert!(l.merged(&serde_json::json!({"max_features": "x"})).is_err());
    }

    #[test]
    fn stored_partial_fills_defaults() {
        let l = Limits::from_stored(r#"{"max_segments": 7}"#).unwrap();
        assert_eq!(l.max_segments, 7);
        assert_eq!(l.max_features, Limits::default().max_features);
    }
}
