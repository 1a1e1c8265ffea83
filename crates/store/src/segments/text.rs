//! Condition values as text, the way Flagsmith stores them: numbers and booleans given as JSON
//! pass through Python's `str()` (`True`, `1.5`, `1e+20`), and an `IN` list becomes one string
//! that every SDK's engine splits back into the same set.

use serde_json::Value;

use crate::{Result, StoreError};

/// Python's `str()` of a JSON scalar; `None` for null, lists and objects.
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => python_float_repr(f),
            _ => n.to_string(),
        }),
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

/// `repr()` of a Python float: shortest round-trip digits, `.0` for whole numbers, exponent
/// form when the decimal exponent is below -4 or at least 16.
fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let body = if (-4..16).contains(&exp) {
        if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        }
    } else {
        let frac = &digits[1..];
        let frac = if frac.is_empty() {
            String::new()
        } else {
            format!(".{frac}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{}{frac}e{esign}{:02}", &digits[..1], exp.abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python_repr() {
        assert_eq!(python_float_repr(1e-5), "1e-05");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(-123.25), "-123.25");
        assert_eq!(python_float_repr(2.0), "2.0");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(123456789012345.6), "123456789012345.6");
    }
}
