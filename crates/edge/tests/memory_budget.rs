//! Compiled environments within a memory budget: every environment is held compressed,
//! compiled on its first request, evicted least-recently-used first when the budget is
//! exceeded and compiled again on its next request, with the same answers throughout; a
//! publish keeps a resident environment resident and a cold one cold. And an edge restarted
//! on its cache directory serves from it before the store has been asked anything.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::EdgeApp;
use flagstone_edge::registry::RegistryChange;
use flagstone_edge::{Follower, FollowerConfig, PublishFeed, Registry};
use serde_json::{json, Value};

fn value_of(flags: &Value, name: &str) -> Value {
    flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == name)
        .unwrap_or_else(|| panic!("no flag {name} in {flags}"))["feature_state_value"]
        .clone()
}

async fn served(app: &EdgeApp, key: &str) -> Value {
    let r = app
        .sdk(Method::GET, "/api/v1/flags/", Some(key), None, &[])
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    value_of(&r.json(), "banner")
}

/// Three environments of one project, each with its own value of `banner`.
async fn three(app: &EdgeApp) -> (i64, Vec<String>) {
    let (project, first, _) = app.setup().await;
    let mut keys = vec![first];
    for name in ["staging", "dev"] {
        let e = app
            .post(
                "/api/v1/environments/",
                json!({"name": name, "project": project}),
            )
            .await;
        keys.push(e["api_key"].as_str().unwrap().to_string());
    }
    app.feature(project, &keys[0], "banner", true, json!("v0"))
        .await;
    for (i, key) in keys.iter().enumerate().skip(1) {
        let env = app.environment_id(key).await;
        set_banner(app, env, &format!("v{i}")).await;
    }
    app.publish().await;
    (project, keys)
}

/// Sets `banner`'s value in an environment through the admin API.
async fn set_banner(app: &EdgeApp, env: i64, value: &str) {
    let key = {
        let mut tx = app.t.store.read().await.unwrap();
        flagstone_store::environments::get(&mut tx, env)
            .await
            .unwrap()
            .api_key
    };
    let states = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/featurestates/"),
            None,
        )
        .await;
    // The project has one feature: its environment default is the only state.
    let state = states["results"][0]["id"].as_i64().unwrap();
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/featurestates/{state}/"),
        Some(json!({"feature_state_value": value})),
    )
    .await;
}

#[tokio::test]
async fn environments_compile_on_demand_and_the_least_recently_used_is_evicted_under_the_budget() {
    let app = EdgeApp::new().await;
    let (_, keys) = three(&app).await;
    let registry = &app.state.registry;
    let m = registry.memory();
    assert_eq!(m.environments, 3);
    assert_eq!(
        m.resident.resident_environments, 0,
        "nothing is compiled before it is asked for"
    );
    assert!(m.documents_bytes > 0);

    // Room for one compiled environment and a half.
    let one = registry.get(&keys[0]).await.unwrap().heap_bytes;
    registry.set_memory_budget(one * 3 / 2);
    let base = registry.memory().resident;
    assert_eq!(base.resident_environments, 1);

    // The second evicts the first (the clock gives both a second chance, then takes the
    // older); each answer is right.
    assert_eq!(served(&app, &keys[0]).await, "v0");
    assert_eq!(served(&app, &keys[1]).await, "v1");
    let after = registry.memory().resident;
    assert_eq!(after.resident_environments, 1);
    assert_eq!(after.hits - base.hits, 1, "the first was resident");
    assert_eq!(after.misses - base.misses, 1, "the second was compiled");
    assert_eq!(after.evictions - base.evictions, 1);
    assert!(after.resident_bytes <= after.budget_bytes);
    assert!(registry.published(&keys[0]).unwrap().resident().is_none());
    assert!(registry.published(&keys[1]).unwrap().resident().is_some());

    // Asked again, the first is compiled again, from its compressed document.
    assert_eq!(served(&app, &keys[0]).await, "v0");
    assert_eq!(served(&app, &keys[0]).await, "v0");
    let again = registry.memory().resident;
    assert_eq!(again.misses - after.misses, 1);
    assert_eq!(again.hits - after.hits, 1);
    assert_eq!(again.evictions - after.evictions, 1);

    // A publish compiles a resident environment at once (it stays resident) and leaves a
    // cold one cold until asked; both serve the new value.
    let (e0, e2) = (
        app.environment_id(&keys[0]).await,
        app.environment_id(&keys[2]).await,
    );
    set_banner(&app, e0, "v0 again").await;
    set_banner(&app, e2, "v2 again").await;
    app.publish().await;
    assert!(registry.published(&keys[0]).unwrap().resident().is_some());
    assert!(registry.published(&keys[2]).unwrap().resident().is_none());
    let published = registry.memory().resident;
    assert_eq!(served(&app, &keys[0]).await, "v0 again");
    assert_eq!(served(&app, &keys[2]).await, "v2 again");
    let last = registry.memory().resident;
    assert_eq!(
        (last.hits - published.hits, last.misses - published.misses),
        (1, 1)
    );
    assert!(last.resident_bytes <= last.budget_bytes);

    // Every SDK shape still answers from a cold environment: unknown keys, identities.
    registry.set_memory_budget(0);
    assert_eq!(registry.memory().resident.resident_environments, 0);
    let r = app
        .sdk(Method::GET, "/api/v1/flags/", Some("nope"), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&keys[1]),
            Some(json!({"identifier": "ada", "traits": []})),
            &[],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(value_of(&r.json()["flags"], "banner"), "v1");
    assert_eq!(registry.memory().resident.resident_bytes, 0);
}

#[tokio::test]
async fn a_deleted_environment_is_gone_at_once_whether_compiled_or_not() {
    let app = EdgeApp::new().await;
    let (_, keys) = three(&app).await;
    assert_eq!(served(&app, &keys[0]).await, "v0");
    for key in &keys[..2] {
        app.admin_req(
            Method::DELETE,
            &format!("/api/v1/environments/{key}/"),
            None,
        )
        .await;
        let r = app
            .sdk(Method::GET, "/api/v1/flags/", Some(key), None, &[])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{key}");
    }
    let m = app.state.registry.memory();
    assert_eq!((m.environments, m.resident.resident_environments), (1, 0));
    assert_eq!(served(&app, &keys[2]).await, "v2");
}

#[tokio::test]
async fn a_restarted_edge_serves_its_cache_before_the_store_is_asked_then_catches_up() {
    let app = EdgeApp::new().await;
    let (_, keys) = three(&app).await;
    // The cache as a stopped edge left it, then a change it has not seen.
    let stopped = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(app.cache_dir.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), stopped.path().join(f.file_name())).unwrap();
    }
    let env = app.environment_id(&keys[1]).await;
    set_banner(&app, env, "newer").await;
    app.publish().await;
    let newest = app.state.registry.revision_of(env).unwrap();

    let registry = std::sync::Arc::new(Registry::default());
    let mut changes = registry.changes();
    let follower = Follower::start(
        app.t.store.clone(),
        registry.clone(),
        FollowerConfig {
            poll_interval: Duration::from_secs(3600),
            cache_dir: Some(stopped.path().to_path_buf()),
        },
        PublishFeed::PollOnly,
    )
    .await;
    // The cache directory is read behind `start`; the store is asked only once it is read.
    registry.initial_load_finished().await;
    assert_eq!(registry.len(), 3);
    assert!(registry.revision_of(env).unwrap() < newest);
    let cached = registry.get(&keys[1]).await.unwrap();
    assert_eq!(
        value_of(
            &serde_json::from_slice(&cached.flags_client).unwrap(),
            "banner"
        ),
        "v1"
    );
    assert!(follower.health.serving_from_cache());
    // Three cached installs were announced, then the store's newer revision.
    let caught_up = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match changes.recv().await.unwrap() {
                RegistryChange::Installed {
                    environment_id,
                    revision,
                    ..
                } if environment_id == env && revision == newest => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "the edge caught up with the store within 10 s"
    );
    let current = registry.get(&keys[1]).await.unwrap();
    assert_eq!(
        value_of(
            &serde_json::from_slice(&current.flags_client).unwrap(),
            "banner"
        ),
        "newer"
    );
    // The cached snapshot was resident: the new revision was compiled when installed.
    assert!(registry.published(&keys[1]).unwrap().resident().is_some());
}
