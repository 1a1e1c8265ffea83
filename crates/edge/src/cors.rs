//! CORS for the SDK API, so browser SDKs on another origin can call it. The SDK API is meant to
//! be called from anywhere (client keys are public), so every origin is allowed by default;
//! operators can name the origins instead. Only the SDK routes get this layer: the admin API
//! never answers cross-origin requests (its browser sessions rely on that).
//!
//! Allowed request headers are the ones Flagsmith allows (django-cors-headers' defaults plus
//! `X-Environment-Key` and the SDK tracking headers); `Retry-After` and the document's freshness
//! headers are exposed to scripts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Which origins may call the SDK API from a browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin (the default).
    #[default]
    Any,
    /// Exactly these origins (`scheme://host[:port]`).
    List(Vec<HeaderValue>),
}

/// Why an origin list was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadOrigin(String);

impl fmt::Display for BadOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an origin: expected `*` or a comma-separated list of \
             scheme://host[:port] (no path, no trailing slash)",
            self.0
        )
    }
}

impl std::error::Error for BadOrigin {}

impl FromStr for CorsOrigins {
    type Err = BadOrigin;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut list = Vec::new();
        for origin in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let bad = || BadOrigin(origin.to_string());
            let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
            let valid = matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.contains(['/', '?', '#', '*', ' '])
                && origin.is_ascii();
            if !valid {
                return Err(bad());
            }
            list.push(HeaderValue::from_str(origin).map_err(|_| bad())?);
        }
        if list.is_empty() {
            return Err(BadOrigin(s.to_string()));
        }
        Ok(CorsOrigins::List(list))
    }
}

/// Request headers browsers may send: Flagsmith's `CORS_ALLOW_HEADERS`, and OFREP's `X-API-Key`.
const ALLOW_HEADERS: [&str; 12] = [
    "accept",
    "authorization",
    "content-type",
    "user-agent",
    "x-csrftoken",
    "x-requested-with",
    "x-environment-key",
    "flagsmith-application-name",
    "flagsmith-application-version",
    "flagsmith-sdk-user-agent",
    "if-none-match",
    "x-api-key",
];

/// Response headers scripts may read.
const EXPOSE_HEADERS: [&str; 4] = [
    "retry-after",
    "x-flagsmith-document-updated-at",
    "etag",
    "last-modified",
];

/// The layer for the SDK routes.
pub fn layer(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(ALLOW_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSE_HEADERS.map(HeaderName::from_static))
        // django-cors-headers' default: browsers cache the preflight for a day.
        .max_age(Duration::from_secs(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_as_any_or_a_list_and_refuse_what_is_not_an_origin() {
        assert_eq!("*".parse(), Ok(CorsOrigins::Any));
        assert_eq!(
            "https://a.example, http://localhost:3000".parse(),
            Ok(CorsOrigins::List(vec![
                HeaderValue::from_static("https://a.example"),
                HeaderValue::from_static("http://localhost:3000"),
            ]))
        );
        for bad in [
            "",
            "a.example",
            "https://a.example/",
            "ftp://x",
            "https://*.x",
        ] {
            assert!(bad.parse::<CorsOrigins>().is_err(), "{bad}");
        }
    }
}
