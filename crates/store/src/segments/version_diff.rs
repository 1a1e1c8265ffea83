//! What changed between two definitions of a segment, structured for people: its name and
//! description, and its rules and conditions added, removed and changed. Rules are addressed
//! by their path of positions (`"0"`, `"0.1"`: the second sub-rule of the first rule), the way
//! the dashboard shows them. Pure.

use serde::Serialize;
use serde_json::{json, Value};

use super::rules::{Condition, SegmentRule};
use super::versions::SegmentDefinition;

/// A field of the segment (`name`, `description`) or of a rule (`type`) that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentFieldChange {
    pub field: &'static str,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub before: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub after: Value,
}

/// A rule present on one side only, with everything under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleAt {
    /// Positions from the top: `"0.1"` is the second sub-rule of the first rule.
    pub path: String,
    pub rule: SegmentRule,
}

/// A rule present on both sides whose type differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleChange {
    pub path: String,
    pub fields_changed: Vec<SegmentFieldChange>,
}

/// A condition of the rule at `rule`, present on one side only.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConditionAt {
    pub rule: String,
    pub condition: Condition,
}

/// A condition of the rule at `rule` on the same property whose operator, value or
/// description differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConditionChange {
    pub rule: String,
    pub before: Condition,
    pub after: Condition,
}

/// The difference between two definitions of a segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentDiff {
    /// `name` or `description`.
    pub fields_changed: Vec<SegmentFieldChange>,
    pub rules_added: Vec<RuleAt>,
    pub rules_removed: Vec<RuleAt>,
    pub rules_changed: Vec<RuleChange>,
    pub conditions_added: Vec<ConditionAt>,
    pub conditions_removed: Vec<ConditionAt>,
    pub conditions_changed: Vec<ConditionChange>,
}

impl SegmentDiff {
    pub fn is_empty(&self) -> bool {
        *self == SegmentDiff::default()
    }
}

/// What turns `before` into `after`.
pub fn diff(before: &SegmentDefinition, after: &SegmentDefinition) -> SegmentDiff {
    let mut d = SegmentDiff::default();
    if before.name != after.name {
        d.fields_changed.push(SegmentFieldChange {
            field: "name",
            before: json!(before.name),
            after: json!(after.name),
        });
    }
    if before.description != after.description {
        d.fields_changed.push(SegmentFieldChange {
            field: "description",
            before: json!(before.description),
            after: json!(after.description),
        });
    }
    rules(&mut d, "", &before.rules, &after.rules);
    d
}

fn path(parent: &str, i: usize) -> String {
    if parent.is_empty() {
        i.to_string()
    } else {
        format!("{parent}.{i}")
    }
}

/// Rules are matched by position: a rule's identity is where it sits in the tree.
fn rules(d: &mut SegmentDiff, parent: &str, before: &[SegmentRule], after: &[SegmentRule]) {
    for i in 0..before.len().max(after.len()) {
        let at = path(parent, i);
        match (before.get(i), after.get(i)) {
            (Some(b), Some(a)) => {
                if b.rule_type != a.rule_type {
                    d.rules_changed.push(RuleChange {
                        path: at.clone(),
                        fields_changed: vec![SegmentFieldChange {
                            field: "type",
                            before: json!(b.rule_type),
                            after: json!(a.rule_type),
                        }],
                    });
                }
                conditions(d, &at, &b.conditions, &a.conditions);
                rules(d, &at, &b.rules, &a.rules);
            }
            (Some(b), None) => d.rules_removed.push(RuleAt {
                path: at,
                rule: b.clone(),
            }),
            (None, Some(a)) => d.rules_added.push(RuleAt {
                path: at,
                rule: a.clone(),
            }),
            (None, None) => {}
        }
    }
}

/// Conditions equal on both sides are left out wherever they sit (a removal in the middle does
/// not make the rest look changed); of the rest, one on each side with the same property is a
/// change, in order; what remains was added or removed.
fn conditions(d: &mut SegmentDiff, rule: &str, before: &[Condition], after: &[Condition]) {
    let mut gone: Vec<&Condition> = Vec::new();
    let mut new: Vec<&Condition> = after.iter().collect();
    for b in before {
        match new.iter().position(|a| *a == b) {
            Some(i) => {
                new.remove(i);
            }
            None => gone.push(b),
        }
    }
    for b in gone {
        match new.iter().position(|a| a.property == b.property) {
            Some(i) => {
                let a = new.remove(i);
                d.conditions_changed.push(ConditionChange {
                    rule: rule.to_string(),
                    before: b.clone(),
                    after: a.clone(),
                });
            }
            None => d.conditions_removed.push(ConditionAt {
                rule: rule.to_string(),
                condition: b.clone(),
            }),
        }
    }
    d.conditions_added
        .extend(new.into_iter().map(|a| ConditionAt {
            rule: rule.to_string(),
            condition: a.clone(),
        }));
}

#[cfg(test)]
mod tests {
    use super::super::rules::RuleType;
    use super::*;
    use flagstone_engine::Operator;

    fn c(property: &str, operator: Operator, value: &str) -> Condition {
        Condition {
            operator,
            property: Some(property.into()),
            value: Some(value.into()),
            description: None,
        }
    }

    fn def(name: &str, rules: Vec<SegmentRule>) -> SegmentDefinition {
        SegmentDefinition {
            name: name.into(),
            description: None,
            rules,
        }
    }

    fn rule(t: RuleType, conditions: Vec<Condition>, rules: Vec<SegmentRule>) -> SegmentRule {
        SegmentRule {
            rule_type: t,
            rules,
            conditions,
        }
    }

    #[test]
    fn names_fields_rules_and_conditions_that_differ() {
        let plan = c("plan", Operator::Equal, "beta");
        let country = c("country", Operator::In, "DE,FR");
        let age = c("age", Operator::GreaterThan, "18");
        let before = def(
            "beta",
            vec![rule(
                RuleType::All,
                vec![],
                vec![
                    rule(
                        RuleType::Any,
                        vec![plan.clone(), country.clone(), age.clone()],
                        vec![],
                    ),
                    rule(RuleType::Any, vec![], vec![]),
                ],
            )],
        );
        let country2 = c("country", Operator::In, "DE,FR,IT");
        let email = c("email", Operator::Contains, "@example.com");
        let after = def(
            "beta-testers",
            vec![rule(
                RuleType::All,
                vec![],
                vec![rule(
                    RuleType::None,
                    vec![plan, country2.clone(), email.clone()],
                    vec![],
                )],
            )],
        );
        let d = diff(&before, &after);
        assert_eq!(
            d.fields_changed,
            vec![SegmentFieldChange {
                field: "name",
                before: json!("beta"),
                after: json!("beta-testers")
            }]
        );
        assert_eq!(d.rules_changed.len(), 1);
        assert_eq!(d.rules_changed[0].path, "0.0");
        assert_eq!(d.rules_removed[0].path, "0.1");
        assert!(d.rules_added.is_empty());
        assert_eq!(
            d.conditions_changed,
            vec![ConditionChange {
                rule: "0.0".into(),
                before: country,
                after: country2
            }]
        );
        assert_eq!(
            d.conditions_removed,
            vec![ConditionAt {
                rule: "0.0".into(),
                condition: age
            }]
        );
        assert_eq!(
            d.conditions_added,
            vec![ConditionAt {
                rule: "0.0".into(),
                condition: email
            }]
        );
        assert!(diff(&after, &after).is_empty());
    }
}
