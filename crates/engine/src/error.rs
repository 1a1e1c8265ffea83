//! Parsing errors and the JSON-with-comments helper used for contexts and test cases.

/// Why a context or document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not valid JSON or does not have the expected shape.
    #[error("invalid {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// Drops lines whose first non-blank characters are `//` (the comment style of the
/// Flagsmith engine test data). Other text is kept, so JSON string content is untouched.
pub fn strip_line_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim_start().starts_with("//") {
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Parses JSON that may contain `//` comment lines into `T`.
pub fn parse_jsonc<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
) -> Result<T, Error> {
    serde_json::from_str(&strip_line_comments(text)).map_err(|source| Error::Json { what, source })
}

impl crate::EvaluationContext {
    /// Parses a context from JSON (comment lines allowed).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        parse_jsonc(text, "evaluation context")
    }
}

impl crate::EnvironmentDocument {
    /// Parses an environment document from JSON.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|source| Error::Json {
            what: "environment document",
            source,
        })
    }
}
