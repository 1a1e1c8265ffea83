//! What changed for SDKs between two published documents of one environment, as a typed,
//! size-bounded value: the `changes` of an `ENVIRONMENT_PUBLISHED` event. Pure: [`diff`] reads
//! the previous and the new document (and the identity-override counts the caller gathered,
//! since identity overrides are not part of the document) and nothing else.
//!
//! Bounded so one event stays small however large the change: each list keeps its first
//! [`MAX_ITEMS`] entries (sorted by id) with its full `count` beside it, each feature lists at
//! most [`MAX_OVERRIDES_PER_FEATURE`] segment overrides, and values longer than
//! [`MAX_VALUE_CHARS`] characters are cut. `truncated` says whether anything was left out.

use std::collections::{BTreeMap, BTreeSet};

use flagstone_engine::{EnvironmentDocument, FeatureState};
use serde::Serialize;
use serde_json::Value;

/// Entries kept per list (features added, removed, changed; segments).
pub const MAX_ITEMS: usize = 100;
/// Segment overrides listed per changed feature.
pub const MAX_OVERRIDES_PER_FEATURE: usize = 20;
/// Characters of a string value kept (longer ones end with `…`).
pub const MAX_VALUE_CHARS: usize = 256;

/// Identity overrides per feature id, as counted in the store (they are not in the document).
pub type IdentityCounts = BTreeMap<i64, i64>;

/// A list cut at [`MAX_ITEMS`] with the full count beside it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Listed<T> {
    pub count: usize,
    pub items: Vec<T>,
}

impl<T> Listed<T> {
    fn of(mut all: Vec<T>, cap: usize, truncated: &mut bool) -> Listed<T> {
        let count = all.len();
        if count > cap {
            all.truncate(cap);
            *truncated = true;
        }
        Listed { count, items: all }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A value before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Changed<T> {
    pub before: T,
    pub after: T,
}

/// `{id, name}` of a feature or segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ref {
    pub id: i64,
    pub name: String,
}

/// One multivariate option's share of a state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Variant {
    pub value: Value,
    pub percentage_allocation: Value,
}

/// What changed in one of a feature's segment overrides.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverrideChange {
    pub segment: Ref,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Changed<bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Changed<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Changed<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multivariate: Option<Changed<Vec<Variant>>>,
}

/// What changed for one feature present before and after. Only changed parts are present.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureChange {
    pub id: i64,
    pub name: String,
    /// The environment default's `enabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Changed<bool>>,
    /// The environment default's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Changed<Value>>,
    /// The environment default's multivariate split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multivariate: Option<Changed<Vec<Variant>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_overrides: Option<Listed<OverrideChange>>,
    /// Identity overrides of this feature (absent when unchanged or not known before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_overrides: Option<Changed<i64>>,
}

/// Segments of the project as the document carries them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentChanges {
    pub added: Listed<Ref>,
    pub removed: Listed<Ref>,
    /// Segments whose rules changed (who is in them).
    pub rules_changed: Listed<Ref>,
}

/// Identity overrides of the environment in total; `before` is `null` when the previous
/// publish was not announced (the counts were not taken then).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdentityTotals {
    pub before: Option<i64>,
    pub after: i64,
}

/// What changed for SDKs between two documents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocumentDiff {
    pub features_added: Listed<Ref>,
    pub features_removed: Listed<Ref>,
    pub features_changed: Listed<FeatureChange>,
    pub segments: SegmentChanges,
    /// Environment and project settings SDKs read that changed (`allow_client_traits`,
    /// `hide_disabled_flags`, ...).
    pub settings_changed: Vec<&'static str>,
    pub identity_overrides: IdentityTotals,
    /// Whether any list, override list or value was cut to keep the event small.
    pub truncated: bool,
}

impl DocumentDiff {
    /// Nothing an SDK could notice changed.
    pub fn is_empty(&self) -> bool {
        self.features_added.is_empty()
            && self.features_removed.is_empty()
            && self.features_changed.is_empty()
            && self.segments.added.is_empty()
            && self.segments.removed.is_empty()
            && self.segments.rules_changed.is_empty()
            && self.settings_changed.is_empty()
            && self.identity_overrides.before == Some(self.identity_overrides.after)
    }
}

/// The diff from `previous` (`None`: the environment's first publish, everything is added) to
/// `new`. `identities_before` is `None` when the previous counts are unknown.
pub fn diff(
    previous: Option<&EnvironmentDocument>,
    new: &EnvironmentDocument,
    identities_before: Option<&IdentityCounts>,
    identities_after: &IdentityCounts,
) -> DocumentDiff {
    let mut truncated = false;
    let before = previous.map(Indexed::of).unwrap_or_default();
    let after = Indexed::of(new);

    let mut added = Vec::new();
    let mut changed = Vec::new();
    for (id, now) in &after.defaults {
        match before.defaults.get(id) {
            None => added.push(feature_ref(now)),
            Some(was) => {
                let overrides = override_changes(&before, &after, *id, &mut truncated)
                    .filter(|l| !l.is_empty());
                let identity = match identities_before {
                    Some(b) => {
                        let (x, y) = (
                            b.get(id).copied().unwrap_or(0),
                            identities_after.get(id).copied().unwrap_or(0),
                        );
                        (x != y).then_some(Changed {
                            before: x,
                            after: y,
                        })
                    }
                    None => None,
                };
                let c = FeatureChange {
                    id: *id,
                    name: now.feature.name.clone(),
                    enabled: changed_if(was.enabled, now.enabled),
                    value: value_change(
                        &was.feature_state_value,
                        &now.feature_state_value,
                        &mut truncated,
                    ),
                    multivariate: variants_change(was, now, &mut truncated),
                    segment_overrides: overrides,
                    identity_overrides: identity,
                };
                if c.enabled.is_some()
                    || c.value.is_some()
                    || c.multivariate.is_some()
                    || c.segment_overrides.is_some()
                    || c.identity_overrides.is_some()
                {
                    changed.push(c);
                }
            }
        }
    }
    let removed: Vec<Ref> = before
        .defaults
        .iter()
        .filter(|(id, _)| !after.defaults.contains_key(id))
        .map(|(_, s)| feature_ref(s))
        .collect();

    let seg_added = after
        .segments
        .iter()
        .filter(|(id, _)| !before.segments.contains_key(id))
        .map(|(id, (name, _))| Ref {
            id: *id,
            name: name.clone(),
        })
        .collect();
    let seg_removed = before
        .segments
        .iter()
        .filter(|(id, _)| !after.segments.contains_key(id))
        .map(|(id, (name, _))| Ref {
            id: *id,
            name: name.clone(),
        })
        .collect();
    let seg_rules = after
        .segments
        .iter()
        .filter(|(id, (_, rules))| before.segments.get(id).is_some_and(|(_, was)| was != rules))
        .map(|(id, (name, _))| Ref {
            id: *id,
            name: name.clone(),
        })
        .collect();

    let total = |c: &IdentityCounts| c.values().sum::<i64>();
    DocumentDiff {
        features_added: Listed::of(added, MAX_ITEMS, &mut truncated),
        features_removed: Listed::of(removed, MAX_ITEMS, &mut truncated),
        features_changed: Listed::of(changed, MAX_ITEMS, &mut truncated),
        segments: SegmentChanges {
            added: Listed::of(seg_added, MAX_ITEMS, &mut truncated),
            removed: Listed::of(seg_removed, MAX_ITEMS, &mut truncated),
            rules_changed: Listed::of(seg_rules, MAX_ITEMS, &mut truncated),
        },
        settings_changed: previous
            .map(|p| settings_changed(p, new))
            .unwrap_or_default(),
        identity_overrides: IdentityTotals {
            before: identities_before.map(total),
            after: total(identities_after),
        },
        truncated,
    }
}

/// A document by id: environment defaults per feature, segment overrides per (feature,
/// segment), segments with their rules (as JSON, compared whole).
#[derive(Default)]
struct Indexed<'d> {
    defaults: BTreeMap<i64, &'d FeatureState>,
    overrides: BTreeMap<(i64, i64), &'d FeatureState>,
    segments: BTreeMap<i64, (String, Value)>,
}

impl<'d> Indexed<'d> {
    fn of(doc: &'d EnvironmentDocument) -> Indexed<'d> {
        let mut ix = Indexed::default();
        for s in &doc.feature_states {
            ix.defaults.insert(s.feature.id, s);
        }
        for seg in &doc.project.segments {
            let rules = serde_json::to_value(&seg.rules).unwrap_or(Value::Null);
            ix.segments.insert(seg.id, (seg.name.clone(), rules));
            for s in &seg.feature_states {
                ix.overrides.insert((s.feature.id, seg.id), s);
            }
        }
        ix
    }

    fn segment_ref(&self, id: i64) -> Ref {
        Ref {
            id,
            name: self
                .segments
                .get(&id)
                .map(|(n, _)| n.clone())
                .unwrap_or_default(),
        }
    }

    fn overrides_of(&self, feature: i64) -> impl Iterator<Item = (i64, &'d FeatureState)> + '_ {
        self.overrides
            .range((feature, i64::MIN)..=(feature, i64::MAX))
            .map(|((_, seg), s)| (*seg, *s))
    }
}

fn override_changes(
    before: &Indexed<'_>,
    after: &Indexed<'_>,
    feature: i64,
    truncated: &mut bool,
) -> Option<Listed<OverrideChange>> {
    let segments: BTreeSet<i64> = before
        .overrides_of(feature)
        .chain(after.overrides_of(feature))
        .map(|(seg, _)| seg)
        .collect();
    let mut out = Vec::new();
    for seg in segments {
        let was = before.overrides.get(&(feature, seg)).copied();
        let now = after.overrides.get(&(feature, seg)).copied();
        let entry = |change, segment| OverrideChange {
            segment,
            change,
            enabled: None,
            value: None,
            priority: None,
            multivariate: None,
        };
        match (was, now) {
            (None, Some(_)) => out.push(entry("added", after.segment_ref(seg))),
            (Some(_), None) => out.push(entry("removed", before.segment_ref(seg))),
            (Some(w), Some(n)) => {
                let mut c = entry("changed", after.segment_ref(seg));
                c.enabled = changed_if(w.enabled, n.enabled);
                c.value = value_change(&w.feature_state_value, &n.feature_state_value, truncated);
                c.priority = changed_if(priority(w), priority(n));
                c.multivariate = variants_change(w, n, truncated);
                if c.enabled.is_some()
                    || c.value.is_some()
                    || c.priority.is_some()
                    || c.multivariate.is_some()
                {
                    out.push(c);
                }
            }
            (None, None) => {}
        }
    }
    Some(Listed::of(out, MAX_OVERRIDES_PER_FEATURE, truncated))
}

fn feature_ref(s: &FeatureState) -> Ref {
    Ref {
        id: s.feature.id,
        name: s.feature.name.clone(),
    }
}

fn changed_if<T: PartialEq>(before: T, after: T) -> Option<Changed<T>> {
    (before != after).then_some(Changed { before, after })
}

fn value_change(before: &Value, after: &Value, truncated: &mut bool) -> Option<Changed<Value>> {
    (before != after).then(|| Changed {
        before: bounded(before, truncated),
        after: bounded(after, truncated),
    })
}

/// `v`, with a string longer than [`MAX_VALUE_CHARS`] cut (and `…` appended).
fn bounded(v: &Value, truncated: &mut bool) -> Value {
    match v {
        Value::String(s) if s.chars().count() > MAX_VALUE_CHARS => {
            *truncated = true;
            let mut cut: String = s.chars().take(MAX_VALUE_CHARS).collect();
            cut.push('…');
            Value::String(cut)
        }
        other => other.clone(),
    }
}

fn priority(s: &FeatureState) -> Value {
    s.feature_segment
        .as_ref()
        .and_then(|f| f.priority.clone())
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn variants_change(
    was: &FeatureState,
    now: &FeatureState,
    truncated: &mut bool,
) -> Option<Changed<Vec<Variant>>> {
    let raw = |s: &FeatureState| -> Vec<(Value, serde_json::Number)> {
        s.multivariate_feature_state_values
            .iter()
            .map(|v| {
                (
                    v.multivariate_feature_option.value.clone(),
                    v.percentage_allocation.clone(),
                )
            })
            .collect()
    };
    let (before, after) = (raw(was), raw(now));
    if before == after {
        return None;
    }
    let mut shown = |list: Vec<(Value, serde_json::Number)>| -> Vec<Variant> {
        list.into_iter()
            .map(|(value, pct)| Variant {
                value: bounded(&value, truncated),
                percentage_allocation: Value::Number(pct),
            })
            .collect()
    };
    Some(Changed {
        before: shown(before),
        after: shown(after),
    })
}

fn settings_changed(a: &EnvironmentDocument, b: &EnvironmentDocument) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, changed: bool| {
        if changed {
            out.push(name)
        }
    };
    check(
        "allow_client_traits",
        a.allow_client_traits != b.allow_client_traits,
    );
    check(
        "hide_sensitive_data",
        a.hide_sensitive_data != b.hide_sensitive_data,
    );
    check(
        "hide_disabled_flags",
        a.hide_disabled_flags != b.hide_disabled_flags,
    );
    check(
        "use_identity_composite_key_for_hashing",
        a.use_identity_composite_key_for_hashing != b.use_identity_composite_key_for_hashing,
    );
    check(
        "use_identity_overrides_in_local_eval",
        a.use_identity_overrides_in_local_eval != b.use_identity_overrides_in_local_eval,
    );
    check(
        "project.hide_disabled_flags",
        a.project.hide_disabled_flags != b.project.hide_disabled_flags,
    );
    check(
        "project.server_key_only_feature_ids",
        a.project.server_key_only_feature_ids != b.project.server_key_only_feature_ids,
    );
    out
}

#[cfg(test)]
mod tests;
