//! Property tests: arbitrary contexts and documents never make compilation or evaluation
//! panic, evaluation is deterministic, and a compiled environment gives the same answer as
//! one-shot evaluation and as a context that went through JSON and back.

use flagstone_engine::hashing::hashed_percentage;
use flagstone_engine::{
    evaluate_context, CompiledEnvironment, EnvironmentDocument, EvaluationContext, IdentityContext,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const OPERATORS: &[&str] = &[
    "EQUAL",
    "NOT_EQUAL",
    "GREATER_THAN",
    "GREATER_THAN_INCLUSIVE",
    "LESS_THAN",
    "LESS_THAN_INCLUSIVE",
    "CONTAINS",
    "NOT_CONTAINS",
    "REGEX",
    "PERCENTAGE_SPLIT",
    "MODULO",
    "IS_SET",
    "IS_NOT_SET",
    "IN",
    "BOGUS",
];

const PROPERTIES: &[&str] = &[
    "plan",
    "age",
    "score",
    "",
    "$.identity.identifier",
    "$.identity.key",
    "$.identity",
    "$.identity.traits.plan",
    "$.identity.traits['age']",
    "$.identity.traits.obj.x",
    "$.environment.name",
    "$.environment.key",
    "$.segments",
    "$..plan",
    "$.identity.traits[*]",
    "$.  not valid",
    "$.leads.to.nowhere",
];

fn condition_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "premium",
            "1",
            "-3",
            "007",
            "1.5",
            "abc",
            "",
            "True",
            "false",
            "1.2.3:semver",
            "1.0.0-beta:semver",
            "bad:semver",
            "2|0",
            "3|1",
            "0|0",
            "x|y",
            "2.5|0.5",
            "[1,2]",
            "[\"a\",\"b\"]",
            "[oops",
            "a,b,c",
            "50",
            "100",
            "inf",
            "nan",
            "^a.*",
            "(",
            "\\d+",
            "a{1000}{1000}",
            "(?i)PRE",
        ])
        .prop_map(|s| json!(s)),
        ".{0,12}".prop_map(Value::String),
        prop::collection::vec("[a-c0-9]{0,3}", 0..4).prop_map(|v| json!(v)),
        Just(Value::Null),
        any::<i32>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|i| json!(i)),
        (-1e20f64..1e20).prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "premium",
            "1",
            "-3",
            "007",
            "1.5",
            "1.2.3",
            "1.0.0-beta",
            "abc",
            "",
            "99999999999999999999999",
            "-0.0",
            "a",
            "b",
        ])
        .prop_map(|s| json!(s)),
        ".{0,8}".prop_map(Value::String),
    ]
}

fn trait_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => scalar(),
        1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::Array),
        1 => scalar().prop_map(|v| json!({"x": v})),
    ]
}

fn condition() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(PROPERTIES.to_vec()),
        prop::sample::select(OPERATORS.to_vec()),
        condition_value(),
    )
        .prop_map(|(p, o, v)| json!({"property": p, "operator": o, "value": v}))
}

fn rule() -> impl Strategy<Value = Value> {
    let leaf = (
        prop::sample::select(vec!["ALL", "ANY", "NONE", "WHAT"]),
        prop::collection::vec(condition(), 0..4),
    )
        .prop_map(|(t, c)| json!({"type": t, "conditions": c}));
    leaf.prop_recursive(3, 24, 4, |inner| {
        (
            prop::sample::select(vec!["ALL", "ANY", "NONE"]),
            prop::collection::vec(condition(), 0..3),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(t, c, r)| json!({"type": t, "conditions": c, "rules": r}))
    })
}

fn weight() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u32..60).prop_map(|w| json!(w)),
        (0.0f64..60.0).prop_map(|w| json!(w)),
    ]
}

fn feature(name: &'static str) -> impl Strategy<Value = Value> {
    (
        "[0-9]{1,4}",
        any::<bool>(),
        scalar(),
        prop::collection::vec(
            (prop::option::of("[a-z]{1,4}"), scalar(), weight(), -5i64..5),
            0..4,
        ),
        prop::option::of(-3i64..3),
        any::<bool>(),
    )
        .prop_map(move |(key, enabled, value, variants, priority, with_meta)| {
            let variants: Vec<Value> = variants
                .into_iter()
                .map(|(k, v, w, p)| {
                    let mut o = json!({"value": v, "weight": w, "priority": p});
                    if let Some(k) = k {
                        o["key"] = json!(k);
                    }
                    o
                })
                .collect();
            let mut f = json!({"key": key, "name": name, "enabled": enabled, "value": value, "variants": variants});
            if let Some(p) = priority {
                f["priority"] = json!(p);
            }
            if with_meta {
                f["metadata"] = json!({"id": 7});
            }
            f
        })
}

fn context() -> impl Strategy<Value = Value> {
    let names = ["alpha", "beta", "gamma"];
    (
        prop::collection::vec(
            (
                "[a-z0-9]{0,4}",
                prop::collection::vec(rule(), 0..3),
                prop::collection::vec(feature("alpha"), 0..2),
                prop::collection::vec(feature("gamma"), 0..2),
            ),
            0..4,
        ),
        (feature(names[0]), feature(names[1]), feature(names[2])),
        prop::option::of((
            "[a-z0-9]{1,6}",
            prop::option::of("[a-z0-9]{0,6}"),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "plan", "age", "score", "obj", "$.identity.identifier", "",
                    ]),
                    trait_value(),
                ),
                0..5,
            ),
        )),
        "[a-z0-9]{0,4}",
    )
        .prop_map(|(segments, (f1, f2, f3), identity, env_name)| {
            let segments: serde_json::Map<String, Value> = segments
                .into_iter()
                .enumerate()
                .map(|(i, (key, rules, o1, o2))| {
                    let overrides: Vec<Value> = o1.into_iter().chain(o2).collect();
                    (
                        format!("s{i}"),
                        json!({"key": key, "name": format!("seg{i}"), "rules": rules, "overrides": overrides, "metadata": {"i": i}}),
                    )
                })
                .collect();
            let mut ctx = json!({
                "environment": {"key": "env", "name": env_name},
                "segments": segments,
                "features": {"alpha": f1, "beta": f2, "gamma": f3},
            });
            if let Some((identifier, key, traits)) = identity {
                let traits: serde_json::Map<String, Value> =
                    traits.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                let mut id = json!({"identifier": identifier, "traits": traits});
                if let Some(key) = key {
                    id["key"] = json!(key);
                }
                ctx["identity"] = id;
            }
            ctx
        })
}

fn document() -> impl Strategy<Value = Value> {
    let feature_state = |id: i64| {
        (
            any::<bool>(),
            scalar(),
            prop::option::of(0i64..5),
            prop::option::of(-2i64..3),
            prop::collection::vec((prop::option::of(1i64..50), weight(), scalar(), prop::option::of("[a-z]{1,3}")), 0..3),
        )
            .prop_map(move |(enabled, value, django_id, priority, mvs)| {
                let mvs: Vec<Value> = mvs
                    .into_iter()
                    .map(|(mv_id, w, v, k)| json!({"id": mv_id, "mv_fs_value_uuid": "00000000-0000-0000-0000-00000000000a",
                        "percentage_allocation": w, "multivariate_feature_option": {"value": v, "key": k}}))
                    .collect();
                json!({"feature": {"id": id, "name": format!("f{id}"), "type": "STANDARD"}, "enabled": enabled,
                    "django_id": django_id, "featurestate_uuid": format!("uuid-{id}"), "feature_state_value": value,
                    "feature_segment": priority.map(|p| json!({"priority": p})), "multivariate_feature_state_values": mvs})
            })
    };
    let doc_rule = rule().prop_map(rename_property);
    (
        prop::collection::vec(feature_state(1), 0..2),
        prop::collection::vec(feature_state(2), 0..2),
        prop::collection::vec((1i64..5, prop::collection::vec(doc_rule, 0..3), prop::collection::vec(feature_state(1), 0..2)), 0..3),
        prop::collection::vec(("[a-c]{1,2}", prop::collection::vec(feature_state(2), 0..2)), 0..4),
    )
        .prop_map(|(f1, f2, segments, overrides)| {
            let segments: Vec<Value> = segments
                .into_iter()
                .map(|(id, rules, fs)| json!({"id": id, "name": format!("segment {id}"), "rules": rules, "feature_states": fs}))
                .collect();
            let overrides: Vec<Value> = overrides
                .into_iter()
                .map(|(identifier, fs)| json!({"identifier": identifier, "identity_features": fs}))
                .collect();
            json!({"api_key": "key", "name": "env", "project": {"id": 1, "name": "p", "segments": segments},
                "feature_states": f1.into_iter().chain(f2).collect::<Vec<_>>(), "identity_overrides": overrides})
        })
}

/// Context rules use `property`; document rules use `property_`.
fn rename_property(mut rule: Value) -> Value {
    if let Some(conditions) = rule.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions {
            if let Some(p) = c.as_object_mut().and_then(|o| o.remove("property")) {
                c["property_"] = p;
            }
        }
    }
    if let Some(rules) = rule.get_mut("rules").and_then(Value::as_array_mut) {
        for r in rules.iter_mut() {
            *r = rename_property(r.take());
        }
    }
    rule
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_contexts_evaluate_deterministically(ctx in context()) {
        let ctx: EvaluationContext = serde_json::from_value(ctx).expect("generated contexts parse");
        let once = evaluate_context(&ctx);
        let compiled = CompiledEnvironment::from_context(&ctx);
        prop_assert_eq!(&compiled.evaluate(ctx.identity.as_ref()), &once);
        prop_assert_eq!(&compiled.evaluate(ctx.identity.as_ref()), &once);
        prop_assert_eq!(once.flags.len(), ctx.features.len());
        // Through JSON and back (priorities included) nothing changes.
        let again: EvaluationContext =
            serde_json::from_value(serde_json::to_value(&ctx).unwrap()).unwrap();
        prop_assert_eq!(&evaluate_context(&again), &once);
        let _ = compiled.evaluate(None);
    }

    #[test]
    fn arbitrary_documents_compile_and_evaluate(doc in document(), who in "[a-c]{1,2}", plan in scalar()) {
        let doc: EnvironmentDocument = serde_json::from_value(doc).expect("generated documents parse");
        let round: EnvironmentDocument =
            serde_json::from_value(serde_json::to_value(&doc).unwrap()).unwrap();
        prop_assert_eq!(&round, &doc);
        let compiled = CompiledEnvironment::from_document(&doc);
        let mut traits = indexmap::IndexMap::new();
        traits.insert("plan".to_owned(), plan);
        let identity = IdentityContext::new(who, traits);
        let a = compiled.evaluate(Some(&identity));
        prop_assert_eq!(&a, &compiled.evaluate(Some(&identity)));
        let mut ctx = flagstone_engine::document_to_context(&doc);
        ctx.identity = Some(identity);
        prop_assert_eq!(&evaluate_context(&ctx), &a);
        let _ = compiled.evaluate(None);
    }

    #[test]
    fn arbitrary_json_never_panics_when_it_parses(text in ".{0,64}") {
        if let Ok(ctx) = EvaluationContext::from_json(&text) {
            let _ = evaluate_context(&ctx);
        }
        if let Ok(doc) = EnvironmentDocument::from_json(&text) {
            let _ = CompiledEnvironment::from_document(&doc).evaluate(None);
        }
    }

    #[test]
    fn hashed_percentage_is_in_range(a in ".{0,10}", b in ".{0,10}") {
        let p = hashed_percentage(&[&a, &b]);
        prop_assert!((0.0..100.0).contains(&p));
    }
}

#[test]
fn hashing_matches_fixed_vectors() {
    assert_eq!(
        hashed_percentage(&["12345", "test_env_foobar"]),
        51.990398079615915
    );
    assert_eq!(hashed_percentage(&["78986", "32103813"]), 49.27985597119424);
    assert_eq!(hashed_percentage(&["1", "2"]), 26.59531906381276);
    // md5("seg,27259") lands on the top bucket, so it is rehashed as "seg,27259,seg,27259".
    assert_eq!(hashed_percentage(&["seg", "27259"]), 58.38167633526705);
}
