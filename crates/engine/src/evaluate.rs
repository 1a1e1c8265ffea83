//! Evaluates one identity (or none) against a [`CompiledEnvironment`]: segment matching,
//! override precedence, multivariate bucketing and reasons.
//!
//! The main entry points are [`CompiledEnvironment::evaluate`] (the Flagsmith result JSON)
//! and [`CompiledEnvironment::evaluate_detailed`] (typed, borrowed, allocation-light: what
//! the edge and `flagstone eval` use).

use std::cell::OnceCell;

use serde_json::{Map, Value};

use crate::compile::{
    Accessor, CompiledCondition, CompiledEnvironment, CompiledFeatureState, CompiledRule,
    Quantifier, Target,
};
use crate::context::IdentityContext;
use crate::hashing::hashed_percentage_of;
use crate::operators::{in_match, modulo_match, not_contains, typed_match};
use crate::result::{EvaluationResult, FlagResult, SegmentResult};
use crate::value::{with_str, ContextValue};

/// Why a flag has its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'e> {
    /// No segment override applied and no variant was picked.
    Default,
    /// A segment override (or identity override) applied.
    TargetingMatch { segment: &'e str, text: &'e str },
    /// A multivariate variant was picked.
    Split { text: &'e str },
}

impl<'e> Reason<'e> {
    /// The Flagsmith reason string, e.g. `TARGETING_MATCH; segment=beta`.
    pub fn as_str(&self) -> &'e str {
        match self {
            Reason::Default => "DEFAULT",
            Reason::TargetingMatch { text, .. } | Reason::Split { text } => text,
        }
    }
}

/// The outcome of multivariate bucketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantChoice<'e> {
    /// No split applied: a standard feature, or no identity.
    NotApplicable,
    /// The identity fell outside every variant's weight: the control value.
    Control,
    /// A variant was picked; its key if it has one.
    Picked { key: Option<&'e str> },
}

impl<'e> VariantChoice<'e> {
    /// The result's `variant` field: key, `"control"`, or `None`.
    pub fn as_result_variant(&self) -> Option<&'e str> {
        match self {
            VariantChoice::NotApplicable => None,
            VariantChoice::Control => Some("control"),
            VariantChoice::Picked { key } => *key,
        }
    }
}

/// One evaluated flag, borrowing from the compiled environment.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagEvaluation<'e> {
    pub name: &'e str,
    /// The feature id (`metadata.id`), when known.
    pub feature_id: Option<i64>,
    /// `STANDARD`/`MULTIVARIATE`, when compiled from a document.
    pub feature_type: Option<&'e str>,
    pub enabled: bool,
    pub value: &'e Value,
    pub variant: VariantChoice<'e>,
    pub reason: Reason<'e>,
    pub metadata: Option<&'e Map<String, Value>>,
}

/// A segment the identity matched.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMatch<'e> {
    pub key: &'e str,
    pub name: &'e str,
    pub metadata: Option<&'e Map<String, Value>>,
}

/// A typed evaluation result; convert with [`Evaluation::to_result`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<'e> {
    pub flags: Vec<FlagEvaluation<'e>>,
    pub segments: Vec<SegmentMatch<'e>>,
}

impl Evaluation<'_> {
    /// The Flagsmith `EvaluationResult`.
    pub fn to_result(&self) -> EvaluationResult {
        EvaluationResult {
            flags: self
                .flags
                .iter()
                .map(|f| {
                    (
                        f.name.to_owned(),
                        FlagResult {
                            name: f.name.to_owned(),
                            enabled: f.enabled,
                            value: f.value.clone(),
                            reason: f.reason.as_str().to_owned(),
                            variant: f.variant.as_result_variant().map(str::to_owned),
                            metadata: f.metadata.cloned(),
                        },
                    )
                })
                .collect(),
            segments: self
                .segments
                .iter()
                .map(|s| SegmentResult {
                    name: s.name.to_owned(),
                    metadata: s.metadata.cloned(),
                })
                .collect(),
        }
    }
}

impl CompiledEnvironment {
    /// Evaluates all flags for an identity (or environment defaults for `None`) and returns
    /// the Flagsmith result.
    pub fn evaluate(&self, identity: Option<&IdentityContext>) -> EvaluationResult {
        self.evaluate_detailed(identity).to_result()
    }

    /// Evaluates all flags, returning typed, borrowed outcomes.
    pub fn evaluate_detailed<'e>(
        &'e self,
        identity: Option<&'e IdentityContext>,
    ) -> Evaluation<'e> {
        let state = EvalState::new(self, identity);
        // Best override per feature: (priority, segment index, override index).
        let mut best: Vec<Option<(f64, u32, u32)>> = vec![None; self.features.len()];
        let mut segments = Vec::new();
        for (si, seg) in self.segments.iter().enumerate() {
            if seg.rules.is_empty() || !seg.rules.iter().all(|r| state.rule_matches(r, &seg.key)) {
                continue;
            }
            segments.push(SegmentMatch {
                key: &seg.key,
                name: &seg.name,
                metadata: seg.metadata.as_ref(),
            });
            for (oi, ov) in seg.overrides.iter().enumerate() {
                let slot = &mut best[ov.feature];
                // Strictly lower wins, so on a tie the first seen stays.
                if slot.is_none_or(|(p, _, _)| ov.priority < p) {
                    *slot = Some((ov.priority, si as u32, oi as u32));
                }
            }
        }
        let flags = self
            .features
            .iter()
            .zip(&best)
            .map(|(feature, best)| {
                let (fs, reason) = match best {
                    Some((_, si, oi)) => {
                        let seg = &self.segments[*si as usize];
                        (
                            &seg.overrides[*oi as usize].state,
                            Reason::TargetingMatch {
                                segment: &seg.name,
                                text: &seg.reason,
                            },
                        )
                    }
                    None => (&feature.state, Reason::Default),
                };
                let mut flag = state.flag(fs, reason);
                flag.feature_type = feature.feature_type.as_deref();
                flag
            })
            .collect();
        Evaluation { flags, segments }
    }
}

/// The identity's hashing key, without building the composite string.
#[derive(Clone, Copy)]
enum IdentityKey<'a> {
    Explicit(&'a str),
    Composite { env: &'a str, identifier: &'a str },
}

impl IdentityKey<'_> {
    fn parts(&self) -> [&str; 3] {
        match *self {
            IdentityKey::Explicit(k) => [k, "", ""],
            IdentityKey::Composite { env, identifier } => [env, "_", identifier],
        }
    }

    fn joined(self) -> String {
        self.parts().concat()
    }
}

/// Per-evaluation state: the identity's traits laid out in compiled slots.
struct EvalState<'e> {
    env: &'e CompiledEnvironment,
    identity: Option<&'e IdentityContext>,
    key: Option<IdentityKey<'e>>,
    /// Coerced trait value per slot, and whether the raw value was a JSON primitive.
    slots: Vec<(ContextValue<'e>, bool)>,
    general: OnceCell<Value>,
}

impl<'e> EvalState<'e> {
    fn new(env: &'e CompiledEnvironment, identity: Option<&'e IdentityContext>) -> Self {
        let mut slots = vec![(ContextValue::Null, true); env.trait_slots.len()];
        if let Some(identity) = identity {
            for (name, value) in &identity.traits {
                if let Some(&slot) = env.trait_slots.get(name.as_str()) {
                    let primitive = !matches!(value, Value::Array(_) | Value::Object(_));
                    slots[slot] = (ContextValue::from_json(value), primitive);
                }
            }
        }
        let key = identity.map(|i| match i.key.as_deref() {
            Some(k) if !k.is_empty() => IdentityKey::Explicit(k),
            _ => IdentityKey::Composite {
                env: &env.env_key,
                identifier: &i.identifier,
            },
        });
        EvalState {
            env,
            identity,
            key,
            slots,
            general: OnceCell::new(),
        }
    }

    /// A rule holds when its quantifier holds over its conditions (if any) and over its
    /// sub-rules (if any); `segment_key` seeds percentage splits.
    fn rule_matches(&self, rule: &CompiledRule, segment_key: &str) -> bool {
        let conditions_hold = rule.conditions.is_empty()
            || quantify(rule.quantifier, rule.conditions.iter(), |c| {
                self.condition_matches(c, segment_key)
            });
        conditions_hold
            && (rule.rules.is_empty()
                || quantify(rule.quantifier, rule.rules.iter(), |r| {
                    self.rule_matches(r, segment_key)
                }))
    }

    fn condition_matches(&self, condition: &CompiledCondition, segment_key: &str) -> bool {
        match condition {
            CompiledCondition::Never => false,
            CompiledCondition::IsSet(a) => !self.value(a).is_null(),
            CompiledCondition::IsNotSet(a) => self.value(a).is_null(),
            CompiledCondition::In(a, set) => in_match(&self.value(a), set),
            CompiledCondition::PercentageSplit(accessor, threshold) => {
                let p = match accessor {
                    // Legacy form: split on the identity key, as is (no coercion).
                    None => match self.key {
                        Some(key) => hashed_percentage_of(&[&[segment_key], &key.parts()]),
                        None => return false,
                    },
                    Some(a) => {
                        let v = self.value(a);
                        if v.is_null() {
                            return false;
                        }
                        with_str(&v, |s| hashed_percentage_of(&[&[segment_key], &[s]]))
                    }
                };
                p <= *threshold
            }
            CompiledCondition::Modulo(a, divisor, remainder) => {
                modulo_match(&self.value(a), *divisor, *remainder)
            }
            CompiledCondition::Regex(a, re) => {
                let v = self.value(a);
                !v.is_null() && with_str(&v, |s| re.is_match(s))
            }
            CompiledCondition::NotContains(a, needle) => not_contains(&self.value(a), needle),
            CompiledCondition::Typed(op, a, operand) => typed_match(*op, &self.value(a), operand),
        }
    }

    /// Looks up a condition's context value (coerced).
    fn value<'s>(&'s self, accessor: &'s Accessor) -> ContextValue<'s> {
        match accessor {
            Accessor::Trait(slot) => self.slots[*slot].0.reborrow(),
            Accessor::Path { literal, target } => {
                let (lit, _) = &self.slots[*literal];
                if !lit.is_null() {
                    return lit.reborrow();
                }
                self.target_value(target)
            }
        }
    }

    fn target_value<'s>(&'s self, target: &'s Target) -> ContextValue<'s> {
        match target {
            Target::IdentityIdentifier => match self.identity {
                Some(i) => ContextValue::from_str_coerced(&i.identifier),
                None => ContextValue::Null,
            },
            Target::IdentityKey => match self.key {
                Some(IdentityKey::Explicit(k)) => ContextValue::from_str_coerced(k),
                Some(composite) => ContextValue::from_str_coerced(&composite.joined()).into_owned(),
                None => ContextValue::Null,
            },
            Target::TraitNode(slot) => {
                let (v, primitive) = &self.slots[*slot];
                if *primitive {
                    v.reborrow()
                } else {
                    ContextValue::Null
                }
            }
            Target::Constant(v) => v.reborrow(),
            Target::General(path) => {
                let doc = self.general.get_or_init(|| self.general_document());
                match path.query(doc).first() {
                    Some(node) => ContextValue::from_json_node(node).into_owned(),
                    None => ContextValue::Null,
                }
            }
        }
    }

    /// The full context as JSON, for general JSONPaths (rare; built at most once).
    fn general_document(&self) -> Value {
        let mut doc = self.env.general_base.clone().unwrap_or(Value::Null);
        if let (Some(identity), Value::Object(map)) = (self.identity, &mut doc) {
            let mut id = Map::new();
            id.insert(
                "identifier".into(),
                Value::String(identity.identifier.clone()),
            );
            if let Some(key) = self.key {
                id.insert("key".into(), Value::String(key.joined()));
            }
            let traits: Map<String, Value> = identity
                .traits
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            id.insert("traits".into(), Value::Object(traits));
            map.insert("identity".into(), Value::Object(id));
        }
        doc
    }

    fn flag(&self, fs: &'e CompiledFeatureState, reason: Reason<'e>) -> FlagEvaluation<'e> {
        let mut flag = FlagEvaluation {
            name: &fs.name,
            feature_id: fs.feature_id,
            feature_type: None,
            enabled: fs.enabled,
            value: &fs.value,
            variant: VariantChoice::NotApplicable,
            reason,
            metadata: fs.metadata.as_ref(),
        };
        let (Some(key), false) = (self.key, fs.variants.is_empty()) else {
            return flag;
        };
        flag.variant = VariantChoice::Control;
        let p = hashed_percentage_of(&[&[&fs.key], &key.parts()]);
        let mut start = 0.0;
        for v in &fs.variants {
            let limit = v.weight + start;
            if start <= p && p < limit {
                flag.value = &v.value;
                flag.variant = VariantChoice::Picked {
                    key: v.key.as_deref(),
                };
                flag.reason = Reason::Split { text: &v.reason };
                break;
            }
            start = limit;
        }
        flag
    }
}

/// `all`, `any` or `none` of `f` over `items`, short-circuiting (Python evaluates every
/// item, but conditions have no side effects).
fn quantify<T>(
    q: Quantifier,
    mut items: impl Iterator<Item = T>,
    f: impl FnMut(T) -> bool,
) -> bool {
    match q {
        Quantifier::All => items.all(f),
        Quantifier::Any => items.any(f),
        Quantifier::None => !items.any(f),
        Quantifier::Invalid => false,
    }
}

#[cfg(test)]
mod tests;
