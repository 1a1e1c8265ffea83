//! The edge-follower API (`/api/v1/edge/…`) on a node with a store: who may call it, what each
//! key sees, conditional document fetches, the revision stream's first events, and the writes
//! followers send back (checked before anything is taken).

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::EdgeApp;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// An organisation API key made through the admin API.
async fn org_key(app: &EdgeApp, org: i64, admin: bool) -> String {
    let r = app
        .post(
            &format!("/api/v1/organisations/{org}/master-api-keys/"),
            json!({"name": "edge", "is_admin": admin}),
        )
        .await;
    r["key"].as_str().unwrap().to_string()
}

async fn organisation_of(app: &EdgeApp, project: i64) -> i64 {
    let p = app
        .admin_req(Method::GET, &format!("/api/v1/projects/{project}/"), None)
        .await;
    p["organisation"].as_i64().unwrap()
}

async fn call(
    app: &EdgeApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> common::Resp {
    let mut headers: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
    if let Some(k) = key {
        headers.push(("authorization", format!("Api-Key {k}")));
    }
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.sdk(method, path, None, body, &refs).await
}

#[tokio::test]
async fn keys_see_only_their_environments_and_documents_are_conditional() {
    let app = EdgeApp::new().await;
    let (project, client_key, server_key) = app.setup().await;
    app.feature(project, &client_key, "banner", true, json!("blue"))
        .await;
    app.publish().await;
    let env = app.environment_id(&client_key).await;
    let org = organisation_of(&app, project).await;
    let admin = org_key(&app, org, true).await;
    let plain = org_key(&app, org, false).await;

    // No key, a malformed one, an unknown one: refused.
    for key in [
        None,
        Some("nonsense"),
        Some("fsk_0000000000000000000000000000000000000000000000"),
    ] {
        let r = call(&app, Method::GET, "/api/v1/edge/scope", key, None, &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{key:?}");
    }
    // An admin key sees the environment; a key granted nothing sees nothing.
    let r = call(
        &app,
        Method::GET,
        "/api/v1/edge/scope",
        Some(&admin),
        None,
        &[],
    )
    .await;
    assert_eq!(r.json(), json!({"environments": [env]}));
    let r = call(
        &app,
        Method::GET,
        "/api/v1/edge/scope",
        Some(&plain),
        None,
        &[],
    )
    .await;
    assert_eq!(r.json(), json!({"environments": []}));
    let doc_path = format!("/api/v1/edge/environments/{client_key}/document");
    let r = call(&app, Method::GET, &doc_path, Some(&plain), None, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The document: the published gzip, tagged with its revision; 304 once held.
    let r = call(&app, Method::GET, &doc_path, Some(&admin), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let revision = app.state.registry.get(&client_key).await.unwrap().revision;
    let etag = format!("\"{revision}\"");
    assert_eq!(r.headers["etag"], etag.as_str());
    assert_eq!(
        r.headers["x-flagstone-revision"],
        revision.to_string().as_str()
    );
    assert_eq!(
        r.headers["x-flagstone-environment-id"],
        env.to_string().as_str()
    );
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert!(r.body.starts_with(&[0x1f, 0x8b]), "gzip as published");
    let r = call(
        &app,
        Method::GET,
        &doc_path,
        Some(&admin),
        None,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = call(
        &app,
        Method::GET,
        "/api/v1/edge/environments/unknown/document",
        Some(&admin),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Server-side keys resolve to their environment's client key, for followers that see it.
    let r = call(
        &app,
        Method::GET,
        "/api/v1/edge/server-key",
        Some(&admin),
        None,
        &[("x-environment-key", &server_key)],
    )
    .await;
    assert_eq!(r.json(), json!({"api_key": client_key}));
    let r = call(
        &app,
        Method::GET,
        "/api/v1/edge/server-key",
        Some(&plain),
        None,
        &[("x-environment-key", &server_key)],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &app,
        Method::GET,
        "/api/v1/edge/server-key",
        Some(&admin),
        None,
        &[("x-environment-key", "ser.unknown")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_revision_stream_opens_with_a_snapshot_and_a_heartbeat() {
    let app = EdgeApp::new().await;
    let (project, client_key, _) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&client_key).await;
    let admin = org_key(&app, organisation_of(&app, project).await, true).await;
    let req = Request::builder()
        .uri("/api/v1/edge/revisions")
        .header("authorization", format!("Api-Key {admin}"))
        .body(Body::empty())
        .unwrap();
    let resp = flagstone_edge::router(app.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut text = String::new();
    while !text.contains("event: heartbeat") {
        let frame = body.frame().await.unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap()));
    }
    let revision = app.state.registry.get(&client_key).await.unwrap().revision;
    let mut buf = text.into_bytes();
    let events = flagstone_edge::upstream::protocol::take_events(&mut buf);
    assert_eq!(events[0].event, "snapshot");
    let snapshot: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(
        snapshot,
        json!({"environments": [{"environment_id": env, "api_key": client_key, "revision": revision}]})
    );
    assert_eq!(events[1].event, "heartbeat");

    // A subset naming nothing is refused.
    let r = call(
        &app,
        Method::GET,
        "/api/v1/edge/revisions?environments=,",
        Some(&admin),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn traits_and_usage_from_followers_are_checked_then_written() {
    let app = EdgeApp::new().await;
    let (project, client_key, _) = app.setup().await;
    let feature = app
        .feature(project, &client_key, "banner", true, json!("blue"))
        .await;
    app.publish().await;
    let env = app.environment_id(&client_key).await;
    let org = organisation_of(&app, project).await;
    let admin = org_key(&app, org, true).await;
    let plain = org_key(&app, org, false).await;
    let write = json!({"writes": [{"environment_id": env, "identifier": "u1", "traits": [["plan", "gold"]]}]});

    // Not the follower's environment, not JSON, a bad identifier: refused, nothing written.
    let r = call(
        &app,
        Method::POST,
        "/api/v1/edge/traits",
        Some(&plain),
        Some(write.clone()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &app,
        Method::POST,
        "/api/v1/edge/traits",
        Some(&admin),
        Some(json!({"writes": 1})),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let bad = json!({"writes": [{"environment_id": env, "identifier": "", "traits": []}]});
    let r = call(
        &app,
        Method::POST,
        "/api/v1/edge/traits",
        Some(&admin),
        Some(bad),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    app.state.traits.flush().await;
    assert_eq!(app.stored_traits(env, "u1").await, None);

    let r = call(
        &app,
        Method::POST,
        "/api/v1/edge/traits",
        Some(&admin),
        Some(write),
        &[],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    app.state.traits.flush().await;
    assert_eq!(
        app.stored_traits(env, "u1").await,
        Some(json!({"plan": "gold"}))
    );
    // Followers read it back as an identity's stored data.
    let r = call(
        &app,
        Method::GET,
        &format!("/api/v1/edge/identity?environment_id={env}&identifier=u1"),
        Some(&admin),
        None,
        &[],
    )
    .await;
    assert_eq!(r.json()["traits"], json!({"plan": "gold"}));
    assert_eq!(r.json()["exists"], true);

    let hour = flagstone_store::evaluations::hour_of(flagstone_store::now_ms());
    let row = |feature_id: i64, hour: i64| json!({"rows": [{"environment_id": env, "feature_id": feature_id, "hour": hour, "reported": 3, "served": 4, "at": hour + 1}]});
    for bad in [row(feature + 1000, hour), row(feature, hour + 1)] {
        let r = call(
            &app,
            Method::POST,
            "/api/v1/edge/usage",
            Some(&admin),
            Some(bad),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = call(
        &app,
        Method::POST,
        "/api/v1/edge/usage",
        Some(&admin),
        Some(row(feature, hour)),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        app.state.usage.flush().await,
        flagstone_edge::usage::FlushOutcome::Written { rows: 1 }
    );
}
