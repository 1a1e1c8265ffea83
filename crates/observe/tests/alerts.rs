//! The health alert end to end on a real store (SQLite, or PostgreSQL with
//! FLAGSTONE_TEST_DATABASE_URL), stepped by hand: a blocked queue turns `/health/status`
//! degraded and a local receiver gets a signed `QUEUE_HEALTH` alert naming the environment;
//! recovery sends it again. A second process watching the same store sees the same
//! transitions and alerts nothing more; another organisation's webhook gets the alert without
//! this organisation's environments.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use flagstone_observe::alerts::{self, queue_alert};
use flagstone_observe::health::ReadinessRule;
use flagstone_observe::{health_router, HealthEndpoints, HealthMonitor, Status, Thresholds};
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::testing::test_store;
use flagstone_store::webhooks::{self, NewWebhook, Scope};
use flagstone_store::{now_ms, Actor, Store};
use flagstone_tasks::deliveries::{self as delivery, DeliveryConfig, Outcome, Sender};
use flagstone_tasks::policy::Jitter;
use flagstone_tasks::testing::Pipeline;
use flagstone_tasks::JitterSource;
use flagstone_webhooks::signature::verify;
use flagstone_webhooks::AddressPolicy;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "whsec-alerts-0123";
const SMALL: Shape = Shape {
    features: 2,
    mv_features: 0,
    segments: 1,
    overrides: 1,
};

type Got = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on 127.0.0.1 that records every request and answers 200.
async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn subscribe(store: &Store, organisation: i64, url: &str) {
    let mut ch = store.change(&Actor::system("test")).await.unwrap();
    let new: NewWebhook =
        serde_json::from_value(json!({"url": url, "secret": SECRET, "events": ["QUEUE_HEALTH"]}))
            .unwrap();
    webhooks::create(&mut ch, Scope::Organisation(organisation), &new)
        .await
        .unwrap();
    ch.commit().await.unwrap();
}

async fn deliver_all(store: &Store) {
    let cfg = DeliveryConfig {
        timeout: Duration::from_secs(5),
        jitter: JitterSource::Fixed(Jitter::NONE),
        policy: AddressPolicy::allowing_private(),
        owner: "test-deliverer".into(),
        ..DeliveryConfig::default()
    };
    let sender = Sender::new(cfg.policy, cfg.timeout);
    while let Some((_, attempt, _)) = delivery::step(store, &cfg, &sender).await.unwrap() {
        assert_eq!(attempt.outcome, Outcome::Delivered);
    }
}

fn alerts_in(got: &Got) -> Vec<(String, Value)> {
    got.lock()
        .unwrap()
        .iter()
        // Organisation webhooks also get the flag and audit events of the changes made here.
        .filter(|(h, _)| h.get("x-flagstone-event").unwrap() == "QUEUE_HEALTH")
        .map(|(h, body)| {
            let header = |n: &str| h.get(n).unwrap().to_str().unwrap().to_string();
            assert!(verify(SECRET, body, &header("x-flagsmith-signature")));
            (
                header("x-flagstone-event-id"),
                serde_json::from_slice(body).unwrap(),
            )
        })
        .collect()
}

async fn status(app: &axum::Router) -> Value {
    let res = app
        .clone()
        .oneshot(
            axum::http::Request::get("/health/status")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn a_blocked_queue_alerts_once_and_recovery_alerts_again() {
    let t = test_store().await;
    let p = Pipeline::starting_at(&t.store, now_ms());
    let store = p.store().clone();
    let fx = fixture::create(&store, SMALL).await.unwrap();
    let other = fixture::create(&store, SMALL).await.unwrap();
    let (url, got) = receiver().await;
    subscribe(&store, fx.organisation_id, &url).await;
    let (other_url, other_got) = receiver().await;
    subscribe(&store, other.organisation_id, &other_url).await;
    p.advance(1_000);
    p.drain("w", 10).await;

    // Two processes watch the same store: this one serves /health/status, the other checks
    // on its own schedule.
    let monitor = HealthMonitor::new(Thresholds::default());
    let mut transitions = monitor.subscribe();
    let app = health_router(HealthEndpoints {
        store: store.clone(),
        monitor: monitor.clone(),
        documents: None,
        publisher: None,
        rule: ReadinessRule::StoreRequired,
    });
    let elsewhere = HealthMonitor::new(Thresholds::default());
    let mut elsewhere_transitions = elsewhere.subscribe();
    assert_eq!(status(&app).await["status"], "ok");
    assert!(
        transitions.try_recv().is_err(),
        "starting ok is no transition"
    );

    // The queue blocks: a change waits, nothing publishes it, time passes the thresholds.
    fixture::change_feature(&store, &fx, 0, "stuck")
        .await
        .unwrap();
    p.advance(400_000);
    let report = status(&app).await;
    assert_eq!(report["status"], "degraded", "{report}");
    let down = transitions.try_recv().expect("a transition to degraded");
    assert_eq!(queue_alert(&store, &down).await.unwrap(), Some(1));
    elsewhere.check(&store).await;
    let seen_elsewhere = elsewhere_transitions.try_recv().unwrap();
    assert_eq!(seen_elsewhere.to, Status::Degraded);
    assert_eq!(
        queue_alert(&store, &seen_elsewhere).await.unwrap(),
        None,
        "the other process's view of the same transition queues nothing"
    );
    deliver_all(&store).await;
    let received = alerts_in(&got);
    assert_eq!(received.len(), 1, "one alert per transition");
    let (id, body) = &received[0];
    assert_eq!(id, &alerts::event_id(1));
    let data = &body["data"];
    assert_eq!(data["status"], "degraded");
    assert_eq!(data["previous_status"], "ok");
    let stale = data["failing_checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "environment_staleness")
        .expect("the staleness check failed");
    assert_eq!(
        stale["environments"][0]["environment_id"],
        fx.environment_id
    );
    let (_, other_body) = &alerts_in(&other_got)[0];
    let other_stale = other_body["data"]["failing_checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "environment_staleness")
        .unwrap();
    assert_eq!(
        other_stale["environments"],
        json!([]),
        "another organisation is not told this one's environments"
    );

    // Recovery: the worker runs again, health is ok, the alert goes out again.
    p.drain("w", 10).await;
    assert_eq!(status(&app).await["status"], "ok");
    let up = transitions.try_recv().expect("a transition back to ok");
    assert_eq!(queue_alert(&store, &up).await.unwrap(), Some(2));
    elsewhere.check(&store).await;
    let up_elsewhere = elsewhere_transitions.try_recv().unwrap();
    assert_eq!(queue_alert(&store, &up_elsewhere).await.unwrap(), None);
    deliver_all(&store).await;
    let received = alerts_in(&got);
    assert_eq!(received.len(), 2);
    let (id, body) = &received[1];
    assert_eq!(id, &alerts::event_id(2));
    assert_eq!(body["data"]["status"], "ok");
    assert_eq!(body["data"]["previous_status"], "degraded");
    assert_eq!(body["data"]["failing_checks"], json!([]));

    // A process restarting in the same state alerts nothing.
    let restarted = HealthMonitor::new(Thresholds::default());
    let mut r = restarted.subscribe();
    restarted.check(&store).await;
    assert!(r.try_recv().is_err());
}

#[tokio::test]
async fn the_spawned_forwarder_queues_the_alert_of_each_transition() {
    let t = test_store().await;
    let p = Pipeline::starting_at(&t.store, now_ms());
    let store = p.store().clone();
    let fx = fixture::create(&store, SMALL).await.unwrap();
    let (url, got) = receiver().await;
    subscribe(&store, fx.organisation_id, &url).await;
    let monitor = HealthMonitor::new(Thresholds::default());
    let forwarder = alerts::spawn(store.clone(), &monitor);
    fixture::change_feature(&store, &fx, 0, "stuck")
        .await
        .unwrap();
    // The change's own events first, so the queue is empty until the alert is queued.
    deliver_all(&store).await;
    p.advance(400_000);
    monitor.check(&store).await;
    // The forwarder runs on its own task: wait for its delivery row, then deliver it.
    for _ in 0..200 {
        let mut tx = store.read().await.unwrap();
        let s = webhooks::deliveries::queue_status(&mut tx, store.clock().now_ms())
            .await
            .unwrap();
        if s.pending > 0 {
            break;
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    deliver_all(&store).await;
    let received = alerts_in(&got);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].1["data"]["status"], "degraded");
    forwarder.abort();
}
