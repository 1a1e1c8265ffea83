//! A deleted environment's keys stop working the moment its deletion commits, and no SDK
//! endpoint answers 200 for it and then cuts the body short (issue 17: "a 200 must never be a
//! lie"). SQLite by default; PostgreSQL with FLAGSTONE_TEST_DATABASE_URL, where a second edge
//! following the database's notifications is checked as well.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::EdgeApp;
use flagstone_edge::{Follower, FollowerConfig, PublishFeed, Registry};
use flagstone_store::{Actor, Backend, Store};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const FLAGS: &str = "/api/v1/flags/";
const DOCUMENT: &str = "/api/v1/environment-document/";

#[tokio::test]
async fn a_deleted_environment_stops_serving_before_its_deletion_is_answered() {
    let app = EdgeApp::new().await;
    let (project, key, server) = app.setup().await;
    app.feature(project, &key, "banner", true, json!("on"))
        .await;
    app.publish().await;
    let flags = app.sdk(Method::GET, FLAGS, Some(&key), None, &[]).await;
    assert_eq!(flags.status, StatusCode::OK);
    let cached = std::fs::read_dir(app.cache_dir.path()).unwrap().count();
    assert!(cached > 0, "the edge keeps a last good copy");

    // A real-time subscriber, reading its stream to the end.
    let sse = flagstone_edge::router(app.state.clone())
        .oneshot(
            Request::get(format!("/sse/environments/{key}/stream"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    let subscriber = tokio::spawn(async move { sse.into_body().collect().await });

    // The deletion is answered only after this edge dropped the environment: the very next
    // requests are refused, with either key.
    app.admin_req(
        Method::DELETE,
        &format!("/api/v1/environments/{key}/"),
        None,
    )
    .await;
    let flags = app.sdk(Method::GET, FLAGS, Some(&key), None, &[]).await;
    assert_eq!(
        flags.status,
        StatusCode::FORBIDDEN,
        "client key after deletion"
    );
    let doc = app
        .sdk(Method::GET, DOCUMENT, Some(&server), None, &[])
        .await;
    assert_eq!(
        doc.status,
        StatusCode::FORBIDDEN,
        "server key after deletion"
    );
    let identify = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&key),
            Some(json!({"identifier": "late"})),
            &[],
        )
        .await;
    assert_eq!(identify.status, StatusCode::FORBIDDEN);
    assert_eq!(
        std::fs::read_dir(app.cache_dir.path()).unwrap().count(),
        0,
        "its last good copy is gone too"
    );

    // The subscriber's stream ended, and said why.
    let body = tokio::time::timeout(Duration::from_secs(5), subscriber)
        .await
        .expect("the stream ends when its environment is deleted")
        .unwrap()
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("event: environment_updated"), "{text}");
    assert!(
        text.trim_end()
            .ends_with(r#"data: {"detail":"Not found."}"#),
        "{text}"
    );
    assert!(text.contains("event: error"), "{text}");
}

#[tokio::test]
async fn a_deletion_this_edge_has_not_heard_of_is_a_clean_refusal_not_a_short_200() {
    let app = EdgeApp::new().await;
    let (project, key, server) = app.setup().await;
    let f = app
        .feature(project, &key, "banner", true, json!("on"))
        .await;
    let i = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({"identifier": "vip"}),
        )
        .await;
    app.post(
        &format!(
            "/api/v1/environments/{key}/identities/{}/featurestates/",
            i["id"]
        ),
        json!({"feature": f, "enabled": true, "feature_state_value": "vip"}),
    )
    .await;
    app.publish().await;
    let doc = app
        .sdk(Method::GET, DOCUMENT, Some(&server), None, &[])
        .await;
    assert_eq!(doc.status, StatusCode::OK);

    // Another process (its own store handle, its own listeners) deletes the environment.
    let other = Store::open(&app.t.connect_options()).await.unwrap();
    let mut ch = other.change(&Actor::system("other")).await.unwrap();
    flagstone_store::environments::delete(&mut ch, &key)
        .await
        .unwrap();
    ch.commit().await.unwrap();

    // This edge still holds the document, but the identity overrides it would splice in are
    // read in a transaction that no longer sees the environment: refused before the status
    // line, never a 200 with an empty or truncated list.
    let doc = app
        .sdk(Method::GET, DOCUMENT, Some(&server), None, &[])
        .await;
    assert_eq!(
        doc.status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&doc.body)
    );

    // On PostgreSQL an edge that follows the database's notifications drops it at once.
    if app.t.store.backend() == Backend::Postgres {
        let registry = Arc::new(Registry::default());
        let listening = Follower::start(
            app.t.store.clone(),
            registry.clone(),
            FollowerConfig {
                poll_interval: Duration::from_secs(3600),
                cache_dir: None,
            },
            PublishFeed::Postgres,
        )
        .await;
        registry.initial_load_finished().await;
        let (project2, key2, _) = app.setup().await;
        app.feature(project2, &key2, "banner", true, json!("on"))
            .await;
        app.publish().await;
        listening.sync_all().await.unwrap();
        assert!(registry.get(&key2).await.is_some());
        let mut ch = other.change(&Actor::system("other")).await.unwrap();
        flagstone_store::environments::delete(&mut ch, &key2)
            .await
            .unwrap();
        ch.commit().await.unwrap();
        let start = Instant::now();
        while registry.get(&key2).await.is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "the notification of the deletion reaches the edge"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    other.close().await;
}
