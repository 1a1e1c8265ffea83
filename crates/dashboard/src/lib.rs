//! Flagstone's dashboard: the single-page app built from `web/` (Vite, from a lockfile) and
//! committed under `assets/`, embedded in the binary, so `cargo build` alone produces a
//! binary with its dashboard. [`mount`] serves it at `/` as the fallback of an app router:
//! known files as they are, any other page path as `index.html` (the app routes in the
//! browser), and never a page for the API's own prefixes, which keep their JSON 404s.
//!
//! The app talks only to the public admin API (`/api/v1/…`), signed in with the cookie
//! session; this crate has no API of its own.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::Router;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Path prefixes that belong to APIs: an unknown path under one is a 404, never the app.
pub const RESERVED_PREFIXES: &[&str] = &["/api", "/health", "/metrics", "/sse", "/ofrep"];

/// The Content-Security-Policy of every dashboard response: scripts and styles only from the
/// dashboard's own files (no inline script, no `eval`), requests only to this origin, and no
/// framing (clickjacking).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the dashboard as `app`'s fallback: what no other route answers.
pub fn mount(app: Router) -> Router {
    app.fallback(serve)
}

/// Whether `path` belongs to one of the API prefixes (`/api`, `/api/…`, not `/apidocs`).
pub fn is_reserved(path: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

async fn serve(req: Request<Body>) -> Response<Body> {
    let path = req.uri().path();
    if is_reserved(path) {
        return json_not_found();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let file = path.trim_start_matches('/');
    if let Some(asset) = (!file.is_empty()).then(|| Assets::get(file)).flatten() {
        // Built files under assets/ carry a content hash in their name: cache them for good.
        let cache = if file.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return respond(asset, cache);
    }
    // A missing file with an extension (a stale hashed bundle, a typo) is a 404, not the app.
    let last = file.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return with_security_headers(plain(StatusCode::NOT_FOUND, "not found"));
    }
    match Assets::get("index.html") {
        Some(index) => respond(index, "no-cache"),
        None => plain(
            StatusCode::NOT_FOUND,
            "the dashboard was not built into this binary",
        ),
    }
}

fn respond(asset: rust_embed::EmbeddedFile, cache: &'static str) -> Response<Body> {
    let etag = format!("\"{}\"", hex(&asset.metadata.sha256_hash()[..16]));
    let mut res = Response::new(Body::from(asset.data.into_owned()));
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(asset.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    with_security_headers(res)
}

/// The headers every dashboard response carries (see [`CONTENT_SECURITY_POLICY`]).
pub fn with_security_headers(mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    res
}

fn json_not_found() -> Response<Body> {
    let mut res = Response::new(Body::from(r#"{"detail":"Not found."}"#));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(text));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
