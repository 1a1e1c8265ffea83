//! What an environment serves, in a form two states of the store can be compared by: per
//! feature, everything that decides a flag for some identity (the default, each segment
//! override with its segment's rules and split key, the variants in the order the engine walks
//! them), plus the settings that filter the flags served. An import computes it for the target
//! project's environments before and after writing, and reports those whose flags change.
//! Main entry points: [`fingerprint`], [`changed_features`].

use std::collections::{BTreeMap, BTreeSet};

use flagstone_engine::{document_to_context, EnvironmentDocument, FeatureContext};
use serde::Serialize;
use serde_json::{json, Value};

use crate::document::{self, BuildError, BuildOptions};
use crate::{Result, StoreError, Tx};

/// An existing environment whose served flags an import changes.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangedEnvironment {
    pub id: i64,
    pub name: String,
    pub api_key: String,
    /// The features whose flags may differ for some identity (added, removed or changed),
    /// by name, sorted.
    pub features: Vec<String>,
}

/// An environment's served state: settings that apply to every flag, and per feature name the
/// canonical JSON of what decides it.
#[derive(PartialEq)]
pub(crate) struct Fingerprint {
    pub name: String,
    pub api_key: String,
    global: String,
    features: BTreeMap<String, String>,
}

/// Builds the environment's document inside the transaction and reduces it to a
/// [`Fingerprint`].
pub(crate) async fn fingerprint(tx: &mut Tx, environment: i64) -> Result<Fingerprint> {
    let opts = BuildOptions {
        max_document_bytes: Some(u64::MAX),
        ..BuildOptions::default()
    };
    let built = document::build_in(tx, environment, &opts)
        .await
        .map_err(|e| match e {
            BuildError::Store(e) => e,
            BuildError::EnvironmentNotFound => StoreError::not_found("environment"),
            BuildError::TooLarge { .. } => StoreError::Corrupt {
                what: "environment document",
                detail: "too large without a budget".into(),
            },
        })?;
    let json = built.json().map_err(|e| StoreError::Corrupt {
        what: "built document",
        detail: e.to_string(),
    })?;
    let doc: EnvironmentDocument =
        serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt {
            what: "built document",
            detail: e.to_string(),
        })?;
    Ok(of_document(&doc))
}

/// A feature state as far as evaluation goes: the bucketing key only when there are variants,
/// the variants in walking order without their priorities.
fn state(fc: &FeatureContext) -> Value {
    let mut variants: Vec<_> = fc.variants.iter().collect();
    variants.sort_by(|a, b| a.priority.total_cmp(&b.priority));
    json!({
        "feature_id": fc.metadata.as_ref().and_then(|m| m.get("id")),
        "enabled": fc.enabled,
        "value": fc.value,
        "key": if variants.is_empty() { Value::Null } else { Value::from(fc.key.as_str()) },
        "variants": variants.iter().map(|v| json!([v.key, v.value, v.weight])).collect::<Vec<_>>(),
    })
}

pub(crate) fn of_document(doc: &EnvironmentDocument) -> Fingerprint {
    let ctx = document_to_context(doc);
    let hide_disabled = doc
        .hide_disabled_flags
        .unwrap_or(doc.project.hide_disabled_flags);
    let server_only: BTreeSet<&str> = doc
        .feature_states
        .iter()
        .filter(|fs| {
            doc.project
                .server_key_only_feature_ids
                .contains(&fs.feature.id)
        })
        .map(|fs| fs.feature.name.as_str())
        .collect();
    let global = json!({
        "environment": ctx.environment,
        "hide_disabled": hide_disabled,
        "stop_serving_flags": doc.project.organisation.as_ref().is_some_and(|o| o.stop_serving_flags),
    })
    .to_string();
    // Per feature: its overrides in the order the engine prefers them (priority, then
    // document order), each with the rules and split key of its segment.
    let mut overrides: BTreeMap<&str, Vec<(f64, usize, Value)>> = BTreeMap::new();
    for (i, seg) in ctx.segments.values().enumerate() {
        for o in &seg.overrides {
            overrides.entry(o.name.as_str()).or_default().push((
                o.priority.unwrap_or(f64::INFINITY),
                i,
                json!({"segment": seg.key, "rules": seg.rules, "state": state(o)}),
            ));
        }
    }
    let mut features = BTreeMap::new();
    let names: BTreeSet<&str> = ctx
        .features
        .keys()
        .map(String::as_str)
        .chain(overrides.keys().copied())
        .collect();
    for name in names {
        let mut ranked = overrides.remove(name).unwrap_or_default();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let served = json!({
            "default": ctx.features.get(name).map(state),
            "server_key_only": server_only.contains(name),
            "overrides": ranked.into_iter().map(|r| r.2).collect::<Vec<_>>(),
        });
        features.insert(name.to_string(), served.to_string());
    }
    Fingerprint {
        name: doc.name.clone(),
        api_key: doc.api_key.clone(),
        global,
        features,
    }
}

/// The features whose served flags differ between `before` and `after` (all of them when a
/// setting that applies to every flag changed).
pub(crate) fn changed_features(before: &Fingerprint, after: &Fingerprint) -> Vec<String> {
    let names: BTreeSet<&String> = before
        .features
        .keys()
        .chain(after.features.keys())
        .collect();
    names
        .into_iter()
        .filter(|n| {
            before.global != after.global || before.features.get(*n) != after.features.get(*n)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> EnvironmentDocument {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({
            "api_key": "k", "name": "e", "id": 1,
            "project": {"id": 1, "name": "p", "segments": [
                {"id": 5, "name": "s", "rules": [{"type": "ALL", "conditions": [
                    {"operator": "PERCENTAGE_SPLIT", "property_": null, "value": "30"}]}],
                 "feature_states": [{"feature": {"id": 1, "name": "a", "type": "STANDARD"},
                    "enabled": true, "django_id": 9, "feature_state_value": "x",
                    "feature_segment": {"priority": 0}}]}]},
            "feature_states": [
                {"feature": {"id": 1, "name": "a", "type": "STANDARD"}, "enabled": false,
                 "django_id": 3, "feature_state_value": null},
                {"feature": {"id": 2, "name": "b", "type": "MULTIVARIATE"}, "enabled": true,
                 "django_id": 4, "feature_state_value": "c",
                 "multivariate_feature_state_values": [
                    {"id": 10, "percentage_allocation": 50,
                     "multivariate_feature_option": {"id": 1, "value": "v1"}},
                    {"id": 11, "percentage_allocation": 50,
                     "multivariate_feature_option": {"id": 2, "value": "v2"}}]}]
        })
    }

    #[test]
    fn only_what_evaluation_reads_counts() {
        let a = of_document(&doc(base()));
        let mut v = base();
        // Row ids of a standard feature's state and the variant ids' values (not their
        // order) do not change any flag.
        v["feature_states"][0]["django_id"] = json!(77);
        v["feature_states"][1]["multivariate_feature_state_values"][0]["id"] = json!(100);
        v["feature_states"][1]["multivariate_feature_state_values"][1]["id"] = json!(200);
        v["updated_at"] = json!("2020-01-01T00:00:00Z");
        assert!(changed_features(&a, &of_document(&doc(v))).is_empty());
    }

    #[test]
    fn hashing_inputs_count() {
        let a = of_document(&doc(base()));
        let mut v = base();
        v["project"]["segments"][0]["id"] = json!(6);
        assert_eq!(changed_features(&a, &of_document(&doc(v))), ["a"]);
        let mut v = base();
        v["feature_states"][1]["django_id"] = json!(5);
        assert_eq!(changed_features(&a, &of_document(&doc(v))), ["b"]);
        let mut v = base();
        v["feature_states"][1]["multivariate_feature_state_values"][0]["id"] = json!(12);
        assert_eq!(changed_features(&a, &of_document(&doc(v))), ["b"]);
        let mut v = base();
        v["hide_disabled_flags"] = json!(true);
        assert_eq!(changed_features(&a, &of_document(&doc(v))), ["a", "b"]);
    }
}
