//! Webhooks end to end, on whichever store the harness gives (SQLite, or PostgreSQL with
//! FLAGSTONE_TEST_DATABASE_URL): changes made through the admin API queue events in their own
//! transaction; the production delivery steps (`flagstone_tasks::deliveries`) send them to a
//! real HTTP receiver on a local port. Time is a manual clock the tests move, so backoff and
//! parking are stepped through rather than waited for.

mod common;
#[path = "webhooks/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::TestApp;
use flagstone_store::queue::{Decision, ParkReason};
use flagstone_store::webhooks::{deliveries, events, DeliveryState};
use flagstone_store::{features, Actor, PageRequest, Store};
use flagstone_tasks::deliveries::{self as delivery, DeliveryConfig, Outcome, Sender};
use flagstone_tasks::policy::{Jitter, Rules};
use flagstone_tasks::testing::Pipeline;
use flagstone_tasks::JitterSource;
use flagstone_webhooks::signature::{verify, verify_timed};
use flagstone_webhooks::AddressPolicy;
use receiver::{Behaviour, Receiver};
use serde_json::{json, Value};

const SECRET: &str = "whsec-test-0123";

/// An app whose store runs on the pipeline's manual clock and accepts private webhook URLs
/// (the receiver listens on 127.0.0.1).
async fn app() -> (TestApp, Pipeline) {
    let mut app = TestApp::new().await;
    let pipeline = Pipeline::new(app.store());
    let mut state = app.state.clone();
    state.store = pipeline.store().clone();
    app.set_state(state.with_webhook_policy(AddressPolicy::allowing_private()));
    (app, pipeline)
}

fn config(max_attempts: i64, timeout_ms: u64) -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_millis(timeout_ms),
        rules: Rules {
            lease_ms: 60_000,
            max_attempts,
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

async fn feature(store: &Store, project: i64, name: &str) -> i64 {
    let mut ch = store.change(&Actor::system("test")).await.unwrap();
    let new: features::NewFeature = serde_json::from_value(json!({"name": name})).unwrap();
    let f = features::create(&mut ch, project, &new).await.unwrap();
    ch.commit().await.unwrap();
    f.id
}

async fn state_id(app: &TestApp, key: &str, feature: i64) -> i64 {
    let (s, b) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={feature}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["results"][0]["id"].as_i64().unwrap()
}

async fn env_webhook(app: &TestApp, key: &str, url: &str) -> i64 {
    let (s, w) = app
        .post(
            &format!("/api/v1/environments/{key}/webhooks/"),
            json!({"url": url, "enabled": true, "secret": SECRET}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(w["secret"], SECRET, "shown in the response that sets it");
    w["id"].as_i64().unwrap()
}

/// Steps deliveries until none is due now; returns every attempt's outcome.
async fn drain(store: &Store, cfg: &DeliveryConfig, sender: &Sender) -> Vec<Outcome> {
    let mut out = Vec::new();
    while let Some((_, attempt, _)) = delivery::step(store, cfg, sender).await.unwrap() {
        out.push(attempt.outcome);
    }
    out
}

async fn deliveries_of(store: &Store, webhook: i64) -> Vec<deliveries::Delivery> {
    let mut tx = store.read().await.unwrap();
    let mut d = deliveries::list(&mut tx, webhook, PageRequest::new(1, 1000))
        .await
        .unwrap()
        .results;
    d.reverse();
    d
}

async fn organisation_of(app: &TestApp, project: i64) -> i64 {
    let (_, p) = app.get(&format!("/api/v1/projects/{project}/")).await;
    p["organisation"].as_i64().unwrap()
}

#[tokio::test]
async fn a_flag_change_is_delivered_signed_in_flagsmiths_shape() {
    let (app, p) = app().await;
    let store = p.store().clone();
    let (project, key) = app.project_with_env().await;
    let f = feature(&store, project, "banner").await;
    let rx = Receiver::start(Behaviour::FailFirst(0)).await;
    let hook = env_webhook(&app, &key, &rx.url).await;
    let org = organisation_of(&app, project).await;
    let org_rx = Receiver::start(Behaviour::FailFirst(0)).await;
    let (s, w) = app
        .post(
            &format!("/api/v1/organisations/{org}/webhooks/"),
            json!({"url": org_rx.url, "secret": SECRET}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");

    let state = state_id(&app, &key, f).await;
    let (s, b) = app
        .patch(
            &format!("/api/v1/environments/{key}/featurestates/{state}/"),
            json!({"enabled": true, "feature_state_value": "on"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let cfg = config(5, 5_000);
    let sender = Sender::new(cfg.policy, cfg.timeout);
    let outcomes = drain(&store, &cfg, &sender).await;
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Delivered),
        "{outcomes:?}"
    );

    let got = rx.got();
    assert_eq!(got.len(), 1, "one FLAG_UPDATED to the environment webhook");
    let g = &got[0];
    assert!(verify(SECRET, &g.body, g.header("x-flagsmith-signature")));
    assert!(!verify("wrong", &g.body, g.header("x-flagsmith-signature")));
    let t: i64 = g.header("x-flagstone-timestamp").parse().unwrap();
    assert!(verify_timed(
        SECRET,
        &g.body,
        g.header("x-flagstone-signature"),
        t,
        300
    ));
    assert_eq!(g.header("content-type"), "application/json");
    let body = g.json();
    assert_eq!(body["event_type"], "FLAG_UPDATED");
    let data = &body["data"];
    let keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["changed_by", "new_state", "previous_state", "timestamp"]
    );
    assert_eq!(data["changed_by"], "admin-key:configured");
    assert_eq!(data["new_state"]["enabled"], true);
    assert_eq!(data["new_state"]["feature_state_value"], "on");
    assert_eq!(data["new_state"]["feature"]["name"], "banner");
    assert_eq!(data["new_state"]["environment"]["name"], "prod");
    assert_eq!(data["new_state"]["feature_segment"], Value::Null);
    assert_eq!(data["previous_state"]["enabled"], false);
    assert!(data["timestamp"].as_str().unwrap().ends_with('Z'));

    // The organisation webhook got the audit entries (and, as in Flagsmith, the flag event).
    let types: Vec<String> = org_rx
        .got()
        .iter()
        .map(|g| g.json()["event_type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        types.contains(&"AUDIT_LOG_CREATED".to_string()),
        "{types:?}"
    );
    assert!(types.contains(&"FLAG_UPDATED".to_string()), "{types:?}");
    let audit = org_rx
        .got()
        .into_iter()
        .map(|g| g.json())
        .find(|b| {
            b["event_type"] == "AUDIT_LOG_CREATED"
                && b["data"]["related_object_type"] == "FEATURE_STATE"
        })
        .expect("the feature state's audit entry");
    assert!(audit["data"]["log"].as_str().unwrap().contains("banner"));

    // The delivery log shows it; the secret is masked once set.
    let (s, log) = app
        .get(&format!(
            "/api/v1/environments/{key}/webhooks/{hook}/deliveries/"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["count"], 1);
    assert_eq!(log["results"][0]["state"], "delivered");
    assert_eq!(log["results"][0]["response_status"], 200);
    assert_eq!(log["results"][0]["event_type"], "FLAG_UPDATED");
    let (_, list) = app
        .get(&format!("/api/v1/environments/{key}/webhooks/"))
        .await;
    assert_eq!(list[0]["secret"], "********");
}

#[tokio::test]
async fn a_receiver_failing_its_first_attempts_gets_every_event_exactly_once_in_order() {
    let (app, p) = app().await;
    let store = p.store().clone();
    let (project, key) = app.project_with_env().await;
    let f = feature(&store, project, "banner").await;
    let rx = Receiver::start(Behaviour::FailFirst(3)).await;
    let hook = env_webhook(&app, &key, &rx.url).await;
    let state = state_id(&app, &key, f).await;
    for value in ["a", "b", "c"] {
        let (s, b) = app
            .patch(
                &format!("/api/v1/environments/{key}/featurestates/{state}/"),
                json!({"feature_state_value": value}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let cfg = config(5, 5_000);
    let sender = Sender::new(cfg.policy, cfg.timeout);
    // Attempt 1 of the first event fails; the others wait behind it (order per webhook).
    let mut backoffs = Vec::new();
    loop {
        match delivery::step(&store, &cfg, &sender).await.unwrap() {
            Some((_, _, Some(Decision::Retry { run_after, .. }))) => {
                backoffs.push(run_after - store.clock().now_ms());
                p.advance(run_after - store.clock().now_ms());
            }
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(backoffs, vec![1_000, 2_000, 4_000], "exponential backoff");
    assert_eq!(rx.got().len(), 6, "3 failed attempts + 3 deliveries");
    let accepted: Vec<String> = rx
        .accepted()
        .iter()
        .map(|g| {
            g.json()["data"]["new_state"]["feature_state_value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(accepted, ["a", "b", "c"], "each event once, in order");
    let mut ids: Vec<String> = rx.accepted().iter().map(|g| g.event_id()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct event ids");
    // Retries carry the same event id (what receivers deduplicate by).
    assert_eq!(rx.got()[0].event_id(), rx.got()[3].event_id());
    let log = deliveries_of(&store, hook).await;
    assert!(log.iter().all(|d| d.state == DeliveryState::Delivered));
    assert_eq!(log[0].attempts, 4);
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_parked_without_slowing_publishes() {
    let (app, p) = app().await;
    let store = p.store().clone();
    let (project, key) = app.project_with_env().await;
    let f = feature(&store, project, "banner").await;
    let rx = Receiver::start(Behaviour::Hang).await;
    let hook = env_webhook(&app, &key, &rx.url).await;
    let state = state_id(&app, &key, f).await;
    p.drain("w", 10).await;

    // Without pending deliveries: an admin write and its publish.
    let timed = |value: &'static str| {
        let (app, p, key) = (&app, &p, key.clone());
        async move {
            let t = Instant::now();
            let (s, _) = app
                .patch(
                    &format!("/api/v1/environments/{key}/featurestates/{state}/"),
                    json!({"feature_state_value": value}),
                )
                .await;
            assert_eq!(s, StatusCode::OK);
            p.advance(60_000);
            let ran = p.drain("w", 10).await;
            assert_eq!(ran.len(), 1, "{ran:?}");
            t.elapsed()
        }
    };
    let baseline = timed("a").await;

    // A delivery to the dead receiver in flight (timeout 1.5 s) while another write publishes.
    let cfg = config(2, 1_500);
    let sender = Sender::new(cfg.policy, cfg.timeout);
    let (store2, cfg2, sender2) = (store.clone(), cfg.clone(), sender.clone());
    let inflight = tokio::spawn(async move { delivery::step(&store2, &cfg2, &sender2).await });
    rx.wait_for(1).await;
    let with_dead_receiver = timed("b").await;
    assert!(
        !inflight.is_finished(),
        "the delivery is still waiting on the receiver"
    );
    println!("admin write + publish: {baseline:?} without, {with_dead_receiver:?} with a dead receiver in flight");
    assert!(
        with_dead_receiver < Duration::from_millis(1_500),
        "publishing did not wait for the receiver"
    );

    let (_, attempt, decision) = inflight.await.unwrap().unwrap().unwrap();
    assert_eq!(attempt.outcome, Outcome::Transient("timed out".into()));
    let Some(Decision::Retry { run_after, .. }) = decision else {
        panic!("expected a retry, got {decision:?}");
    };
    p.advance(run_after - store.clock().now_ms());
    let (_, _, decision) = delivery::step(&store, &cfg, &sender)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            decision,
            Some(Decision::Park {
                reason: ParkReason::TooManyFailures,
                attempts: 2,
                ..
            })
        ),
        "{decision:?}"
    );
    let log = deliveries_of(&store, hook).await;
    assert_eq!(log[0].state, DeliveryState::Parked);
    assert!(
        log[0].last_error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        log[0]
    );
    // The parked event no longer holds up the next one.
    let mut tx = store.read().await.unwrap();
    assert_eq!(
        deliveries::next_due(&mut tx, store.clock().now_ms())
            .await
            .unwrap()
            .map(|d| d.environment_id),
        Some(log[1].id)
    );
}

async fn segment(app: &TestApp, project: i64, name: &str, plan: &str) -> i64 {
    let (s, b) = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": name, "rules": rules(plan)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_i64().unwrap()
}

fn rules(plan: &str) -> Value {
    json!([{"type": "ALL", "rules": [{"type": "ANY", "conditions": [
        {"operator": "EQUAL", "property": "plan", "value": plan}
    ]}]}])
}

#[tokio::test]
async fn a_segment_edit_fires_for_each_feature_it_overrides() {
    let (app, p) = app().await;
    let store = p.store().clone();
    let (project, key) = app.project_with_env().await;
    let (a, b, c) = (
        feature(&store, project, "a").await,
        feature(&store, project, "b").await,
        feature(&store, project, "c").await,
    );
    let seg = segment(&app, project, "pro", "pro").await;
    let other = segment(&app, project, "free", "free").await;
    for (f, s) in [(a, seg), (b, seg), (c, other)] {
        let (st, body) = app
            .post(
                &format!("/api/v1/environments/{key}/features/{f}/create-segment-override/"),
                json!({"segment": s, "enabled": true, "feature_state_value": "x"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    let rx = Receiver::start(Behaviour::FailFirst(0)).await;
    env_webhook(&app, &key, &rx.url).await;

    // Renaming does not change what is served: nothing. A rules change: a and b, not c.
    let (s, body) = app
        .patch(
            &format!("/api/v1/projects/{project}/segments/{seg}/"),
            json!({"description": "paying"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = app
        .patch(
            &format!("/api/v1/projects/{project}/segments/{seg}/"),
            json!({"rules": rules("enterprise")}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let cfg = config(5, 5_000);
    let sender = Sender::new(cfg.policy, cfg.timeout);
    drain(&store, &cfg, &sender).await;
    let mut names: Vec<(String, String, String)> = rx
        .got()
        .iter()
        .map(|g| {
            let b = g.json();
            (
                b["event_type"].as_str().unwrap().to_string(),
                b["data"]["new_state"]["feature"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                b["data"]["new_state"]["feature_segment"]["segment"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    names.sort();
    let want = |t: &str, f: &str| (t.to_string(), f.to_string(), "pro".to_string());
    assert_eq!(
        names,
        vec![want("FLAG_UPDATED", "a"), want("FLAG_UPDATED", "b")]
    );

    // Deleting the segment deletes its overrides: FLAG_DELETED for a and b.
    let (s, body) = app
        .delete(&format!("/api/v1/projects/{project}/segments/{seg}/"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    drain(&store, &cfg, &sender).await;
    let deleted: Vec<Value> = rx.got()[2..].iter().map(|g| g.json()).collect();
    assert_eq!(deleted.len(), 2);
    for d in &deleted {
        assert_eq!(d["event_type"], "FLAG_DELETED");
        assert_eq!(d["data"]["new_state"], Value::Null);
        assert_eq!(
            d["data"]["previous_state"]["feature_segment"]["segment"]["name"],
            "pro"
        );
    }
}

#[tokio::test]
async fn private_and_odd_urls_are_refused_and_nothing_is_written() {
    let app = TestApp::new().await;
    let (_, key) = app.project_with_env().await;
    let path = format!("/api/v1/environments/{key}/webhooks/");
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.0.0.8/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let (s, b) = app.post(&path, json!({"url": url})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {b}");
        assert_eq!(b["field"], "url", "{b}");
    }
    let (_, list) = app.get(&path).await;
    assert_eq!(list, json!([]));

    // With --webhooks-allow-private, loopback is fine but metadata never is.
    let open = app
        .state
        .clone()
        .with_webhook_policy(AddressPolicy::allowing_private());
    let mut app = app;
    app.set_state(open);
    let (s, b) = app
        .post(&path, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .post(&path, json!({"url": "http://169.254.169.254/"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    // A deliverer without the flag refuses the address at delivery time too, and parks.
    let p = Pipeline::new(app.store());
    let f = feature(
        p.store(),
        {
            let (_, e) = app.get(&format!("/api/v1/environments/{key}/")).await;
            e["project"].as_i64().unwrap()
        },
        "x",
    )
    .await;
    let _ = f;
    let strict = DeliveryConfig {
        policy: AddressPolicy::default(),
        ..config(5, 1_000)
    };
    let sender = Sender::new(strict.policy, strict.timeout);
    let (_, attempt, decision) = delivery::step(p.store(), &strict, &sender)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            attempt.outcome,
            Outcome::Permanent(ParkReason::AddressRefused, _)
        ),
        "{attempt:?}"
    );
    assert!(matches!(
        decision,
        Some(Decision::Park {
            reason: ParkReason::AddressRefused,
            ..
        })
    ));
}

#[tokio::test]
async fn a_rolled_back_change_queues_nothing() {
    let (app, p) = app().await;
    let store = p.store().clone();
    let (project, key) = app.project_with_env().await;
    let f = feature(&store, project, "banner").await;
    let rx = Receiver::start(Behaviour::FailFirst(0)).await;
    let hook = env_webhook(&app, &key, &rx.url).await;
    let state = state_id(&app, &key, f).await;
    let queued = deliveries_of(&store, hook).await.len();

    // A refused request (bad value) writes nothing and queues nothing.
    let (s, _) = app
        .patch(
            &format!("/api/v1/environments/{key}/featurestates/{state}/"),
            json!({"feature_state_value": {"an": "object"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A change that wrote its state and queued its event, then rolled back.
    let mut tx = store.write().await.unwrap();
    let env: i64 = {
        let (_, e) = app.get(&format!("/api/v1/environments/{key}/")).await;
        e["id"].as_i64().unwrap()
    };
    let org = flagstone_store::webhooks::organisation_of_environment(&mut tx, env)
        .await
        .unwrap();
    let n = events::enqueue(
        &mut tx,
        events::Target::Environment {
            environment: env,
            organisation: org,
        },
        flagstone_webhooks::EventType::FlagUpdated,
        "rolled-back",
        &json!({}),
        0,
    )
    .await
    .unwrap();
    assert_eq!(n, 1, "queued inside the transaction");
    drop(tx);
    // A change dropped without commit.
    let mut ch = store.change(&Actor::system("test")).await.unwrap();
    features::states::update(
        &mut ch,
        &{
            let mut tx = store.read().await.unwrap();
            flagstone_store::environments::get_by_key(&mut tx, &key)
                .await
                .unwrap()
        },
        state,
        &serde_json::from_value(json!({"enabled": true})).unwrap(),
    )
    .await
    .unwrap();
    drop(ch);

    assert_eq!(deliveries_of(&store, hook).await.len(), queued);
    let cfg = config(5, 1_000);
    assert!(drain(&store, &cfg, &Sender::new(cfg.policy, cfg.timeout))
        .await
        .is_empty());
    assert!(rx.got().is_empty());
}

#[tokio::test]
async fn test_events_redelivery_and_the_delivery_log() {
    let (app, p) = app().await;
    let store = p.store().clone();
    let (project, _) = app.project_with_env().await;
    let org = organisation_of(&app, project).await;
    let rx = Receiver::start(Behaviour::FailFirst(0)).await;
    let (s, w) = app
        .post(
            &format!("/api/v1/organisations/{org}/webhooks/"),
            json!({"url": rx.url}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(w["secret"], "");
    let id = w["id"].as_i64().unwrap();
    let base = format!("/api/v1/organisations/{org}/webhooks/{id}");
    let cfg = config(5, 5_000);
    let sender = Sender::new(cfg.policy, cfg.timeout);
    // The webhook's own creation is an audit entry of the organisation: its first event.
    drain(&store, &cfg, &sender).await;
    let created = rx.got();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].json()["data"]["related_object_type"], "WEBHOOK");
    let rx_got = || rx.got()[1..].to_vec();
    let (s, d) = app
        .post(
            &format!("{base}/test/"),
            json!({"event_type": "AUDIT_LOG_CREATED"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{d}");
    assert_eq!(d["state"], "pending");
    let (s, b) = app
        .post(&format!("{base}/test/"), json!({"event_type": "NOPE"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    drain(&store, &cfg, &sender).await;
    let got = rx_got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["event_type"], "AUDIT_LOG_CREATED");
    assert_eq!(got[0].json()["data"]["test"], true);
    assert_eq!(
        got[0].header("x-flagsmith-signature"),
        "",
        "no secret, no signature"
    );

    let (s, log) = app.get(&format!("{base}/deliveries/")).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["results"][0]["state"], "delivered");
    assert!(log["results"][0]["response_ms"].is_i64());
    let delivery = log["results"][0]["id"].as_i64().unwrap();
    let (s, d) = app
        .post(
            &format!("{base}/deliveries/{delivery}/redeliver/"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{d}");
    drain(&store, &cfg, &sender).await;
    let got = rx_got();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].event_id(), got[1].event_id(), "the same event again");
    assert_eq!(got[0].body, got[1].body);

    // Unknown ids are 404s; a disabled webhook gets nothing.
    let (s, _) = app
        .post(&format!("{base}/deliveries/999999/redeliver/"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get(&format!(
            "/api/v1/organisations/{org}/webhooks/999999/deliveries/"
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = app
        .patch(
            &format!("{base}/"),
            json!({"enabled": false, "secret": "********"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Another", "organisation": org}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    drain(&store, &cfg, &sender).await;
    assert_eq!(rx_got().len(), 2);
    let (s, _) = app.delete(&format!("{base}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app
        .get(&format!("/api/v1/organisations/{org}/webhooks/"))
        .await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn routes_are_in_the_openapi_document() {
    let app = TestApp::new().await;
    let (s, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/environments/{api_key}/webhooks",
        "/api/v1/environments/{api_key}/webhooks/{id}",
        "/api/v1/environments/{api_key}/webhooks/{id}/deliveries",
        "/api/v1/environments/{api_key}/webhooks/{id}/deliveries/{delivery_id}/redeliver",
        "/api/v1/environments/{api_key}/webhooks/{id}/test",
        "/api/v1/organisations/{id}/webhooks",
        "/api/v1/organisations/{id}/webhooks/{webhook_id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}
