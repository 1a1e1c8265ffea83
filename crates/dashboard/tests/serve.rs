//! The dashboard as served: pages fall back to the app, files are served with their types and
//! cache rules, API prefixes are never shadowed, and every response carries the security headers.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn app() -> Router {
    let api = Router::new().route("/api/v1/flags", axum::routing::get(|| async { "flags" }));
    flagstone_dashboard::mount(api)
}

async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn pages_are_the_app_with_security_headers() {
    for path in ["/", "/projects/1/environments/abc/features", "/login"] {
        let (status, h, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains("<div id=\"app\">"), "{path}: {body}");
        assert_eq!(h[header::CONTENT_TYPE], "text/html");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin");
    }
}

#[tokio::test]
async fn built_files_are_served_and_cached_for_good() {
    let (_, _, index) = get("/").await;
    let script = index
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index.html loads a script");
    assert!(script.starts_with("/assets/"), "{script}");
    let (status, h, _) = get(script).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/javascript");
    assert!(h[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    // No inline script anywhere in the page: the CSP would block it.
    assert!(!index.contains("<script>") && !index.contains("<script type=\"module\">"));
}

#[tokio::test]
async fn api_prefixes_are_never_the_app() {
    let (status, _, body) = get("/api/v1/flags").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "flags"));
    for path in [
        "/api/v1/nope",
        "/api",
        "/health/x",
        "/metrics/x",
        "/sse/x",
        "/ofrep/v1/x",
    ] {
        let (status, h, body) = get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(h[header::CONTENT_TYPE], "application/json", "{path}");
        assert!(!body.contains("<div id=\"app\">"));
    }
    // Only whole prefixes are reserved.
    assert_eq!(get("/apiary").await.0, StatusCode::OK);
}

#[tokio::test]
async fn missing_files_are_404_not_the_app() {
    let (status, h, _) = get("/assets/index-gone.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn only_get_and_head_reach_the_app() {
    let res = app()
        .oneshot(Request::post("/projects").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}
