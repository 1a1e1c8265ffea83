//! An OFREP request body read into what the identities endpoint takes: the context's
//! `targetingKey` is the identifier, every other field a transient trait. Refusals name the
//! OFREP error code the spec gives for them.

use serde_json::Value;

use super::answer::ErrorCode;
use crate::routes::identities::{trait_value, IncomingTrait};

/// What an evaluation request asks about.
#[derive(Debug, PartialEq)]
pub(crate) struct Context {
    /// `targetingKey`, when present and not empty.
    pub targeting_key: Option<String>,
    /// The other fields, as transient traits (`None` for a `null` field: no value for this
    /// evaluation, even if the identity has one stored).
    pub traits: Vec<IncomingTrait>,
}

/// A request refused before evaluation.
#[derive(Debug, PartialEq)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub details: String,
}

fn refuse(code: ErrorCode, details: impl Into<String>) -> Refusal {
    Refusal {
        code,
        details: details.into(),
    }
}

/// Reads `{"context": {...}}`. A body without `context` (the Python provider sends `{}` when it
/// has no context) is an empty context.
pub(crate) fn parse(body: &[u8]) -> Result<Context, Refusal> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        refuse(
            ErrorCode::ParseError,
            format!("The request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(mut request) = request else {
        return Err(refuse(
            ErrorCode::ParseError,
            "The request body must be a JSON object: {\"context\": {…}}",
        ));
    };
    let fields = match request.remove("context") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(fields)) => fields,
        Some(_) => {
            return Err(refuse(
                ErrorCode::InvalidContext,
                "`context` must be a JSON object",
            ))
        }
    };
    let mut targeting_key = None;
    let mut traits = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        if name == "targetingKey" {
            targeting_key = match value {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(s),
                _ => {
                    return Err(refuse(
                        ErrorCode::InvalidContext,
                        "`targetingKey` must be a string",
                    ))
                }
            };
            continue;
        }
        traits.push((name, trait_value(value), true));
    }
    Ok(Context {
        targeting_key,
        traits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_targeting_key_is_the_identifier_and_other_fields_are_transient_traits() {
        let c = parse(
            br#"{"context":{"targetingKey":"u1","plan":"pro","age":3,"beta":true,"gone":null,"tags":["a"]}}"#,
        )
        .unwrap();
        assert_eq!(c.targeting_key.as_deref(), Some("u1"));
        assert_eq!(
            c.traits,
            vec![
                ("plan".into(), Some(json!("pro")), true),
                ("age".into(), Some(json!(3)), true),
                ("beta".into(), Some(json!(true)), true),
                ("gone".into(), None, true),
                // Flagsmith keeps other JSON as its string form.
                ("tags".into(), Some(json!("[\"a\"]")), true),
            ]
        );
    }

    #[test]
    fn a_missing_or_empty_context_or_key_means_no_identity() {
        for body in [
            &br#"{}"#[..],
            br#"{"context":null}"#,
            br#"{"context":{}}"#,
            br#"{"context":{"targetingKey":""}}"#,
        ] {
            let c = parse(body).unwrap();
            assert_eq!(c.targeting_key, None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn malformed_bodies_are_parse_errors_and_malformed_contexts_invalid() {
        for (body, code) in [
            (&b"not json"[..], ErrorCode::ParseError),
            (b"", ErrorCode::ParseError),
            (b"[1]", ErrorCode::ParseError),
            (br#"{"context":"u1"}"#, ErrorCode::InvalidContext),
            (
                br#"{"context":{"targetingKey":42}}"#,
                ErrorCode::InvalidContext,
            ),
        ] {
            assert_eq!(
                parse(body).unwrap_err().code,
                code,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
