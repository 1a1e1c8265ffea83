//! Small serde helpers shared by the context and document models: tolerate `null` where
//! Flagsmith may emit it, and carry priorities that can be infinite.

use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// Deserializes `null` (or a missing field, with `#[serde(default)]`) as `T::default()`.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Priorities are numbers, but identity overrides use `-infinity`, which JSON cannot
/// express; like Python's `json`, we write it as `-Infinity` (here as a string) and read
/// both forms back. Whole numbers are written as integers so ids round-trip.
pub mod priority {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            None => s.serialize_none(),
            Some(x) if x.is_nan() => s.serialize_str("NaN"),
            Some(x) if x.is_infinite() => {
                s.serialize_str(if *x > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => s.serialize_i64(*x as i64),
            Some(x) => s.serialize_f64(*x),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => match s.as_str() {
                "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
                "Infinity" | "inf" => Some(f64::INFINITY),
                other => other.trim().parse().ok(),
            },
            Some(_) => None,
        })
    }
}

/// A required priority (variant priorities), same encoding as [`priority`].
pub mod required_priority {
    use super::*;

    pub fn serialize<S: Serializer>(p: &f64, s: S) -> Result<S::Ok, S::Error> {
        super::priority::serialize(&Some(*p), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(super::priority::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}
