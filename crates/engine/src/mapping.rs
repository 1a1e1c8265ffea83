//! Maps an [`EnvironmentDocument`] (plus an optional identity) to an
//! [`EvaluationContext`], the way Flagsmith's SDKs and Edge Proxy do
//! (`flagsmith/mappers.py`). Identity overrides become synthetic segments named
//! `identity_overrides` whose overrides have priority -infinity, so they beat every
//! segment override. Entry points: [`document_to_context`], [`identity_context`].

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use crate::context::{
    Condition, EnvironmentContext, EvaluationContext, FeatureContext, FeatureValue,
    IdentityContext, Operator, RuleType, SegmentContext, SegmentRule,
};
use crate::document::{DocumentSegmentRule, EnvironmentDocument, FeatureState};
use crate::pyfmt;

/// Name of the synthetic segments that carry identity overrides (also in reasons).
pub const IDENTITY_OVERRIDES_SEGMENT_NAME: &str = "identity_overrides";

/// Builds the evaluation context for a document, without an identity.
pub fn document_to_context(doc: &EnvironmentDocument) -> EvaluationContext {
    let mut features = IndexMap::with_capacity(doc.feature_states.len());
    for fs in &doc.feature_states {
        let fc = feature_state_to_context(fs);
        features.insert(fc.name.clone(), fc);
    }

    let mut segments = IndexMap::with_capacity(doc.project.segments.len());
    for segment in &doc.project.segments {
        let key = segment.id.to_string();
        let mut metadata = Map::new();
        metadata.insert("id".into(), json!(segment.id));
        metadata.insert("source".into(), json!("api"));
        segments.insert(
            key.clone(),
            SegmentContext {
                key,
                name: segment.name.clone(),
                rules: segment.rules.iter().map(map_rule).collect(),
                overrides: segment
                    .feature_states
                    .iter()
                    .map(feature_state_to_context)
                    .collect(),
                metadata: Some(metadata),
            },
        );
    }
    for (i, segment) in identity_override_segments(doc).into_iter().enumerate() {
        // Any unique key works; digits-only keys belong to real segments.
        segments.insert(format!("identity_overrides_{i}"), segment);
    }

    EvaluationContext {
        environment: EnvironmentContext {
            key: doc.api_key.clone(),
            name: doc.name.clone(),
        },
        identity: None,
        segments,
        features,
    }
}

/// The identity part of a context as SDKs send it: no `key`, so the engine derives the
/// composite key `"<environment key>_<identifier>"`.
pub fn identity_context(identifier: &str, traits: IndexMap<String, Value>) -> IdentityContext {
    IdentityContext::new(identifier, traits)
}

/// Maps one document feature state to a feature context (`key` from `django_id`, else
/// `featurestate_uuid`; `metadata.id` is the feature id).
pub fn feature_state_to_context(fs: &FeatureState) -> FeatureContext {
    let key = match fs.django_id {
        Some(id) if id != 0 => id.to_string(),
        _ => fs.featurestate_uuid.clone().unwrap_or_default(),
    };
    let variants = fs
        .multivariate_feature_state_values
        .iter()
        .map(|mv| FeatureValue {
            key: mv.multivariate_feature_option.key.clone(),
            value: mv.multivariate_feature_option.value.clone(),
            weight: mv.percentage_allocation.clone(),
            priority: match mv.id {
                Some(id) => id as f64,
                // Python uses the UUID's 128-bit integer; f64 keeps its order except for
                // UUIDs equal in their top 53 bits.
                None => mv
                    .mv_fs_value_uuid
                    .as_deref()
                    .and_then(uuid_to_u128)
                    .map_or(f64::INFINITY, |u| u as f64),
            },
        })
        .collect();
    let mut metadata = Map::new();
    metadata.insert("id".into(), json!(fs.feature.id));
    FeatureContext {
        key,
        name: fs.feature.name.clone(),
        enabled: fs.enabled,
        value: fs.feature_state_value.clone(),
        variants,
        priority: fs
            .feature_segment
            .as_ref()
            .and_then(|seg| seg.priority.as_ref())
            .and_then(|p| p.as_f64()),
        metadata: Some(metadata),
    }
}

fn uuid_to_u128(s: &str) -> Option<u128> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

fn map_rule(rule: &DocumentSegmentRule) -> SegmentRule {
    SegmentRule {
        rule_type: rule.rule_type,
        conditions: rule
            .conditions
            .iter()
            .map(|c| Condition {
                property: c.property_.clone().unwrap_or_default(),
                operator: c.operator.clone(),
                value: c.value.clone().map_or(Value::Null, Value::String),
            })
            .collect(),
        rules: rule.rules.iter().map(map_rule).collect(),
    }
}

/// Groups identities with identical override sets into one synthetic segment each, in
/// order of first appearance, as the Python SDK does.
fn identity_override_segments(doc: &EnvironmentDocument) -> Vec<SegmentContext> {
    struct Group<'d> {
        overrides: Vec<&'d FeatureState>,
        identifiers: Vec<Value>,
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for io in &doc.identity_overrides {
        if io.identity_features.is_empty() {
            continue;
        }
        let mut sorted: Vec<&FeatureState> = io.identity_features.iter().collect();
        sorted.sort_by(|a, b| a.feature.name.cmp(&b.feature.name));
        let key = group_key(&sorted);
        let slot = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                overrides: sorted,
                identifiers: Vec::new(),
            });
            groups.len() - 1
        });
        groups[slot]
            .identifiers
            .push(Value::String(io.identifier.clone()));
    }
    groups
        .into_iter()
        .map(|g| {
            let mut metadata = Map::new();
            metadata.insert("source".into(), json!(IDENTITY_OVERRIDES_SEGMENT_NAME));
            SegmentContext {
                // Empty key: identity-override segments are never percentage-split.
                key: String::new(),
                name: IDENTITY_OVERRIDES_SEGMENT_NAME.to_owned(),
                rules: vec![SegmentRule {
                    rule_type: RuleType::All,
                    conditions: vec![Condition {
                        property: "$.identity.identifier".to_owned(),
                        operator: Operator::In,
                        value: Value::Array(g.identifiers),
                    }],
                    rules: Vec::new(),
                }],
                overrides: g
                    .overrides
                    .iter()
                    .map(|fs| {
                        let mut md = Map::new();
                        md.insert("id".into(), json!(fs.feature.id));
                        FeatureContext {
                            key: String::new(),
                            name: fs.feature.name.clone(),
                            enabled: fs.enabled,
                            value: fs.feature_state_value.clone(),
                            variants: Vec::new(),
                            priority: Some(f64::NEG_INFINITY),
                            metadata: Some(md),
                        }
                    })
                    .collect(),
                metadata: Some(metadata),
            }
        })
        .collect()
}

/// The grouping key: `(str(feature id), name, enabled, value)` per override. Values compare
/// with Python equality, where `True == 1 == 1.0`, so numbers and bools share one form.
fn group_key(sorted: &[&FeatureState]) -> String {
    let mut key = String::new();
    for fs in sorted {
        key.push_str(&fs.feature.id.to_string());
        key.push('\u{1}');
        key.push_str(&fs.feature.name);
        key.push('\u{1}');
        key.push(if fs.enabled { 'T' } else { 'F' });
        key.push('\u{1}');
        match &fs.feature_state_value {
            Value::Bool(b) => key.push_str(if *b { "n1" } else { "n0" }),
            Value::Number(n) => {
                key.push('n');
                match n.as_f64() {
                    Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        key.push_str(&(f as i64).to_string())
                    }
                    _ => key.push_str(&pyfmt::number_str(n)),
                }
            }
            Value::String(s) => {
                key.push('s');
                key.push_str(s);
            }
            other => {
                key.push('o');
                key.push_str(&other.to_string());
            }
        }
        key.push('\u{2}');
    }
    key
}

#[cfg(test)]
mod tests;
