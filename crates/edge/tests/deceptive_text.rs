//! Text that can deceive, refused by one rule (`flagstone_store::text`) on every path: control
//! and bidi override characters in names, keys and identifiers get a 400 naming the field from
//! the admin API and the SDK API alike (import: `crates/store/tests/transfer.rs`), and
//! percent-encoded identifiers that are not UTF-8 are refused instead of being merged into one
//! identity. Nothing refused is written.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{EdgeApp, ADMIN_KEY};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;

async fn admin(app: &EdgeApp, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let router = flagstone_api::router(flagstone_api::AppState::new(app.t.store.clone()));
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Api-Key {ADMIN_KEY}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = NormalizePathLayer::trim_trailing_slash()
        .layer(router)
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn identifiers(app: &EdgeApp) -> Vec<String> {
    let mut tx = app.t.store.read().await.unwrap();
    flagstone_store::sql!(&mut tx, |c| sqlx::query_scalar::<_, String>(
        "SELECT identifier FROM identities ORDER BY identifier"
    )
    .fetch_all(c)
    .await
    .unwrap())
}

#[tokio::test]
async fn the_admin_api_refuses_deceptive_names_and_identifiers_naming_the_field() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    let cases = [
        (
            format!("/api/v1/projects/{project}/features/"),
            json!({"name": "new_checkout\u{202E}"}),
            "name",
        ),
        (
            format!("/api/v1/projects/{project}/tags/"),
            json!({"label": "bad\u{1b}[31m", "color": "#3d4db6"}),
            "label",
        ),
        (
            format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "\u{2067}vip", "rules": []}),
            "name",
        ),
        (
            format!("/api/v1/environments/{key}/identities/"),
            json!({"identifier": "user\u{0}1"}),
            "identifier",
        ),
    ];
    for (path, body, field) in cases {
        let (status, body) = admin(&app, Method::POST, &path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.to_string().contains(field), "{path}: {body}");
        assert!(body.to_string().contains("U+"), "{path}: {body}");
    }
    let (status, features) = admin(
        &app,
        Method::GET,
        &format!("/api/v1/projects/{project}/features/"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(features["count"], 0, "{features}");
    assert!(identifiers(&app).await.is_empty());
}

#[tokio::test]
async fn the_sdk_api_refuses_deceptive_and_undecodable_identifiers_and_trait_keys() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    app.feature(project, &key, "banner", true, json!("blue"))
        .await;
    app.publish().await;

    // %FF and %FE are different bytes; decoded lossily both would be "\u{FFFD}", one identity.
    for query in [
        "identifier=%FF",
        "identifier=%FE",
        "identifier=a%E2%80%AEb",
        "identifier=%07",
    ] {
        let r = app
            .sdk(
                Method::GET,
                &format!("/api/v1/identities/?{query}"),
                Some(&key),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(r.json()["identifier"].is_array(), "{query}: {}", r.json());
    }
    let posts = [
        (json!({"identifier": "user\u{202D}x"}), "identifier"),
        (json!({"identifier": "tab\tuser"}), "identifier"),
        (
            json!({"identifier": "u", "traits": [{"trait_key": "plan\u{2066}", "trait_value": 1}]}),
            "trait_key",
        ),
        // Transient identities get the same rule: what the edge answers for is what it keeps.
        (
            json!({"identifier": "t\u{85}", "transient": true}),
            "identifier",
        ),
    ];
    for (body, field) in posts {
        let r = app
            .sdk(
                Method::POST,
                "/api/v1/identities/",
                Some(&key),
                Some(body.clone()),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.json()[field].is_array(), "{body}: {}", r.json());
    }

    // Printable text from any script is fine, percent-encoded or not.
    let r = app
        .sdk(
            Method::GET,
            "/api/v1/identities/?identifier=%C3%BCser+%D7%90",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["identifier"], "üser א");
    // Trait writes are persisted in order behind the requests: once this one is stored, any
    // earlier one would have been too. Only it was.
    let start = Instant::now();
    while identifiers(&app).await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the valid identity was never stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(identifiers(&app).await, ["üser א"]);
}
