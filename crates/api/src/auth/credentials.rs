//! Reading what a request presents: its credential (an `Authorization` header, or the session
//! cookie), the client's address (for rate limits), and building the session cookie.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{header, request::Parts, HeaderMap, HeaderName, HeaderValue};

/// The browser session cookie's name.
pub const SESSION_COOKIE: &str = "flagstone_session";
/// The header a cookie-authenticated request that changes something must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Prefixes of the secrets Flagstone issues (they also make leaked secrets easy to scan for).
pub const API_TOKEN_PREFIX: &str = "fst_";
pub const SESSION_PREFIX: &str = "fss_";
/// Organisation API keys (`Authorization: Api-Key fsk_…`).
pub const ORG_KEY_PREFIX: &str = "fsk_";
/// The secret of an invitation (the `hash` in its join link).
pub const INVITE_PREFIX: &str = "fsi_";

/// A presented credential. Never logged; its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Api-Key …`: the installation key or an organisation API key.
    ApiKey(String),
    /// `Authorization: Token …`: a user's API token (or, as before users existed, the
    /// installation key).
    Token(String),
    /// The `flagstone_session` cookie of a browser session.
    Session(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::ApiKey(_) => "ApiKey(…)",
            Credential::Token(_) => "Token(…)",
            Credential::Session(_) => "Session(…)",
        })
    }
}

impl Credential {
    /// The request's credential: the `Authorization` header if present (it wins: browsers never
    /// send it on their own, so it needs no CSRF token), else the session cookie.
    pub fn from_headers(headers: &HeaderMap) -> Option<Credential> {
        if let Some(v) = headers.get(header::AUTHORIZATION) {
            let v = v.to_str().ok()?.trim();
            let (scheme, rest) = v.split_once(' ')?;
            let secret = rest.trim();
            if secret.is_empty() {
                return None;
            }
            return if scheme.eq_ignore_ascii_case("Api-Key") {
                Some(Credential::ApiKey(secret.to_string()))
            } else if scheme.eq_ignore_ascii_case("Token") || scheme.eq_ignore_ascii_case("Bearer")
            {
                Some(Credential::Token(secret.to_string()))
            } else {
                None
            };
        }
        session_cookie(headers).map(Credential::Session)
    }
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether the request reached us over HTTPS (directly, or as a proxy says).
pub(crate) fn over_https(parts: &Parts) -> bool {
    parts.uri.scheme_str() == Some("https")
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new session. `Secure` when configured or the request came over HTTPS
/// (the attribute only restricts the browser, so trusting the header here is harmless).
pub fn session_set_cookie(parts: &Parts, token: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure || over_https(parts) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}"
    ))
    .expect("token characters are cookie-safe")
}

/// `Set-Cookie` that clears the session cookie.
pub fn session_clear_cookie(parts: &Parts, secure: bool) -> HeaderValue {
    let secure = if secure || over_https(parts) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"
    ))
    .expect("static cookie")
}

/// Where a request comes from, for per-address limits: the socket peer, or — only when
/// configured, for a server behind a trusted proxy — the address that proxy put in
/// `header` (the last entry of a list, the one the nearest proxy added).
pub fn client_address(parts: &Parts, header: Option<&HeaderName>) -> String {
    if let Some(h) = header {
        let from_header = parts
            .headers
            .get_all(h)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = from_header {
            return ip.to_string();
        }
    }
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => addr.ip().to_string(),
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_authorization_header_wins_over_the_cookie() {
        let p = parts(&[
            ("authorization", "Token abc"),
            ("cookie", "a=1; flagstone_session=s"),
        ]);
        assert_eq!(
            Credential::from_headers(&p.headers),
            Some(Credential::Token("abc".into()))
        );
        let p = parts(&[("cookie", "a=1; flagstone_session=s")]);
        assert_eq!(
            Credential::from_headers(&p.headers),
            Some(Credential::Session("s".into()))
        );
        let p = parts(&[("authorization", "Basic abc")]);
        assert_eq!(Credential::from_headers(&p.headers), None);
        assert_eq!(
            format!("{:?}", Credential::ApiKey("secret".into())),
            "ApiKey(…)"
        );
    }

    #[test]
    fn the_client_address_is_the_peer_unless_a_header_is_trusted() {
        let mut p = parts(&[("x-forwarded-for", "1.2.3.4, 10.0.0.9")]);
        p.extensions
            .insert(ConnectInfo::<SocketAddr>("127.0.0.1:9".parse().unwrap()));
        assert_eq!(client_address(&p, None), "127.0.0.1");
        let h = HeaderName::from_static("x-forwarded-for");
        assert_eq!(client_address(&p, Some(&h)), "10.0.0.9");
        let p = parts(&[("x-forwarded-for", "garbage")]);
        assert_eq!(client_address(&p, Some(&h)), "unknown");
    }
}
