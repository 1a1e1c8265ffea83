use serde_json::json;

use crate::{evaluate_context, CompiledEnvironment, EvaluationContext};

/// Evaluates one condition for an identity with the given traits; true if the segment matched.
fn matches(condition: serde_json::Value, identity: serde_json::Value) -> bool {
    let ctx: EvaluationContext = serde_json::from_value(json!({
        "environment": {"key": "env", "name": "Production"},
        "identity": identity,
        "segments": {"1": {"key": "7", "name": "s", "rules": [{"type": "ALL", "conditions": [condition]}]}}
    }))
    .unwrap();
    !evaluate_context(&ctx).segments.is_empty()
}

#[test]
fn compiled_environments_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledEnvironment>();
}

#[test]
fn literal_trait_named_like_a_path_wins_over_the_path() {
    let id = json!({"identifier": "u", "traits": {"$.identity.identifier": "x"}});
    assert!(matches(
        json!({"property": "$.identity.identifier", "operator": "EQUAL", "value": "x"}),
        id.clone()
    ));
    assert!(!matches(
        json!({"property": "$.identity.identifier", "operator": "EQUAL", "value": "u"}),
        id
    ));
}

#[test]
fn jsonpaths_read_the_context() {
    let id = json!({"identifier": "007", "traits": {"obj": {"x": 1}, "list": [1]}});
    // The identifier is coerced like any value: "007" is the int 7.
    assert!(matches(
        json!({"property": "$.identity.identifier", "operator": "EQUAL", "value": "7"}),
        id.clone()
    ));
    assert!(matches(
        json!({"property": "$.identity.key", "operator": "EQUAL", "value": "env_007"}),
        id.clone()
    ));
    assert!(matches(
        json!({"property": "$.environment.name", "operator": "EQUAL", "value": "Production"}),
        id.clone()
    ));
    // Objects reached through a path are null; read directly they are their Python str().
    assert!(matches(
        json!({"property": "$.identity.traits.obj", "operator": "IS_NOT_SET", "value": ""}),
        id.clone()
    ));
    assert!(matches(
        json!({"property": "obj", "operator": "EQUAL", "value": "{'x': 1}"}),
        id.clone()
    ));
    // General paths are evaluated too.
    assert!(matches(
        json!({"property": "$.identity.traits.obj.x", "operator": "EQUAL", "value": "1"}),
        id.clone()
    ));
    assert!(matches(
        json!({"property": "$..identifier", "operator": "EQUAL", "value": "7"}),
        id.clone()
    ));
    assert!(matches(
        json!({"property": "$.nothing.here", "operator": "IS_NOT_SET", "value": ""}),
        id
    ));
}

#[test]
fn percentage_split_hashes_python_str_of_the_value() {
    // hashed_percentage(["7", "1.0"]) vs ["7", "1"]: a float trait must hash as "1.0".
    let split = |v: serde_json::Value, threshold: f64| {
        matches(
            json!({"property": "n", "operator": "PERCENTAGE_SPLIT", "value": threshold.to_string()}),
            json!({"identifier": "u", "traits": {"n": v}}),
        )
    };
    let float_bucket = crate::hashing::hashed_percentage(&["7", "1.0"]);
    assert!(split(json!(1.0), float_bucket));
    assert!(!split(json!(1.0), float_bucket - 1e-9));
    let bool_bucket = crate::hashing::hashed_percentage(&["7", "True"]);
    assert!(split(json!(true), bool_bucket));
    assert!(!split(json!(true), bool_bucket - 1e-9));
}

#[test]
fn rule_quantifiers() {
    let ctx = |rules: serde_json::Value| -> EvaluationContext {
        serde_json::from_value(json!({
            "environment": {"key": "env", "name": "n"},
            "identity": {"identifier": "u"},
            "segments": {"1": {"key": "1", "name": "s", "rules": rules}}
        }))
        .unwrap()
    };
    let matched = |rules| !evaluate_context(&ctx(rules)).segments.is_empty();
    assert!(!matched(json!([])), "a segment without rules never matches");
    assert!(
        matched(json!([{"type": "NONE"}])),
        "an empty NONE rule matches"
    );
    assert!(matched(json!([{"type": "ANY"}])));
    assert!(!matched(
        json!([{"type": "WHAT", "conditions": [{"property": "a", "operator": "IS_NOT_SET", "value": ""}]}])
    ));
    assert!(matched(json!([{"type": "ANY", "rules": [
        {"type": "ALL", "conditions": [{"property": "a", "operator": "IS_SET", "value": ""}]},
        {"type": "ALL", "conditions": [{"property": "a", "operator": "IS_NOT_SET", "value": ""}]}
    ]}])));
}

#[test]
fn bad_conditions_never_match_and_are_reported() {
    let ctx: EvaluationContext = serde_json::from_value(json!({
        "environment": {"key": "env", "name": "n"},
        "segments": {"1": {"key": "1", "name": "s", "rules": [{"type": "ANY", "conditions": [
            {"property": "a", "operator": "REGEX", "value": "("},
            {"property": "a", "operator": "MODULO", "value": "0|0"},
            {"property": "a", "operator": "SOMETHING", "value": "x"}
        ]}]}}
    }))
    .unwrap();
    let compiled = CompiledEnvironment::from_context(&ctx);
    assert_eq!(compiled.issues().len(), 3);
    assert!(compiled.evaluate(None).segments.is_empty());
}

#[test]
fn override_ties_keep_the_first_segment_and_lower_priority_wins() {
    let ctx: EvaluationContext = serde_json::from_value(json!({
        "environment": {"key": "env", "name": "n"},
        "identity": {"identifier": "u"},
        "features": {"f": {"key": "1", "name": "f", "enabled": false, "value": "default"}},
        "segments": {
            "a": {"key": "a", "name": "A", "rules": [{"type": "NONE"}],
                  "overrides": [{"key": "1", "name": "f", "enabled": true, "value": "a", "priority": 1}]},
            "b": {"key": "b", "name": "B", "rules": [{"type": "NONE"}],
                  "overrides": [{"key": "1", "name": "f", "enabled": true, "value": "b", "priority": 1}]},
            "c": {"key": "c", "name": "C", "rules": [{"type": "NONE"}],
                  "overrides": [{"key": "1", "name": "f", "enabled": true, "value": "c"}]}
        }
    }))
    .unwrap();
    let result = evaluate_context(&ctx);
    assert_eq!(result.flags["f"].value, json!("a"));
    assert_eq!(result.flags["f"].reason, "TARGETING_MATCH; segment=A");
    assert_eq!(result.segments.len(), 3);
}
