//! The one rule for text people read back: names, keys, tags and identifiers must not carry
//! characters that make them display as something else. Every path that accepts such text (the
//! admin API, the SDK API, import) reaches it through the validators that use [`refuse_deceptive`]
//! (`organisations::validate_name`, `identities::validate_identifier`,
//! `identities::traits::validate_trait_key`, feature tags).
//!
//! Refused:
//! - control characters (Unicode category Cc: C0, DEL, C1), including tabs and newlines — none
//!   belongs in a name, and a terminal or log viewer may act on them;
//! - the explicit bidirectional formatting characters (embeddings, overrides, isolates and their
//!   terminators: U+202A–U+202E, U+2066–U+2069), which reorder how the text around them is
//!   displayed ("Trojan Source"), so `admin{U+202E}txt.exe` reads as `adminexe.txt`.
//!
//! Allowed: the implicit marks (LRM U+200E, RLM U+200F, ALM U+061C), which right-to-left names
//! legitimately use and which do not reorder text by themselves, and all other printable text.

use crate::{Result, StoreError};

/// Why a character is refused, if it is.
fn deceptive(c: char) -> Option<&'static str> {
    if c.is_control() {
        Some("control character")
    } else if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
        Some("bidirectional formatting character")
    } else {
        None
    }
}

/// Refuses `text` (the value of `field`) if it holds a control character or a bidirectional
/// override, naming the first one and where it is.
pub fn refuse_deceptive(field: &str, text: &str) -> Result<()> {
    match text
        .chars()
        .enumerate()
        .find_map(|(i, c)| Some((i, c, deceptive(c)?)))
    {
        None => Ok(()),
        Some((i, c, what)) => Err(StoreError::invalid(
            field,
            format!(
                "must not contain control characters or bidirectional formatting characters \
                 (found {what} U+{:04X} at character {})",
                c as u32,
                i + 1
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_override_characters_are_refused_naming_the_field() {
        for bad in [
            "a\u{0}b",
            "tab\there",
            "line\nbreak",
            "del\u{7f}",
            "c1\u{85}",
            "admin\u{202E}txt.exe",
            "\u{2066}isolate\u{2069}",
        ] {
            let e = refuse_deceptive("name", bad).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("name"), "{text}");
            assert!(text.contains("U+"), "{text}");
        }
        for good in [
            "plain",
            "ünïcödé ✓",
            "עברית\u{200F}",
            "emoji 🚩",
            "with space",
        ] {
            refuse_deceptive("name", good).unwrap();
        }
    }
}
