//! Python-compatible text forms of numbers and JSON values.
//!
//! Flagsmith's engine is Python, and wherever it stringifies a value (hash input, regex
//! subject, `IN` set members, reason strings) it uses `str()`/`repr()`. Rust's `Display`
//! differs (`1` vs `1.0`, no exponent form), so this module reproduces Python's rules.
//! The main entry points are [`write_float`] and [`write_value`].

use std::fmt::{self, Write};

use serde_json::{Number, Value};

/// Writes `repr(x)` of a Python float: the shortest string that round-trips, `.0` for whole
/// numbers, scientific form when the decimal exponent is `< -4` or `>= 16`.
pub fn write_float<W: Write>(out: &mut W, x: f64) -> fmt::Result {
    if x.is_nan() {
        return out.write_str("nan");
    }
    if x.is_infinite() {
        return out.write_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    // `{:e}` gives Rust's shortest round-trip digits, e.g. "1.5e-5" or "-1e16"; we only
    // have to re-lay them out the way Python does.
    let mut sci = StackStr::<40>::new();
    write!(sci, "{x:e}")?;
    let sci = sci.as_str();
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let mut digits = StackStr::<24>::new();
    for c in mantissa.chars().filter(|c| c.is_ascii_digit()) {
        digits.write_char(c)?;
    }
    let digits = digits.as_str();
    if negative {
        out.write_char('-')?;
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.write_str("0.")?;
            for _ in 0..(-exp - 1) {
                out.write_char('0')?;
            }
            out.write_str(digits)
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.write_str(digits)?;
                for _ in digits.len()..int_len {
                    out.write_char('0')?;
                }
                out.write_str(".0")
            } else {
                out.write_str(&digits[..int_len])?;
                out.write_char('.')?;
                out.write_str(&digits[int_len..])
            }
        }
    } else {
        out.write_str(&digits[..1])?;
        if digits.len() > 1 {
            out.write_char('.')?;
            out.write_str(&digits[1..])?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        write!(out, "e{sign}{:02}", exp.unsigned_abs())
    }
}

/// `repr(x)` of a Python float as an owned string.
pub fn float_repr(x: f64) -> String {
    let mut s = String::new();
    let _ = write_float(&mut s, x);
    s
}

/// Writes `str(n)` for a JSON number as Python's `json` module would have loaded it:
/// integers stay integers, anything with a fraction or exponent is a float.
pub fn write_number<W: Write>(out: &mut W, n: &Number) -> fmt::Result {
    if let Some(i) = n.as_i64() {
        write!(out, "{i}")
    } else if let Some(u) = n.as_u64() {
        write!(out, "{u}")
    } else {
        write_float(out, n.as_f64().unwrap_or(f64::NAN))
    }
}

/// `str(n)` for a JSON number.
pub fn number_str(n: &Number) -> String {
    let mut s = String::new();
    let _ = write_number(&mut s, n);
    s
}

/// Writes Python's `str()` of a JSON value as loaded by `json.loads`: strings bare, `True`,
/// `None`, and `repr` of containers (`['a', 1]`, `{'k': None}`).
pub fn write_value<W: Write>(out: &mut W, v: &Value) -> fmt::Result {
    match v {
        Value::String(s) => out.write_str(s),
        other => write_repr(out, other),
    }
}

/// Python's `str()` of a JSON value as an owned string.
pub fn value_str(v: &Value) -> String {
    let mut s = String::new();
    let _ = write_value(&mut s, v);
    s
}

/// Writes Python's `repr()` of a JSON value (strings quoted the way Python quotes them).
fn write_repr<W: Write>(out: &mut W, v: &Value) -> fmt::Result {
    match v {
        Value::Null => out.write_str("None"),
        Value::Bool(true) => out.write_str("True"),
        Value::Bool(false) => out.write_str("False"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str_repr(out, s),
        Value::Array(items) => {
            out.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_repr(out, item)?;
            }
            out.write_char(']')
        }
        Value::Object(map) => {
            out.write_char('{')?;
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_str_repr(out, k)?;
                out.write_str(": ")?;
                write_repr(out, item)?;
            }
            out.write_char('}')
        }
    }
}

/// Python's string repr: single quotes unless the text has a `'` and no `"`.
fn write_str_repr<W: Write>(out: &mut W, s: &str) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c == quote => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(out, "\\x{:02x}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char(quote)
}

/// A fixed-capacity string on the stack, so hot paths can format numbers without
/// allocating. Writes past the capacity fail with `fmt::Error` instead of panicking.
#[derive(Clone, Copy)]
pub struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        StackStr {
            buf: [0; N],
            len: 0,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Default for StackStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        if end > N {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (12.34, "12.34"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00015, "0.00015"),
            (0.00001, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (1234567890123456.0, "1234567890123456.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (123.456, "123.456"),
            (33.33, "33.33"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(*x), *want, "repr({x:?})");
        }
    }

    #[test]
    fn value_str_matches_python() {
        let v: Value = serde_json::from_str(r#"["a", 1, 2.5, true, null, {"k": "it's"}]"#).unwrap();
        assert_eq!(value_str(&v), r#"['a', 1, 2.5, True, None, {'k': "it's"}]"#);
        assert_eq!(value_str(&Value::String("x".into())), "x");
        let n: Value = serde_json::from_str("30.0").unwrap();
        assert_eq!(value_str(&n), "30.0");
        let n: Value = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(value_str(&n), "18446744073709551615");
    }

    #[test]
    fn stack_str_overflow_is_an_error_not_a_panic() {
        let mut s = StackStr::<4>::new();
        assert!(s.write_str("abcd").is_ok());
        assert!(s.write_str("e").is_err());
        assert_eq!(s.as_str(), "abcd");
    }
}
