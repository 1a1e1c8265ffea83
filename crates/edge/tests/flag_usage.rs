//! Flag usage end to end: edges count what they serve and what SDKs report, flush it to the
//! store in batches, and the admin API reads it back (`evaluation-data`, `last_evaluated_at`,
//! `?stale=`). Flushes are stepped by the test, and days pass on a manual clock.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::EdgeApp;
use flagstone_edge::usage::FlushOutcome;
use flagstone_store::evaluations::DAY_MS;
use flagstone_store::Clock;
use serde_json::{json, Value};

async fn state_of(app: &EdgeApp, key: &str, feature: i64) -> Value {
    let states = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/featurestates/?feature={feature}"),
            None,
        )
        .await;
    states["results"][0].clone()
}

async fn evaluation_data(app: &EdgeApp, project: i64, feature: i64, env: i64) -> Value {
    app.admin_req(
        Method::GET,
        &format!(
            "/api/v1/projects/{project}/features/{feature}/evaluation-data/?environment_id={env}&period=7"
        ),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_counts_exactly_under_concurrent_load() {
    let app = Arc::new(EdgeApp::new().await);
    let (project, key, server_key) = app.setup().await;
    let a = app.feature(project, &key, "alpha", true, json!(1)).await;
    let b = app.feature(project, &key, "beta", false, json!("x")).await;
    // Server-key-only: client keys are not served it.
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/features/{b}/"),
        Some(json!({"is_server_key_only": true})),
    )
    .await;
    app.publish().await;
    let env = app.environment_id(&key).await;
    assert_eq!(
        state_of(&app, &key, a).await["last_evaluated_at"],
        Value::Null
    );

    const TASKS: usize = 8;
    const ROUNDS: usize = 25;
    let mut load = Vec::new();
    for t in 0..TASKS {
        let (app, key, server_key) = (app.clone(), key.clone(), server_key.clone());
        load.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                // Client list: alpha only. Server list: both. Identity (client): alpha only.
                let flags = app
                    .sdk(Method::GET, "/api/v1/flags/", Some(&key), None, &[])
                    .await;
                assert_eq!(flags.status, StatusCode::OK);
                let flags = app
                    .sdk(Method::GET, "/api/v1/flags/", Some(&server_key), None, &[])
                    .await;
                assert_eq!(flags.status, StatusCode::OK);
                let ident = app
                    .sdk(
                        Method::GET,
                        &format!("/api/v1/identities/?identifier=user-{t}-{r}"),
                        Some(&key),
                        None,
                        &[],
                    )
                    .await;
                assert_eq!(ident.status, StatusCode::OK);
                let one = app
                    .sdk(
                        Method::GET,
                        "/api/v1/flags/?feature=beta",
                        Some(&server_key),
                        None,
                        &[],
                    )
                    .await;
                assert_eq!(one.status, StatusCode::OK);
                let reported = app
                    .sdk(
                        Method::POST,
                        "/api/v1/analytics/flags/",
                        Some(&key),
                        Some(json!({"alpha": 3, "beta": 2, "nope": 9})),
                        &[],
                    )
                    .await;
                assert_eq!(reported.status, StatusCode::OK);
            }
        }));
    }
    // Flushes race the load: nothing may be counted twice or lost between them.
    let flusher = {
        let app = app.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                app.state.usage.flush().await;
                tokio::task::yield_now().await;
            }
        })
    };
    for l in load {
        l.await.unwrap();
    }
    flusher.await.unwrap();
    app.state.usage.flush().await;
    assert_eq!(app.state.usage.flush().await, FlushOutcome::Idle);

    let n = (TASKS * ROUNDS) as i64;
    let alpha = evaluation_data(&app, project, a, env).await;
    let alpha = alpha.as_array().unwrap();
    assert_eq!(alpha.len(), 1, "one day: {alpha:?}");
    // alpha: client list + server list + client identity; reported 3 per report.
    assert_eq!(alpha[0]["served"], 3 * n);
    assert_eq!(alpha[0]["reported"], 3 * n);
    assert_eq!(alpha[0]["count"], 6 * n);
    assert_eq!(alpha[0]["labels"], Value::Null);
    let beta = evaluation_data(&app, project, b, env).await;
    // beta: server list + the one-flag request; reported 2 per report.
    assert_eq!(beta[0]["served"], 2 * n);
    assert_eq!(beta[0]["reported"], 2 * n);

    let last = state_of(&app, &key, a).await["last_evaluated_at"].clone();
    assert!(
        last.as_str().is_some_and(is_iso),
        "last_evaluated_at is set, as ISO 8601 like every timestamp: {last}"
    );
}

#[tokio::test]
async fn evaluation_data_refuses_bad_parameters() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    let a = app.feature(project, &key, "alpha", true, json!(1)).await;
    let env = app.environment_id(&key).await;
    let base = format!("/api/v1/projects/{project}/features/{a}/evaluation-data/");
    let missing = app.admin_raw(Method::GET, &base, None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["field"], "environment_id");
    for period in ["0", "367", "x"] {
        let r = app
            .admin_raw(
                Method::GET,
                &format!("{base}?environment_id={env}&period={period}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "period={period}");
    }
    // An environment of another project.
    let other = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Other", "organisation": app.admin_req(Method::GET, &format!("/api/v1/projects/{project}/"), None).await["organisation"]}),
        )
        .await;
    let other_env = app
        .post(
            "/api/v1/environments/",
            json!({"name": "x", "project": other["id"]}),
        )
        .await;
    let r = app
        .admin_raw(
            Method::GET,
            &format!("{base}?environment_id={}", other_env["id"]),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let none = app
        .admin_raw(
            Method::GET,
            &format!(
                "/api/v1/projects/{project}/features/999999/evaluation-data/?environment_id={env}"
            ),
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    // Nothing evaluated yet: no days.
    let empty = app
        .admin_req(Method::GET, &format!("{base}?environment_id={env}"), None)
        .await;
    assert_eq!(empty, json!([]));
}

fn stale_names(list: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["stale"]["reason"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn never_evaluated_and_fixed_value_features_are_stale() {
    let clock = Clock::manual(flagstone_store::now_ms());
    let app = EdgeApp::with_clock(clock.clone()).await;
    let (project, key, _) = app.setup().await;
    let staging = app
        .post(
            "/api/v1/environments/",
            json!({"name": "staging", "project": project}),
        )
        .await;
    let staging_key = staging["api_key"].as_str().unwrap().to_string();
    app.feature(project, &key, "used", true, json!(1)).await;
    let used = app.feature(project, &key, "unused", true, json!(1)).await;
    let _ = used;
    app.feature(project, &key, "constant", false, json!(null))
        .await;
    // "used" differs between environments; "constant" is off with no value in both.
    let used_id = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/projects/{project}/features/?search=used"),
            None,
        )
        .await["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "used")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let staging_state = state_of(&app, &staging_key, used_id).await;
    app.admin_req(
        Method::PATCH,
        &format!(
            "/api/v1/environments/{staging_key}/featurestates/{}/",
            staging_state["id"]
        ),
        Some(json!({"enabled": false})),
    )
    .await;
    app.publish().await;
    let stale_list = format!("/api/v1/projects/{project}/features/?stale=true");

    // New features are given their days.
    let fresh = app.admin_req(Method::GET, &stale_list, None).await;
    assert_eq!(fresh["count"], 0, "{fresh}");

    clock.advance(31 * DAY_MS);
    for name in ["used", "constant"] {
        let r = app
            .sdk(
                Method::GET,
                &format!("/api/v1/flags/?feature={name}"),
                Some(&key),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert!(matches!(
        app.state.usage.flush().await,
        FlushOutcome::Written { rows: 2 }
    ));
    let stale = app.admin_req(Method::GET, &stale_list, None).await;
    assert_eq!(
        stale_names(&stale),
        [
            ("constant".to_string(), "fixed_value".to_string()),
            ("unused".to_string(), "unused".to_string()),
        ]
    );
    let unused = stale["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "unused")
        .unwrap();
    assert_eq!(unused["stale"]["last_evaluated_at"], Value::Null);
    let constant = stale["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "constant")
        .unwrap();
    let since = &constant["stale"]["since"];
    assert!(since.as_str().is_some_and(is_iso), "{since}");
    let live = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/projects/{project}/features/?stale=false"),
            None,
        )
        .await;
    assert_eq!(stale_names(&live), [("used".to_string(), "-".to_string())]);

    // The project's own numbers win over the installation's.
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/"),
        Some(json!({"stale_flags_limit_days": 60, "stale_fixed_value_days": 60})),
    )
    .await;
    let none = app.admin_req(Method::GET, &stale_list, None).await;
    assert_eq!(none["count"], 0, "{none}");
    for bad in [json!(0), json!(3651), json!("x")] {
        let r = app
            .admin_raw(
                Method::PATCH,
                &format!("/api/v1/projects/{project}/"),
                Some(json!({ "stale_flags_limit_days": bad })),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // null returns to the installation's default (30 days).
    let p = app
        .admin_req(
            Method::PATCH,
            &format!("/api/v1/projects/{project}/"),
            Some(json!({"stale_flags_limit_days": null})),
        )
        .await;
    assert_eq!(p["stale_flags_limit_days"], Value::Null);
    assert_eq!(p["stale_fixed_value_days"], 60);
    let again = app.admin_req(Method::GET, &stale_list, None).await;
    assert_eq!(
        stale_names(&again),
        [("unused".to_string(), "unused".to_string())]
    );

    // A permanent tag keeps a feature out of the stale list (Flagsmith's `is_permanent`).
    let tag = app
        .post(
            &format!("/api/v1/projects/{project}/tags/"),
            json!({"label": "keep", "color": "#3d4db6", "is_permanent": true}),
        )
        .await;
    let unused_id = again["results"][0]["id"].clone();
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/features/{unused_id}/"),
        Some(json!({"tags": [tag["id"]]})),
    )
    .await;
    let kept = app.admin_req(Method::GET, &stale_list, None).await;
    assert_eq!(kept["count"], 0, "{kept}");
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/tags/{}/", tag["id"]),
        Some(json!({"is_permanent": false})),
    )
    .await;
    let back = app.admin_req(Method::GET, &stale_list, None).await;
    assert_eq!(
        stale_names(&back),
        [("unused".to_string(), "unused".to_string())]
    );
}

/// `2026-11-30T09:16:06.123000Z`: the API's timestamp format (docs/flagsmith-compat.md).
fn is_iso(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 27
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && s.ends_with('Z')
        && s[..4].parse::<u32>().is_ok_and(|y| y >= 1970)
}
