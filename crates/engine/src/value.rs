//! Context values as the engine sees them after lookup: Python's `None | bool | int |
//! float | str`, with Flagsmith's coercion of numeric-looking strings already applied.
//!
//! Values borrow from the identity or the compiled environment, so looking one up does not
//! allocate; only non-primitive trait values (read as Python `str()`) own their text.

use std::borrow::Cow;
use std::fmt::{self, Write};

use serde_json::Value;

use crate::pyfmt;
use crate::pynum::{coerce_str, Coerced, PyInt};

/// A coerced context value.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextValue<'a> {
    Null,
    Bool(bool),
    Int(Cow<'a, PyInt>),
    Float(f64),
    Str(Cow<'a, str>),
}

impl<'a> ContextValue<'a> {
    /// Coerces a string: `"12"` is an int, `"1.5"` a float, anything else stays text.
    pub fn from_str_coerced(s: &'a str) -> Self {
        match coerce_str(s) {
            Coerced::Int(i) => ContextValue::Int(Cow::Owned(i)),
            Coerced::Float(f) => ContextValue::Float(f),
            Coerced::Text => ContextValue::Str(Cow::Borrowed(s)),
        }
    }

    /// Coerces a JSON value read directly as a trait. Arrays and objects become their
    /// Python `str()` text, as `map_any_value_to_context_value` does.
    pub fn from_json(v: &'a Value) -> Self {
        match v {
            Value::Null => ContextValue::Null,
            Value::Bool(b) => ContextValue::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    ContextValue::Int(Cow::Owned(PyInt::Small(i)))
                } else if let Some(u) = n.as_u64() {
                    ContextValue::Int(Cow::Owned(PyInt::from_u64(u)))
                } else {
                    ContextValue::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Self::from_str_coerced(s),
            other => ContextValue::Str(Cow::Owned(pyfmt::value_str(other))),
        }
    }

    /// Like [`from_json`](Self::from_json) but for values reached through a JSONPath, where
    /// a non-primitive node reads as null.
    pub fn from_json_node(v: &'a Value) -> Self {
        match v {
            Value::Array(_) | Value::Object(_) => ContextValue::Null,
            other => Self::from_json(other),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, ContextValue::Null)
    }

    /// Detaches from borrowed data.
    pub fn into_owned(self) -> ContextValue<'static> {
        match self {
            ContextValue::Null => ContextValue::Null,
            ContextValue::Bool(b) => ContextValue::Bool(b),
            ContextValue::Int(i) => ContextValue::Int(Cow::Owned(i.into_owned())),
            ContextValue::Float(f) => ContextValue::Float(f),
            ContextValue::Str(s) => ContextValue::Str(Cow::Owned(s.into_owned())),
        }
    }

    /// Borrows this value with a shorter lifetime, without copying big ints or text.
    pub fn reborrow(&self) -> ContextValue<'_> {
        match self {
            ContextValue::Null => ContextValue::Null,
            ContextValue::Bool(b) => ContextValue::Bool(*b),
            ContextValue::Int(i) => match &**i {
                PyInt::Small(v) => ContextValue::Int(Cow::Owned(PyInt::Small(*v))),
                big => ContextValue::Int(Cow::Borrowed(big)),
            },
            ContextValue::Float(f) => ContextValue::Float(*f),
            ContextValue::Str(s) => ContextValue::Str(Cow::Borrowed(s)),
        }
    }
}

/// Python's `str()` of the value (`True`, `12`, `1.5`, `1e+16`, text as is).
impl fmt::Display for ContextValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextValue::Null => f.write_str("None"),
            ContextValue::Bool(true) => f.write_str("True"),
            ContextValue::Bool(false) => f.write_str("False"),
            ContextValue::Int(i) => write!(f, "{i}"),
            ContextValue::Float(x) => pyfmt::write_float(f, *x),
            ContextValue::Str(s) => f.write_str(s),
        }
    }
}

/// Calls `with` on Python's `str()` of the value, formatting numbers on the stack.
pub fn with_str<R>(v: &ContextValue<'_>, with: impl FnOnce(&str) -> R) -> R {
    match v {
        ContextValue::Str(s) => with(s),
        ContextValue::Int(i) if matches!(**i, PyInt::Big { .. }) => with(&i.to_string()),
        other => {
            let mut buf = pyfmt::StackStr::<48>::new();
            if write!(buf, "{other}").is_ok() {
                with(buf.as_str())
            } else {
                with(&other.to_string())
            }
        }
    }
}
