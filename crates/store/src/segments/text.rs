//! Condition values as text, the way Flagsmith stores them: numbers and booleans given as JSON
//! pass through Python's `str()` (`True`, `1.5`, `1e+20`), and an `IN` list becomes one string
//! that every SDK's engine splits back into the same set.

use serde_json::Value;

use crate::{Result, StoreError};

/// Python's `str()` of a JSON scalar (the engine's formatting, so stored values and evaluation
/// agree); `None` for null, lists and objects.
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(flagstone_engine::pyfmt::value_str(v)),
        _ => None,
    }
}

/// An IN list as one text value. Comma-joined (what every SDK understands) unless a member
/// holds a comma or the text would look like JSON; then a JSON array, which the engine parses.
pub(super) fn in_list_text(field: &str, items: &[Value]) -> Result<String> {
    let members = items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            scalar_text(v)
                .ok_or_else(|| StoreError::invalid(format!("{field}[{i}]"), "must be a string"))
        })
        .collect::<Result<Vec<String>>>()?;
    let joined = members.join(",");
    if members.is_empty() || members.iter().any(|m| m.contains(',')) || joined.starts_with('[') {
        Ok(serde_json::to_string(&members).expect("strings serialize"))
    } else {
        Ok(joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_print_like_python_str() {
        assert_eq!(scalar_text(&json!(1e-5)).unwrap(), "1e-05");
        assert_eq!(scalar_text(&json!(2.0)).unwrap(), "2.0");
        assert_eq!(scalar_text(&json!(1e16)).unwrap(), "1e+16");
        assert_eq!(scalar_text(&json!(7)).unwrap(), "7");
        assert_eq!(scalar_text(&json!(true)).unwrap(), "True");
        assert_eq!(scalar_text(&json!(null)), None);
    }
}
