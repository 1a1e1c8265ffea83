//! Evaluates one identity (or none) against a [`CompiledEnvironment`]: segment matching,
//! override precedence, multivariate bucketing and reasons.
//!
//! The main entry points are [`CompiledEnvironment::evaluate`] (the Flagsmith result JSON)
//! and [`CompiledEnvironment::evaluate_detailed`] (typed, borrowed, allocation-light: what
//! the edge and `flagstone eval` use).

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::compile::{
    Accessor, AccessorId, CompiledCondition, CompiledEnvironment, CompiledFeature,
    CompiledFeatureState, FeatureOverride, Instr, OverrideShape, Target, MATCH, NO_MATCH,
};
use crate::context::IdentityContext;
use crate::fxhash::FxHashMap;
use crate::hashing::{hashed_percentage_pair, PairBatch};
use crate::operators::{modulo_match, not_contains, typed_match_with, SemverKey};
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
    pub metadata: Option<&'e Arc<Map<String, Value>>>,
}

/// A segment the identity matched.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMatch<'e> {
    pub key: &'e str,
    pub name: &'e str,
    pub metadata: Option<&'e Arc<Map<String, Value>>>,
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
                            metadata: f.metadata.map(Arc::clone),
                        },
                    )
                })
                .collect(),
            segments: self
                .segments
                .iter()
                .map(|s| SegmentResult {
                    name: s.name.to_owned(),
                    metadata: s.metadata.map(Arc::clone),
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
        let mut matched = vec![false; self.segments.len()];
        let buckets = state.match_segments(&mut matched);
        let count = matched.iter().filter(|m| **m).count();
        let mut segments = Vec::with_capacity(count);
        for (seg, _) in self.segments.iter().zip(&matched).filter(|(_, m)| **m) {
            segments.push(SegmentMatch {
                key: &seg.key,
                name: &seg.name,
                metadata: seg.metadata.as_ref(),
            });
        }
        let mut buckets = buckets.iter();
        let best = |feature: &CompiledFeature| -> Option<FeatureOverride> {
            if !feature.unordered {
                // Best first: the first override of a matched segment wins. Eight at a time,
                // without a branch per override: where the first match falls is data, and
                // a loop that stops at it mispredicts its exit for nearly every feature.
                // SAFETY: `matched` has one entry per segment, and the compiler checked
                // that every override's segment index is in range.
                let hit =
                    |o: &FeatureOverride| unsafe { *matched.get_unchecked(o.segment as usize) };
                let chunks = feature.overrides.chunks_exact(8);
                let rest = chunks.remainder();
                for chunk in chunks {
                    let mask = chunk
                        .iter()
                        .enumerate()
                        .fold(0u32, |mask, (i, o)| mask | (u32::from(hit(o)) << i));
                    if mask != 0 {
                        return Some(chunk[mask.trailing_zeros() as usize]);
                    }
                }
                return rest.iter().find(|o| hit(o)).copied();
            }
            // Strictly lower wins, so on a tie the first seen stays.
            let mut best: Option<(f64, FeatureOverride)> = None;
            for &o in feature.overrides.iter() {
                let seg = &self.segments[o.segment as usize];
                let priority = seg.overrides[o.index as usize].priority;
                if matched[o.segment as usize] && best.is_none_or(|(p, _)| priority < p) {
                    best = Some((priority, o));
                }
            }
            best.map(|(_, o)| o)
        };
        let flags = self
            .features
            .iter()
            .map(|feature| {
                let bucket = if feature.splits {
                    buckets.next().copied()
                } else {
                    None
                };
                let mut flag = match best(feature) {
                    None => state.flag(&feature.state, Reason::Default, bucket),
                    Some(o) => {
                        let seg = &self.segments[o.segment as usize];
                        let reason = Reason::TargetingMatch {
                            segment: &seg.name,
                            text: &seg.reason,
                        };
                        let ov = &seg.overrides[o.index as usize].state;
                        match o.shape {
                            OverrideShape::Plain { enabled } => FlagEvaluation {
                                enabled,
                                // An address: the override itself is not read.
                                value: &ov.value,
                                ..state.flag(&feature.state, reason, None)
                            },
                            OverrideShape::SameKey => state.flag(ov, reason, bucket),
                            // Possible in a hand-written context: hashed on its own key.
                            OverrideShape::OtherKey => {
                                let bucket = match &state.key {
                                    Some(key) if !ov.variants.is_empty() => {
                                        Some(hashed_percentage_pair(&ov.key, key))
                                    }
                                    _ => None,
                                };
                                state.flag(ov, reason, bucket)
                            }
                        }
                    }
                };
                flag.feature_type = feature.feature_type.as_deref();
                flag
            })
            .collect();
        Evaluation { flags, segments }
    }
}

/// An accessor's value for the identity being evaluated, resolved once per evaluation,
/// with its version and Python `str()` parsed or formatted on first use.
struct Resolved<'e> {
    value: ContextValue<'e>,
    semver: OnceCell<Option<SemverKey>>,
    /// `str(value)` for non-text values.
    text: OnceCell<Box<str>>,
    /// The value's id among all `IN` members, if it is one.
    member: OnceCell<Option<u32>>,
}

impl<'e> Resolved<'e> {
    fn new(value: ContextValue<'e>) -> Self {
        Resolved {
            value,
            semver: OnceCell::new(),
            text: OnceCell::new(),
            member: OnceCell::new(),
        }
    }

    /// The id of the value's text in `members`: text values as they are, ints (not bools)
    /// by their decimal form; no other value is a member of any `IN` set.
    fn member(&self, members: &FxHashMap<Box<str>, u32>) -> Option<u32> {
        *self.member.get_or_init(|| match &self.value {
            ContextValue::Str(s) => members.get(&**s).copied(),
            ContextValue::Int(_) => members.get(self.text()).copied(),
            _ => None,
        })
    }

    /// Python's `str()` of the value.
    fn text(&self) -> &str {
        match &self.value {
            ContextValue::Str(s) => s,
            other => self.text.get_or_init(|| with_str(other, |s| Box::from(s))),
        }
    }

    /// The text value parsed as a version (`None` if it is not one).
    fn semver(&self, s: &str) -> Option<&SemverKey> {
        self.semver.get_or_init(|| SemverKey::parse(s)).as_ref()
    }
}

/// Memo states. Known outcomes are 0 and 1, so the walk's common step (a condition
/// already decided) is one comparison and a conditional move.
const FALSE: u8 = 0;
const TRUE: u8 = 1;
/// A condition not evaluated yet.
const UNKNOWN: u8 = 2;
/// A percentage split waiting to be hashed with the others.
const PENDING: u8 = 3;
/// The memo slots of the terminals' pseudo-conditions ([`MATCH`], [`NO_MATCH`]).
const ENDS_MATCHED: u8 = 4;
const ENDS_UNMATCHED: u8 = 5;

/// A percentage split a walk reached before it was hashed: its input, looked up once.
#[derive(Clone, Copy)]
struct PendingSplit<'a> {
    condition: u32,
    threshold: f64,
    /// The segment key.
    seed: &'a str,
    /// The identity's value for the split's property (or its key).
    value: &'a str,
}

/// What [`EvalState::decide`] found.
enum Decided<'a> {
    Holds(bool),
    /// A percentage split to hash.
    Hash(PendingSplit<'a>),
}

/// Per-evaluation state: the identity's traits laid out in compiled slots, and each
/// accessor's value resolved on first use.
struct EvalState<'e> {
    env: &'e CompiledEnvironment,
    identity: Option<&'e IdentityContext>,
    /// The hashing key: explicit, or `<environment key>_<identifier>` built once.
    key: Option<Cow<'e, str>>,
    /// Raw trait value per slot.
    slots: Vec<Option<&'e Value>>,
    resolved: Vec<OnceCell<Resolved<'e>>>,
    /// Outcome per distinct condition: [`FALSE`], [`TRUE`], [`UNKNOWN`] or [`PENDING`]
    /// (and the terminals' two preset slots).
    memo: Vec<Cell<u8>>,
    general: OnceCell<Value>,
}

impl<'e> EvalState<'e> {
    /// The state for `identity`: conditions on traits it lacks start decided (the
    /// environment's presets, see [`presets`]), and those on traits it has are decided
    /// next, before any walk.
    fn new(env: &'e CompiledEnvironment, identity: Option<&'e IdentityContext>) -> Self {
        let program = &env.program;
        let memo: Vec<Cell<u8>> = program.presets.iter().map(|&s| Cell::new(s)).collect();
        let mut slots = vec![None; env.trait_slots.len()];
        if let Some(identity) = identity {
            for (name, value) in &identity.traits {
                if let Some(&slot) = env.trait_slots.get(name.as_str()) {
                    slots[slot] = Some(value);
                }
            }
        }
        let state = Self::with_memo(env, identity, slots, memo);
        state.decide_traits();
        state
    }

    /// Decides the conditions on the traits the identity has, up front. The walk then
    /// meets an undecided condition only where it depends on more than traits (a split,
    /// the identity's key or identifier), and each trait's conditions are evaluated
    /// together, grouped by operator (`preset` sorts them), where the walk would jump
    /// between kinds and mispredict both whether to evaluate and which evaluation.
    fn decide_traits(&self) {
        let readers = &self.env.program.readers;
        for (slot, value) in self.slots.iter().enumerate() {
            if value.is_none() {
                continue;
            }
            for &c in readers[slot].iter() {
                // SAFETY: `preset` lists only conditions, and `memo` has one entry per
                // condition.
                let cell = unsafe { self.memo.get_unchecked(c as usize) };
                // (A condition reading two traits is listed under both and decided
                // twice, to the same outcome: conditions are pure.)
                match self.decide(c) {
                    Decided::Holds(holds) => cell.set(if holds { TRUE } else { FALSE }),
                    // A split on a trait's value: hashed with the others, by the walk.
                    Decided::Hash(_) => cell.set(UNKNOWN),
                }
            }
        }
    }

    fn with_memo(
        env: &'e CompiledEnvironment,
        identity: Option<&'e IdentityContext>,
        slots: Vec<Option<&'e Value>>,
        memo: Vec<Cell<u8>>,
    ) -> Self {
        let key = identity.map(|i| match i.key.as_deref() {
            Some(k) if !k.is_empty() => Cow::Borrowed(k),
            _ => Cow::Owned(format!("{}_{}", env.env_key, i.identifier)),
        });
        memo[MATCH as usize].set(ENDS_MATCHED);
        memo[NO_MATCH as usize].set(ENDS_UNMATCHED);
        EvalState {
            env,
            identity,
            key,
            slots,
            resolved: (0..env.program.accessors.len())
                .map(|_| OnceCell::new())
                .collect(),
            memo,
            general: OnceCell::new(),
        }
    }

    /// Decides every segment into `matched` and returns the split bucket of every
    /// feature that [`CompiledFeature::splits`] (in feature order; empty without an
    /// identity).
    ///
    /// Percentage splits are the costly conditions (an MD5 each), and a hash is a chain of
    /// dependent steps that leaves the CPU mostly idle. So a segment whose walk reaches an
    /// unhashed split is put aside; once all segments have been walked, the splits they
    /// wait on (and the variant buckets) are hashed together, several per instruction, and
    /// the put-aside walks resumed where they stopped. Conditions are pure and memoised,
    /// so a resumed walk reaches the outcome the one-pass walk would, and exactly the same
    /// splits get hashed.
    fn match_segments(&self, matched: &mut [bool]) -> Vec<f64> {
        let entries = &self.env.program.entries;
        // Sized for the incident workload's ≈ 35 splits per identity: no regrowth.
        let mut pending = Vec::with_capacity(64);
        // (segment, the instruction its walk stopped at)
        let mut waiting: Vec<(u32, u32)> = Vec::with_capacity(64);
        for (si, (slot, &entry)) in matched.iter_mut().zip(entries).enumerate() {
            match self.walk_inline(entry, &mut pending) {
                Ok(m) => *slot = m,
                Err(pc) => waiting.push((si as u32, pc)),
            }
        }
        let buckets = self.hash_splits(&pending, true);
        while !waiting.is_empty() {
            pending.clear();
            waiting.retain_mut(|(si, pc)| match self.walk(*pc, &mut pending) {
                Ok(m) => {
                    matched[*si as usize] = m;
                    false
                }
                Err(at) => {
                    *pc = at;
                    true
                }
            });
            self.hash_splits(&pending, false);
        }
        buckets
    }

    /// Runs a segment's branching program from `entry`: whether its rules hold, or, if it
    /// reached a split not hashed yet (recorded in `pending` once, with its input), the
    /// instruction to resume at once it is.
    #[inline(always)]
    fn walk_inline<'s>(
        &'s self,
        entry: u32,
        pending: &mut Vec<PendingSplit<'s>>,
    ) -> Result<bool, u32> {
        let code: &[Instr] = &self.env.program.code;
        let memo: &[Cell<u8>] = &self.memo;
        debug_assert_eq!(memo.len(), self.env.program.conditions.len());
        let mut pc = entry;
        loop {
            // SAFETY: the compiler checked (`Program::assert_closed`) that every entry and
            // jump target indexes `code` and every instruction's condition indexes
            // `conditions`, which `memo` is as long as (`EvalState::new`). Unchecked,
            // the walk's common step is a handful of instructions.
            let instr = unsafe { code.get_unchecked(pc as usize) };
            let cell = unsafe { memo.get_unchecked(instr.condition as usize) };
            let state = cell.get();
            if state <= TRUE {
                pc = if state == TRUE {
                    instr.on_true
                } else {
                    instr.on_false
                };
                continue;
            }
            // One branch for both terminals: whether a segment matched is data, and a
            // branch on it would be mispredicted for most of the segments that do.
            if state >= ENDS_MATCHED {
                return Ok(state == ENDS_MATCHED);
            }
            if state == PENDING {
                return Err(pc);
            }
            let holds = match self.decide(instr.condition) {
                Decided::Holds(holds) => holds,
                Decided::Hash(split) => {
                    cell.set(PENDING);
                    pending.push(split);
                    return Err(pc);
                }
            };
            cell.set(if holds { TRUE } else { FALSE });
            pc = if holds { instr.on_true } else { instr.on_false };
        }
    }

    /// [`Self::walk_inline`], out of line: for the few segments resumed.
    #[inline(never)]
    fn walk<'s>(&'s self, entry: u32, pending: &mut Vec<PendingSplit<'s>>) -> Result<bool, u32> {
        self.walk_inline(entry, pending)
    }

    /// Evaluates a condition not decided yet: its outcome, or for a percentage split with
    /// an input, that input (hashed later, in a batch).
    #[inline(always)]
    fn decide(&self, condition: u32) -> Decided<'_> {
        match &self.env.program.conditions[condition as usize] {
            CompiledCondition::PercentageSplit(accessor, threshold, seed) => {
                let value = match accessor {
                    // Legacy form: split on the identity key, as is (no coercion).
                    None => self.key.as_deref(),
                    Some(a) => {
                        let r = self.resolve(*a);
                        (!r.value.is_null()).then(|| r.text())
                    }
                };
                // Without an identity key or with a null property there is nothing to
                // hash, and it never matches.
                match value {
                    Some(value) => Decided::Hash(PendingSplit {
                        condition,
                        threshold: *threshold,
                        seed,
                        value,
                    }),
                    None => Decided::Holds(false),
                }
            }
            other => Decided::Holds(self.condition_matches(other)),
        }
    }

    /// Hashes the `pending` splits (and, if `variants`, every splitting feature's bucket)
    /// in one batch, memoises the splits' outcomes and returns the variant buckets.
    fn hash_splits(&self, pending: &[PendingSplit<'_>], variants: bool) -> Vec<f64> {
        let mut buckets = Vec::with_capacity(if variants { self.env.split_features } else { 0 });
        // Tag: the index in `pending`, or `None` for the next variant bucket (in order).
        let mut sink = |tag: Option<u32>, p: f64| match tag {
            Some(i) => {
                let split = &pending[i as usize];
                let holds = p <= split.threshold;
                self.memo[split.condition as usize].set(if holds { TRUE } else { FALSE });
            }
            None => buckets.push(p),
        };
        let mut batch = PairBatch::new();
        for (i, split) in pending.iter().enumerate() {
            batch.push(Some(i as u32), split.seed, split.value, &mut sink);
        }
        if let (true, Some(key)) = (variants, self.key.as_deref()) {
            for feature in self.env.features.iter().filter(|f| f.splits) {
                batch.push(None, &feature.state.key, key, &mut sink);
            }
        }
        batch.finish(&mut sink);
        buckets
    }

    /// Whether a condition other than a percentage split holds.
    #[inline(always)]
    fn condition_matches(&self, condition: &'e CompiledCondition) -> bool {
        match condition {
            CompiledCondition::Never => false,
            CompiledCondition::IsSet(a) => !self.value(*a).is_null(),
            CompiledCondition::IsNotSet(a) => self.value(*a).is_null(),
            CompiledCondition::In(a, ids) => self
                .resolve(*a)
                .member(&self.env.program.members)
                .is_some_and(|id| ids.contains(id)),
            // Decided by `decide`, which hashes it in a batch.
            CompiledCondition::PercentageSplit(..) => false,
            CompiledCondition::Modulo(a, divisor, remainder) => {
                modulo_match(self.value(*a), *divisor, *remainder)
            }
            CompiledCondition::Regex(a, re) => {
                let r = self.resolve(*a);
                !r.value.is_null() && re.is_match(r.text())
            }
            CompiledCondition::NotContains(a, needle) => not_contains(self.value(*a), needle),
            CompiledCondition::Typed(op, a, operand) => {
                let r = self.resolve(*a);
                typed_match_with(*op, &r.value, operand, |s, right| {
                    r.semver(s).map(|left| left.cmp(right))
                })
            }
        }
    }

    fn value(&self, accessor: AccessorId) -> &ContextValue<'e> {
        &self.resolve(accessor).value
    }

    /// Looks up a condition's context value (coerced), once per evaluation.
    fn resolve(&self, accessor: AccessorId) -> &Resolved<'e> {
        self.resolved[accessor as usize].get_or_init(|| {
            Resolved::new(match &self.env.program.accessors[accessor as usize] {
                Accessor::Trait(slot) => self.trait_value(*slot),
                Accessor::Path { literal, target } => {
                    let lit = self.trait_value(*literal);
                    if lit.is_null() {
                        self.target_value(target)
                    } else {
                        lit
                    }
                }
            })
        })
    }

    fn trait_value(&self, slot: usize) -> ContextValue<'e> {
        match self.slots[slot] {
            Some(v) => ContextValue::from_json(v),
            None => ContextValue::Null,
        }
    }

    fn target_value(&self, target: &'e Target) -> ContextValue<'e> {
        match target {
            Target::IdentityIdentifier => match self.identity {
                Some(i) => ContextValue::from_str_coerced(&i.identifier),
                None => ContextValue::Null,
            },
            Target::IdentityKey => match &self.key {
                Some(Cow::Borrowed(k)) => ContextValue::from_str_coerced(k),
                Some(Cow::Owned(k)) => ContextValue::from_str_coerced(k).into_owned(),
                None => ContextValue::Null,
            },
            Target::TraitNode(slot) => match self.slots[*slot] {
                // Through a path, a non-primitive trait reads as null.
                Some(Value::Array(_) | Value::Object(_)) | None => ContextValue::Null,
                Some(v) => ContextValue::from_json(v),
            },
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
            if let Some(key) = &self.key {
                id.insert("key".into(), Value::String(key.clone().into_owned()));
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

    /// The flag for state `fs`; `bucket` is the identity's split bucket for `fs.key`,
    /// present whenever the state has variants and there is an identity.
    fn flag(
        &self,
        fs: &'e CompiledFeatureState,
        reason: Reason<'e>,
        bucket: Option<f64>,
    ) -> FlagEvaluation<'e> {
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
        let (Some(p), false) = (bucket, fs.variants.is_empty()) else {
            return flag;
        };
        flag.variant = VariantChoice::Control;
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

mod presets;
#[cfg(test)]
mod tests;

pub(crate) use presets::preset;
