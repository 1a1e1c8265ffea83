//! Compiles an [`EvaluationContext`] (or an [`EnvironmentDocument`]) once into a
//! [`CompiledEnvironment`] that evaluates any number of identities without re-parsing:
//! regexes compiled, numbers and versions pre-cast, `IN` sets built, JSONPaths resolved to
//! accessors, trait names interned to slots, override priorities and variant order fixed.
//!
//! Compiling never fails: a condition that cannot work (bad regex, unparsable number,
//! unknown operator) compiles to "never matches", as Flagsmith treats it, and is reported
//! in [`CompiledEnvironment::issues`].

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::context::{
    Condition, EvaluationContext, FeatureContext, Operator, RuleType, SegmentContext, SegmentRule,
};
use crate::document::EnvironmentDocument;
use crate::jsonpath::{classify, PathTarget};
use crate::mapping::document_to_context;
use crate::operators::{compile_regex, parse_modulo, Comparison, InSet, TypedOperand};
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
    /// Trait name -> slot in the per-evaluation trait table.
    pub(crate) trait_slots: HashMap<Box<str>, usize>,
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
    pub metadata: Option<Map<String, Value>>,
    pub rules: Vec<CompiledRule>,
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

#[derive(Debug, Clone)]
pub(crate) struct CompiledFeature {
    pub state: CompiledFeatureState,
    /// `feature.type` from the document, when compiled from one.
    pub feature_type: Option<Box<str>>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledFeatureState {
    pub key: Box<str>,
    pub name: Box<str>,
    pub enabled: bool,
    pub value: Value,
    /// Only when non-empty (the result omits empty metadata).
    pub metadata: Option<Map<String, Value>>,
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

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub quantifier: Quantifier,
    pub conditions: Vec<CompiledCondition>,
    pub rules: Vec<CompiledRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quantifier {
    All,
    Any,
    None,
    /// Unknown rule type: matches only when it has neither conditions nor sub-rules.
    Invalid,
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
    IsSet(Accessor),
    IsNotSet(Accessor),
    In(Accessor, InSet),
    /// `None` accessor: legacy split on the identity key.
    PercentageSplit(Option<Accessor>, f64),
    Modulo(Accessor, f64, f64),
    Regex(Accessor, Box<regex::Regex>),
    NotContains(Accessor, Box<str>),
    Typed(Comparison, Accessor, Box<TypedOperand>),
}

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
    trait_slots: HashMap<Box<str>, usize>,
    issues: Vec<CompileIssue>,
    needs_general: bool,
    static_base: Option<Value>,
    current_segment: String,
}

impl<'c> Compiler<'c> {
    fn new(ctx: &'c EvaluationContext) -> Self {
        Compiler {
            ctx,
            trait_slots: HashMap::new(),
            issues: Vec::new(),
            needs_general: false,
            static_base: None,
            current_segment: String::new(),
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
                    state: compile_feature_state(fc),
                    feature_type: None,
                },
            );
        }
        let mut segments = Vec::with_capacity(self.ctx.segments.len());
        for sc in self.ctx.segments.values() {
            segments.push(self.compile_segment(sc, &by_name));
        }
        let general_base = if self.needs_general {
            Some(self.static_base())
        } else {
            None
        };
        CompiledEnvironment {
            env_key: self.ctx.environment.key.as_str().into(),
            env_name: self.ctx.environment.name.as_str().into(),
            segments,
            features: by_name.into_values().collect(),
            trait_slots: self.trait_slots,
            general_base,
            issues: self.issues,
        }
    }

    fn compile_segment(
        &mut self,
        sc: &SegmentContext,
        features: &IndexMap<&str, CompiledFeature>,
    ) -> CompiledSegment {
        self.current_segment = sc.name.clone();
        let rules = sc.rules.iter().map(|r| self.compile_rule(r, 1)).collect();
        let overrides = sc
            .overrides
            .iter()
            .filter_map(|fc| {
                Some(CompiledOverride {
                    feature: features.get_index_of(fc.name.as_str())?,
                    priority: fc.priority.unwrap_or(f64::INFINITY),
                    state: compile_feature_state(fc),
                })
            })
            .collect();
        CompiledSegment {
            key: sc.key.as_str().into(),
            name: sc.name.as_str().into(),
            metadata: sc.metadata.clone().filter(|m| !m.is_empty()),
            rules,
            reason: format!("TARGETING_MATCH; segment={}", sc.name).into(),
            overrides,
        }
    }

    fn compile_rule(&mut self, rule: &SegmentRule, depth: usize) -> CompiledRule {
        if depth > MAX_RULE_DEPTH {
            self.issues.push(CompileIssue::RulesTooDeep {
                segment: self.current_segment.clone(),
                max: MAX_RULE_DEPTH,
            });
            return CompiledRule {
                quantifier: Quantifier::Invalid,
                conditions: vec![CompiledCondition::Never],
                rules: Vec::new(),
            };
        }
        let quantifier = match rule.rule_type {
            RuleType::All => Quantifier::All,
            RuleType::Any => Quantifier::Any,
            RuleType::None => Quantifier::None,
            RuleType::Unknown => {
                self.issues.push(CompileIssue::UnknownRuleType {
                    segment: self.current_segment.clone(),
                });
                Quantifier::Invalid
            }
        };
        CompiledRule {
            quantifier,
            conditions: rule
                .conditions
                .iter()
                .map(|c| self.compile_condition(c))
                .collect(),
            rules: rule
                .rules
                .iter()
                .map(|r| self.compile_rule(r, depth + 1))
                .collect(),
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
            Operator::In => CompiledCondition::In(self.accessor(&c.property), InSet::new(&c.value)),
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
                CompiledCondition::PercentageSplit(accessor, threshold)
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
                match compile_regex(&pattern) {
                    Ok(re) => CompiledCondition::Regex(self.accessor(&c.property), Box::new(re)),
                    Err(e) => {
                        self.issues.push(CompileIssue::InvalidRegex {
                            segment: self.current_segment.clone(),
                            pattern,
                            message: e.to_string(),
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

    fn slot(&mut self, name: &str) -> usize {
        let next = self.trait_slots.len();
        *self.trait_slots.entry(name.into()).or_insert(next)
    }

    fn accessor(&mut self, property: &str) -> Accessor {
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
                let base = self.static_base();
                let node = path.query(&base).first().cloned();
                let value = match &node {
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

    /// The context as JSON without its identity (built at most once).
    fn static_base(&mut self) -> Value {
        if let Some(v) = &self.static_base {
            return v.clone();
        }
        let mut ctx = self.ctx.clone();
        ctx.identity = None;
        let v = serde_json::to_value(&ctx).unwrap_or(Value::Null);
        self.static_base = Some(v.clone());
        v
    }
}

fn compile_feature_state(fc: &FeatureContext) -> CompiledFeatureState {
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
    let metadata = fc.metadata.clone().filter(|m| !m.is_empty());
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
