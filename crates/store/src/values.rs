//! How flag values and other JSON-shaped data are stored, so every module reads and writes
//! them alike.
//!
//! * Feature values (`features.initial_value`, `*.value` of feature states and overrides,
//!   `mv_options.value`) are JSON text of a string, integer, boolean or float, or SQL NULL for
//!   null. They keep int vs float and string vs number exactly as the client sent them.
//! * Trait values (`traits.value`) are JSON text of a string, integer, float or boolean.
//! * Multivariate allocations (`*.mv_allocations`) are JSON text of
//!   `[{"multivariate_feature_option": <option id>, "percentage_allocation": <0..=100>}]`;
//!   an option not listed gets its `default_percentage_allocation`.
//! * Segment rules (`segments.rules`) are JSON text of Flagsmith's admin shape
//!   `[{"type": "ALL"|"ANY"|"NONE", "rules": [...], "conditions": [{"operator", "property", "value"}]}]`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{LimitName, Limits, Result, StoreError};

/// A flag value as the API accepts it: string, integer, float, boolean or null.
pub fn validate_flag_value(field: &str, v: &Value, limits: &Limits) -> Result<()> {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        Value::String(s) => Limits::check(
            LimitName::MaxFeatureValueBytes,
            limits.max_feature_value_bytes,
            s.len() as i64,
            || format!("{field} is {} bytes", s.len()),
        ),
        _ => Err(StoreError::invalid(
            field,
            "must be a string, number, boolean or null",
        )),
    }
}

/// Flagsmith's typed value object, which its clients (the Terraform provider, its admin
/// endpoints) send as a feature-state value — `{"type": "unicode" | "int" | "bool",
/// "string_value" | "integer_value" | "boolean_value": …}` — as the plain value it stands for.
/// Any other value is returned as it is (validation refuses other objects).
pub fn from_typed(v: Value) -> std::result::Result<Value, String> {
    let Value::Object(o) = &v else {
        return Ok(v);
    };
    let Some(kind) = o.get("type") else {
        return Ok(v);
    };
    let (key, expected, fits): (&str, &str, fn(&Value) -> bool) = match kind.as_str() {
        Some("unicode") => ("string_value", "a string", Value::is_string),
        Some("int") => ("integer_value", "an integer", |x| x.is_i64() || x.is_u64()),
        Some("bool") => ("boolean_value", "true or false", Value::is_boolean),
        _ => {
            return Err(format!(
                "unknown value type {kind}; expected \"unicode\", \"int\" or \"bool\""
            ))
        }
    };
    match o.get(key) {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(x) if fits(x) => Ok(x.clone()),
        Some(_) => Err(format!("{key} must be {expected} for type {kind}")),
    }
}

/// Deserializes a flag value, plain or as Flagsmith's typed object ([`from_typed`]).
pub fn typed_value<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
    use serde::de::Error;
    from_typed(Value::deserialize(d)?).map_err(D::Error::custom)
}

/// [`typed_value`] for a field that may be absent (`None`: no change).
pub fn typed_value_present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Value>, D::Error> {
    typed_value(d).map(Some)
}

/// [`typed_value`] for a field that may be absent (`None`), null (`Some(None)`) or a value.
pub fn typed_value_double<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<Value>>, D::Error> {
    typed_value(d).map(|v| Some((!v.is_null()).then_some(v)))
}

/// Encodes a value for a nullable value column.
pub fn encode_value(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}

/// Decodes a nullable value column.
pub fn decode_value(what: &'static str, s: Option<&str>) -> Result<Value> {
    match s {
        None => Ok(Value::Null),
        Some(s) => serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
            what,
            detail: e.to_string(),
        }),
    }
}

/// One multivariate allocation of a feature state or override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MvAllocation {
    /// The multivariate option's id.
    pub multivariate_feature_option: i64,
    /// Percentage of identities, 0 to 100.
    pub percentage_allocation: f64,
}

/// Checks allocations are in range, name distinct options and sum to at most 100.
pub fn validate_allocations(field: &str, allocs: &[MvAllocation]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0.0;
    for a in allocs {
        if !(0.0..=100.0).contains(&a.percentage_allocation) {
            return Err(StoreError::invalid(
                field,
                "percentage_allocation must be between 0 and 100",
            ));
        }
        if !seen.insert(a.multivariate_feature_option) {
            return Err(StoreError::invalid(field, "an option is listed twice"));
        }
        total += a.percentage_allocation;
    }
    if total > 100.0 + 1e-9 {
        return Err(StoreError::invalid(
            field,
            format!("allocations sum to {total}, more than 100"),
        ));
    }
    Ok(())
}

pub fn encode_allocations(allocs: &[MvAllocation]) -> String {
    serde_json::to_string(allocs).unwrap_or_else(|_| "[]".into())
}

pub fn decode_allocations(s: &str) -> Result<Vec<MvAllocation>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: "mv_allocations",
        detail: e.to_string(),
    })
}
