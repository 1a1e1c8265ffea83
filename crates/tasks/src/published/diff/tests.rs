use serde_json::json;

use super::*;

fn state(id: i64, name: &str, enabled: bool, value: Value) -> Value {
    json!({"feature": {"id": id, "name": name, "type": "STANDARD"}, "enabled": enabled,
           "feature_state_value": value, "multivariate_feature_state_values": []})
}

fn seg_override(id: i64, name: &str, enabled: bool, value: Value, priority: i64) -> Value {
    let mut s = state(id, name, enabled, value);
    s["feature_segment"] = json!({"priority": priority});
    s
}

fn doc(states: Vec<Value>, segments: Vec<Value>) -> EnvironmentDocument {
    serde_json::from_value(json!({
        "id": 3, "api_key": "k", "name": "prod",
        "project": {"id": 1, "name": "Web", "segments": segments},
        "feature_states": states,
    }))
    .unwrap()
}

fn segment(id: i64, name: &str, value: &str, overrides: Vec<Value>) -> Value {
    json!({"id": id, "name": name, "feature_states": overrides, "rules": [
        {"type": "ALL", "rules": [], "conditions": [
            {"operator": "EQUAL", "property_": "plan", "value": value}]}]})
}

fn counts(pairs: &[(i64, i64)]) -> IdentityCounts {
    pairs.iter().copied().collect()
}

#[test]
fn the_same_document_is_no_change() {
    let d = doc(
        vec![state(1, "a", true, json!("x"))],
        vec![segment(
            7,
            "beta",
            "pro",
            vec![seg_override(1, "a", false, json!(1), 0)],
        )],
    );
    let c = counts(&[(1, 2)]);
    let out = diff(Some(&d), &d, Some(&c), &c);
    assert!(out.is_empty(), "{out:?}");
    assert!(!out.truncated);
}

#[test]
fn the_first_publish_adds_everything_and_counts_are_unknown_before() {
    let d = doc(
        vec![
            state(2, "b", true, json!(null)),
            state(1, "a", false, json!("x")),
        ],
        vec![segment(7, "beta", "pro", vec![])],
    );
    let out = diff(None, &d, None, &counts(&[(1, 3)]));
    let ids: Vec<i64> = out.features_added.items.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1, 2], "sorted by id");
    assert_eq!(out.segments.added.count, 1);
    assert_eq!(
        out.identity_overrides,
        IdentityTotals {
            before: None,
            after: 3
        }
    );
    assert!(!out.is_empty());
}

#[test]
fn each_kind_of_feature_change_is_named_with_before_and_after() {
    let before = doc(
        vec![
            state(1, "a", false, json!("x")),
            state(2, "b", true, json!(1)),
            state(3, "gone", true, json!(null)),
        ],
        vec![
            segment(
                7,
                "beta",
                "pro",
                vec![seg_override(1, "a", true, json!("s"), 0)],
            ),
            segment(
                8,
                "old",
                "free",
                vec![seg_override(2, "b", true, json!(2), 1)],
            ),
        ],
    );
    let after = doc(
        vec![
            state(1, "a", true, json!("x")),
            state(2, "b", true, json!(1)),
            state(4, "new", false, json!(null)),
        ],
        vec![
            segment(
                7,
                "beta",
                "enterprise",
                vec![seg_override(1, "a", true, json!("t"), 0)],
            ),
            segment(
                9,
                "fresh",
                "free",
                vec![seg_override(2, "b", false, json!(2), 0)],
            ),
        ],
    );
    let out = diff(
        Some(&before),
        &after,
        Some(&counts(&[(2, 1)])),
        &counts(&[(2, 4), (1, 1)]),
    );
    assert_eq!(
        out.features_added.items,
        vec![Ref {
            id: 4,
            name: "new".into()
        }]
    );
    assert_eq!(
        out.features_removed.items,
        vec![Ref {
            id: 3,
            name: "gone".into()
        }]
    );
    let changed = &out.features_changed.items;
    assert_eq!(changed.len(), 2, "{changed:?}");
    let a = &changed[0];
    assert_eq!(
        a.enabled,
        Some(Changed {
            before: false,
            after: true
        })
    );
    assert_eq!(a.value, None, "value unchanged");
    let a_overrides = &a.segment_overrides.as_ref().unwrap().items;
    assert_eq!(a_overrides.len(), 1);
    assert_eq!(a_overrides[0].change, "changed");
    assert_eq!(
        a_overrides[0].value,
        Some(Changed {
            before: json!("s"),
            after: json!("t")
        })
    );
    assert_eq!(
        a.identity_overrides,
        Some(Changed {
            before: 0,
            after: 1
        })
    );
    let b = &changed[1];
    let b_overrides: Vec<(&str, i64)> = b
        .segment_overrides
        .as_ref()
        .unwrap()
        .items
        .iter()
        .map(|o| (o.change, o.segment.id))
        .collect();
    assert_eq!(b_overrides, vec![("removed", 8), ("added", 9)]);
    assert_eq!(
        b.identity_overrides,
        Some(Changed {
            before: 1,
            after: 4
        })
    );
    assert_eq!(out.segments.added.items[0].id, 9);
    assert_eq!(out.segments.removed.items[0].id, 8);
    assert_eq!(
        out.segments.rules_changed.items,
        vec![Ref {
            id: 7,
            name: "beta".into()
        }]
    );
    assert_eq!(
        out.identity_overrides,
        IdentityTotals {
            before: Some(1),
            after: 5
        }
    );
}

#[test]
fn multivariate_splits_and_settings_are_compared() {
    let mut before = doc(vec![state(1, "a", true, json!("control"))], vec![]);
    let mut after = before.clone();
    let mv = |pct: u64| {
        serde_json::from_value(json!([{"percentage_allocation": pct,
            "multivariate_feature_option": {"value": "blue"}}]))
        .unwrap()
    };
    before.feature_states[0].multivariate_feature_state_values = mv(30);
    after.feature_states[0].multivariate_feature_state_values = mv(50);
    after.allow_client_traits = !before.allow_client_traits;
    let out = diff(Some(&before), &after, None, &counts(&[]));
    let m = out.features_changed.items[0].multivariate.as_ref().unwrap();
    assert_eq!(m.before[0].percentage_allocation, json!(30));
    assert_eq!(m.after[0].percentage_allocation, json!(50));
    assert_eq!(out.settings_changed, vec!["allow_client_traits"]);
    assert_eq!(
        out.features_changed.items[0].identity_overrides, None,
        "counts unknown before: not reported per feature"
    );
}

#[test]
fn large_changes_are_bounded_and_say_so() {
    let before = doc(vec![], vec![]);
    let long = "v".repeat(MAX_VALUE_CHARS * 4);
    let after = doc(
        (1..=(MAX_ITEMS as i64 + 50))
            .map(|i| state(i, &format!("f{i}"), true, json!(long)))
            .collect(),
        vec![],
    );
    let out = diff(Some(&before), &after, None, &counts(&[]));
    assert_eq!(out.features_added.count, MAX_ITEMS + 50);
    assert_eq!(out.features_added.items.len(), MAX_ITEMS);
    assert!(out.truncated);

    // A long value that changed is cut; the event stays small.
    let a = doc(vec![state(1, "a", true, json!(long))], vec![]);
    let b = doc(vec![state(1, "a", true, json!(format!("{long}!")))], vec![]);
    let out = diff(Some(&a), &b, None, &counts(&[]));
    let v = out.features_changed.items[0].value.as_ref().unwrap();
    assert_eq!(
        v.after.as_str().unwrap().chars().count(),
        MAX_VALUE_CHARS + 1
    );
    assert!(out.truncated);
    assert!(serde_json::to_string(&out).unwrap().len() < 2_000);
}
