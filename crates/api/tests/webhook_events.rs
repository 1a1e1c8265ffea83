//! Flagstone's own webhook events end to end, on whichever store the harness gives (SQLite, or
//! PostgreSQL with FLAGSTONE_TEST_DATABASE_URL): `ENVIRONMENT_PUBLISHED` is queued in the
//! transaction of each publish, for the webhooks that opted in, with the revision range and the
//! diff of what changed for SDKs, and delivered signed to a real local receiver. Identity
//! overrides send Flagsmith's `FLAG_UPDATED` / `FLAG_DELETED` with the identity named.

mod common;
#[path = "webhooks/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::time::Duration;

use axum::http::StatusCode;
use common::TestApp;
use flagstone_store::document;
use flagstone_tasks::deliveries::{self as delivery, DeliveryConfig, Outcome, Sender};
use flagstone_tasks::policy::{Jitter, Rules};
use flagstone_tasks::testing::Pipeline;
use flagstone_tasks::JitterSource;
use flagstone_webhooks::signature::verify;
use flagstone_webhooks::AddressPolicy;
use receiver::{Behaviour, Receiver};
use serde_json::{json, Value};

const SECRET: &str = "whsec-events-0123";

async fn app() -> (TestApp, Pipeline) {
    let mut app = TestApp::new().await;
    let pipeline = Pipeline::new(app.store());
    let mut state = app.state.clone();
    state.store = pipeline.store().clone();
    app.set_state(state.with_webhook_policy(AddressPolicy::allowing_private()));
    (app, pipeline)
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(5),
        rules: Rules {
            lease_ms: 60_000,
            max_attempts: 3,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
            session_lapse_window_ms: 60_000,
        },
        jitter: JitterSource::Fixed(Jitter::NONE),
        policy: AddressPolicy::allowing_private(),
        owner: "test-deliverer".into(),
        ..DeliveryConfig::default()
    }
}

async fn deliver_all(p: &Pipeline) {
    let cfg = config();
    let sender = Sender::new(cfg.policy, cfg.timeout);
    while let Some((_, attempt, _)) = delivery::step(p.store(), &cfg, &sender).await.unwrap() {
        assert_eq!(attempt.outcome, Outcome::Delivered);
    }
}

/// Publishes whatever is pending (after the debounce).
async fn publish(p: &Pipeline) {
    p.advance(60_000);
    let ran = p.drain("w", 10).await;
    assert!(!ran.is_empty(), "something was published");
}

fn published_events(rx: &Receiver) -> Vec<Value> {
    rx.got()
        .iter()
        .filter(|g| g.header("x-flagstone-event") == "ENVIRONMENT_PUBLISHED")
        .map(|g| {
            assert!(verify(SECRET, &g.body, g.header("x-flagsmith-signature")));
            let body = g.json();
            let data = &body["data"];
            assert_eq!(
                g.event_id(),
                format!(
                    "published.{}.{}",
                    data["environment"]["id"], data["revision"]["new"]
                ),
                "one event id per published revision"
            );
            body
        })
        .collect()
}

#[tokio::test]
async fn each_publish_is_announced_with_its_revision_range_and_what_changed() {
    let (app, p) = app().await;
    let store = p.store().clone();
    let (project, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let env_id = env["id"].as_i64().unwrap();
    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "banner"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let feature = f["id"].as_i64().unwrap();
    publish(&p).await;
    let first = {
        let mut tx = store.read().await.unwrap();
        document::stored::published_revision(&mut tx, env_id)
            .await
            .unwrap()
            .unwrap()
    };

    // One webhook opts in; another (Flagsmith's events only) does not.
    let rx = Receiver::start(Behaviour::FailFirst(0)).await;
    let (s, w) = app
        .post(
            &format!("/api/v1/environments/{key}/webhooks/"),
            json!({"url": rx.url, "secret": SECRET, "events": ["ENVIRONMENT_PUBLISHED"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    let plain = Receiver::start(Behaviour::FailFirst(0)).await;
    let (s, _) = app
        .post(
            &format!("/api/v1/environments/{key}/webhooks/"),
            json!({"url": plain.url, "secret": SECRET}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Change the default and add an identity override, then publish.
    let (_, states) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={feature}"
        ))
        .await;
    let state = states["results"][0]["id"].as_i64().unwrap();
    let (s, b) = app
        .patch(
            &format!("/api/v1/environments/{key}/featurestates/{state}/"),
            json!({"enabled": true, "feature_state_value": "on"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, identity) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({"identifier": "alice"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{identity}");
    let identity = identity["id"].as_i64().unwrap();
    let (s, o) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/{identity}/featurestates/"),
            json!({"feature": feature, "enabled": false, "feature_state_value": "off"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    publish(&p).await;
    deliver_all(&p).await;

    let events = published_events(&rx);
    assert_eq!(events.len(), 1, "one event per published revision");
    let data = &events[0]["data"];
    assert_eq!(data["environment"]["id"], env_id);
    assert_eq!(data["environment"]["name"], "prod");
    assert_eq!(data["revision"]["previous"], first);
    let second = data["revision"]["new"].as_i64().unwrap();
    assert!(second > first);
    let changes = &data["changes"];
    assert_eq!(changes["features_added"]["count"], 0);
    assert_eq!(changes["features_changed"]["count"], 1);
    let banner = &changes["features_changed"]["items"][0];
    assert_eq!(banner["name"], "banner");
    assert_eq!(banner["enabled"], json!({"before": false, "after": true}));
    assert_eq!(banner["value"], json!({"before": null, "after": "on"}));
    assert_eq!(
        changes["identity_overrides"],
        json!({"before": null, "after": 1}),
        "the previous publish was not announced: its counts are unknown"
    );
    assert_eq!(changes["truncated"], false);
    assert!(
        published_events(&plain).is_empty(),
        "a webhook that did not opt in gets Flagsmith's events only"
    );
    // As Flagsmith does, the identity override is a FLAG_UPDATED naming the identity.
    let flag_events: Vec<Value> = plain.got().iter().map(|g| g.json()).collect();
    let alice = flag_events
        .iter()
        .find(|b| b["data"]["new_state"]["identity_identifier"] == "alice")
        .expect("a FLAG_UPDATED for the identity override");
    assert_eq!(alice["event_type"], "FLAG_UPDATED");
    assert_eq!(alice["data"]["new_state"]["identity"], identity);
    assert_eq!(alice["data"]["new_state"]["enabled"], false);
    assert_eq!(alice["data"]["new_state"]["feature_state_value"], "off");
    assert_eq!(alice["data"]["new_state"]["feature_segment"], Value::Null);
    assert!(
        flag_events
            .iter()
            .any(|b| b["data"]["new_state"]["identity"] == Value::Null
                && b["data"]["new_state"]["feature_state_value"] == "on"),
        "and the environment default's change without one"
    );

    // The next publish: a new feature, the override removed; the range starts where the last
    // one ended and the identity counts are known on both sides.
    let (s, _) = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "checkout"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let o = o["id"].as_i64().unwrap();
    let (s, _) = app
        .delete(&format!(
            "/api/v1/environments/{key}/identities/{identity}/featurestates/{o}/"
        ))
        .await;
    assert!(s.is_success(), "{s}");
    publish(&p).await;
    deliver_all(&p).await;
    let deleted = plain
        .got()
        .iter()
        .map(|g| g.json())
        .find(|b| b["event_type"] == "FLAG_DELETED")
        .expect("deleting the identity override is a FLAG_DELETED");
    assert_eq!(
        deleted["data"]["previous_state"]["identity_identifier"],
        "alice"
    );
    assert_eq!(deleted["data"]["new_state"], Value::Null);
    let events = published_events(&rx);
    assert_eq!(events.len(), 2);
    let data = &events[1]["data"];
    assert_eq!(data["revision"]["previous"], second);
    let changes = &data["changes"];
    assert_eq!(changes["features_added"]["items"][0]["name"], "checkout");
    assert_eq!(
        changes["features_changed"]["items"][0]["identity_overrides"],
        json!({"before": 1, "after": 0})
    );
    assert_eq!(
        changes["identity_overrides"],
        json!({"before": 1, "after": 0})
    );

    // Nothing new to publish: nothing new announced, and redelivering cannot duplicate it.
    p.advance(60_000);
    p.drain("w", 10).await;
    deliver_all(&p).await;
    assert_eq!(published_events(&rx).len(), 2);
}

#[tokio::test]
async fn a_publish_nobody_listens_to_queues_nothing() {
    let (app, p) = app().await;
    let (project, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let env_id = env["id"].as_i64().unwrap();
    let rx = Receiver::start(Behaviour::FailFirst(0)).await;
    let (s, _) = app
        .post(
            &format!("/api/v1/environments/{key}/webhooks/"),
            json!({"url": rx.url, "secret": SECRET, "events": ["ENVIRONMENT_PUBLISHED"], "enabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "banner"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    publish(&p).await;
    let mut tx = p.store().read().await.unwrap();
    let announced = flagstone_store::webhooks::announcements::last_announced(&mut tx, env_id)
        .await
        .unwrap();
    assert!(announced.is_none(), "a disabled webhook does not listen");
    drop(tx);
    deliver_all(&p).await;
    assert!(rx.got().is_empty());
}
