use serde_json::json;

use super::*;
use crate::{CompiledEnvironment, EnvironmentDocument};

fn doc() -> EnvironmentDocument {
    let text = include_str!("../../tests/data/environment-document.json");
    EnvironmentDocument::from_json(text).unwrap()
}

#[test]
fn document_round_trips_unchanged() {
    let text = include_str!("../../tests/data/environment-document.json");
    let original: Value = serde_json::from_str(text).unwrap();
    let parsed: EnvironmentDocument = serde_json::from_value(original.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
    assert!(parsed.extra.contains_key("segment_overrides"));
}

#[test]
fn features_segments_and_metadata_are_mapped_like_the_sdk() {
    let ctx = document_to_context(&doc());
    assert_eq!(ctx.environment.key, "B62qaMZNwfiqT76p38ggrQ");
    let mv = &ctx.features["mv_feature"];
    assert_eq!(mv.key, "2");
    assert_eq!(
        mv.metadata,
        Some(json!({"id": 2}).as_object().unwrap().clone())
    );
    assert_eq!(mv.variants.len(), 2);
    assert_eq!(mv.variants[0].key.as_deref(), Some("blue_variant"));
    assert_eq!(mv.variants[0].priority, 10.0);
    assert_eq!(mv.variants[1].key, None);
    let seg = &ctx.segments["1"];
    assert_eq!(seg.key, "1");
    assert_eq!(
        seg.metadata,
        Some(
            json!({"id": 1, "source": "api"})
                .as_object()
                .unwrap()
                .clone()
        )
    );
    assert_eq!(seg.overrides[0].priority, Some(0.0));
    assert_eq!(seg.rules[0].rules[0].conditions[0].property, "plan");
}

#[test]
fn identity_overrides_with_identical_sets_share_one_segment() {
    let ctx = document_to_context(&doc());
    let synthetic: Vec<_> = ctx
        .segments
        .values()
        .filter(|s| s.name == IDENTITY_OVERRIDES_SEGMENT_NAME)
        .collect();
    assert_eq!(synthetic.len(), 1);
    let seg = synthetic[0];
    assert_eq!(seg.key, "");
    assert_eq!(
        seg.rules[0].conditions[0].value,
        json!(["overridden-id", "also-overridden"])
    );
    assert_eq!(seg.rules[0].conditions[0].property, "$.identity.identifier");
    assert_eq!(seg.overrides[0].priority, Some(f64::NEG_INFINITY));
    assert_eq!(seg.overrides[0].key, "");
}

#[test]
fn different_override_sets_get_separate_segments_and_python_equality_groups() {
    let mut d = doc();
    d.identity_overrides[1].identity_features[0].feature_state_value = json!("other");
    assert_eq!(
        document_to_context(&d)
            .segments
            .values()
            .filter(|s| s.name == IDENTITY_OVERRIDES_SEGMENT_NAME)
            .count(),
        2
    );
    // In Python `True == 1 == 1.0`, so these override sets are one group.
    d.identity_overrides[0].identity_features[0].feature_state_value = json!(1);
    d.identity_overrides[1].identity_features[0].feature_state_value = json!(1.0);
    let n = document_to_context(&d)
        .segments
        .values()
        .filter(|s| s.name == IDENTITY_OVERRIDES_SEGMENT_NAME)
        .count();
    assert_eq!(n, 1);
}

#[test]
fn identity_overrides_beat_segment_overrides() {
    let compiled = CompiledEnvironment::from_document(&doc());
    let mut traits = indexmap::IndexMap::new();
    traits.insert("plan".to_owned(), json!("premium"));
    let id = identity_context("overridden-id", traits);
    let result = compiled.evaluate(Some(&id));
    let flag = &result.flags["some_feature"];
    assert_eq!(flag.value, json!("some-overridden-value"));
    assert!(!flag.enabled);
    assert_eq!(flag.reason, "TARGETING_MATCH; segment=identity_overrides");
    assert_eq!(result.segments.len(), 2);

    let detailed = compiled.evaluate_detailed(Some(&id));
    assert_eq!(detailed.flags[0].feature_id, Some(1));
    assert_eq!(detailed.flags[1].feature_type, Some("MULTIVARIATE"));
}

#[test]
fn environment_flags_without_identity_use_defaults_and_no_variant() {
    let result = CompiledEnvironment::from_document(&doc()).evaluate(None);
    assert_eq!(result.segments, vec![]);
    let mv = &result.flags["mv_feature"];
    assert_eq!(mv.value, json!("control"));
    assert_eq!(mv.variant, None);
    assert_eq!(mv.reason, "DEFAULT");
}

#[test]
fn uuid_priorities_when_mv_ids_are_missing() {
    assert_eq!(
        uuid_to_u128("00000000-0000-0000-0000-00000000000a"),
        Some(10)
    );
    assert_eq!(uuid_to_u128("not-a-uuid"), None);
}
