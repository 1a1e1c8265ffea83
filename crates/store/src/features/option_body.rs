//! A multivariate option as clients send it and as it is answered. Flagstone's own shape is
//! one `value`; Flagsmith's (`MultivariateFeatureOptionSerializer`, what its dashboard and the
//! Terraform provider send) is `type` (`unicode`, `int`, `bool`) with the matching
//! `string_value`, `integer_value` or `boolean_value`. Either is accepted — not both — and
//! answers carry both, so either kind of client reads its own fields back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::present;
use super::{MvOptionPatch, NewMvOption};
use crate::organisations::double_option;
use crate::values::from_typed;

/// Flagsmith's typed fields for a value: `type` and the one `*_value` field that holds it (the
/// other two null). Null and non-integer numbers are `unicode` (a number as its text), as
/// Flagsmith stores values it has no type for.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypedFields {
    #[serde(rename = "type")]
    pub value_type: &'static str,
    pub string_value: Option<String>,
    pub integer_value: Option<i64>,
    pub boolean_value: Option<bool>,
}

impl TypedFields {
    pub fn of(v: &Value) -> TypedFields {
        let none = TypedFields {
            value_type: "unicode",
            string_value: None,
            integer_value: None,
            boolean_value: None,
        };
        match v {
            Value::Bool(b) => TypedFields {
                value_type: "bool",
                boolean_value: Some(*b),
                ..none
            },
            Value::Number(n) if n.as_i64().is_some() => TypedFields {
                value_type: "int",
                integer_value: n.as_i64(),
                ..none
            },
            Value::Number(n) => TypedFields {
                string_value: Some(n.to_string()),
                ..none
            },
            Value::String(s) => TypedFields {
                string_value: Some(s.clone()),
                ..none
            },
            _ => none,
        }
    }
}

/// Every field an option body may carry. Flagsmith's read-only `id` and `uuid` (sent back by
/// its clients after a read) are ignored, as Flagsmith ignores them.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MvOptionBody {
    /// Flagstone's shape: the value itself (string, number, boolean or null).
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: Option<Value>,
    /// Flagsmith's shape: `unicode`, `int` or `bool`, with the matching field below.
    #[serde(default, rename = "type")]
    pub value_type: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub string_value: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub integer_value: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub boolean_value: Option<Value>,
    pub default_percentage_allocation: Option<f64>,
    /// An optional name for the option, unique within its feature (Flagstone's).
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub key: Option<Option<String>>,
    /// Flagsmith clients repeat the feature in the body; it must match the path.
    #[serde(default)]
    pub feature: Option<i64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub uuid: Option<serde::de::IgnoredAny>,
}

impl MvOptionBody {
    /// The value the body sets, if any: `value`, or the typed fields read as Flagsmith reads
    /// them.
    fn resolved_value(&self) -> Result<Option<Value>, String> {
        let typed = self.string_value.is_some()
            || self.integer_value.is_some()
            || self.boolean_value.is_some();
        match (&self.value, &self.value_type) {
            (Some(_), Some(_)) => {
                Err("send either `value` or `type` with its typed value, not both".into())
            }
            (Some(_), None) if typed => {
                Err("`string_value`, `integer_value` and `boolean_value` need `type`".into())
            }
            (Some(v), None) => Ok(Some(v.clone())),
            (None, Some(kind)) => {
                let mut o = serde_json::Map::new();
                o.insert("type".into(), Value::String(kind.clone()));
                for (k, v) in [
                    ("string_value", &self.string_value),
                    ("integer_value", &self.integer_value),
                    ("boolean_value", &self.boolean_value),
                ] {
                    if let Some(v) = v {
                        o.insert(k.into(), v.clone());
                    }
                }
                from_typed(Value::Object(o)).map(Some)
            }
            (None, None) if typed => {
                Err("`string_value`, `integer_value` and `boolean_value` need `type`".into())
            }
            (None, None) => Ok(None),
        }
    }
}

impl From<&NewMvOption> for MvOptionPatch {
    /// A `PUT` replaces every field.
    fn from(n: &NewMvOption) -> MvOptionPatch {
        MvOptionPatch {
            value: Some(n.value.clone()),
            default_percentage_allocation: Some(n.default_percentage_allocation),
            key: Some(n.key.clone()),
            feature: n.feature,
        }
    }
}

impl TryFrom<MvOptionBody> for NewMvOption {
    type Error = String;
    fn try_from(b: MvOptionBody) -> Result<NewMvOption, String> {
        Ok(NewMvOption {
            value: b.resolved_value()?.unwrap_or(Value::Null),
            default_percentage_allocation: b.default_percentage_allocation.unwrap_or(0.0),
            key: b.key.flatten(),
            feature: b.feature,
        })
    }
}

impl TryFrom<MvOptionBody> for MvOptionPatch {
    type Error = String;
    fn try_from(b: MvOptionBody) -> Result<MvOptionPatch, String> {
        Ok(MvOptionPatch {
            value: b.resolved_value()?,
            default_percentage_allocation: b.default_percentage_allocation,
            key: b.key,
            feature: b.feature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(body: Value) -> Result<NewMvOption, String> {
        serde_json::from_value::<NewMvOption>(body).map_err(|e| e.to_string())
    }

    #[test]
    fn either_shape_is_read_and_mixing_them_is_refused() {
        assert_eq!(new(json!({"value": "a"})).unwrap().value, json!("a"));
        let go = json!({"type": "int", "integer_value": 7, "default_percentage_allocation": 30.0,
                        "feature": 3});
        let o = new(go).unwrap();
        assert_eq!((o.value, o.default_percentage_allocation), (json!(7), 30.0));
        assert_eq!(
            new(json!({"type": "bool", "boolean_value": true}))
                .unwrap()
                .value,
            json!(true)
        );
        assert!(new(json!({"value": "a", "type": "unicode", "string_value": "a"})).is_err());
        assert!(new(json!({"string_value": "a"})).is_err());
        assert!(new(json!({"type": "int", "integer_value": "7"})).is_err());
        assert!(new(json!({"type": "float", "string_value": "1"})).is_err());
    }

    #[test]
    fn answers_carry_flagsmiths_typed_fields() {
        let t = TypedFields::of(&json!(42));
        assert_eq!((t.value_type, t.integer_value), ("int", Some(42)));
        let t = TypedFields::of(&json!(1.5));
        assert_eq!(
            (t.value_type, t.string_value),
            ("unicode", Some("1.5".into()))
        );
        let t = TypedFields::of(&Value::Null);
        assert_eq!((t.value_type, t.string_value), ("unicode", None));
    }
}
