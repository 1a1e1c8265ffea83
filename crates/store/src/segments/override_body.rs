//! A new segment override as clients send it. Flagstone's shape names the segment and the
//! priority at the top level; Flagsmith's dashboard sends them in a `feature_segment` object
//! (`CreateSegmentOverrideFeatureSegmentSerializer`: `segment`, `priority`, and read-only `id`
//! and `uuid`). Either is accepted, not both. In Flagstone a segment override is one object
//! (Flagsmith's feature segment and its feature state together), so it answers as both: its
//! `feature_segment` is `{id, uuid, segment, priority}` with the override's own id and uuid.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::overrides::NewSegmentOverride;
use crate::values::MvAllocation;

/// Flagsmith's `feature_segment` object inside a segment-override body.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FeatureSegmentRef {
    pub segment: i64,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub uuid: Option<serde::de::IgnoredAny>,
}

/// Every field a new override's body may carry.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SegmentOverrideBody {
    /// Flagstone's shape: the segment id.
    #[serde(default)]
    pub segment: Option<i64>,
    /// Flagsmith's shape: `{"segment": <id>, "priority": <n>}`.
    #[serde(default)]
    pub feature_segment: Option<FeatureSegmentRef>,
    #[serde(default)]
    pub enabled: bool,
    /// A plain value, or Flagsmith's `{"type": …, "string_value": …}` object.
    #[serde(default, deserialize_with = "crate::values::typed_value")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub feature_state_value: Value,
    /// Position among the feature's overrides in this environment; after the last when absent.
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub multivariate_feature_state_values: Vec<MvAllocation>,
    /// Flagsmith clients repeat these; they must match the path (checked by the caller).
    #[serde(default)]
    pub feature: Option<i64>,
    #[serde(default)]
    pub environment: Option<i64>,
}

impl TryFrom<SegmentOverrideBody> for NewSegmentOverride {
    type Error = String;
    fn try_from(b: SegmentOverrideBody) -> Result<NewSegmentOverride, String> {
        let (segment, priority) = match (b.segment, b.feature_segment) {
            (Some(_), Some(_)) => {
                return Err("send either `segment` or `feature_segment`, not both".into())
            }
            (Some(s), None) => (s, b.priority),
            (None, Some(fs)) if b.priority.is_none() => (fs.segment, fs.priority),
            (None, Some(_)) => {
                return Err("with `feature_segment`, give the priority inside it".into())
            }
            (None, None) => return Err("missing field `segment` (or `feature_segment`)".into()),
        };
        Ok(NewSegmentOverride {
            segment,
            enabled: b.enabled,
            feature_state_value: b.feature_state_value,
            priority,
            multivariate_feature_state_values: b.multivariate_feature_state_values,
            feature: b.feature,
            environment: b.environment,
        })
    }
}

/// The override as Flagsmith's feature segment (`FeatureSegmentCreateSerializer`,
/// `FeatureSegmentListSerializer`, what the Terraform client reads back).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureSegment {
    pub id: i64,
    pub uuid: String,
    pub feature: i64,
    pub segment: i64,
    pub environment: i64,
    pub priority: i64,
    pub segment_name: String,
    /// Always false: Flagstone's segments belong to the project, not to one feature.
    pub is_feature_specific: bool,
}
