//! What a change request would change, and whether it went stale, as pure functions over
//! snapshots of the states it changes: each feature's environment default and each segment
//! override it names (an override that does not exist has no snapshot). The store takes the
//! snapshots when the request is opened (its `base`) and again now.

use serde::Serialize;
use serde_json::{json, Value};

use crate::scheduled::ScheduledFeatureState;
use crate::values::MvAllocation;

/// A default state or segment override, as far as a change request changes it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateSnapshot {
    pub feature: i64,
    /// The override's segment (absent: the environment default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<i64>,
    /// The override's position among the feature's overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    pub enabled: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub feature_state_value: Value,
    pub multivariate_feature_state_values: Vec<MvAllocation>,
}

impl StateSnapshot {
    fn key(&self) -> (i64, Option<i64>) {
        (self.feature, self.segment)
    }

    /// The override as a whole, for a creation or a deletion.
    fn whole(&self) -> Value {
        json!({
            "enabled": self.enabled,
            "feature_state_value": self.feature_state_value,
            "multivariate_feature_state_values": allocations(&self.multivariate_feature_state_values),
            "priority": self.priority,
        })
    }
}

/// The field a creation or deletion of a segment override is shown as.
pub const WHOLE_OVERRIDE: &str = "segment_override";

/// One field a change request changes: what it is, what the request makes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    pub feature: i64,
    /// The override's segment (absent: the environment default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<i64>,
    /// `enabled`, `feature_state_value`, `multivariate_feature_state_values`, `priority`, or
    /// `segment_override` for an override created (`current` null) or deleted (`proposed`
    /// null).
    pub field: &'static str,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub current: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub proposed: Value,
}

/// A field the request changes that someone else changed after it was opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conflict {
    pub feature: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<i64>,
    pub field: &'static str,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub when_opened: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub now: Value,
}

/// The fields an item sets, each with its value in `s` and the value the item gives it. A
/// deletion "sets" every field: any change to the override since it was opened makes
/// deleting it stale.
fn fields(item: &ScheduledFeatureState, s: &StateSnapshot) -> Vec<(&'static str, Value, Value)> {
    let mut out = Vec::new();
    if item.delete_override {
        out.push(("enabled", json!(s.enabled), Value::Null));
        out.push((
            "feature_state_value",
            s.feature_state_value.clone(),
            Value::Null,
        ));
        out.push((
            "multivariate_feature_state_values",
            allocations(&s.multivariate_feature_state_values),
            Value::Null,
        ));
        return out;
    }
    if let Some(e) = item.enabled {
        out.push(("enabled", Value::Bool(s.enabled), Value::Bool(e)));
    }
    if let Some(v) = &item.feature_state_value {
        out.push((
            "feature_state_value",
            s.feature_state_value.clone(),
            v.clone(),
        ));
    }
    if let Some(a) = &item.multivariate_feature_state_values {
        out.push((
            "multivariate_feature_state_values",
            allocations(&s.multivariate_feature_state_values),
            allocations(a),
        ));
    }
    if let Some(p) = item.feature_segment.and_then(|t| t.priority) {
        out.push(("priority", json!(s.priority), json!(p)));
    }
    out
}

/// An override the item creates, as a whole.
fn created(item: &ScheduledFeatureState) -> Value {
    json!({
        "enabled": item.enabled.unwrap_or(false),
        "feature_state_value": item.feature_state_value.clone().unwrap_or(Value::Null),
        "multivariate_feature_state_values":
            allocations(item.multivariate_feature_state_values.as_deref().unwrap_or_default()),
        "priority": item.feature_segment.and_then(|t| t.priority),
    })
}

fn allocations(a: &[MvAllocation]) -> Value {
    serde_json::to_value(a).unwrap_or(Value::Null)
}

fn snapshot_of(states: &[StateSnapshot], key: (i64, Option<i64>)) -> Option<&StateSnapshot> {
    states.iter().find(|s| s.key() == key)
}

/// What committing would change now: each field an item sets whose value differs from
/// `current`; an override created or deleted as a whole. A default state missing from
/// `current` (its feature deleted) shows nothing, nor does deleting an override already gone.
pub fn diff(items: &[ScheduledFeatureState], current: &[StateSnapshot]) -> Vec<FieldChange> {
    let mut out = Vec::new();
    for item in items {
        let change = |field, current, proposed| FieldChange {
            feature: item.feature,
            segment: item.segment(),
            field,
            current,
            proposed,
        };
        match (snapshot_of(current, item.key()), item.segment()) {
            (None, Some(_)) if !item.delete_override => {
                out.push(change(WHOLE_OVERRIDE, Value::Null, created(item)))
            }
            (None, _) => {}
            (Some(now), Some(_)) if item.delete_override => {
                out.push(change(WHOLE_OVERRIDE, now.whole(), Value::Null))
            }
            (Some(now), _) => {
                for (field, current, proposed) in fields(item, now) {
                    if current != proposed {
                        out.push(change(field, current, proposed));
                    }
                }
            }
        }
    }
    out
}

/// The fields the request sets whose value changed between `base` (when it was opened) and
/// `current`: a request with any is stale and is not committed. Fields it does not set may
/// change freely. An override it changes that was created or deleted since is a conflict of
/// the override as a whole.
pub fn conflicts(
    items: &[ScheduledFeatureState],
    base: &[StateSnapshot],
    current: &[StateSnapshot],
) -> Vec<Conflict> {
    let mut out = Vec::new();
    for item in items {
        let conflict = |field, when_opened, now| Conflict {
            feature: item.feature,
            segment: item.segment(),
            field,
            when_opened,
            now,
        };
        let (then, now) = (
            snapshot_of(base, item.key()),
            snapshot_of(current, item.key()),
        );
        match (then, now) {
            (Some(then), Some(now)) => {
                for ((field, when_opened, _), (_, now, _)) in
                    fields(item, then).into_iter().zip(fields(item, now))
                {
                    if when_opened != now {
                        out.push(conflict(field, when_opened, now));
                    }
                }
            }
            // A default state that is gone: its feature was deleted; applying it is refused
            // on its own. An override created or deleted meanwhile is a conflict.
            (Some(then), None) if item.segment().is_some() => {
                out.push(conflict(WHOLE_OVERRIDE, then.whole(), Value::Null))
            }
            (None, Some(now)) if item.segment().is_some() => {
                out.push(conflict(WHOLE_OVERRIDE, Value::Null, now.whole()))
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduled::OverrideTarget;

    fn snap(feature: i64, enabled: bool, value: Value) -> StateSnapshot {
        StateSnapshot {
            feature,
            segment: None,
            priority: None,
            enabled,
            feature_state_value: value,
            multivariate_feature_state_values: vec![],
        }
    }

    fn over_snap(feature: i64, segment: i64, enabled: bool, value: Value) -> StateSnapshot {
        StateSnapshot {
            segment: Some(segment),
            priority: Some(0),
            ..snap(feature, enabled, value)
        }
    }

    fn item(feature: i64, enabled: Option<bool>, value: Option<Value>) -> ScheduledFeatureState {
        ScheduledFeatureState::default_state(feature, enabled, value, None)
    }

    fn over(
        feature: i64,
        segment: i64,
        value: Option<Value>,
        delete: bool,
    ) -> ScheduledFeatureState {
        ScheduledFeatureState {
            feature_segment: Some(OverrideTarget {
                segment,
                priority: None,
            }),
            delete_override: delete,
            ..item(feature, None, value)
        }
    }

    #[test]
    fn the_diff_shows_only_fields_the_request_changes_that_differ() {
        let items = [
            item(1, Some(true), Some(json!("b"))),
            item(2, Some(false), None),
        ];
        let current = [snap(1, false, json!("b")), snap(2, false, json!(7))];
        assert_eq!(
            diff(&items, &current),
            vec![FieldChange {
                feature: 1,
                segment: None,
                field: "enabled",
                current: json!(false),
                proposed: json!(true),
            }]
        );
        // A deleted feature shows nothing.
        assert!(diff(&items[..1], &current[1..]).is_empty());
    }

    #[test]
    fn the_diff_shows_overrides_created_changed_and_deleted() {
        let items = [
            over(1, 10, Some(json!("new")), false),
            over(1, 11, Some(json!("x")), false),
            over(1, 12, None, true),
        ];
        let current = [
            over_snap(1, 11, true, json!("old")),
            over_snap(1, 12, true, json!("gone")),
        ];
        let d = diff(&items, &current);
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].segment, d[0].field), (Some(10), WHOLE_OVERRIDE));
        assert_eq!(d[0].current, Value::Null);
        assert_eq!(d[0].proposed["feature_state_value"], json!("new"));
        assert_eq!(
            (d[1].field, &d[1].proposed),
            ("feature_state_value", &json!("x"))
        );
        assert_eq!((d[2].segment, d[2].field), (Some(12), WHOLE_OVERRIDE));
        assert_eq!(d[2].current["feature_state_value"], json!("gone"));
        assert_eq!(d[2].proposed, Value::Null);
    }

    #[test]
    fn a_request_is_stale_only_when_a_field_it_changes_was_changed() {
        let items = [item(1, Some(true), None)];
        let base = [snap(1, false, json!("a"))];
        // Someone changed the value, which the request leaves alone: not stale.
        assert!(conflicts(&items, &base, &[snap(1, false, json!("z"))]).is_empty());
        // Someone turned it on: stale.
        assert_eq!(
            conflicts(&items, &base, &[snap(1, true, json!("a"))]),
            vec![Conflict {
                feature: 1,
                segment: None,
                field: "enabled",
                when_opened: json!(false),
                now: json!(true),
            }]
        );
    }

    #[test]
    fn overrides_go_stale_when_changed_created_or_deleted_meanwhile() {
        // Changing the value of an override whose value someone else changed.
        let change = [over(1, 10, Some(json!("mine")), false)];
        let then = [over_snap(1, 10, true, json!("a"))];
        let c = conflicts(&change, &then, &[over_snap(1, 10, true, json!("theirs"))]);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].segment, c[0].field),
            (Some(10), "feature_state_value")
        );
        // ...but not when they only toggled it, which the request leaves alone.
        assert!(conflicts(&change, &then, &[over_snap(1, 10, false, json!("a"))]).is_empty());
        // Creating an override someone else created meanwhile.
        let c = conflicts(&change, &[], &[over_snap(1, 10, true, json!("a"))]);
        assert_eq!(
            (c[0].field, &c[0].when_opened),
            (WHOLE_OVERRIDE, &Value::Null)
        );
        // Changing (or deleting) an override someone deleted meanwhile.
        let c = conflicts(&change, &then, &[]);
        assert_eq!((c[0].field, &c[0].now), (WHOLE_OVERRIDE, &Value::Null));
        // Deleting an override someone toggled meanwhile: any change counts.
        let delete = [over(1, 10, None, true)];
        let c = conflicts(&delete, &then, &[over_snap(1, 10, false, json!("a"))]);
        assert_eq!(c[0].field, "enabled");
        assert!(conflicts(&delete, &then, &then).is_empty());
    }
}
