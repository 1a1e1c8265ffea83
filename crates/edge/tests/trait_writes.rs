//! SDK traits are persisted behind the request, in batches (one transaction per batch): a
//! flood of new identities larger than the writer's queue is written in full, not dropped; a
//! write the store refuses costs only itself; re-sent unchanged traits write nothing and
//! changed ones replace the stored values.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::EdgeApp;
use flagstone_edge::traits_writer::TraitWrite;
use flagstone_edge::EdgeConfig;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;

async fn count(app: &EdgeApp, env: i64, prefix: &str) -> i64 {
    let mut tx = app.t.store.read().await.unwrap();
    flagstone_store::identities::list(
        &mut tx,
        env,
        Some(prefix),
        flagstone_store::PageRequest::new(1, 1),
    )
    .await
    .unwrap()
    .count
}

fn identify(key: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/identities/")
        .header("x-environment-key", key)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_identities_larger_than_the_queue_is_written_not_dropped() {
    // A queue of 4 writes: the flood below is 30 times that.
    let app = EdgeApp::with_config(EdgeConfig {
        trait_queue_capacity: 4,
        ..EdgeConfig::default()
    })
    .await;
    let (_, key, _) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;

    const N: usize = 120;
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..N {
        let router = NormalizePathLayer::trim_trailing_slash()
            .layer(flagstone_edge::router(app.state.clone()));
        let req = identify(
            &key,
            json!({"identifier": format!("flood-{i}"), "traits": [
                {"trait_key": "n", "trait_value": i},
                {"trait_key": "plan", "trait_value": "pro"}]}),
        );
        flood.spawn(async move { router.oneshot(req).await.unwrap().status() });
    }
    while let Some(status) = flood.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    app.state.traits.flush().await;
    assert_eq!(
        count(&app, env, "flood-").await,
        N as i64,
        "every identity stored"
    );
    for i in [0, N / 2, N - 1] {
        assert_eq!(
            app.stored_traits(env, &format!("flood-{i}")).await,
            Some(json!({"n": i, "plan": "pro"}))
        );
    }
}

#[tokio::test]
async fn a_refused_write_costs_only_itself_in_its_batch() {
    let app = EdgeApp::new().await;
    let (_, key, _) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;
    let write = |identifier: &str| TraitWrite {
        environment_id: env,
        identifier: identifier.to_string(),
        traits: vec![("plan".into(), Some(json!("pro")))],
    };
    // Queued back to back, so the writer takes them as one batch; the middle one is refused
    // by the store's rules (a control character in the identifier).
    app.state.traits.submit(write("before")).await;
    app.state.traits.submit(write("bad\u{7}identifier")).await;
    app.state.traits.submit(write("after")).await;
    app.state.traits.flush().await;
    assert_eq!(
        app.stored_traits(env, "before").await,
        Some(json!({"plan": "pro"}))
    );
    assert_eq!(
        app.stored_traits(env, "after").await,
        Some(json!({"plan": "pro"}))
    );
    assert_eq!(app.stored_traits(env, "bad\u{7}identifier").await, None);
}

#[tokio::test]
async fn changed_traits_replace_the_stored_ones_and_unchanged_ones_are_answered_as_stored() {
    let app = EdgeApp::new().await;
    let (_, key, _) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;
    let send = |traits: Value| {
        app.sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&key),
            Some(json!({"identifier": "ada", "traits": traits})),
            &[],
        )
    };
    let r = send(json!([
        {"trait_key": "plan", "trait_value": "free"},
        {"trait_key": "age", "trait_value": 36}]))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    app.state.traits.flush().await;
    assert_eq!(
        app.stored_traits(env, "ada").await,
        Some(json!({"age": 36, "plan": "free"}))
    );

    // The same traits again, with a transient one: answered with all three, stored unchanged.
    let r = send(json!([
        {"trait_key": "plan", "trait_value": "free"},
        {"trait_key": "age", "trait_value": 36},
        {"trait_key": "tab", "trait_value": "x", "transient": true}]))
    .await;
    let answered: Vec<(String, Value)> = r.json()["traits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trait_key"].as_str().unwrap().to_string(),
                t["trait_value"].clone(),
            )
        })
        .collect();
    assert_eq!(answered.len(), 3, "{answered:?}");
    assert!(answered.contains(&("tab".into(), json!("x"))));
    app.state.traits.flush().await;
    assert_eq!(
        app.stored_traits(env, "ada").await,
        Some(json!({"age": 36, "plan": "free"}))
    );

    // A changed value and a deletion (null).
    let r = send(json!([
        {"trait_key": "plan", "trait_value": "pro"},
        {"trait_key": "age", "trait_value": null}]))
    .await;
    let answered = r.json()["traits"].clone();
    assert_eq!(
        answered,
        json!([{"trait_key": "plan", "trait_value": "pro"}])
    );
    app.state.traits.flush().await;
    assert_eq!(
        app.stored_traits(env, "ada").await,
        Some(json!({"plan": "pro"}))
    );
}

#[tokio::test]
async fn new_identities_per_environment_and_minute_are_bounded_with_a_429_naming_the_limit() {
    let app = EdgeApp::with_config(EdgeConfig {
        max_new_identities_per_minute: 3,
        ..EdgeConfig::default()
    })
    .await;
    let (_, key, _) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;
    let post = |body: Value| {
        let req = identify(&key, body);
        let router = NormalizePathLayer::trim_trailing_slash()
            .layer(flagstone_edge::router(app.state.clone()));
        async move { router.oneshot(req).await.unwrap() }
    };
    for i in 0..3 {
        let r = post(json!({"identifier": format!("new-{i}")})).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let refused = post(json!({"identifier": "new-3", "traits": [
        {"trait_key": "plan", "trait_value": "pro"}]}))
    .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=20).contains(&retry),
        "a token frees up every 20 s: {retry}"
    );
    let body: Value =
        serde_json::from_slice(&refused.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["limit"], "max_new_identities_per_minute");
    assert_eq!(body["max"], 3);
    assert!(
        body["detail"].as_str().unwrap().contains("per minute"),
        "{body}"
    );

    // Known identities, their trait changes and transient identities are not new identities.
    let known = post(json!({"identifier": "new-0", "traits": [
        {"trait_key": "plan", "trait_value": "pro"}]}))
    .await;
    assert_eq!(known.status(), StatusCode::OK);
    let transient = post(json!({"identifier": "passing-by", "transient": true})).await;
    assert_eq!(transient.status(), StatusCode::OK);

    // The refused identity was not written; the others were.
    app.state.traits.flush().await;
    assert_eq!(count(&app, env, "new-").await, 3);
    assert_eq!(app.stored_traits(env, "new-3").await, None);
    assert_eq!(
        app.stored_traits(env, "new-0").await,
        Some(json!({"plan": "pro"}))
    );
    assert_eq!(app.stored_traits(env, "passing-by").await, None);
}
