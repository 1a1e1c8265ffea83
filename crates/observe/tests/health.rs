//! Health on a real store (SQLite, or PostgreSQL with FLAGSTONE_TEST_DATABASE_URL), the pipeline
//! stepped by hand: a poison environment that parks turns `/health/status` degraded naming it and
//! its task, an operator's retry after the fix brings it back to ok (each change announced as a
//! transition), a publish waiting past the staleness threshold degrades, and readiness follows
//! the store, reports an edge still reading its cache, and a document publisher's state.

use flagstone_observe::health::{CheckName, ReadinessRule, Status};
use flagstone_observe::probe::{gather, store_reachable};
use flagstone_observe::{health_router, HealthEndpoints, HealthMonitor, Thresholds};
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::queue::{self, JobState, ParkReason};
use flagstone_store::testing::test_store;
use flagstone_store::{now_ms, Actor};
use flagstone_tasks::testing::{Fault, Pipeline, Ran};
use flagstone_tasks::{Breakpoint, PublishOutcome};
use http_body_util::BodyExt;
use tower::ServiceExt;

const SMALL: Shape = Shape {
    features: 3,
    mv_features: 0,
    segments: 2,
    overrides: 2,
};

fn published(ran: &Ran) -> bool {
    matches!(
        ran,
        Ran::Ended {
            outcome: PublishOutcome::Published { .. },
            ..
        }
    )
}

async fn get(app: &axum::Router, path: &str) -> (u16, serde_json::Value) {
    let res = app
        .clone()
        .oneshot(
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn a_parked_poison_environment_degrades_status_until_it_is_fixed() {
    let t = test_store().await;
    let p = Pipeline::starting_at(&t.store, now_ms());
    let healthy = fixture::create(p.store(), SMALL).await.unwrap();
    let poison = fixture::create(p.store(), SMALL).await.unwrap();
    let monitor = HealthMonitor::new(Thresholds::default());
    let mut alerts = monitor.subscribe();
    let app = health_router(HealthEndpoints {
        store: p.store().clone(),
        monitor: monitor.clone(),
        documents: None,
        publisher: None,
        rule: ReadinessRule::StoreRequired,
    });

    // Both environments publish; nothing is wrong.
    p.advance(1_000);
    let ran = p.drain("w1", 10).await;
    assert!(ran.iter().all(published), "{ran:?}");
    let (code, body) = get(&app, "/health/status").await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")), "{body}");

    // The poison environment changes, and its build fails on corrupt data: parked.
    fixture::change_feature(p.store(), &poison, 0, "poison")
        .await
        .unwrap();
    fixture::change_feature(p.store(), &healthy, 0, "fine")
        .await
        .unwrap();
    p.advance(1_000);
    let lease = p.claim("w1").await.expect("a job is due");
    let (first, second) = if lease.environment_id == poison.environment_id {
        (lease, None)
    } else {
        (p.claim("w1").await.expect("the poison job"), Some(lease))
    };
    assert_eq!(first.environment_id, poison.environment_id);
    p.inject(Breakpoint::Built, Fault::Corrupt);
    let built = p.build(&first).await;
    assert!(matches!(
        p.settle(&first, built).await,
        PublishOutcome::Parked {
            reason: ParkReason::InvalidData,
            ..
        }
    ));
    if let Some(other) = second {
        let built = p.build(&other).await;
        p.settle(&other, built).await;
    }
    p.drain("w1", 10).await;

    let (code, body) = get(&app, "/health/status").await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("degraded")),
        "{body}"
    );
    let failing: Vec<&serde_json::Value> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "degraded")
        .collect();
    assert_eq!(failing.len(), 1, "{body}");
    assert_eq!(failing[0]["name"], "parked_tasks");
    let named = failing[0]["environments"].as_array().unwrap();
    assert_eq!(named.len(), 1, "only the poison environment: {body}");
    assert_eq!(named[0]["environment_id"], poison.environment_id);
    assert_eq!(named[0]["task_id"], poison.environment_id);
    assert_eq!(named[0]["park_reason"], "invalid_data");
    let down = alerts.try_recv().expect("a transition to degraded");
    assert_eq!((down.from, down.to), (Status::Ok, Status::Degraded));

    // The operator fixes the cause and retries: the environment publishes, status is ok again.
    queue::retry(p.store(), &Actor::system("operator"), poison.environment_id)
        .await
        .unwrap();
    let ran = p.drain("w1", 10).await;
    assert!(ran.iter().any(published), "{ran:?}");
    let (_, body) = get(&app, "/health/status").await;
    assert_eq!(body["status"], "ok", "{body}");
    let up = alerts.try_recv().expect("a transition back to ok");
    assert_eq!((up.from, up.to), (Status::Degraded, Status::Ok));
    assert!(alerts.try_recv().is_err(), "one alert per transition");
}

#[tokio::test]
async fn a_publish_waiting_past_the_thresholds_degrades_and_names_the_environment() {
    let t = test_store().await;
    let p = Pipeline::starting_at(&t.store, now_ms());
    let fx = fixture::create(p.store(), SMALL).await.unwrap();
    let thresholds = Thresholds::default();
    let monitor = HealthMonitor::new(thresholds);
    // Nobody works the queue for longer than both the oldest-pending and staleness limits.
    p.advance((thresholds.max_staleness_secs + 1) * 1000);
    let inputs = gather(p.store()).await.unwrap();
    let (report, transition) = monitor.record(&inputs);
    assert_eq!(report.status, Status::Degraded);
    assert!(transition.is_some());
    let failing: Vec<CheckName> = report.reasons().map(|c| c.name).collect();
    assert_eq!(
        failing,
        vec![CheckName::OldestPending, CheckName::EnvironmentStaleness]
    );
    let stale = report
        .reasons()
        .find(|c| c.name == CheckName::EnvironmentStaleness)
        .unwrap();
    assert_eq!(stale.environments.len(), 1);
    assert_eq!(stale.environments[0].environment_id, fx.environment_id);
    assert_eq!(stale.environments[0].job_state, Some(JobState::Pending));
    // A worker catches up: ok.
    assert!(p.drain("w1", 10).await.iter().any(published));
    let (report, _) = monitor.record(&gather(p.store()).await.unwrap());
    assert_eq!(report.status, Status::Ok, "{report:?}");
}

#[tokio::test]
async fn readiness_is_false_while_the_store_is_unreachable() {
    let t = test_store().await;
    let h = HealthEndpoints {
        store: t.store.clone(),
        monitor: HealthMonitor::new(Thresholds::default()),
        documents: None,
        publisher: None,
        rule: ReadinessRule::StoreRequired,
    };
    let app = health_router(h.clone());
    let (code, body) = get(&app, "/health/readiness").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ready"], true);
    // The pool is closed: no transaction can begin, as when the database is down.
    t.store.close().await;
    assert!(!store_reachable(&t.store).await);
    let (code, body) = get(&app, "/health/readiness").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["store_reachable"], false);
    let (code, body) = get(&app, "/health/status").await;
    assert_eq!(code, 503);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"][0]["name"], "store_reachable");
    let (code, _) = get(&app, "/health/liveness").await;
    assert_eq!(code, 200, "the process itself is alive");
}

#[tokio::test]
async fn readiness_reports_the_document_publisher_without_depending_on_it() {
    use flagstone_observe::health::{DocumentsLoaded, PublisherState};
    let t = test_store().await;
    let behind = PublisherState {
        connected: false,
        in_step: false,
        last_put_at_ms: Some(1_700_000_000_000),
        last_in_step_at_ms: Some(1_700_000_000_000),
        documents_behind: 3,
        documents_too_large: 0,
    };
    let loading = DocumentsLoaded {
        loaded: false,
        environments: 40,
        serving_from_cache: true,
        staleness_seconds: None,
        loading_cache: true,
        cache_loaded: 40,
    };
    let (p, d) = (behind.clone(), loading.clone());
    let h = HealthEndpoints {
        store: t.store.clone(),
        monitor: HealthMonitor::new(Thresholds::default()),
        documents: Some(std::sync::Arc::new(move || d.clone())),
        publisher: Some(std::sync::Arc::new(move || p.clone())),
        rule: ReadinessRule::StoreRequired,
    };
    // Still reading its cache: answered at once, not ready, saying so.
    let (code, body) = get(&health_router(h.clone()), "/health/readiness").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(
        (
            &body["loading_cache"],
            &body["cache_loaded"],
            &body["documents_loaded"]
        ),
        (
            &serde_json::json!(true),
            &serde_json::json!(40),
            &serde_json::json!(false)
        )
    );
    let nats = &body["documents_nats"];
    assert_eq!(nats["connected"], false, "{body}");
    assert_eq!(nats["documents_behind"], 3, "{body}");
    assert_eq!(nats["last_put_at_ms"], 1_700_000_000_000_i64, "{body}");

    // Loaded: ready, whatever the publisher says (edges following NATS serve their copies).
    let loaded = DocumentsLoaded {
        loaded: true,
        loading_cache: false,
        ..loading
    };
    let h = HealthEndpoints {
        documents: Some(std::sync::Arc::new(move || loaded.clone())),
        ..h
    };
    let (code, body) = get(&health_router(h.clone()), "/health/readiness").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["documents_nats"]["in_step"], false, "{body}");
    // Without a publisher the field is absent.
    let h = HealthEndpoints {
        publisher: None,
        ..h
    };
    let (_, body) = get(&health_router(h), "/health/readiness").await;
    assert!(body.get("documents_nats").is_none(), "{body}");
}

#[tokio::test]
async fn a_document_budget_forced_below_a_document_parks_it_and_status_names_it() {
    use flagstone_store::projects::{self, LimitLowering, ProjectPatch};
    let t = test_store().await;
    let p = Pipeline::starting_at(&t.store, now_ms());
    let big = fixture::create(p.store(), SMALL).await.unwrap();
    let monitor = HealthMonitor::new(Thresholds::default());
    let app = health_router(HealthEndpoints {
        store: p.store().clone(),
        monitor: monitor.clone(),
        documents: None,
        publisher: None,
        rule: ReadinessRule::StoreRequired,
    });
    p.advance(1_000);
    let ran = p.drain("w1", 10).await;
    assert!(ran.iter().all(published), "{ran:?}");

    // Lowering the budget below the published document is refused, naming the environment,
    // and writes nothing.
    let patch = ProjectPatch {
        limits: Some(serde_json::json!({"max_document_bytes": 200})),
        ..Default::default()
    };
    let actor = Actor::system("operator");
    let mut ch = p.store().change(&actor).await.unwrap();
    let err = projects::update(&mut ch, big.project_id, &patch, LimitLowering::Refuse)
        .await
        .unwrap_err()
        .to_string();
    drop(ch);
    assert!(err.contains("limits.max_document_bytes"), "{err}");
    assert!(err.contains("stop publishing"), "{err}");
    assert_eq!(p.drain("w1", 10).await.len(), 0, "nothing was queued");

    // Forced, it is applied: the next build is parked and `/health/status` names it.
    let mut ch = p.store().change(&actor).await.unwrap();
    projects::update(&mut ch, big.project_id, &patch, LimitLowering::Force)
        .await
        .unwrap();
    ch.commit().await.unwrap();
    p.advance(1_000);
    p.drain("w1", 10).await;
    let (code, body) = get(&app, "/health/status").await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("degraded")),
        "{body}"
    );
    let parked = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "parked_tasks")
        .unwrap();
    assert_eq!(parked["status"], "degraded", "{body}");
    assert_eq!(
        parked["environments"][0]["environment_id"],
        big.environment_id
    );
    assert_eq!(
        parked["environments"][0]["park_reason"],
        "document_too_large"
    );
}
