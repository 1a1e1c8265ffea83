//! Segment rules as the admin API accepts them, checked before anything is stored: every
//! mistake is a 400 naming the exact field (`rules[0].conditions[2].operator`), and every
//! project limit on rules is enforced here. The main entry point is [`parse_rules`].
//!
//! Values are normalised the way Flagsmith stores them: a condition's `value` is always text
//! (numbers and booleans pass through Python's `str()`), so the document builder and the engine
//! see exactly what a Flagsmith SDK would.
//!
//! Flagsmith's clients send a segment back as they read it: rules and conditions with their
//! `id`, a `delete` flag (`true` removes that rule or condition, as Flagsmith's nested
//! serializers do) and a condition `description` (kept). Rules are replaced as a whole, so an
//! `id` only has to be a number or null.

use flagstone_engine::Operator;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::text::{in_list_text, scalar_text};
use crate::{LimitName, Limits, Result, StoreError};

/// The compiled-size budget of a `REGEX` condition. The engine compiles patterns with the same
/// builder ([`compile_condition_regex`]), so a pattern accepted here always compiles there.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Longest trait key (or JSONPath) a condition may name, like Flagsmith's `max_length=1000`.
pub const MAX_PROPERTY_CHARS: usize = 1_000;

/// Compiles a `REGEX` condition's pattern as Python's `re.match` behaves: anchored at the start.
pub fn compile_condition_regex(pattern: &str) -> std::result::Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// How a rule combines its conditions and sub-rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum RuleType {
    All,
    Any,
    None,
}

impl RuleType {
    fn parse(s: &str) -> Option<RuleType> {
        match s {
            "ALL" => Some(RuleType::All),
            "ANY" => Some(RuleType::Any),
            "NONE" => Some(RuleType::None),
            _ => None,
        }
    }
}

/// Operators whose value may carry a `:semver` suffix (the engine's typed comparators).
fn compares_semver(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Equal
            | Operator::NotEqual
            | Operator::GreaterThan
            | Operator::GreaterThanInclusive
            | Operator::LessThan
            | Operator::LessThanInclusive
            | Operator::Contains
    )
}

/// Operators that do not look at the condition's value.
fn ignores_value(op: &Operator) -> bool {
    matches!(op, Operator::IsSet | Operator::IsNotSet)
}

/// One rule: its conditions and nested rules, combined by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentRule {
    #[serde(rename = "type")]
    pub rule_type: RuleType,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub rules: Vec<SegmentRule>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// Whether a rule or condition sent back by a Flagsmith client is marked for removal
/// (`"delete": true`); `id` and `delete` are checked for their types here.
fn marked_deleted(field: &str, obj: &Map<String, Value>) -> Result<bool> {
    match obj.get("id") {
        None | Some(Value::Null) | Some(Value::Number(_)) => {}
        Some(_) => {
            return Err(StoreError::invalid(
                format!("{field}.id"),
                "must be a number",
            ))
        }
    }
    match obj.get("delete") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(StoreError::invalid(
            format!("{field}.delete"),
            "must be true or false",
        )),
    }
}

/// Longest condition description accepted (Flagsmith's `max_length`).
pub const MAX_CONDITION_DESCRIPTION_CHARS: usize = 1_000;

/// One condition. `value` is text, as in Flagsmith (`null` only for `IS_SET`/`IS_NOT_SET`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Condition {
    /// One of the engine's 14 operators (`EQUAL`, `IN`, `REGEX`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub operator: Operator,
    /// The trait key or JSONPath (`$.identity.identifier`); may be empty for `PERCENTAGE_SPLIT`.
    pub property: Option<String>,
    pub value: Option<String>,
    /// What the condition is for, shown to people; not part of evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Validates the `rules` of a segment against the project's limits and normalises it.
pub fn parse_rules(v: &Value, limits: &Limits) -> Result<Vec<SegmentRule>> {
    let mut walk = Walk {
        limits,
        conditions: 0,
    };
    walk.rule_list("rules", v, 1)
}

struct Walk<'a> {
    limits: &'a Limits,
    /// Conditions seen so far, across every rule of the segment.
    conditions: i64,
}

impl Walk<'_> {
    fn rule_list(&mut self, field: &str, v: &Value, depth: i64) -> Result<Vec<SegmentRule>> {
        let items = match v {
            Value::Array(items) => items,
            Value::Null => return Ok(Vec::new()),
            _ => return Err(StoreError::invalid(field, "must be a list of rules")),
        };
        if !items.is_empty() {
            Limits::check(
                LimitName::MaxRuleDepth,
                self.limits.max_rule_depth,
                depth,
                || format!("{field} nests rules {depth} deep"),
            )?;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(rule) = self.rule(&format!("{field}[{i}]"), item, depth)? {
                out.push(rule);
            }
        }
        Ok(out)
    }

    /// A rule; `None` when the client marked it `delete`.
    fn rule(&mut self, field: &str, v: &Value, depth: i64) -> Result<Option<SegmentRule>> {
        let obj = object(field, v, &["type", "rules", "conditions", "id", "delete"])?;
        if marked_deleted(field, obj)? {
            return Ok(None);
        }
        let rule_type = match obj.get("type") {
            Some(Value::String(s)) => RuleType::parse(s).ok_or_else(|| {
                StoreError::invalid(
                    format!("{field}.type"),
                    format!("unknown rule type {s:?}; expected ALL, ANY or NONE"),
                )
            })?,
            None | Some(Value::Null) => {
                return Err(StoreError::invalid(format!("{field}.type"), "is required"))
            }
            Some(_) => {
                return Err(StoreError::invalid(
                    format!("{field}.type"),
                    "must be \"ALL\", \"ANY\" or \"NONE\"",
                ))
            }
        };
        let conditions = match obj.get("conditions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, c) in items.iter().enumerate() {
                    if let Some(c) = self.condition(&format!("{field}.conditions[{i}]"), c)? {
                        out.push(c);
                    }
                }
                out
            }
            Some(_) => {
                return Err(StoreError::invalid(
                    format!("{field}.conditions"),
                    "must be a list of conditions",
                ))
            }
        };
        let rules = match obj.get("rules") {
            None => Vec::new(),
            Some(sub) => self.rule_list(&format!("{field}.rules"), sub, depth + 1)?,
        };
        Ok(Some(SegmentRule {
            rule_type,
            rules,
            conditions,
        }))
    }

    /// A condition; `None` when the client marked it `delete`.
    fn condition(&mut self, field: &str, v: &Value) -> Result<Option<Condition>> {
        let obj = object(
            field,
            v,
            &[
                "operator",
                "property",
                "value",
                "description",
                "id",
                "delete",
            ],
        )?;
        if marked_deleted(field, obj)? {
            return Ok(None);
        }
        self.conditions += 1;
        let count = self.conditions;
        Limits::check(
            LimitName::MaxConditionsPerSegment,
            self.limits.max_conditions_per_segment,
            count,
            || format!("the segment has more than {} conditions", count - 1),
        )?;
        let op_field = format!("{field}.operator");
        let operator = match obj.get("operator") {
            Some(Value::String(s)) => match Operator::parse(s) {
                Operator::Unknown(_) => {
                    return Err(StoreError::invalid(
                        &op_field,
                        format!("unknown operator {s:?}"),
                    ))
                }
                known => known,
            },
            None | Some(Value::Null) => return Err(StoreError::invalid(op_field, "is required")),
            Some(_) => return Err(StoreError::invalid(op_field, "must be a string")),
        };
        let property =
            self.property(&format!("{field}.property"), &operator, obj.get("property"))?;
        let value = self.value(&format!("{field}.value"), &operator, obj.get("value"))?;
        let description = match obj.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() > MAX_CONDITION_DESCRIPTION_CHARS => {
                return Err(StoreError::invalid(
                    format!("{field}.description"),
                    format!("must be at most {MAX_CONDITION_DESCRIPTION_CHARS} characters"),
                ))
            }
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(StoreError::invalid(
                    format!("{field}.description"),
                    "must be a string",
                ))
            }
        };
        Ok(Some(Condition {
            operator,
            property,
            value,
            description,
        }))
    }

    fn property(&self, field: &str, op: &Operator, v: Option<&Value>) -> Result<Option<String>> {
        let p = match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(StoreError::invalid(field, "must be a string")),
        };
        match &p {
            // A legacy PERCENTAGE_SPLIT hashes the identity key and names no trait.
            _ if *op == Operator::PercentageSplit => {}
            None => return Err(StoreError::invalid(field, "is required")),
            Some(s) if s.is_empty() => return Err(StoreError::invalid(field, "must not be empty")),
            Some(_) => {}
        }
        if p.as_ref()
            .is_some_and(|s| s.chars().count() > MAX_PROPERTY_CHARS)
        {
            return Err(StoreError::invalid(
                field,
                format!("must be at most {MAX_PROPERTY_CHARS} characters"),
            ));
        }
        Ok(p)
    }

    fn value(&self, field: &str, op: &Operator, v: Option<&Value>) -> Result<Option<String>> {
        let text = match v {
            None | Some(Value::Null) if ignores_value(op) => return Ok(None),
            None | Some(Value::Null) => {
                return Err(StoreError::invalid(
                    field,
                    format!("is required for {}", op.as_str()),
                ))
            }
            Some(Value::Array(items)) if *op == Operator::In => in_list_text(field, items)?,
            Some(v) => scalar_text(v).ok_or_else(|| {
                let expected = if *op == Operator::In {
                    "a string or a list of strings"
                } else {
                    "a string"
                };
                StoreError::invalid(field, format!("must be {expected}"))
            })?,
        };
        let (limit, max) = if *op == Operator::In {
            (
                LimitName::MaxInConditionValueBytes,
                self.limits.max_in_condition_value_bytes,
            )
        } else {
            (
                LimitName::MaxConditionValueBytes,
                self.limits.max_condition_value_bytes,
            )
        };
        Limits::check(limit, max, text.len() as i64, || {
            format!("{field} is {} bytes", text.len())
        })?;
        check_value_semantics(field, op, &text)?;
        Ok(Some(text))
    }
}

/// The checks that make sure the engine can use a value as the operator needs it.
fn check_value_semantics(field: &str, op: &Operator, text: &str) -> Result<()> {
    match op {
        Operator::Regex => compile_condition_regex(text)
            .map(|_| ())
            .map_err(|e| StoreError::invalid(field, regex_error(&e))),
        Operator::PercentageSplit => match parse_float(text) {
            Some(p) if (0.0..=100.0).contains(&p) => Ok(()),
            _ => Err(StoreError::invalid(
                field,
                "must be a number from 0 to 100 (the percentage of identities)",
            )),
        },
        Operator::Modulo => {
            let parsed = text
                .split_once('|')
                .and_then(|(d, r)| Some((parse_float(d)?, parse_float(r)?)));
            match parsed {
                Some((d, _)) if d != 0.0 => Ok(()),
                Some(_) => Err(StoreError::invalid(field, "the divisor must not be zero")),
                None => Err(StoreError::invalid(
                    field,
                    "must be \"divisor|remainder\", two numbers",
                )),
            }
        }
        _ if compares_semver(op) => match text.strip_suffix(":semver") {
            Some(version) => semver::Version::parse(version).map(|_| ()).map_err(|e| {
                StoreError::invalid(
                    field,
                    format!("{version:?} is not a semantic version ({e})"),
                )
            }),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The regex crate's message, on one line (it spans several to point at the error).
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("invalid regular expression: compiled pattern exceeds {limit} bytes")
        }
        other => {
            // The parser's message draws the pattern with a caret under the problem and ends
            // with an `error: …` line; that last line is the useful part.
            let text = other.to_string();
            let reason = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or(text.trim())
                .to_string();
            format!("invalid regular expression: {reason}")
        }
    }
}

fn parse_float(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|f| !f.is_nan())
}

/// A JSON object with only `allowed` keys.
fn object<'v>(field: &str, v: &'v Value, allowed: &[&str]) -> Result<&'v Map<String, Value>> {
    let obj = v
        .as_object()
        .ok_or_else(|| StoreError::invalid(field, "must be an object"))?;
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(StoreError::invalid(
            format!("{field}.{k}"),
            format!("unknown field; expected one of {}", allowed.join(", ")),
        ));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Vec<SegmentRule>> {
        parse_rules(&v, &Limits::default())
    }

    fn field_of(e: StoreError) -> String {
        match e {
            StoreError::Invalid { field, .. } => field,
            StoreError::LimitExceeded { limit, .. } => limit.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn cond(op: &str, value: Value) -> Value {
        json!([{"type": "ALL", "conditions": [{"operator": op, "property": "p", "value": value}]}])
    }

    #[test]
    fn stringifies_like_python() {
        let r = parse(json!([{"type": "ANY", "conditions": [
            {"operator": "EQUAL", "property": "a", "value": 1},
            {"operator": "EQUAL", "property": "a", "value": true},
            {"operator": "EQUAL", "property": "a", "value": 1.5},
            {"operator": "EQUAL", "property": "a", "value": 1e20},
            {"operator": "EQUAL", "property": "a", "value": 2.0},
        ]}]))
        .unwrap();
        let values: Vec<_> = r[0]
            .conditions
            .iter()
            .map(|c| c.value.clone().unwrap())
            .collect();
        assert_eq!(values, ["1", "True", "1.5", "1e+20", "2.0"]);
    }

    #[test]
    fn in_lists_become_text() {
        let text = |v: Value| {
            parse(cond("IN", v)).unwrap()[0].conditions[0]
                .value
                .clone()
                .unwrap()
        };
        assert_eq!(text(json!(["a", "b", 3])), "a,b,3");
        assert_eq!(text(json!("a,b")), "a,b");
        assert_eq!(text(json!(["a,b", "c"])), r#"["a,b","c"]"#);
        assert_eq!(text(json!(["[1]"])), r#"["[1]"]"#);
        assert_eq!(text(json!([])), "[]");
    }

    #[test]
    fn errors_name_the_field() {
        let nested = json!([{"type": "ALL", "rules": [{"type": "ANY", "conditions": [
            {"operator": "EQUAL", "property": "a", "value": "x"},
            {"operator": "NOPE", "property": "a", "value": "x"}]}]}]);
        assert_eq!(
            field_of(parse(nested).unwrap_err()),
            "rules[0].rules[0].conditions[1].operator"
        );
        assert_eq!(
            field_of(parse(json!([{"type": "SOME"}])).unwrap_err()),
            "rules[0].type"
        );
        assert_eq!(
            field_of(parse(json!([{"type": "ALL", "x": 1}])).unwrap_err()),
            "rules[0].x"
        );
        assert_eq!(
            field_of(parse(cond("REGEX", json!("("))).unwrap_err()),
            "rules[0].conditions[0].value"
        );
        for (op, bad) in [
            ("EQUAL", json!("1.x:semver")),
            ("PERCENTAGE_SPLIT", json!("101")),
            ("PERCENTAGE_SPLIT", json!("abc")),
            ("MODULO", json!("0|1")),
            ("MODULO", json!("2")),
            ("EQUAL", json!(null)),
            ("EQUAL", json!(["a"])),
        ] {
            assert_eq!(
                field_of(parse(cond(op, bad.clone())).unwrap_err()),
                "rules[0].conditions[0].value",
                "{op} {bad}"
            );
        }
        assert!(parse(cond("GREATER_THAN", json!("1.2.3:semver"))).is_ok());
        assert!(parse(cond("MODULO", json!("2|0"))).is_ok());
        assert!(parse(cond("IS_SET", json!(null))).is_ok());
        assert!(parse(cond("REGEX", json!("(a+)+$"))).is_ok());
    }

    #[test]
    fn huge_regex_is_refused_quickly() {
        let start = std::time::Instant::now();
        let e = parse(cond("REGEX", json!(r"\w{1000}{1000}"))).unwrap_err();
        assert_eq!(field_of(e), "rules[0].conditions[0].value");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_rule_depth: 2,
            max_conditions_per_segment: 2,
            ..Limits::default()
        };
        let deep = json!([{"type": "ALL", "rules": [{"type": "ALL", "rules": [{"type": "ALL"}]}]}]);
        assert_eq!(
            field_of(parse_rules(&deep, &limits).unwrap_err()),
            "max_rule_depth"
        );
        let c = json!({"operator": "IS_SET", "property": "a"});
        let many =
            json!([{"type": "ALL", "conditions": [c, c]}, {"type": "ANY", "conditions": [c]}]);
        assert_eq!(
            field_of(parse_rules(&many, &limits).unwrap_err()),
            "max_conditions_per_segment"
        );
    }
}
