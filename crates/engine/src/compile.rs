//! Compiles an [`EvaluationContext`] (or an [`EnvironmentDocument`]) once into a
//! [`CompiledEnvironment`] that evaluates any number of identities without re-parsing:
//! regexes compiled, numbers and versions pre-cast, `IN` sets built, JSONPaths resolved to
//! accessors, trait names interned to slots, override priorities and variant order fixed.
//!
//! Compiling never fails: a condition that cannot work (bad regex, unparsable number,
//! unknown operator) compiles to "never matches", as Flagsmith treats it, and is reported
//! in [`CompiledEnvironment::issues`].

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::context::{
    Condition, EvaluationContext, FeatureContext, Operator, RuleType, SegmentContext, SegmentRule,
};
use crate::document::EnvironmentDocument;
use crate::fxhash::FxHashMap;
use crate::jsonpath::{classify, PathTarget};
use crate::mapping::document_to_context;
use crate::operators::{parse_modulo, Comparison, InSet, MemberSet, TypedOperand};
use crate::pattern::Pattern;
use crate::pyfmt;
use crate::pynum::parse_py_float;
use crate::value::ContextValue;

/// Rules nested deeper than this never match (Python would hit its recursion limit).
pub const MAX_RULE_DEPTH: usize = 64;

/// A context compiled for fast, repeated evaluation. Cheap to share (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct CompiledEnvironment {
    pub(crate) env_key: Box<str>,
    pub(crate) env_name: Box<str>,
    pub(crate) segments: Vec<CompiledSegment>,
    pub(crate) features: Vec<CompiledFeature>,
    /// How many features [`CompiledFeature::splits`]: the variant buckets per identity.
    pub(crate) split_features: usize,
    /// Every segment's rules, flattened.
    pub(crate) program: Program,
    /// Trait name -> slot in the per-evaluation trait table.
    pub(crate) trait_slots: FxHashMap<Box<str>, usize>,
    /// The context without identity, for the rare general JSONPath.
    pub(crate) general_base: Option<Value>,
    issues: Vec<CompileIssue>,
}

/// Why a part of the context compiled to "never matches".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileIssue {
    #[error("segment {segment:?}: invalid regex {pattern:?}: {message}")]
    InvalidRegex {
        segment: String,
        pattern: String,
        message: String,
    },
    #[error("segment {segment:?}: unknown operator {operator:?}")]
    UnknownOperator { segment: String, operator: String },
    #[error("segment {segment:?}: unknown rule type")]
    UnknownRuleType { segment: String },
    #[error(
        "segment {segment:?}: {operator} value {value} cannot be used; the condition never matches"
    )]
    UnusableValue {
        segment: String,
        operator: String,
        value: String,
    },
    #[error("segment {segment:?}: rules nested deeper than {max} levels never match")]
    RulesTooDeep { segment: String, max: usize },
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledSegment {
    pub key: Box<str>,
    pub name: Box<str>,
    pub metadata: Option<Arc<Map<String, Value>>>,
    /// Where the segment's rules start in [`Program::code`] ([`NO_MATCH`] for a segment
    /// without rules, which never matches).
    pub entry: u32,
    /// `TARGETING_MATCH; segment=<name>`, pre-formatted.
    pub reason: Box<str>,
    pub overrides: Vec<CompiledOverride>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledOverride {
    /// Index into `features`; overrides of features absent from the context are dropped.
    pub feature: usize,
    pub priority: f64,
    pub state: CompiledFeatureState,
}

/// One of a feature's segment overrides, as the per-identity scan reads it: where it is,
/// and what the flag needs from it when that is little.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeatureOverride {
    /// Index into the environment's segments.
    pub segment: u32,
    /// Index into that segment's `overrides`.
    pub index: u32,
    pub shape: OverrideShape,
}

/// How an override's state differs from its feature's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverrideShape {
    /// Only in `enabled` (this) and `value`: the flag is the feature's with those two, built
    /// without reading the override. On a large environment each override read is a
    /// cache miss, one per flag.
    Plain { enabled: bool },
    /// Variants, metadata or id of its own, keyed like the feature: it buckets with the
    /// feature's batched split hash.
    SameKey,
    /// Keyed differently (only a hand-written context does this): hashed on its own key.
    OtherKey,
}

impl OverrideShape {
    fn of(state: &CompiledFeatureState, feature: &CompiledFeatureState) -> Self {
        let same_metadata = match (&state.metadata, &feature.metadata) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        if state.key != feature.key {
            OverrideShape::OtherKey
        } else if state.variants.is_empty()
            && same_metadata
            && state.feature_id == feature.feature_id
            && state.name == feature.name
        {
            OverrideShape::Plain {
                enabled: state.enabled,
            }
        } else {
            OverrideShape::SameKey
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledFeature {
    pub state: CompiledFeatureState,
    /// This feature's segment overrides, best first: by priority, ties in segment and
    /// override order. The first whose segment matched wins.
    pub overrides: Box<[FeatureOverride]>,
    /// Some priority is NaN: the order is not total, so evaluation scans `overrides` (then
    /// in segment order) comparing priorities as the reference loop does.
    pub unordered: bool,
    /// `feature.type` from the document, when compiled from one.
    pub feature_type: Option<Box<str>>,
    /// Whether any of its states (default or override) has variants: its split bucket
    /// is hashed up front, with the other features', for each identity.
    pub splits: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledFeatureState {
    pub key: Box<str>,
    pub name: Box<str>,
    pub enabled: bool,
    pub value: Value,
    /// Only when non-empty (the result omits empty metadata). Shared: an override's
    /// metadata is almost always its feature's, and results hand it out without copying.
    pub metadata: Option<Arc<Map<String, Value>>>,
    pub feature_id: Option<i64>,
    /// Sorted by priority (stable).
    pub variants: Vec<CompiledVariant>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledVariant {
    pub key: Option<Box<str>>,
    pub value: Value,
    pub weight: f64,
    /// `SPLIT; weight=<w>`, pre-formatted with Python number formatting.
    pub reason: Box<str>,
}

/// The segment rules of a whole environment, compiled to a branching program: each
/// instruction evaluates one (memoised) condition and jumps to its true or false
/// successor, ending at [`MATCH`] or [`NO_MATCH`]. This evaluates exactly the conditions
/// a short-circuiting walk of the rule tree would, without walking it.
///
/// Within a rule, conditions and sub-rules are ordered cheapest first: conditions are pure,
/// so the order in which `all`/`any`/`none` visits them cannot change the outcome, only
/// how soon it short-circuits.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// Distinct condition properties; conditions refer to them by index.
    pub accessors: Vec<Accessor>,
    /// Distinct conditions (identical ones in different rules are compiled once), so
    /// that evaluation can memoise each outcome per identity. The first two are the
    /// terminals' pseudo-conditions ([`MATCH`], [`NO_MATCH`]), never evaluated.
    pub conditions: Vec<CompiledCondition>,
    pub code: Vec<Instr>,
    /// Every `IN` member of every condition, numbered. An identity's value is looked up
    /// here once (per property), and each `IN` condition then searches a short sorted
    /// list of numbers instead of hashing and comparing the text again.
    pub members: FxHashMap<Box<str>, u32>,
    /// Each segment's [`CompiledSegment::entry`], contiguous: the per-identity loop over
    /// segments reads only this.
    pub entries: Vec<u32>,
    /// Each condition's memo state before an identity's traits are laid out: decided
    /// where the condition reads nothing but traits and all of them are absent, unknown
    /// otherwise (filled by [`crate::evaluate::preset`]).
    pub presets: Vec<u8>,
    /// Per trait slot, the conditions [`Self::presets`] decides that read it, grouped by
    /// operator: for an identity that has the trait, they are evaluated before the walk.
    pub readers: Vec<Box<[u32]>>,
}

/// Jump target: the segment matches. Instruction 0 of every program is this terminal:
/// its condition is the pseudo-condition 0, whose memo slot evaluation presets to "the
/// walk ended in a match", so the walk's step needs no separate test for the end.
pub(crate) const MATCH: u32 = 0;
/// Jump target: the segment does not match (instruction 1, pseudo-condition 1).
pub(crate) const NO_MATCH: u32 = 1;

impl Program {
    /// An empty program: just the two terminals, over their two pseudo-conditions.
    fn new() -> Self {
        Program {
            accessors: Vec::new(),
            conditions: vec![CompiledCondition::Never, CompiledCondition::Never],
            code: vec![
                Instr {
                    condition: MATCH,
                    on_true: MATCH,
                    on_false: MATCH,
                },
                Instr {
                    condition: NO_MATCH,
                    on_true: NO_MATCH,
                    on_false: NO_MATCH,
                },
            ],
            entries: Vec::new(),
            members: FxHashMap::default(),
            presets: Vec::new(),
            readers: Vec::new(),
        }
    }
}

impl Program {
    /// Checks that every entry and jump target is an instruction and every instruction's
    /// condition exists. Evaluation indexes by them without bounds checks, so this holds
    /// for every program by construction; a failure is a bug in this module, never bad
    /// input.
    fn assert_closed(&self) {
        let (code, conditions) = (self.code.len(), self.conditions.len());
        let target = |pc: u32| (pc as usize) < code;
        assert!(
            self.entries.iter().all(|&e| target(e)),
            "entry out of range"
        );
        assert!(
            self.code.iter().all(|i| (i.condition as usize) < conditions
                && target(i.on_true)
                && target(i.on_false)),
            "instruction out of range"
        );
    }
}

/// Evaluate `condition`, continue at `on_true` or `on_false`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Instr {
    pub condition: u32,
    pub on_true: u32,
    pub on_false: u32,
}

/// Rules as a tree of nodes, built per compile and then emitted as [`Program::code`].
#[derive(Debug, Default)]
struct Tree {
    nodes: Vec<Node>,
    /// The children of all nodes; each node owns up to two contiguous ranges.
    items: Vec<Item>,
}

/// One rule (or a segment's top level).
#[derive(Debug, Clone, Copy)]
struct Node {
    pub kind: NodeKind,
    /// Ranges of [`Tree::items`]. `All` and `None` use only the first (conditions and
    /// sub-rules merged); `Any` holds when each non-empty range has a match, as Flagsmith
    /// applies the quantifier to the conditions and to the sub-rules separately.
    pub groups: [(u32, u32); 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    All,
    Any,
    None,
    /// Never holds (an unknown rule type with conditions or sub-rules, or too deep).
    Never,
}

/// A child of a node.
#[derive(Debug, Clone, Copy)]
enum Item {
    Condition(u32),
    Node(u32),
}

/// Where a condition reads its value from.
#[derive(Debug, Clone)]
pub(crate) enum Accessor {
    /// A plain trait name (or a `$.` string that is not valid JSONPath).
    Trait(usize),
    /// A valid JSONPath: a non-null trait literally named like the path wins.
    Path { literal: usize, target: Target },
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    IdentityIdentifier,
    IdentityKey,
    TraitNode(usize),
    Constant(ContextValue<'static>),
    General(Box<JsonPath>),
}

#[derive(Debug, Clone)]
pub(crate) enum CompiledCondition {
    Never,
    IsSet(AccessorId),
    IsNotSet(AccessorId),
    /// The set's members as ids in [`Program::members`].
    In(AccessorId, MemberSet),
    /// `None` accessor: legacy split on the identity key. Seeded with the segment key.
    PercentageSplit(Option<AccessorId>, f64, Box<str>),
    Modulo(AccessorId, f64, f64),
    /// Shared between all conditions with the same pattern.
    Regex(AccessorId, Arc<Pattern>),
    NotContains(AccessorId, Box<str>),
    Typed(Comparison, AccessorId, Box<TypedOperand>),
}

/// Index into [`Program::accessors`].
pub(crate) type AccessorId = u32;

impl CompiledEnvironment {
    /// Compiles an evaluation context. Its `identity`, if any, is ignored: identities are
    /// passed to [`evaluate`](Self::evaluate).
    pub fn from_context(ctx: &EvaluationContext) -> CompiledEnvironment {
        Compiler::new(ctx).finish()
    }

    /// Maps a document to a context (as the SDKs do) and compiles it.
    pub fn from_document(doc: &EnvironmentDocument) -> CompiledEnvironment {
        let mut compiled = Self::from_context(&document_to_context(doc));
        let types: HashMap<i64, &str> = doc
            .feature_states
            .iter()
            .map(|fs| (fs.feature.id, fs.feature.feature_type.as_str()))
            .collect();
        for feature in &mut compiled.features {
            feature.feature_type = feature
                .state
                .feature_id
                .and_then(|id| types.get(&id))
                .map(|t| Box::from(*t));
        }
        compiled
    }

    /// What compiled to "never matches", for diagnostics.
    pub fn issues(&self) -> &[CompileIssue] {
        &self.issues
    }

    /// The environment key (client-side API key).
    pub fn environment_key(&self) -> &str {
        &self.env_key
    }

    /// The environment name.
    pub fn environment_name(&self) -> &str {
        &self.env_name
    }

    /// Number of features evaluated per identity.
    pub fn feature_count(&self) -> usize {
        self.features.len()
    }

    /// Number of segments evaluated per identity.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

struct Compiler<'c> {
    ctx: &'c EvaluationContext,
    trait_slots: FxHashMap<Box<str>, usize>,
    issues: Vec<CompileIssue>,
    needs_general: bool,
    static_base: Option<Value>,
    current_segment: String,
    current_segment_key: Box<str>,
    program: Program,
    tree: Tree,
    /// Property -> index in `program.accessors`.
    accessor_ids: HashMap<String, AccessorId>,
    /// Condition key (operator, property, value, split seed) -> index in
    /// `program.conditions`.
    condition_ids: HashMap<String, u32>,
    /// Compiled patterns (or their error message) by pattern text, so that a pattern
    /// repeated across conditions is compiled once.
    regexes: HashMap<String, Result<Arc<Pattern>, String>>,
}

impl<'c> Compiler<'c> {
    fn new(ctx: &'c EvaluationContext) -> Self {
        Compiler {
            ctx,
            trait_slots: FxHashMap::default(),
            issues: Vec::new(),
            needs_general: false,
            static_base: None,
            current_segment: String::new(),
            current_segment_key: Box::from(""),
            program: Program::new(),
            tree: Tree::default(),
            accessor_ids: HashMap::new(),
            condition_ids: HashMap::new(),
            regexes: HashMap::new(),
        }
    }

    fn finish(mut self) -> CompiledEnvironment {
        // Features keyed by name: a later context entry with the same name replaces the
        // earlier one in place, as assigning into Python's result dict does.
        let mut by_name: IndexMap<&str, CompiledFeature> = IndexMap::new();
        for fc in self.ctx.features.values() {
            by_name.insert(
                fc.name.as_str(),
                CompiledFeature {
                    state: compile_feature_state(fc, None),
                    overrides: Box::default(),
                    unordered: false,
                    feature_type: None,
                    splits: false,
                },
            );
        }
        let mut segments = Vec::with_capacity(self.ctx.segments.len());
        for sc in self.ctx.segments.values() {
            segments.push(self.compile_segment(sc, &by_name));
        }
        let mut per_feature: Vec<Vec<(f64, u32, u32)>> = vec![Vec::new(); by_name.len()];
        for (si, seg) in segments.iter().enumerate() {
            for (oi, ov) in seg.overrides.iter().enumerate() {
                per_feature[ov.feature].push((ov.priority, si as u32, oi as u32));
            }
        }
        for (feature, mut list) in by_name.values_mut().zip(per_feature) {
            feature.splits = !feature.state.variants.is_empty()
                || list.iter().any(|&(_, si, oi)| {
                    !segments[si as usize].overrides[oi as usize]
                        .state
                        .variants
                        .is_empty()
                });
            feature.unordered = list.iter().any(|(p, _, _)| p.is_nan());
            if !feature.unordered {
                // Stable: equal priorities keep segment and override order.
                // `partial_cmp`: -0.0 and 0.0 tie, as `<` has them.
                list.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
            }
            feature.overrides = list
                .into_iter()
                .map(|(_, si, oi)| FeatureOverride {
                    segment: si,
                    index: oi,
                    shape: OverrideShape::of(
                        &segments[si as usize].overrides[oi as usize].state,
                        &feature.state,
                    ),
                })
                .collect();
        }
        self.program.entries = segments.iter().map(|s| s.entry).collect();
        self.program.assert_closed();
        // Evaluation indexes its per-segment outcomes by these without bounds checks.
        assert!(
            by_name.values().all(|f| f.overrides.iter().all(|o| segments
                .get(o.segment as usize)
                .is_some_and(|s| (o.index as usize) < s.overrides.len()))),
            "override out of range"
        );
        let general_base = if self.needs_general {
            self.static_base();
            self.static_base.take()
        } else {
            None
        };
        let split_features = by_name.values().filter(|f| f.splits).count();
        let mut env = CompiledEnvironment {
            env_key: self.ctx.environment.key.as_str().into(),
            env_name: self.ctx.environment.name.as_str().into(),
            segments,
            features: by_name.into_values().collect(),
            split_features,
            program: self.program,
            trait_slots: self.trait_slots,
            general_base,
            issues: self.issues,
        };
        crate::evaluate::preset(&mut env);
        env
    }

    fn compile_segment(
        &mut self,
        sc: &SegmentContext,
        features: &IndexMap<&str, CompiledFeature>,
    ) -> CompiledSegment {
        self.current_segment = sc.name.clone();
        self.current_segment_key = sc.key.as_str().into();
        let mut rules: Vec<(Item, u32)> = sc
            .rules
            .iter()
            .map(|r| {
                let (node, cost) = self.compile_rule(r, 1);
                (Item::Node(node), cost)
            })
            .collect();
        // The segment holds when all its rules hold, and never without rules.
        let entry = if rules.is_empty() {
            NO_MATCH
        } else {
            rules.sort_by_key(|&(_, cost)| cost);
            let group = self.push_items(&rules);
            let root = self.push_node(NodeKind::All, [group, (group.1, group.1)]);
            self.emit_node(root, MATCH, NO_MATCH)
        };
        self.tree.nodes.clear();
        self.tree.items.clear();
        let mut overrides: Vec<CompiledOverride> = sc
            .overrides
            .iter()
            .filter_map(|fc| {
                let (index, _, feature) = features.get_full(fc.name.as_str())?;
                let state = compile_feature_state(fc, feature.state.metadata.as_ref());
                Some(CompiledOverride {
                    feature: index,
                    priority: fc.priority.unwrap_or(f64::INFINITY),
                    state,
                })
            })
            .collect();
        // Collected through a filter, so grown by doubling: kept for the revision's lifetime.
        overrides.shrink_to_fit();
        CompiledSegment {
            key: sc.key.as_str().into(),
            name: sc.name.as_str().into(),
            metadata: sc.metadata.clone().filter(|m| !m.is_empty()).map(Arc::new),
            entry,
            reason: format!("TARGETING_MATCH; segment={}", sc.name).into(),
            overrides,
        }
    }

    fn push_items(&mut self, items: &[(Item, u32)]) -> (u32, u32) {
        let start = self.tree.items.len() as u32;
        self.tree.items.extend(items.iter().map(|&(item, _)| item));
        (start, self.tree.items.len() as u32)
    }

    fn push_node(&mut self, kind: NodeKind, groups: [(u32, u32); 2]) -> u32 {
        self.tree.nodes.push(Node { kind, groups });
        (self.tree.nodes.len() - 1) as u32
    }

    /// Emits the code of an item that continues at `on_true` when it holds, else at
    /// `on_false`; returns its entry point. Children are emitted last to first, so that
    /// each one's successor exists already and they run first to last.
    fn emit_item(&mut self, item: Item, on_true: u32, on_false: u32) -> u32 {
        match item {
            Item::Condition(condition) => {
                self.program.code.push(Instr {
                    condition,
                    on_true,
                    on_false,
                });
                (self.program.code.len() - 1) as u32
            }
            Item::Node(node) => self.emit_node(node, on_true, on_false),
        }
    }

    fn emit_node(&mut self, node: u32, on_true: u32, on_false: u32) -> u32 {
        let Node { kind, groups } = self.tree.nodes[node as usize];
        let items = |this: &Self, (start, end): (u32, u32)| -> Vec<Item> {
            this.tree.items[start as usize..end as usize].to_vec()
        };
        match kind {
            NodeKind::Never => on_false,
            // Every item holds: each continues to the next, any failure fails.
            NodeKind::All => {
                let mut next = on_true;
                for item in items(self, groups[0]).into_iter().rev() {
                    next = self.emit_item(item, next, on_false);
                }
                next
            }
            // No item holds: any success fails, each failure continues to the next.
            NodeKind::None => {
                let mut next = on_true;
                for item in items(self, groups[0]).into_iter().rev() {
                    next = self.emit_item(item, on_false, next);
                }
                next
            }
            // Each non-empty group has an item that holds.
            NodeKind::Any => {
                let mut next = on_true;
                for group in groups.into_iter().rev() {
                    let mut first = on_false;
                    for item in items(self, group).into_iter().rev() {
                        first = self.emit_item(item, next, first);
                    }
                    if group.0 != group.1 {
                        next = first;
                    }
                }
                next
            }
        }
    }

    /// Compiles a rule into a node; returns it with its estimated evaluation cost.
    fn compile_rule(&mut self, rule: &SegmentRule, depth: usize) -> (u32, u32) {
        if depth > MAX_RULE_DEPTH {
            self.issues.push(CompileIssue::RulesTooDeep {
                segment: self.current_segment.clone(),
                max: MAX_RULE_DEPTH,
            });
            return (self.push_node(NodeKind::Never, [(0, 0); 2]), 0);
        }
        let kind = match rule.rule_type {
            RuleType::All => NodeKind::All,
            RuleType::Any => NodeKind::Any,
            RuleType::None => NodeKind::None,
            RuleType::Unknown => {
                self.issues.push(CompileIssue::UnknownRuleType {
                    segment: self.current_segment.clone(),
                });
                NodeKind::Never
            }
        };
        let mut conditions: Vec<(Item, u32)> = rule
            .conditions
            .iter()
            .map(|c| {
                let (id, cost) = self.intern_condition(c);
                (Item::Condition(id), cost)
            })
            .collect();
        let mut rules: Vec<(Item, u32)> = rule
            .rules
            .iter()
            .map(|r| {
                let (node, cost) = self.compile_rule(r, depth + 1);
                (Item::Node(node), cost)
            })
            .collect();
        let cost = conditions
            .iter()
            .chain(&rules)
            .fold(1u32, |acc, &(_, c)| acc.saturating_add(c));
        let node = match kind {
            // An unknown rule type holds only when it has nothing to quantify over.
            NodeKind::Never if conditions.is_empty() && rules.is_empty() => {
                self.push_node(NodeKind::All, [(0, 0); 2])
            }
            NodeKind::Never => self.push_node(NodeKind::Never, [(0, 0); 2]),
            NodeKind::Any => {
                conditions.sort_by_key(|&(_, cost)| cost);
                rules.sort_by_key(|&(_, cost)| cost);
                let first = self.push_items(&conditions);
                let second = self.push_items(&rules);
                self.push_node(kind, [first, second])
            }
            NodeKind::All | NodeKind::None => {
                conditions.append(&mut rules);
                conditions.sort_by_key(|&(_, cost)| cost);
                let group = self.push_items(&conditions);
                self.push_node(kind, [group, (group.1, group.1)])
            }
        };
        (node, cost)
    }

    /// Compiles a condition, or reuses an identical one compiled before (same property,
    /// operator and value; for `PERCENTAGE_SPLIT` also the same segment key, which seeds
    /// the hash), so that its outcome is computed once per evaluation.
    fn intern_condition(&mut self, c: &Condition) -> (u32, u32) {
        // `Debug` tells a known operator from an unknown one spelled the same.
        let mut key = format!("{:?}\0", c.operator);
        key.push_str(&c.property);
        key.push('\0');
        if c.operator == Operator::PercentageSplit {
            key.push_str(&self.current_segment_key);
            key.push('\0');
        }
        key.push_str(&c.value.to_string());
        // Compiled even when known, so that each occurrence reports its own issues.
        let compiled = self.compile_condition(c);
        let cost = self.condition_cost(&compiled);
        if let Some(&id) = self.condition_ids.get(&key) {
            return (id, cost);
        }
        self.program.conditions.push(compiled);
        let id = (self.program.conditions.len() - 1) as u32;
        self.condition_ids.insert(key, id);
        (id, cost)
    }

    /// A rough relative cost of evaluating a condition, to order siblings cheapest first.
    fn condition_cost(&self, c: &CompiledCondition) -> u32 {
        let access = |a: &AccessorId| match &self.program.accessors[*a as usize] {
            Accessor::Path {
                target: Target::General(_),
                ..
            } => 200,
            _ => 0,
        };
        match c {
            CompiledCondition::Never => 0,
            CompiledCondition::IsSet(a) | CompiledCondition::IsNotSet(a) => 1 + access(a),
            CompiledCondition::Typed(op, a, operand) => {
                let base = if operand.is_semver() {
                    6
                } else if *op == Comparison::Contains {
                    3
                } else {
                    2
                };
                base + access(a)
            }
            CompiledCondition::In(a, _)
            | CompiledCondition::NotContains(a, _)
            | CompiledCondition::Modulo(a, _, _) => 3 + access(a),
            CompiledCondition::Regex(a, _) => 12 + access(a),
            CompiledCondition::PercentageSplit(a, _, _) => 40 + a.as_ref().map_or(0, access),
        }
    }

    fn compile_condition(&mut self, c: &Condition) -> CompiledCondition {
        let comparison = |op| Some(op);
        let typed = match &c.operator {
            Operator::Equal => comparison(Comparison::Equal),
            Operator::NotEqual => comparison(Comparison::NotEqual),
            Operator::GreaterThan => comparison(Comparison::GreaterThan),
            Operator::GreaterThanInclusive => comparison(Comparison::GreaterThanInclusive),
            Operator::LessThan => comparison(Comparison::LessThan),
            Operator::LessThanInclusive => comparison(Comparison::LessThanInclusive),
            Operator::Contains => comparison(Comparison::Contains),
            _ => None,
        };
        if let Some(op) = typed {
            let operand = TypedOperand::new(&c.value);
            if operand.is_semver_invalid() {
                self.unusable(c);
                return CompiledCondition::Never;
            }
            return CompiledCondition::Typed(op, self.accessor(&c.property), Box::new(operand));
        }
        match &c.operator {
            Operator::IsSet => CompiledCondition::IsSet(self.accessor(&c.property)),
            Operator::IsNotSet => CompiledCondition::IsNotSet(self.accessor(&c.property)),
            Operator::In => {
                let ids: Vec<u32> = InSet::new(&c.value)
                    .members()
                    .map(|m| self.member_id(m))
                    .collect();
                CompiledCondition::In(self.accessor(&c.property), MemberSet::new(ids))
            }
            Operator::NotContains => CompiledCondition::NotContains(
                self.accessor(&c.property),
                pyfmt::value_str(&c.value).into(),
            ),
            Operator::PercentageSplit => {
                let threshold = match &c.value {
                    Value::String(s) => parse_py_float(s),
                    Value::Number(n) => n.as_f64(),
                    _ => None,
                };
                let Some(threshold) = threshold else {
                    self.unusable(c);
                    return CompiledCondition::Never;
                };
                let accessor = if c.property.is_empty() {
                    None
                } else {
                    Some(self.accessor(&c.property))
                };
                CompiledCondition::PercentageSplit(
                    accessor,
                    threshold,
                    self.current_segment_key.clone(),
                )
            }
            Operator::Modulo => match parse_modulo(&c.value) {
                Some((divisor, remainder)) if divisor != 0.0 => {
                    CompiledCondition::Modulo(self.accessor(&c.property), divisor, remainder)
                }
                _ => {
                    self.unusable(c);
                    CompiledCondition::Never
                }
            },
            Operator::Regex => {
                let pattern = pyfmt::value_str(&c.value);
                let compiled = self
                    .regexes
                    .entry(pattern)
                    .or_insert_with_key(|p| {
                        Pattern::new(p).map(Arc::new).map_err(|e| e.to_string())
                    })
                    .clone();
                match compiled {
                    Ok(re) => CompiledCondition::Regex(self.accessor(&c.property), re),
                    Err(message) => {
                        self.issues.push(CompileIssue::InvalidRegex {
                            segment: self.current_segment.clone(),
                            pattern: pyfmt::value_str(&c.value),
                            message,
                        });
                        CompiledCondition::Never
                    }
                }
            }
            Operator::Unknown(name) => {
                self.issues.push(CompileIssue::UnknownOperator {
                    segment: self.current_segment.clone(),
                    operator: name.clone(),
                });
                CompiledCondition::Never
            }
            // Typed operators were handled above.
            _ => CompiledCondition::Never,
        }
    }

    fn unusable(&mut self, c: &Condition) {
        self.issues.push(CompileIssue::UnusableValue {
            segment: self.current_segment.clone(),
            operator: c.operator.as_str().to_owned(),
            value: c.value.to_string(),
        });
    }

    /// Interns an `IN` member.
    fn member_id(&mut self, member: &str) -> u32 {
        let next = self.program.members.len() as u32;
        *self.program.members.entry(member.into()).or_insert(next)
    }

    fn slot(&mut self, name: &str) -> usize {
        let next = self.trait_slots.len();
        *self.trait_slots.entry(name.into()).or_insert(next)
    }

    /// Interns a property's accessor.
    fn accessor(&mut self, property: &str) -> AccessorId {
        if let Some(&id) = self.accessor_ids.get(property) {
            return id;
        }
        let accessor = self.new_accessor(property);
        self.program.accessors.push(accessor);
        let id = (self.program.accessors.len() - 1) as AccessorId;
        self.accessor_ids.insert(property.to_owned(), id);
        id
    }

    fn new_accessor(&mut self, property: &str) -> Accessor {
        if !property.starts_with("$.") {
            return Accessor::Trait(self.slot(property));
        }
        let target = match classify(property) {
            PathTarget::InvalidPath => return Accessor::Trait(self.slot(property)),
            PathTarget::IdentityIdentifier => Target::IdentityIdentifier,
            PathTarget::IdentityKey => Target::IdentityKey,
            PathTarget::Trait(name) => Target::TraitNode(self.slot(&name)),
            PathTarget::Nothing => Target::Constant(ContextValue::Null),
            PathTarget::Static(path) => {
                let base = self.static_base_for(property);
                let value = match path.query(base).first() {
                    Some(v) => ContextValue::from_json_node(v).into_owned(),
                    None => ContextValue::Null,
                };
                Target::Constant(value)
            }
            PathTarget::General(path) => {
                self.needs_general = true;
                Target::General(Box::new(path))
            }
        };
        Accessor::Path {
            literal: self.slot(property),
            target,
        }
    }

    /// The context as JSON without its identity (built at most once, borrowed after).
    fn static_base(&mut self) -> &Value {
        const PARTS: [&str; 3] = ["environment", "segments", "features"];
        for part in PARTS {
            self.static_part(part);
        }
        // In context order, whatever order the parts were added in: a wildcard or
        // descendant path returns its first match.
        if let Some(Value::Object(map)) = &mut self.static_base {
            let mut ordered = Map::new();
            for part in PARTS {
                if let Some(v) = map.remove(part) {
                    ordered.insert(part.to_owned(), v);
                }
            }
            *map = ordered;
        }
        self.static_base
            .get_or_insert_with(|| Value::Object(Map::new()))
    }

    /// Like [`Self::static_base`], but with only the top-level member a path like
    /// `$.environment.name` reads, when that member can be told from the path: most static
    /// paths read the environment, and serialising every segment for them would dominate
    /// compiling a small context.
    fn static_base_for(&mut self, property: &str) -> &Value {
        let top = property
            .strip_prefix("$.")
            .map(|rest| rest.split(['.', '[']).next().unwrap_or(rest));
        match top {
            Some(part @ ("environment" | "segments" | "features")) => {
                self.static_part(part);
                self.static_base
                    .get_or_insert_with(|| Value::Object(Map::new()))
            }
            // `identity` reads nothing here (no identity at compile time); anything else
            // gets the whole base.
            Some("identity") => self
                .static_base
                .get_or_insert_with(|| Value::Object(Map::new())),
            _ => self.static_base(),
        }
    }

    /// Serialises one top-level member of the context into the static base, once.
    fn static_part(&mut self, part: &str) {
        let ctx = self.ctx;
        let base = self
            .static_base
            .get_or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(map) = base else {
            return;
        };
        if map.contains_key(part) {
            return;
        }
        let value = match part {
            "environment" => serde_json::to_value(&ctx.environment),
            "segments" => serde_json::to_value(&ctx.segments),
            _ => serde_json::to_value(&ctx.features),
        };
        map.insert(part.to_owned(), value.unwrap_or(Value::Null));
    }
}

fn compile_feature_state(
    fc: &FeatureContext,
    shared: Option<&Arc<Map<String, Value>>>,
) -> CompiledFeatureState {
    let mut variants: Vec<(f64, CompiledVariant)> = fc
        .variants
        .iter()
        .map(|v| {
            (
                v.priority,
                CompiledVariant {
                    key: v.key.as_deref().map(Box::from),
                    value: v.value.clone(),
                    weight: v.weight.as_f64().unwrap_or(0.0),
                    reason: format!("SPLIT; weight={}", pyfmt::number_str(&v.weight)).into(),
                },
            )
        })
        .collect();
    // Stable, like Python's `sorted(variants, key=itemgetter("priority"))`.
    variants.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    let metadata = match (&fc.metadata, shared) {
        (Some(m), _) if m.is_empty() => None,
        (Some(m), Some(shared)) if **shared == *m => Some(Arc::clone(shared)),
        (Some(m), _) => Some(Arc::new(m.clone())),
        (None, _) => None,
    };
    let feature_id = metadata
        .as_ref()
        .and_then(|m| m.get("id"))
        .and_then(Value::as_i64);
    CompiledFeatureState {
        key: fc.key.as_str().into(),
        name: fc.name.as_str().into(),
        enabled: fc.enabled,
        value: fc.value.clone(),
        metadata,
        feature_id,
        variants: variants.into_iter().map(|(_, v)| v).collect(),
    }
}
