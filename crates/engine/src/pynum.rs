//! Python number semantics the engine depends on.
//!
//! Flagsmith casts condition values with Python's `int()`/`float()`, coerces numeric-looking
//! trait strings to `int`/`float`, and computes `MODULO` with Python's floored `%`. Python
//! ints are unbounded, so [`PyInt`] keeps an exact decimal form when a value leaves `i64`.

use std::cmp::Ordering;
use std::fmt::{self, Write};

/// A Python `int`: machine-sized when it fits, otherwise an exact decimal magnitude.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyInt {
    /// Fits in `i64`.
    Small(i64),
    /// Outside `i64`; `digits` has no sign and no leading zeros.
    Big { negative: bool, digits: Box<str> },
}

impl PyInt {
    /// Builds from an optional sign and ASCII digits (leading zeros allowed).
    fn from_sign_digits(negative: bool, digits: &str) -> PyInt {
        let trimmed = digits.trim_start_matches('0');
        if trimmed.is_empty() {
            return PyInt::Small(0);
        }
        // 18 digits always fit in i64; longer ones are tried and may overflow.
        let parsed = trimmed.parse::<u64>().ok().and_then(|m| {
            if negative {
                if m <= i64::MAX as u64 + 1 {
                    Some((m as i128).wrapping_neg() as i64)
                } else {
                    None
                }
            } else {
                i64::try_from(m).ok()
            }
        });
        match parsed {
            Some(v) => PyInt::Small(v),
            None => PyInt::Big {
                negative,
                digits: trimmed.into(),
            },
        }
    }

    /// From a JSON unsigned integer (which may exceed `i64`).
    pub fn from_u64(u: u64) -> PyInt {
        match i64::try_from(u) {
            Ok(v) => PyInt::Small(v),
            Err(_) => PyInt::Big {
                negative: false,
                digits: u.to_string().into(),
            },
        }
    }

    /// Python's `float(int)`; `None` where Python raises `OverflowError`.
    pub fn to_f64(&self) -> Option<f64> {
        match self {
            PyInt::Small(v) => Some(*v as f64),
            PyInt::Big { negative, digits } => {
                let m: f64 = digits.parse().ok()?;
                if m.is_infinite() {
                    None
                } else if *negative {
                    Some(-m)
                } else {
                    Some(m)
                }
            }
        }
    }

    fn sign(&self) -> i8 {
        match self {
            PyInt::Small(v) => v.signum() as i8,
            PyInt::Big { negative: true, .. } => -1,
            PyInt::Big { .. } => 1,
        }
    }
}

impl Ord for PyInt {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PyInt::Small(a), PyInt::Small(b)) => a.cmp(b),
            // A Big value is always further from zero than any Small one.
            (PyInt::Big { .. }, PyInt::Small(_)) => self.sign().cmp(&0),
            (PyInt::Small(_), PyInt::Big { .. }) => 0.cmp(&other.sign()),
            (
                PyInt::Big {
                    negative: na,
                    digits: da,
                },
                PyInt::Big {
                    negative: nb,
                    digits: db,
                },
            ) => match (na, nb) {
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                (false, false) => (da.len(), &**da).cmp(&(db.len(), &**db)),
                (true, true) => (db.len(), &**db).cmp(&(da.len(), &**da)),
            },
        }
    }
}

impl PartialOrd for PyInt {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PyInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyInt::Small(v) => write!(f, "{v}"),
            PyInt::Big { negative, digits } => {
                if *negative {
                    f.write_char('-')?;
                }
                f.write_str(digits)
            }
        }
    }
}

/// Python `int(s)` for a string: surrounding whitespace, an optional sign, ASCII digits
/// with single `_` separators between digits. `None` where Python raises `ValueError`.
pub fn parse_py_int(s: &str) -> Option<PyInt> {
    let s = s.trim();
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if !valid_digit_run(body) {
        return None;
    }
    if body.contains('_') {
        let digits: String = body.chars().filter(|c| *c != '_').collect();
        Some(PyInt::from_sign_digits(negative, &digits))
    } else {
        Some(PyInt::from_sign_digits(negative, body))
    }
}

/// True if `s` is non-empty ASCII digits where every `_` sits between two digits.
fn valid_digit_run(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() || !b[b.len() - 1].is_ascii_digit() {
        return false;
    }
    b.windows(2).all(|w| w[0] != b'_' || w[1] != b'_')
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'_')
}

/// Python `float(s)` for a string: whitespace, sign, `inf`/`infinity`/`nan` in any case,
/// decimal and exponent forms, `_` between digits. `None` where Python raises.
pub fn parse_py_float(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = unsigned.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        let negative = s.starts_with('-');
        let v = if lower == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        };
        return Some(if negative { -v } else { v });
    }
    // Only digits, one '.', an exponent and signs may remain; Rust's parser accepts the
    // same grammar once underscores are validated and removed.
    if !unsigned
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'))
    {
        return None;
    }
    if s.contains('_') {
        let b = s.as_bytes();
        for (i, c) in b.iter().enumerate() {
            if *c == b'_' {
                let before = i > 0 && b[i - 1].is_ascii_digit();
                let after = b.get(i + 1).is_some_and(|c| c.is_ascii_digit());
                if !before || !after {
                    return None;
                }
            }
        }
        let cleaned: String = s.chars().filter(|c| *c != '_').collect();
        cleaned.parse().ok()
    } else {
        s.parse().ok()
    }
}

/// A trait string after Flagsmith's coercion: `-?[0-9]+` becomes an int, `-?[0-9]+\.[0-9]+`
/// a float, anything else stays text.
#[derive(Debug, Clone, PartialEq)]
pub enum Coerced {
    Int(PyInt),
    Float(f64),
    Text,
}

/// Applies the coercion rule to one string.
pub fn coerce_str(s: &str) -> Coerced {
    let b = s.as_bytes();
    let body = b.strip_prefix(b"-").unwrap_or(b);
    let int_len = body.iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len == 0 {
        return Coerced::Text;
    }
    if int_len == body.len() {
        return Coerced::Int(PyInt::from_sign_digits(
            b.len() != body.len(),
            &s[s.len() - body.len()..],
        ));
    }
    let rest = &body[int_len..];
    if rest.len() >= 2 && rest[0] == b'.' && rest[1..].iter().all(|c| c.is_ascii_digit()) {
        if let Ok(f) = s.parse::<f64>() {
            return Coerced::Float(f);
        }
    }
    Coerced::Text
}

/// Python's float `%`: the result takes the sign of the divisor. `None` for a zero
/// divisor (Python raises `ZeroDivisionError`).
pub fn py_float_mod(x: f64, y: f64) -> Option<f64> {
    if y == 0.0 {
        return None;
    }
    let mut m = x % y;
    if m != 0.0 {
        if (y < 0.0) != (m < 0.0) {
            m += y;
        }
    } else {
        m = 0.0f64.copysign(y);
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_parsing_follows_python_int() {
        assert_eq!(parse_py_int("42"), Some(PyInt::Small(42)));
        assert_eq!(parse_py_int("  -7 \n"), Some(PyInt::Small(-7)));
        assert_eq!(parse_py_int("+1_000"), Some(PyInt::Small(1000)));
        assert_eq!(parse_py_int("007"), Some(PyInt::Small(7)));
        assert_eq!(parse_py_int("1.5"), None);
        assert_eq!(parse_py_int("1__0"), None);
        assert_eq!(parse_py_int("_1"), None);
        assert_eq!(parse_py_int("1_"), None);
        assert_eq!(parse_py_int(""), None);
        assert_eq!(parse_py_int("-"), None);
        assert_eq!(parse_py_int("abc"), None);
        assert_eq!(parse_py_int("1e3"), None);
        assert_eq!(
            parse_py_int("-9223372036854775808"),
            Some(PyInt::Small(i64::MIN))
        );
        let big = parse_py_int("123456789012345678901234567890").unwrap();
        assert_eq!(big.to_string(), "123456789012345678901234567890");
        assert!(big > PyInt::Small(i64::MAX));
        let neg_big = parse_py_int("-123456789012345678901234567890").unwrap();
        assert!(neg_big < PyInt::Small(i64::MIN));
        assert!(neg_big < big);
    }

    #[test]
    fn float_parsing_follows_python_float() {
        assert_eq!(parse_py_float("1.5"), Some(1.5));
        assert_eq!(parse_py_float(" 2 "), Some(2.0));
        assert_eq!(parse_py_float("1e3"), Some(1000.0));
        assert_eq!(parse_py_float(".5"), Some(0.5));
        assert_eq!(parse_py_float("5."), Some(5.0));
        assert_eq!(parse_py_float("1_0.5"), Some(10.5));
        assert_eq!(parse_py_float("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_py_float("Infinity"), Some(f64::INFINITY));
        assert!(parse_py_float("nan").unwrap().is_nan());
        assert_eq!(parse_py_float("1_"), None);
        assert_eq!(parse_py_float("1._5"), None);
        assert_eq!(parse_py_float(""), None);
        assert_eq!(parse_py_float("abc"), None);
        assert_eq!(parse_py_float("1.2.3"), None);
        assert_eq!(parse_py_float("0x10"), None);
    }

    #[test]
    fn coercion_of_trait_strings() {
        assert_eq!(coerce_str("123"), Coerced::Int(PyInt::Small(123)));
        assert_eq!(coerce_str("-5"), Coerced::Int(PyInt::Small(-5)));
        assert_eq!(coerce_str("007"), Coerced::Int(PyInt::Small(7)));
        assert_eq!(coerce_str("1.50"), Coerced::Float(1.5));
        assert_eq!(coerce_str("-0.5"), Coerced::Float(-0.5));
        assert_eq!(coerce_str("1."), Coerced::Text);
        assert_eq!(coerce_str(".5"), Coerced::Text);
        assert_eq!(coerce_str("+5"), Coerced::Text);
        assert_eq!(coerce_str(" 5"), Coerced::Text);
        assert_eq!(coerce_str("1e5"), Coerced::Text);
        assert_eq!(coerce_str("-"), Coerced::Text);
        assert_eq!(coerce_str(""), Coerced::Text);
        assert_eq!(coerce_str("1.2.3"), Coerced::Text);
        assert!(matches!(
            coerce_str("99999999999999999999999"),
            Coerced::Int(PyInt::Big { .. })
        ));
    }

    #[test]
    fn modulo_takes_sign_of_divisor() {
        assert_eq!(py_float_mod(7.0, 3.0), Some(1.0));
        assert_eq!(py_float_mod(-7.0, 3.0), Some(2.0));
        assert_eq!(py_float_mod(7.0, -3.0), Some(-2.0));
        assert_eq!(py_float_mod(-7.0, -3.0), Some(-1.0));
        assert_eq!(py_float_mod(5.5, 2.0), Some(1.5));
        assert_eq!(py_float_mod(1.0, 0.0), None);
        assert_eq!(py_float_mod(3.0, f64::INFINITY), Some(3.0));
        assert_eq!(py_float_mod(-3.0, f64::INFINITY), Some(f64::INFINITY));
        let z = py_float_mod(6.0, -3.0).unwrap();
        assert!(z == 0.0 && z.is_sign_negative());
    }
}
