//! The evaluation context: the engine's input, exactly Flagsmith's `EvaluationContext`
//! JSON contract (`sdk/evaluation-context.json`).
//!
//! Maps keep insertion order (segment order decides ties), numbers keep int vs float
//! (`serde_json::Value`), unknown fields are ignored and `null` collections read as empty.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::serde_util::{null_as_default, priority, required_priority};

/// Everything needed to evaluate flags: environment, optional identity, segments, features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationContext {
    pub environment: EnvironmentContext,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityContext>,
    /// Segments in evaluation order, keyed by any unique string.
    #[serde(default, deserialize_with = "null_as_default")]
    pub segments: IndexMap<String, SegmentContext>,
    /// Features in result order, keyed by feature name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub features: IndexMap<String, FeatureContext>,
}

/// The environment being evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentContext {
    /// The client-side environment key; prefix of the default identity key.
    pub key: String,
    pub name: String,
}

/// The identity being evaluated. Also the input type of
/// [`CompiledEnvironment::evaluate`](crate::CompiledEnvironment::evaluate).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdentityContext {
    pub identifier: String,
    /// Hashing key; when absent or empty the engine uses `"<environment.key>_<identifier>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Trait values: string, number, bool or null.
    #[serde(default, deserialize_with = "null_as_default")]
    pub traits: IndexMap<String, Value>,
}

impl IdentityContext {
    /// An identity with no explicit key and the given traits.
    pub fn new(identifier: impl Into<String>, traits: IndexMap<String, Value>) -> Self {
        IdentityContext {
            identifier: identifier.into(),
            key: None,
            traits,
        }
    }
}

/// A segment: rules that decide membership, and feature overrides for members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentContext {
    /// Used as the first id of `PERCENTAGE_SPLIT` hashing.
    pub key: String,
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<SegmentRule>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub overrides: Vec<FeatureContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// `ALL`, `ANY` or `NONE` of the conditions, and of the sub-rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRule {
    #[serde(rename = "type")]
    pub rule_type: RuleType,
    #[serde(default, deserialize_with = "null_as_default")]
    pub conditions: Vec<Condition>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<SegmentRule>,
}

/// The quantifier of a rule. An unknown type never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuleType {
    #[serde(rename = "ALL")]
    All,
    #[serde(rename = "ANY")]
    Any,
    #[serde(rename = "NONE")]
    None,
    #[serde(other, rename = "UNKNOWN")]
    Unknown,
}

/// One test of the context: `property` `operator` `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// A trait name, a JSONPath into the context (`$.identity.identifier`), or empty for a
    /// legacy `PERCENTAGE_SPLIT` on the identity key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub property: String,
    pub operator: Operator,
    /// A string; for `IN` also a list of strings.
    #[serde(default)]
    pub value: Value,
}

/// The 14 Flagsmith condition operators. Anything else is kept verbatim and never matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operator {
    Equal,
    NotEqual,
    GreaterThan,
    GreaterThanInclusive,
    LessThan,
    LessThanInclusive,
    Contains,
    NotContains,
    Regex,
    PercentageSplit,
    Modulo,
    IsSet,
    IsNotSet,
    In,
    Unknown(String),
}

const OPERATOR_NAMES: [(&str, Operator); 14] = [
    ("EQUAL", Operator::Equal),
    ("NOT_EQUAL", Operator::NotEqual),
    ("GREATER_THAN", Operator::GreaterThan),
    ("GREATER_THAN_INCLUSIVE", Operator::GreaterThanInclusive),
    ("LESS_THAN", Operator::LessThan),
    ("LESS_THAN_INCLUSIVE", Operator::LessThanInclusive),
    ("CONTAINS", Operator::Contains),
    ("NOT_CONTAINS", Operator::NotContains),
    ("REGEX", Operator::Regex),
    ("PERCENTAGE_SPLIT", Operator::PercentageSplit),
    ("MODULO", Operator::Modulo),
    ("IS_SET", Operator::IsSet),
    ("IS_NOT_SET", Operator::IsNotSet),
    ("IN", Operator::In),
];

impl Operator {
    /// The wire name, e.g. `"GREATER_THAN_INCLUSIVE"`.
    pub fn as_str(&self) -> &str {
        match self {
            Operator::Unknown(s) => s,
            known => OPERATOR_NAMES
                .iter()
                .find(|(_, op)| op == known)
                .map_or("", |(name, _)| name),
        }
    }

    /// Parses a wire name; unknown names are kept as [`Operator::Unknown`].
    pub fn parse(name: &str) -> Operator {
        OPERATOR_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| Operator::Unknown(name.to_owned()), |(_, op)| op.clone())
    }
}

impl Serialize for Operator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match v {
            Value::String(s) => Operator::parse(&s),
            other => Operator::Unknown(other.to_string()),
        })
    }
}

/// A feature's value for the environment, or a segment/identity override of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContext {
    /// Seed for multivariate bucketing.
    pub key: String,
    pub name: String,
    pub enabled: bool,
    #[serde(default)]
    pub value: Value,
    #[serde(default, deserialize_with = "null_as_default")]
    pub variants: Vec<FeatureValue>,
    /// Lower wins among segment overrides; absent means +infinity.
    #[serde(default, with = "priority", skip_serializing_if = "Option::is_none")]
    pub priority: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// One multivariate option with its percentage weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Value,
    /// Kept as a JSON number: the `SPLIT; weight=` reason prints `30` and `30.0` differently.
    pub weight: Number,
    /// Variants are tried in ascending priority (stable).
    #[serde(with = "required_priority")]
    pub priority: f64,
}
