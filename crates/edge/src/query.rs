//! Query strings decoded strictly. axum's `Query` (serde_urlencoded) decodes percent-escapes
//! lossily: `?identifier=%FF` and `?identifier=%FE` both become `"\u{FFFD}"`, so two different
//! identifiers an SDK sent would be merged into one identity. Here a value whose bytes are not
//! UTF-8 once decoded is refused with a 400 naming the parameter.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use percent_encoding::percent_decode;

use crate::error::SdkError;

/// The query's parameters (the last value wins when a name repeats, as with `Query`).
pub struct StrictQuery(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for StrictQuery {
    type Rejection = SdkError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, SdkError> {
        parse(parts.uri.query().unwrap_or("")).map(StrictQuery)
    }
}

fn decode(raw: &str) -> Option<String> {
    // Form encoding: `+` is a space (before percent-decoding, so `%2B` stays a plus).
    let spaced = raw.replace('+', " ");
    let decoded = percent_decode(spaced.as_bytes()).decode_utf8().ok()?;
    Some(decoded.into_owned())
}

fn parse(query: &str) -> Result<HashMap<String, String>, SdkError> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(raw_name).ok_or_else(|| SdkError::Invalid {
            field: "query".into(),
            message: "A parameter name is not valid UTF-8 once percent-decoded.".into(),
        })?;
        let value = decode(raw_value).ok_or_else(|| SdkError::Invalid {
            field: name.clone(),
            message: "Not valid UTF-8 once percent-decoded.".into(),
        })?;
        out.insert(name, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_like_forms_and_invalid_utf8_is_refused_naming_the_parameter() {
        let q = parse("identifier=a%20b+c%2Bd&feature=%C3%A9&flag").unwrap();
        assert_eq!(q["identifier"], "a b c+d");
        assert_eq!(q["feature"], "é");
        assert_eq!(q["flag"], "");
        match parse("identifier=%FF") {
            Err(SdkError::Invalid { field, .. }) => assert_eq!(field, "identifier"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(parse("%FE=x").is_err());
    }
}
