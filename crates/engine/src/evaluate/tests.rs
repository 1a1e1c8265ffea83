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

mod rule_trees {
    //! The compiled branching program against a direct reading of Flagsmith's rule
    //! semantics, on random rule trees: each condition's outcome comes from the engine on
    //! a one-condition segment, the quantifiers from the reference below.

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use crate::{evaluate_context, EvaluationContext};

    const SEGMENT_KEY: &str = "seg";

    fn condition() -> impl Strategy<Value = Value> {
        let property = prop::sample::select(vec!["a", "b", "c", "", "$.identity.key"]);
        let operator = prop::sample::select(vec![
            "IS_SET",
            "IS_NOT_SET",
            "EQUAL",
            "REGEX",
            "PERCENTAGE_SPLIT",
            "IN",
            "NOPE",
        ]);
        let value = prop::sample::select(vec!["1", "x", "50", "1,x", "["]);
        (property, operator, value)
            .prop_map(|(p, o, v)| json!({"property": p, "operator": o, "value": v}))
    }

    fn rule() -> impl Strategy<Value = Value> {
        let rule_type = prop::sample::select(vec!["ALL", "ANY", "NONE", "WHAT"]);
        let leaf = (rule_type.clone(), prop::collection::vec(condition(), 0..4))
            .prop_map(|(t, cs)| json!({"type": t, "conditions": cs}));
        leaf.prop_recursive(3, 24, 4, move |inner| {
            (
                rule_type.clone(),
                prop::collection::vec(condition(), 0..4),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(t, cs, rs)| json!({"type": t, "conditions": cs, "rules": rs}))
        })
    }

    fn context(rules: &Value, traits: &Value) -> EvaluationContext {
        serde_json::from_value(json!({
            "environment": {"key": "env", "name": "n"},
            "identity": {"identifier": "u", "traits": traits},
            "segments": {"s": {"key": SEGMENT_KEY, "name": "s", "rules": rules}}
        }))
        .unwrap()
    }

    fn condition_holds(c: &Value, traits: &Value) -> bool {
        let rules = json!([{"type": "ALL", "conditions": [c]}]);
        !evaluate_context(&context(&rules, traits))
            .segments
            .is_empty()
    }

    /// Flagsmith: the quantifier over the conditions (if any) and over the sub-rules (if
    /// any); an unknown type matches only when it has neither.
    fn reference(rule: &Value, traits: &Value) -> bool {
        let list = |k: &str| rule[k].as_array().cloned().unwrap_or_default();
        let conditions: Vec<bool> = list("conditions")
            .iter()
            .map(|c| condition_holds(c, traits))
            .collect();
        let rules: Vec<bool> = list("rules").iter().map(|r| reference(r, traits)).collect();
        let quantify = |v: &[bool]| match rule["type"].as_str() {
            Some("ALL") => v.iter().all(|b| *b),
            Some("ANY") => v.iter().any(|b| *b),
            Some("NONE") => !v.iter().any(|b| *b),
            _ => false,
        };
        (conditions.is_empty() || quantify(&conditions)) && (rules.is_empty() || quantify(&rules))
    }

    proptest! {
        #[test]
        fn the_program_agrees_with_the_rule_semantics(
            rules in prop::collection::vec(rule(), 0..3),
            a in prop::option::of(prop::sample::select(vec!["1", "x", "2"])),
            b in prop::option::of(prop::sample::select(vec!["1", "x"])),
        ) {
            let mut traits = serde_json::Map::new();
            if let Some(a) = a { traits.insert("a".into(), json!(a)); }
            if let Some(b) = b { traits.insert("b".into(), json!(b)); }
            let traits = Value::Object(traits);
            let expected = !rules.is_empty() && rules.iter().all(|r| reference(r, &traits));
            let rules = Value::Array(rules);
            let got = !evaluate_context(&context(&rules, &traits)).segments.is_empty();
            prop_assert_eq!(got, expected);
        }
    }
}

mod override_precedence {
    //! The precomputed best-first override order against the reference loop: over the
    //! matched segments in order, a strictly lower priority replaces the current best.

    use proptest::prelude::*;
    use serde_json::json;

    use crate::{evaluate_context, EvaluationContext};

    fn priority() -> impl Strategy<Value = Option<f64>> {
        prop::sample::select(vec![
            None,
            Some(0.0),
            Some(-0.0),
            Some(1.0),
            Some(2.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
        ])
    }

    proptest! {
        #[test]
        fn the_winner_is_the_reference_loops(
            // Per segment: does it match, and its overrides as (feature, priority).
            segments in prop::collection::vec(
                (any::<bool>(), prop::collection::vec((0..3usize, priority()), 0..4)),
                0..6,
            ),
        ) {
            let features: serde_json::Map<String, serde_json::Value> = (0..3)
                .map(|f| (format!("f{f}"), json!({"key": f.to_string(), "name": format!("f{f}"),
                    "enabled": false, "value": "default"})))
                .collect();
            let mut ctx: EvaluationContext = serde_json::from_value(json!({
                "environment": {"key": "env", "name": "n"},
                "identity": {"identifier": "u"},
                "features": features,
            }))
            .unwrap();
            for (si, (matches, overrides)) in segments.iter().enumerate() {
                let rule = if *matches { "NONE" } else { "ALL" };
                let mut seg: crate::SegmentContext = serde_json::from_value(json!({
                    "key": si.to_string(), "name": format!("s{si}"),
                    "rules": [{"type": rule, "conditions": [
                        {"property": "absent", "operator": "IS_SET", "value": ""}]}],
                    "overrides": overrides.iter().enumerate().map(|(oi, (f, _))| json!({
                        "key": f.to_string(), "name": format!("f{f}"), "enabled": true,
                        "value": format!("s{si}o{oi}")})).collect::<Vec<_>>(),
                }))
                .unwrap();
                for (ov, (_, p)) in seg.overrides.iter_mut().zip(overrides) {
                    ov.priority = *p;
                }
                ctx.segments.insert(si.to_string(), seg);
            }
            let result = evaluate_context(&ctx);
            for f in 0..3 {
                let mut best: Option<(f64, String)> = None;
                for (si, (matches, overrides)) in segments.iter().enumerate() {
                    for (oi, (feature, p)) in overrides.iter().enumerate() {
                        let p = p.unwrap_or(f64::INFINITY);
                        if *matches && *feature == f && best.as_ref().is_none_or(|(b, _)| p < *b) {
                            best = Some((p, format!("s{si}o{oi}")));
                        }
                    }
                }
                let expected = best.map_or("default".to_owned(), |(_, v)| v);
                prop_assert_eq!(&result.flags[&format!("f{f}")].value, &json!(expected));
            }
        }
    }
}

/// Deciding trait conditions before the walk (`preset`, `EvalState::decide_traits`) is an
/// optimisation only: with it switched off (every condition unknown, no readers) the walk
/// decides each condition itself, and every identity must get the same evaluation. Steps
/// through every operator on plain traits, on a path with a literal trait, on the identity
/// key and identifier and on a constant path, for identities with each subset of the
/// traits, each trait given values of every JSON type (and null).
#[test]
fn conditions_decided_up_front_agree_with_the_walk() {
    use crate::context::IdentityContext;

    let ops = [
        ("EQUAL", json!("a")),
        ("NOT_EQUAL", json!("a")),
        ("GREATER_THAN", json!("2")),
        ("GREATER_THAN_INCLUSIVE", json!("1.5")),
        ("LESS_THAN", json!("b")),
        ("LESS_THAN_INCLUSIVE", json!("2.0.0:semver")),
        ("CONTAINS", json!("a")),
        ("NOT_CONTAINS", json!("x")),
        ("IN", json!("a,2,True")),
        ("IN", json!(["1", "b"])),
        ("REGEX", json!("^[a-b1]")),
        ("MODULO", json!("2|0")),
        ("IS_SET", json!("")),
        ("IS_NOT_SET", json!("")),
        ("PERCENTAGE_SPLIT", json!("50")),
    ];
    let properties = [
        "p",
        "q",
        "$.identity.traits.q",
        "$.identity.key",
        "$.identity.identifier",
        "$.environment.name",
        "",
    ];
    // One segment per condition, and segments combining two traits' conditions.
    let mut segments = serde_json::Map::new();
    let mut conditions = Vec::new();
    for property in properties {
        for (op, value) in &ops {
            conditions.push(json!({"property": property, "operator": op, "value": value}));
        }
    }
    for (i, c) in conditions.iter().enumerate() {
        let other = &conditions[(i * 7 + 3) % conditions.len()];
        let quantifier = ["ANY", "NONE"][i % 2];
        segments.insert(
            i.to_string(),
            json!({"key": i.to_string(), "name": format!("s{i}"), "rules": [
                {"type": "ALL", "conditions": [c]},
                {"type": quantifier, "conditions": [other, c]}
            ]}),
        );
        segments.insert(
            format!("single{i}"),
            json!({"key": format!("k{i}"), "name": format!("t{i}"),
                   "rules": [{"type": "ALL", "conditions": [c]}]}),
        );
    }
    let ctx: EvaluationContext = serde_json::from_value(json!({
        "environment": {"key": "env", "name": "Production"},
        "segments": segments,
    }))
    .unwrap();
    let compiled = CompiledEnvironment::from_context(&ctx);
    let mut lazy = compiled.clone();
    lazy.program.presets = vec![super::UNKNOWN; lazy.program.conditions.len()];
    lazy.program.readers = vec![Box::default(); lazy.trait_slots.len()];
    assert!(
        compiled
            .program
            .presets
            .iter()
            .filter(|&&s| s <= super::TRUE)
            .count()
            >= 45,
        "every condition on traits alone is decided before the walk"
    );

    let values = [
        json!(null),
        json!("a"),
        json!("b1"),
        json!(""),
        json!(2),
        json!(1.5),
        json!(true),
        json!("2.1.0"),
        json!({"o": 1}),
        json!([1]),
    ];
    let mut checked = 0;
    for p in [
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(4),
        Some(6),
        Some(7),
        Some(8),
    ] {
        for q in [None, Some(1), Some(3), Some(5), Some(9)] {
            // A trait literally named like the path wins over it when not null.
            for literal in [None, Some(0), Some(2)] {
                let mut traits = indexmap::IndexMap::new();
                for (name, value) in [("p", p), ("q", q), ("$.identity.traits.q", literal)] {
                    if let Some(v) = value {
                        traits.insert(name.to_owned(), values[v].clone());
                    }
                }
                let identity = IdentityContext::new(format!("u{p:?}{q:?}{literal:?}"), traits);
                let (fast, slow) = (
                    compiled.evaluate_detailed(Some(&identity)),
                    lazy.evaluate_detailed(Some(&identity)),
                );
                assert_eq!(fast, slow, "traits p={p:?} q={q:?} literal={literal:?}");
                checked += fast.segments.len();
            }
        }
    }
    assert_eq!(compiled.evaluate(None), lazy.evaluate(None));
    assert!(checked > 1000, "the identities match segments ({checked})");
}
