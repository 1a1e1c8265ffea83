//! One rule for trait limits: the SDK API (at the edge) and the admin API check traits with the
//! store's rules and the project's configured numbers, so the edge never tells an SDK a trait was
//! kept that the store then refuses. Per-request and per-identity caps answer 400 naming the
//! limit, the same body on both APIs, and nothing refused is written.

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

fn traits(pairs: &[(&str, Value)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| json!({"trait_key": k, "trait_value": v}))
        .collect()
}

/// The identity's stored trait keys, once the edge's writer has caught up with `expected`.
async fn stored_keys(app: &EdgeApp, env: i64, identifier: &str, expected: &[&str]) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mut tx = app.t.store.read().await.unwrap();
        let keys: Vec<String> =
            flagstone_store::identities::load_identity(&mut tx, env, identifier)
                .await
                .unwrap()
                .map(|(_, t, _)| t.into_iter().map(|t| t.trait_key).collect())
                .unwrap_or_default();
        drop(tx);
        if keys == expected || start.elapsed() > Duration::from_secs(10) {
            return keys;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_sdk_and_admin_apis_apply_the_projects_trait_limits_alike() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    let (s, p) = admin(
        &app,
        Method::PATCH,
        &format!("/api/v1/projects/{project}/"),
        json!({"limits": {
            "max_trait_value_chars": 10,
            "max_traits_per_request": 3,
            "max_traits_per_identity": 4,
        }}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    app.publish().await;
    let env = app.state.registry.get(&key).await.unwrap().environment_id;
    let identify = |body: Value| {
        let app = &app;
        let key = key.clone();
        async move {
            app.sdk(
                Method::POST,
                "/api/v1/identities/",
                Some(&key),
                Some(body),
                &[],
            )
            .await
        }
    };

    // The project's value limit (10), not a fixed 2,000: the edge refuses what the store would.
    let r =
        identify(json!({"identifier": "u", "traits": traits(&[("plan", json!("x".repeat(11)))])}))
            .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let sdk_body = r.json();
    assert_eq!(sdk_body["limit"], "max_trait_value_chars", "{sdk_body}");
    assert_eq!(sdk_body["max"], 10);

    // Per request.
    let four = traits(&[
        ("a", json!(1)),
        ("b", json!(2)),
        ("c", json!(3)),
        ("d", json!(4)),
    ]);
    let r = identify(json!({"identifier": "u", "traits": four})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["limit"], "max_traits_per_request", "{}", r.json());
    assert_eq!(r.json()["max"], 3);

    // Per identity: three, then two more would be five.
    let r = identify(json!({"identifier": "u", "traits": traits(&[("a", json!(1)), ("b", json!(2)), ("c", json!(3))])})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(
        stored_keys(&app, env, "u", &["a", "b", "c"]).await,
        ["a", "b", "c"]
    );
    let r =
        identify(json!({"identifier": "u", "traits": traits(&[("d", json!(4)), ("e", json!(5))])}))
            .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["limit"], "max_traits_per_identity", "{}", r.json());
    assert_eq!(r.json()["max"], 4);
    // Changing and deleting what it has, and adding within the limit, are fine.
    let r = identify(json!({"identifier": "u", "traits": traits(&[("a", json!(9)), ("b", Value::Null), ("d", json!(4))])})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    // Transient traits count towards the request only.
    let r = identify(json!({"identifier": "u", "traits": [
        {"trait_key": "t1", "trait_value": 1, "transient": true},
        {"trait_key": "t2", "trait_value": 2, "transient": true},
        {"trait_key": "e", "trait_value": 5},
    ]}))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(
        stored_keys(&app, env, "u", &["a", "c", "d", "e"]).await,
        ["a", "c", "d", "e"]
    );

    // The admin API: the same rule, the same numbers, the same body.
    let (s, list) = admin(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{key}/identities/?q=u"),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let id = list["results"][0]["id"].as_i64().unwrap();
    let base = format!("/api/v1/environments/{key}/identities/{id}/traits/");
    let (s, body) = admin(
        &app,
        Method::POST,
        &base,
        json!({"trait_key": "plan", "trait_value": "x".repeat(11)}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for field in ["error", "limit", "max", "detail"] {
        assert_eq!(
            body[field], sdk_body[field],
            "{field}: {body} vs {sdk_body}"
        );
    }
    // The SDK answer also carries Flagsmith's own field error for this case.
    assert!(sdk_body["trait_value"][0]
        .as_str()
        .unwrap()
        .contains("too long"));
    let (s, body) = admin(
        &app,
        Method::POST,
        &base,
        json!({"trait_key": "f", "trait_value": 6}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["limit"], "max_traits_per_identity", "{body}");
    assert_eq!(
        stored_keys(&app, env, "u", &["a", "c", "d", "e"]).await,
        ["a", "c", "d", "e"]
    );
}
