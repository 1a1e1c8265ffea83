//! Scheduled changes end to end: a feature-state update with `live_from` is stored and listed,
//! invisible to SDKs until its time, applied by the task processor's scheduler once (also by
//! a process that was down at `live_from` and comes back, and with two workers looking at
//! once), visible to SDKs right after; cancelling, a change whose feature went away, bad
//! input and refusals. The scheduler is stepped on a manual clock; one test runs its loop on
//! the real clock.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::people::{call, user};
use common::EdgeApp;
use flagstone_store::clock::iso8601;
use flagstone_store::queue::{Decision, ParkReason};
use flagstone_store::{Clock, PageRequest, Store};
use flagstone_tasks::schedule::{self, ScheduleConfig, StepOutcome};
use serde_json::{json, Value};

/// The flag `name` as the SDK sees it: (enabled, value).
async fn sdk_flag(app: &EdgeApp, key: &str, name: &str) -> Value {
    app.publish().await;
    let r = app
        .sdk(Method::GET, "/api/v1/flags/", Some(key), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let flags = r.json();
    let f = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == name)
        .unwrap_or_else(|| panic!("no flag {name} in {flags}"))
        .clone();
    json!([f["enabled"], f["feature_state_value"]])
}

/// Another process on the same database, whose clock reads `at`.
async fn process_at(app: &EdgeApp, at: i64) -> (Store, Clock) {
    let clock = Clock::manual(at);
    let store = Store::connect(&app.t.connect_options())
        .await
        .unwrap()
        .with_clock(clock.clone());
    (store, clock)
}

fn config() -> ScheduleConfig {
    ScheduleConfig {
        jitter: flagstone_tasks::JitterSource::Fixed(flagstone_tasks::policy::Jitter::NONE),
        ..ScheduleConfig::default()
    }
}

/// (revision, audit entries) of the environment: what a step that applies nothing must leave.
async fn written(app: &EdgeApp, key: &str) -> (i64, i64) {
    let mut tx = app.t.store.read().await.unwrap();
    let e = flagstone_store::environments::get_by_key(&mut tx, key)
        .await
        .unwrap();
    let audit = flagstone_store::audit::list(&mut tx, None, PageRequest::new(1, 1))
        .await
        .unwrap()
        .count;
    (e.revision, audit)
}

struct Fixture {
    app: EdgeApp,
    key: String,
    project: i64,
    /// A user with VIEW_ENVIRONMENT and UPDATE_FEATURE_STATE, and one with only the first.
    editor: String,
    viewer: String,
}

async fn fixture() -> Fixture {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    let organisation = app
        .admin_req(Method::GET, &format!("/api/v1/projects/{project}/"), None)
        .await["organisation"]
        .as_i64()
        .unwrap();
    let (ada_id, editor) = user(&app, organisation, "ada@example.com", "USER").await;
    let (bob_id, viewer) = user(&app, organisation, "bob@example.com", "USER").await;
    let grants = format!("/api/v1/environments/{key}/user-permissions/");
    app.post(
        &grants,
        json!({"user": ada_id, "permissions": ["VIEW_ENVIRONMENT", "UPDATE_FEATURE_STATE"]}),
    )
    .await;
    app.post(
        &grants,
        json!({"user": bob_id, "permissions": ["VIEW_ENVIRONMENT"]}),
    )
    .await;
    Fixture {
        app,
        key,
        project,
        editor,
        viewer,
    }
}

/// The environment default state id of `feature`.
async fn state_of(app: &EdgeApp, key: &str, feature: i64) -> i64 {
    app.admin_req(
        Method::GET,
        &format!("/api/v1/environments/{key}/featurestates/?feature={feature}"),
        None,
    )
    .await["results"][0]["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_scheduled_change_is_invisible_until_live_from_then_applied_once_across_a_restart() {
    let f = fixture().await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let state = state_of(app, key, feature).await;
    assert_eq!(sdk_flag(app, key, "launch").await, json!([false, "old"]));

    // ada schedules the launch a minute from now.
    let t0 = flagstone_store::now_ms();
    let live_from = t0 + 60_000;
    let (s, scheduled) = call(
        app,
        &f.editor,
        Method::PATCH,
        &format!("/api/v1/environments/{key}/featurestates/{state}/"),
        Some(json!({"enabled": true, "feature_state_value": "new",
                    "live_from": iso8601(live_from)})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{scheduled}");
    assert_eq!(scheduled["state"], "pending");
    assert_eq!(scheduled["author"], "ada@example.com");
    assert_eq!(scheduled["live_from"], iso8601(live_from));
    assert_eq!(
        scheduled["feature_states"],
        json!([{"feature": feature, "enabled": true, "feature_state_value": "new"}])
    );
    let id = scheduled["id"].as_i64().unwrap();
    let list = format!("/api/v1/environments/{key}/scheduled-changes/");
    let (s, listed) = call(app, &f.viewer, Method::GET, &list, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["results"][0]["id"], id);

    // Before live_from: the scheduler finds nothing due; SDKs and the admin API see the old
    // configuration.
    let before = written(app, key).await;
    let (worker, clock) = process_at(app, t0).await;
    assert_eq!(schedule::step(&worker, &config()).await.unwrap(), None);
    clock.advance(59_999);
    assert_eq!(schedule::step(&worker, &config()).await.unwrap(), None);
    assert_eq!(written(app, key).await, before);
    assert_eq!(sdk_flag(app, key, "launch").await, json!([false, "old"]));
    let fs = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/featurestates/{state}/"),
            None,
        )
        .await;
    assert_eq!(fs["enabled"], false);

    // The worker goes down before live_from and comes back 700 ms after it: its first look
    // applies the change.
    worker.close().await;
    let (worker, _clock) = process_at(app, live_from + 700).await;
    let applied = schedule::step(&worker, &config()).await.unwrap();
    let Some(StepOutcome::Applied {
        id: applied_id,
        revision,
        delay_ms,
    }) = applied
    else {
        panic!("expected the change applied, got {applied:?}");
    };
    assert_eq!((applied_id, delay_ms), (id, 700));
    assert_eq!(revision, before.0 + 1);
    assert_eq!(sdk_flag(app, key, "launch").await, json!([true, "new"]));

    // Once: nothing is due any more.
    assert_eq!(schedule::step(&worker, &config()).await.unwrap(), None);
    assert_eq!(written(app, key).await.0, revision);
    let (_, shown) = call(app, &f.viewer, Method::GET, &format!("{list}{id}/"), None).await;
    assert_eq!(shown["state"], "applied");
    assert_eq!(shown["applied_revision"], revision);
    assert_eq!(shown["delay_ms"], 700);
    // An ordinary change: a version by its author, and the audit log says it was applied.
    let versions = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/features/{feature}/versions/"),
            None,
        )
        .await;
    assert_eq!(versions["results"][0]["author"], "ada@example.com");
    assert_eq!(versions["results"][0]["revision"], revision);
    let audit = app.admin_req(Method::GET, "/api/v1/audit/", None).await;
    let logs: Vec<&str> = audit["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["log"].as_str().unwrap())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.starts_with(&format!("Scheduled change {id} ")) && l.contains("applied")),
        "{logs:?}"
    );
    // Applied changes cannot be cancelled.
    let (s, body) = call(
        app,
        &f.editor,
        Method::DELETE,
        &format!("{list}{id}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "conflict");
}

#[tokio::test]
async fn two_workers_looking_at_once_apply_a_due_change_once() {
    let f = fixture().await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app.feature(f.project, key, "race", false, json!(0)).await;
    let state = state_of(app, key, feature).await;
    let live_from = flagstone_store::now_ms() + 5_000;
    let (s, _) = call(
        app,
        &f.editor,
        Method::PATCH,
        &format!("/api/v1/environments/{key}/featurestates/{state}/"),
        Some(json!({"enabled": true, "live_from": iso8601(live_from)})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let before = written(app, key).await.0;
    let (a, _) = process_at(app, live_from + 10).await;
    let (b, _) = process_at(app, live_from + 10).await;
    let cfg = config();
    let (ra, rb) = tokio::join!(schedule::step(&a, &cfg), schedule::step(&b, &cfg));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, Some(StepOutcome::Applied { .. })))
        .count();
    assert_eq!(applied, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Some(StepOutcome::Applied { .. } | StepOutcome::Gone { .. }) | None
        )),
        "{outcomes:?}"
    );
    assert_eq!(written(app, key).await.0, before + 1);
    let versions = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/features/{feature}/versions/"),
            None,
        )
        .await;
    let changes = versions["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["revision"] == before + 1)
        .count();
    assert_eq!(changes, 1, "{versions}");
}

#[tokio::test]
async fn cancelled_changes_never_apply_and_a_change_whose_feature_went_away_parks() {
    let f = fixture().await;
    let (app, key) = (&f.app, f.key.as_str());
    let keep = app.feature(f.project, key, "keep", false, json!("a")).await;
    let gone = app.feature(f.project, key, "gone", false, json!("a")).await;
    let list = format!("/api/v1/environments/{key}/scheduled-changes/");
    let live_from = flagstone_store::now_ms() + 30_000;
    let mut ids = vec![];
    for feature in [keep, gone] {
        let state = state_of(app, key, feature).await;
        let (s, v) = call(
            app,
            &f.editor,
            Method::PATCH,
            &format!("/api/v1/environments/{key}/featurestates/{state}/"),
            Some(json!({"feature_state_value": "b", "live_from": iso8601(live_from)})),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }

    // The viewer may not cancel; the editor may, once.
    let (s, _) = call(
        app,
        &f.viewer,
        Method::DELETE,
        &format!("{list}{}/", ids[0]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        app,
        &f.editor,
        Method::DELETE,
        &format!("{list}{}/", ids[0]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        app,
        &f.editor,
        Method::DELETE,
        &format!("{list}{}/", ids[0]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, shown) = call(
        app,
        &f.viewer,
        Method::GET,
        &format!("{list}{}/", ids[0]),
        None,
    )
    .await;
    assert_eq!(shown["state"], "cancelled");
    assert_eq!(shown["cancelled_by"], "ada@example.com");
    let (_, pending) = call(
        app,
        &f.viewer,
        Method::GET,
        &format!("{list}?state=pending"),
        None,
    )
    .await;
    assert_eq!(pending["count"], 1);

    // The second change's feature is deleted before its time: applying it is refused, and it
    // parks with the reason instead of retrying.
    app.admin_req(
        Method::DELETE,
        &format!("/api/v1/projects/{}/features/{gone}/", f.project),
        None,
    )
    .await;
    let (worker, _) = process_at(app, live_from + 1).await;
    let before = written(app, key).await;
    let outcome = schedule::step(&worker, &config()).await.unwrap();
    let Some(StepOutcome::Failed {
        id,
        decision: Decision::Park { reason, .. },
    }) = outcome
    else {
        panic!("expected a parked change, got {outcome:?}");
    };
    assert_eq!((id, reason), (ids[1], ParkReason::ChangeRefused));
    assert_eq!(written(app, key).await, before);
    assert_eq!(schedule::step(&worker, &config()).await.unwrap(), None);
    let (_, shown) = call(
        app,
        &f.viewer,
        Method::GET,
        &format!("{list}{}/", ids[1]),
        None,
    )
    .await;
    assert_eq!(shown["state"], "parked");
    assert!(
        shown["last_error"]
            .as_str()
            .unwrap()
            .contains("no longer exists"),
        "{shown}"
    );
    assert_eq!(sdk_flag(app, key, "keep").await, json!([false, "a"]));
}

#[tokio::test]
async fn bad_schedules_are_refused_and_write_nothing() {
    let f = fixture().await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app.feature(f.project, key, "flag", false, json!("a")).await;
    let state = state_of(app, key, feature).await;
    let fs = format!("/api/v1/environments/{key}/featurestates/{state}/");
    let before = written(app, key).await;
    let now = flagstone_store::now_ms();
    for (body, field) in [
        (
            json!({"enabled": true, "live_from": iso8601(now - 1_000)}),
            "live_from",
        ),
        (
            json!({"enabled": true, "live_from": "next monday"}),
            "live_from",
        ),
        (
            json!({"enabled": true, "live_from": "2030-01-01T09:00:00"}),
            "live_from",
        ),
        (
            json!({"feature_state_value": "x".repeat(30_000), "live_from": iso8601(now + 60_000)}),
            "feature_state_value",
        ),
        (
            json!({"multivariate_feature_state_values":
                [{"multivariate_feature_option": 999999, "percentage_allocation": 10}],
                "live_from": iso8601(now + 60_000)}),
            "multivariate_feature_state_values",
        ),
    ] {
        let (s, v) = call(app, &f.editor, Method::PATCH, &fs, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v.to_string().contains(field), "{body}: {v}");
    }
    // Scheduling needs what changing needs.
    let (s, _) = call(
        app,
        &f.viewer,
        Method::PATCH,
        &fs,
        Some(json!({"enabled": true, "live_from": iso8601(now + 60_000)})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(written(app, key).await, before);
    let (_, listed) = call(
        app,
        &f.viewer,
        Method::GET,
        &format!("/api/v1/environments/{key}/scheduled-changes/"),
        None,
    )
    .await;
    assert_eq!(listed["count"], 0);
}

/// The scheduler's own loop on the real clock: a change due in 1.5 s is applied well within a
/// second of its time.
#[tokio::test]
async fn the_scheduler_loop_applies_a_change_within_a_second_of_live_from() {
    let f = fixture().await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app.feature(f.project, key, "soon", false, json!("a")).await;
    let state = state_of(app, key, feature).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut rx = stopped.clone();
    let loop_ = tokio::spawn(schedule::Scheduler::new(app.t.store.clone(), config()).run(
        async move {
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    // Far enough ahead for a busy machine to answer the request first.
    let live_from = flagstone_store::now_ms() + 1_500;
    let (s, v) = call(
        app,
        &f.editor,
        Method::PATCH,
        &format!("/api/v1/environments/{key}/featurestates/{state}/"),
        Some(json!({"enabled": true, "live_from": iso8601(live_from)})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let url = format!(
        "/api/v1/environments/{key}/scheduled-changes/{}/",
        v["id"].as_i64().unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let shown = loop {
        let (_, shown) = call(app, &f.viewer, Method::GET, &url, None).await;
        if shown["state"] == "applied" || tokio::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(shown["state"], "applied", "{shown}");
    assert!(shown["delay_ms"].as_i64().unwrap() < 1_000, "{shown}");
    assert_eq!(sdk_flag(app, key, "soon").await, json!([true, "a"]));
    let _ = stop.send(true);
    loop_.await.unwrap();
}
