//! CORS: browser SDKs on another origin can call the SDK API (preflight answered, actual
//! responses carry the allow headers, any origin by default or only the configured ones), and
//! the admin API, served by the same process, never answers cross-origin requests.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use common::{EdgeApp, ADMIN_KEY};
use flagstone_edge::cors::CorsOrigins;
use serde_json::json;
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;

const ORIGIN: &str = "https://shop.example";

fn preflight(path: &str, origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "x-environment-key,content-type,flagsmith-sdk-user-agent",
        )
        .body(Body::empty())
        .unwrap()
}

/// Admin and SDK routes in one router, as `flagstone serve` runs them.
async fn send(
    app: &EdgeApp,
    config: Option<CorsOrigins>,
    req: Request<Body>,
) -> (StatusCode, HeaderMap) {
    let mut state = app.state.clone();
    if let Some(origins) = config {
        state.config.cors_origins = origins;
    }
    let admin = flagstone_api::router(flagstone_api::AppState::new(app.t.store.clone()));
    let router = admin.merge(flagstone_edge::router(state));
    let resp = NormalizePathLayer::trim_trailing_slash()
        .layer(router)
        .oneshot(req)
        .await
        .unwrap();
    (resp.status(), resp.headers().clone())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn browser_sdks_on_any_origin_get_preflights_and_allow_headers_by_default() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    app.feature(project, &key, "banner", true, json!("blue"))
        .await;
    app.publish().await;

    for path in [
        "/api/v1/identities/",
        "/api/v1/flags/",
        "/api/v1/analytics/flags/",
    ] {
        let (status, h) = send(&app, None, preflight(path, ORIGIN)).await;
        assert!(status.is_success(), "{path}: {status}");
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        let allowed = header(&h, "access-control-allow-headers").unwrap();
        for needed in [
            "x-environment-key",
            "content-type",
            "flagsmith-sdk-user-agent",
        ] {
            assert!(allowed.contains(needed), "{path}: {allowed}");
        }
        assert!(header(&h, "access-control-allow-methods")
            .unwrap()
            .contains("POST"));
    }

    // The actual request: flags, with the headers a script may read exposed.
    let r = app
        .sdk(
            Method::GET,
            "/api/v1/flags/",
            Some(&key),
            None,
            &[("origin", ORIGIN)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(header(&r.headers, "access-control-allow-origin"), Some("*"));
    let exposed = header(&r.headers, "access-control-expose-headers").unwrap();
    assert!(
        exposed.contains("x-flagsmith-document-updated-at"),
        "{exposed}"
    );
    // Errors too, so a browser SDK can read why it was refused.
    let r = app
        .sdk(
            Method::GET,
            "/api/v1/flags/",
            Some("nope"),
            None,
            &[("origin", ORIGIN)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(header(&r.headers, "access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn configured_origins_are_the_only_ones_allowed() {
    let app = EdgeApp::new().await;
    let only: CorsOrigins = "https://shop.example, http://localhost:3000"
        .parse()
        .unwrap();
    let (_, h) = send(
        &app,
        Some(only.clone()),
        preflight("/api/v1/flags/", ORIGIN),
    )
    .await;
    assert_eq!(header(&h, "access-control-allow-origin"), Some(ORIGIN));
    assert!(header(&h, "vary").unwrap().contains("origin"));
    let (_, h) = send(
        &app,
        Some(only),
        preflight("/api/v1/flags/", "https://evil.example"),
    )
    .await;
    assert_eq!(header(&h, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn the_admin_api_never_answers_cross_origin_requests() {
    let app = EdgeApp::new().await;
    let (status, h) = send(&app, None, preflight("/api/v1/organisations/", ORIGIN)).await;
    assert!(!status.is_success(), "{status}");
    assert!(
        h.keys().all(|k| !k.as_str().starts_with("access-control-")),
        "{h:?}"
    );

    let req = Request::builder()
        .uri("/api/v1/organisations/")
        .header("origin", ORIGIN)
        .header("authorization", format!("Api-Key {ADMIN_KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, h) = send(&app, None, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h.keys().all(|k| !k.as_str().starts_with("access-control-")),
        "{h:?}"
    );
}
