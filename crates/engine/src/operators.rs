//! The 14 condition operators: their pre-parsed operands (built once by `compile`) and the
//! matching of a context value against them (run per identity, parsing nothing).
//!
//! Semantics are Flagsmith engine v10.2.0's: the condition value is cast to the type of
//! the context value with Python rules, any cast failure means "no match" (even for
//! `NOT_EQUAL`), and `:semver`-suffixed values compare as SemVer 2.0 versions.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::fxhash::FxHashSet;
use crate::pyfmt;
use crate::pynum::{parse_py_float, parse_py_int, py_float_mod, PyInt};
use crate::value::ContextValue;

/// Upper bound on a compiled regex program, so a hostile pattern cannot eat memory.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Sets up to this size are scanned linearly; larger ones are hashed.
const SMALL_SET: usize = 8;

/// A comparison applied through the typed cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    NotEqual,
    GreaterThan,
    GreaterThanInclusive,
    LessThan,
    LessThanInclusive,
    Contains,
}

impl Comparison {
    fn holds(self, ord: Option<Ordering>) -> bool {
        match (self, ord) {
            (Comparison::Equal, Some(o)) => o == Ordering::Equal,
            // NaN compares unequal to everything, so `!=` holds.
            (Comparison::NotEqual, o) => o != Some(Ordering::Equal),
            (Comparison::GreaterThan, Some(o)) => o == Ordering::Greater,
            (Comparison::GreaterThanInclusive, Some(o)) => o != Ordering::Less,
            (Comparison::LessThan, Some(o)) => o == Ordering::Less,
            (Comparison::LessThanInclusive, Some(o)) => o != Ordering::Greater,
            _ => false,
        }
    }
}

/// The condition value pre-cast to every type a context value may have.
#[derive(Debug, Clone)]
pub struct TypedOperand {
    /// `str(value)`.
    text: Box<str>,
    /// `int(value)`, if it succeeds.
    int: Option<PyInt>,
    /// `float(value)`, if it succeeds.
    float: Option<f64>,
    /// `value not in ("False", "false")`.
    boolean: bool,
    /// For `"<version>:semver"` values: the parsed version, `None` if it is not valid.
    semver: Option<Option<SemverKey>>,
}

impl TypedOperand {
    pub fn new(value: &Value) -> Self {
        let text = pyfmt::value_str(value);
        let (int, float, boolean) = match value {
            Value::String(s) => (
                parse_py_int(s),
                parse_py_float(s),
                s != "False" && s != "false",
            ),
            Value::Number(n) => (
                n.as_i64()
                    .map(PyInt::Small)
                    .or_else(|| n.as_u64().map(PyInt::from_u64))
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                            .map(|f| PyInt::Small(f.trunc() as i64))
                    }),
                n.as_f64(),
                true,
            ),
            Value::Bool(b) => (
                Some(PyInt::Small(*b as i64)),
                Some(if *b { 1.0 } else { 0.0 }),
                true,
            ),
            // int(None), float([..]) raise TypeError: no match.
            _ => (None, None, true),
        };
        let semver = match value {
            Value::String(s) => s.strip_suffix(":semver").map(SemverKey::parse),
            _ => None,
        };
        TypedOperand {
            text: text.into(),
            int,
            float,
            boolean,
            semver,
        }
    }

    /// True if no context value of any type could ever be compared with this operand.
    pub fn is_semver_invalid(&self) -> bool {
        matches!(self.semver, Some(None))
    }

    /// True for `"<version>:semver"` values.
    pub fn is_semver(&self) -> bool {
        self.semver.is_some()
    }
}

/// A version as Python's `semver` compares it: build metadata is ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SemverKey {
    major: u64,
    minor: u64,
    patch: u64,
    pre: semver::Prerelease,
}

impl SemverKey {
    /// Strict SemVer 2.0 (`1.2.3[-pre][+build]`, no `v`, no leading zeros).
    pub fn parse(s: &str) -> Option<SemverKey> {
        // Python's pattern ends in `$`, which also accepts one trailing newline.
        let s = s.strip_suffix('\n').unwrap_or(s);
        let v = semver::Version::parse(s).ok()?;
        Some(SemverKey {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            pre: v.pre,
        })
    }
}

/// `EQUAL`, `GREATER_THAN`, ..., `CONTAINS`: cast the operand to the context value's type.
#[allow(dead_code)] // the reference form, used by tests; evaluation caches versions
pub fn typed_match(op: Comparison, ctx: &ContextValue<'_>, operand: &TypedOperand) -> bool {
    typed_match_with(op, ctx, operand, |s, right| {
        SemverKey::parse(s).map(|left| left.cmp(right))
    })
}

/// [`typed_match`] with the text-vs-version comparison supplied by the caller (which may
/// have parsed the context value as a version already): `semver_cmp(text, version)` is
/// `None` when `text` is not a valid version.
#[inline(always)]
pub fn typed_match_with(
    op: Comparison,
    ctx: &ContextValue<'_>,
    operand: &TypedOperand,
    semver_cmp: impl FnOnce(&str, &SemverKey) -> Option<Ordering>,
) -> bool {
    match ctx {
        ContextValue::Null => false,
        ContextValue::Str(s) => {
            if let Some(version) = &operand.semver {
                let Some(right) = version else {
                    return false;
                };
                let Some(ord) = semver_cmp(s, right) else {
                    return false;
                };
                // `in` on a version is a TypeError in Python: no match.
                return op != Comparison::Contains && op.holds(Some(ord));
            }
            match op {
                Comparison::Contains => contains_str(s, &operand.text),
                // Equality needs no ordering: lengths differ for most pairs.
                Comparison::Equal => **s == *operand.text,
                Comparison::NotEqual => **s != *operand.text,
                _ => op.holds(Some((**s).cmp(&*operand.text))),
            }
        }
        ContextValue::Int(i) => match &operand.int {
            Some(cast) if op != Comparison::Contains => op.holds(Some((**i).cmp(cast))),
            _ => false,
        },
        ContextValue::Float(x) => match operand.float {
            Some(cast) if op != Comparison::Contains => op.holds(x.partial_cmp(&cast)),
            _ => false,
        },
        ContextValue::Bool(b) => {
            op != Comparison::Contains && op.holds(Some(b.cmp(&operand.boolean)))
        }
    }
}

/// `NOT_CONTAINS`: only text values, and only if the operand is not a substring.
pub fn not_contains(ctx: &ContextValue<'_>, needle: &str) -> bool {
    matches!(ctx, ContextValue::Str(s) if !contains_str(s, needle))
}

/// Haystacks up to this long are searched by [`contains_str`]'s first-byte scan.
const SHORT_HAYSTACK: usize = 64;

/// `needle in haystack`. Trait values are short (an email, a version), and for those a
/// scan for the needle's first byte, comparing the rest where it occurs, costs a fraction
/// of setting up `str::contains`' Two-Way searcher; longer haystacks get that searcher,
/// which bounds the worst case.
#[inline]
pub fn contains_str(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    if h.len() > SHORT_HAYSTACK {
        return haystack.contains(needle);
    }
    let Some(last_start) = h.len().checked_sub(n.len()) else {
        return false;
    };
    (0..=last_start).any(|i| h[i] == first && &h[i + 1..i + n.len()] == rest)
}

/// Compiles a `REGEX` operand with Python's `re.match` anchoring (start only).
pub fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{pattern})"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// `MODULO`: `"divisor|remainder"`, both Python floats; `None` if unusable.
pub fn parse_modulo(value: &Value) -> Option<(f64, f64)> {
    let Value::String(s) = value else {
        return None;
    };
    let (d, r) = s.split_once('|')?;
    if r.contains('|') {
        return None;
    }
    Some((parse_py_float(d)?, parse_py_float(r)?))
}

/// `MODULO` on a number (bools count as ints); a zero divisor never matches.
pub fn modulo_match(ctx: &ContextValue<'_>, divisor: f64, remainder: f64) -> bool {
    let x = match ctx {
        ContextValue::Int(i) => match i.to_f64() {
            Some(x) => x,
            None => return false,
        },
        ContextValue::Float(x) => *x,
        ContextValue::Bool(b) => f64::from(u8::from(*b)),
        _ => return false,
    };
    py_float_mod(x, divisor) == Some(remainder)
}

/// The member set of an `IN` condition.
#[derive(Debug, Clone)]
pub enum InSet {
    Small(Vec<Box<str>>),
    Large(FxHashSet<Box<str>>),
}

impl InSet {
    /// Builds the set: a JSON list, a string starting with `[` that parses as a JSON list,
    /// or else the string split on `,` (no trimming). Members are Python `str()`s.
    pub fn new(value: &Value) -> InSet {
        let members: Vec<Box<str>> = match value {
            Value::Array(items) => items.iter().map(|v| pyfmt::value_str(v).into()).collect(),
            Value::String(s) => {
                let parsed = if s.starts_with('[') {
                    match serde_json::from_str::<Value>(s) {
                        Ok(Value::Array(items)) => Some(items),
                        _ => None,
                    }
                } else {
                    None
                };
                match parsed {
                    Some(items) => items.iter().map(|v| pyfmt::value_str(v).into()).collect(),
                    None => s.split(',').map(Box::from).collect(),
                }
            }
            // `None.split` raises in Python: no member can match.
            _ => Vec::new(),
        };
        if members.len() <= SMALL_SET {
            InSet::Small(members)
        } else {
            InSet::Large(members.into_iter().collect())
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        match self {
            InSet::Small(v) => v.iter().any(|m| &**m == s),
            InSet::Large(h) => h.contains(s),
        }
    }

    /// The members (each once in large sets).
    pub fn members(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            InSet::Small(v) => Box::new(v.iter().map(|m| &**m)),
            InSet::Large(h) => Box::new(h.iter().map(|m| &**m)),
        }
    }

    /// Number of distinct members (duplicates count once only in large sets).
    #[allow(dead_code)] // used by tests and diagnostics
    pub fn len(&self) -> usize {
        match self {
            InSet::Small(v) => v.len(),
            InSet::Large(h) => h.len(),
        }
    }

    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An `IN` condition's members as numbers (their index in an environment-wide member
/// table, so that an identity's value is looked up once): a bitmap over the range they
/// span when that is compact, one test per condition; else a sorted list.
#[derive(Debug, Clone)]
pub enum MemberSet {
    Bits { first: u32, words: Box<[u64]> },
    Sorted(Box<[u32]>),
}

impl MemberSet {
    pub fn new(mut ids: Vec<u32>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return MemberSet::Sorted(Box::default());
        };
        let words = (last - first) as usize / 64 + 1;
        // At most twice the list's bytes: numbers interned per environment are dense.
        if words * 8 > ids.len() * 4 * 2 {
            return MemberSet::Sorted(ids.into());
        }
        let mut bits = vec![0u64; words];
        for id in ids {
            let offset = (id - first) as usize;
            bits[offset / 64] |= 1 << (offset % 64);
        }
        MemberSet::Bits {
            first,
            words: bits.into(),
        }
    }

    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        match self {
            MemberSet::Bits { first, words } => {
                let Some(offset) = id.checked_sub(*first) else {
                    return false;
                };
                let offset = offset as usize;
                words
                    .get(offset / 64)
                    .is_some_and(|w| (w >> (offset % 64)) & 1 == 1)
            }
            MemberSet::Sorted(ids) => ids.binary_search(&id).is_ok(),
        }
    }
}

/// `IN`: text values by membership, ints (not bools) by their decimal form.
#[allow(dead_code)] // the reference form, used by tests; evaluation caches the text
pub fn in_match(ctx: &ContextValue<'_>, set: &InSet) -> bool {
    match ctx {
        ContextValue::Str(s) => set.contains(s),
        ContextValue::Int(i) => match &**i {
            PyInt::Small(v) => {
                let mut buf = pyfmt::StackStr::<24>::new();
                use std::fmt::Write;
                write!(buf, "{v}").is_ok() && set.contains(buf.as_str())
            }
            big => set.contains(&big.to_string()),
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests;
