//! The environment document: the JSON of Flagsmith's `GET /api/v1/environment-document/`,
//! which server-side SDKs and edge proxies evaluate locally.
//!
//! Field names are Flagsmith's own (`property_`, `django_id`, `featurestate_uuid`, ...).
//! Fields Flagsmith emits as `null` are `Option`s serialized as `null`; fields this model
//! does not name are kept in `extra` so a document round-trips unchanged.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

use crate::context::{Operator, RuleType};
use crate::serde_util::null_as_default;

/// A whole environment as served to SDKs for local evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentDocument {
    #[serde(default)]
    pub id: i64,
    /// The client-side key; becomes `environment.key` of the evaluation context.
    pub api_key: String,
    #[serde(default)]
    pub name: String,
    pub project: Project,
    /// Environment defaults, one per feature.
    #[serde(default, deserialize_with = "null_as_default")]
    pub feature_states: Vec<FeatureState>,
    /// Per-identity overrides (only when `use_identity_overrides_in_local_eval`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub identity_overrides: Vec<IdentityOverride>,
    #[serde(default = "default_true")]
    pub allow_client_traits: bool,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub hide_sensitive_data: bool,
    /// Environment-level setting; `None` means use the project's.
    #[serde(default)]
    pub hide_disabled_flags: Option<bool>,
    #[serde(default)]
    pub use_identity_composite_key_for_hashing: bool,
    #[serde(default)]
    pub use_identity_overrides_in_local_eval: bool,
    /// Fields not modelled above (legacy `segment_overrides`, integration configs, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_true() -> bool {
    true
}

/// The project owning the environment, with its segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub organisation: Option<Organisation>,
    #[serde(default)]
    pub hide_disabled_flags: bool,
    #[serde(default)]
    pub enable_realtime_updates: bool,
    /// Features hidden from client-side keys.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server_key_only_feature_ids: Vec<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub segments: Vec<Segment>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The organisation owning the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organisation {
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub feature_analytics: bool,
    #[serde(default)]
    pub stop_serving_flags: bool,
    #[serde(default)]
    pub persist_trait_data: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A segment with its rules and this environment's overrides for its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<DocumentSegmentRule>,
    /// Segment overrides; each carries a `feature_segment` with its priority.
    #[serde(default, deserialize_with = "null_as_default")]
    pub feature_states: Vec<FeatureState>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A rule as stored in the document (same semantics as the context's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentSegmentRule {
    #[serde(rename = "type")]
    pub rule_type: RuleType,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<DocumentSegmentRule>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub conditions: Vec<DocumentCondition>,
}

/// A condition as stored in the document: note the trailing underscore of `property_`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentCondition {
    pub operator: Operator,
    #[serde(default)]
    pub property_: Option<String>,
    /// Always text in Flagsmith (the API applies `str()`); scalars are read as their
    /// Python `str()` so slightly off documents still load.
    #[serde(default, deserialize_with = "scalar_as_string")]
    pub value: Option<String>,
}

fn scalar_as_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(crate::pyfmt::value_str(&other)),
    })
}

/// A feature's state: environment default, segment override or identity override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureState {
    pub feature: Feature,
    pub enabled: bool,
    /// Stable seed for multivariate bucketing (Core sets it to the state's hashing seed).
    #[serde(default)]
    pub django_id: Option<i64>,
    #[serde(default)]
    pub featurestate_uuid: Option<String>,
    /// The (control) value: string, number, bool or null.
    #[serde(default)]
    pub feature_state_value: Value,
    /// Present on segment overrides.
    #[serde(default)]
    pub feature_segment: Option<FeatureSegment>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub multivariate_feature_state_values: Vec<MultivariateFeatureStateValue>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The feature a state belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub id: i64,
    pub name: String,
    /// `"STANDARD"` or `"MULTIVARIATE"`.
    #[serde(rename = "type", default = "default_feature_type")]
    pub feature_type: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_feature_type() -> String {
    "STANDARD".to_owned()
}

/// Links a segment override to its segment; lower priority number wins (0 is highest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSegment {
    #[serde(default)]
    pub priority: Option<Number>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One multivariate option's allocation within a feature state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultivariateFeatureStateValue {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub mv_fs_value_uuid: Option<String>,
    /// Percentage 0..=100; kept as a JSON number for the `SPLIT; weight=` reason.
    pub percentage_allocation: Number,
    pub multivariate_feature_option: MultivariateFeatureOption,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A multivariate option: its value and optional stable key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultivariateFeatureOption {
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The overrides of one identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityOverride {
    pub identifier: String,
    #[serde(default)]
    pub environment_api_key: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub identity_uuid: Option<String>,
    #[serde(default)]
    pub django_id: Option<i64>,
    #[serde(default)]
    pub composite_key: Option<String>,
    #[serde(default)]
    pub dashboard_alias: Option<String>,
    /// Not shipped in documents; always empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub identity_traits: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub identity_features: Vec<FeatureState>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
