//! `REGEX` operands, matched the way Python's `re.match` does (anchored at the start).
//!
//! A [`Pattern`] is compiled once per environment and matched against short trait values
//! (an email, an identifier) many times per second. Where the pattern allows, it carries a
//! fully compiled DFA: matching is then one table lookup per byte, with none of the lazy
//! DFA's per-search setup (a cache taken from a pool, start-state computation), which
//! on a 20-byte value cost several times the scan itself. Hostile patterns cannot make
//! that DFA large: it is built only within [`DFA_SIZE_LIMIT`], and a pattern it cannot
//! express (a Unicode word boundary, for one) or that would outgrow the limit keeps the
//! `regex` crate's matcher alone.

use regex::Regex;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::{Anchored, Input};

use crate::operators::compile_regex;

/// Upper bound on one pattern's DFA (and on the memory spent building it). The incident
/// workload's patterns come to 2–42 KiB, most of it Unicode `\d`; beyond this the lazy
/// matcher is kept instead.
pub const DFA_SIZE_LIMIT: usize = 64 << 10;

/// A compiled `REGEX` operand.
#[derive(Debug)]
pub struct Pattern {
    regex: Regex,
    dfa: Option<dense::DFA<Vec<u32>>>,
}

impl Pattern {
    /// Compiles `pattern` (Python syntax, anchored at the start); errors as
    /// [`compile_regex`] does.
    pub fn new(pattern: &str) -> Result<Pattern, regex::Error> {
        let regex = compile_regex(pattern)?;
        let dfa = dense::Builder::new()
            .configure(
                dense::DFA::config()
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
            )
            .build(regex.as_str())
            .ok();
        Ok(Pattern { regex, dfa })
    }

    /// Whether the value matches at its start.
    pub fn is_match(&self, haystack: &str) -> bool {
        if let Some(dfa) = &self.dfa {
            let input = Input::new(haystack).anchored(Anchored::Yes).earliest(true);
            // An error means the DFA gave up on this input (it never does for the
            // patterns built above, but the lazy matcher is always right).
            if let Ok(found) = dfa.try_search_fwd(&input) {
                return found.is_some();
            }
        }
        self.regex.is_match(haystack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_rule_patterns_get_a_compiled_dfa_and_hostile_ones_do_not() {
        for p in [
            r".*@example1\d?\.com$",
            r"^user\d*[02468]@.*",
            r"^user(1|2|3)\d*@example\d\.com$",
            r"@example(7|8|9)\.com",
            r"^[a-z]+\d{3}@",
            r"^user-\d*7$",
        ] {
            let pattern = Pattern::new(p).unwrap();
            assert!(pattern.dfa.is_some(), "{p}");
            let size = pattern.dfa.as_ref().unwrap().memory_usage();
            assert!(size <= DFA_SIZE_LIMIT, "{p}: {size}");
        }
        // Unicode word boundaries are beyond a DFA; `(a|b)*a(a|b){20}` needs 2²⁰ states.
        for p in [r"\bword\b", r"(a|b)*a(a|b){20}"] {
            let pattern = Pattern::new(p).unwrap();
            assert!(pattern.dfa.is_none(), "{p}");
            assert!(pattern.is_match("word ") || pattern.is_match(&format!("a{}", "b".repeat(20))));
        }
    }

    /// Pieces of patterns like those segment rules use.
    const ATOMS: &[&str] = &[
        "^", "$", ".", ".*", r"\d", r"\d*", r"\d?", "[a-c]", "[^a]+", "é", "(a|b)", "x+", "@",
        r"\.", "(?i)A", "[0-9]{2}",
    ];

    proptest::proptest! {
        /// Where a pattern has a DFA, it answers exactly as the `regex` matcher does.
        #[test]
        fn the_dfa_agrees_with_the_regex_matcher(
            atoms in proptest::collection::vec(proptest::sample::select(ATOMS), 1..6),
            haystack in "[a-cxA0-9é@.\n-]{0,12}",
        ) {
            let pattern = atoms.concat();
            let compiled = Pattern::new(&pattern).expect("valid pattern");
            // Some combinations (`.*[a-c]..\d`: Unicode `.` and `\d`) outgrow the limit and
            // keep the lazy matcher alone; most get a DFA, and those are the cases here.
            proptest::prop_assume!(compiled.dfa.is_some());
            proptest::prop_assert_eq!(
                compiled.is_match(&haystack),
                compiled.regex.is_match(&haystack),
                "{} on {:?}", pattern, haystack
            );
        }
    }
}
