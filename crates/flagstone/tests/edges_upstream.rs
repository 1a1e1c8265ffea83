//! Real processes: `serve` (the core), an edge following it over HTTP (`edge --upstream`), and
//! a second edge chained behind the first; neither edge has database access. A burst of
//! changes reaches both; identify on the far edge writes traits that reach the core's store;
//! with the core killed both keep serving and report that they serve last good copies; a
//! change made meanwhile arrives once the core is back; an edge restarted with no upstream
//! serves from its cache. Waits are polls with a deadline (separate processes).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flagstone_access::secrets;
use flagstone_store::accounts::api_keys::{self, NewApiKey};
use flagstone_store::document::fixture::{self, Fixture};
use flagstone_store::testing::test_store;
use flagstone_store::Actor;
use flagstone_store::Store;
use serde_json::{json, Value};

mod common;
use common::{child_url, free_port, http, Proc};

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_flagstone"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start flagstone"),
    )
}

fn serve(url: &str, port: u16, cache: &std::path::Path) -> Proc {
    spawn(&[
        "serve",
        "--database-url",
        url,
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--edge-cache-dir",
        cache.to_str().unwrap(),
        "--edge-poll-ms",
        "200",
    ])
}

fn edge(upstream: u16, key: &str, port: u16, cache: &std::path::Path) -> Proc {
    spawn(&[
        "edge",
        "--upstream",
        &format!("http://127.0.0.1:{upstream}"),
        "--upstream-key",
        key,
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--edge-cache-dir",
        cache.to_str().unwrap(),
        "--edge-usage-flush-seconds",
        "1",
    ])
}

/// An admin organisation API key of the fixture's organisation, as an operator would create.
async fn follower_key(store: &Store, fx: &Fixture) -> String {
    let s = secrets::new_secret("fsk_");
    let mut ch = store.change(&Actor::system("test")).await.unwrap();
    api_keys::create(
        &mut ch,
        fx.organisation_id,
        &NewApiKey {
            name: "edges",
            is_admin: true,
            expires_at: None,
            created_by: None,
            prefix: &s.lookup,
            secret_hash: &s.hash,
        },
        flagstone_store::now_ms(),
    )
    .await
    .unwrap();
    ch.commit().await.unwrap();
    s.secret
}

/// Feature 0's value served to `fx`'s client key, with the status.
async fn served(port: u16, fx: &Fixture) -> Option<(u16, String)> {
    let (status, body) = http(
        port,
        "GET",
        "/api/v1/flags/",
        &[("X-Environment-Key", &fx.api_key)],
        None,
    )
    .await?;
    if status != 200 {
        return Some((status, body));
    }
    let flags: Value = serde_json::from_str(&body).ok()?;
    let value = flags
        .as_array()?
        .iter()
        .find(|f| f["feature"]["name"] == "feature_0000")
        .map(|f| f["feature_state_value"].as_str().unwrap_or("").to_string())?;
    Some((200, value))
}

async fn wait_served(port: u16, fx: &Fixture, value: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Some((200, v)) = served(port, fx).await {
            if v == value {
                return start.elapsed();
            }
        }
        assert!(
            start.elapsed() < within,
            "node on port {port} did not serve {value:?} within {within:?} (serves {:?})",
            served(port, fx).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn readiness(port: u16) -> Option<Value> {
    let (_, body) = http(port, "GET", "/health/readiness", &[], None).await?;
    serde_json::from_str(&body).ok()
}

/// Polls `port`'s readiness until `pred` holds.
async fn wait_readiness(port: u16, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Some(r) = readiness(port).await {
            if pred(&r) {
                return r;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "edge on port {port}: {what} never held; readiness {:?}",
            readiness(port).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_over_http_converge_survive_the_core_and_catch_up() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    // Another organisation's environment: the key must not see it.
    let other = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    fixture::change_feature(&t.store, &fx, 0, "v0")
        .await
        .unwrap();
    let key = follower_key(&t.store, &fx).await;
    let url = child_url(&t);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (core_port, near_port, far_port) = (free_port(), free_port(), free_port());
    let mut core = Some(serve(&url, core_port, dirs[0].path()));
    let mut near = Some(edge(core_port, &key, near_port, dirs[1].path()));
    let mut far = Some(edge(near_port, &key, far_port, dirs[2].path()));

    for port in [core_port, near_port, far_port] {
        wait_served(port, &fx, "v0", Duration::from_secs(30)).await;
    }
    // Followed: only what the key sees.
    let (status, _) = served(far_port, &other).await.unwrap();
    assert_eq!(
        status, 403,
        "an environment of another organisation is not followed"
    );
    let (status, _) = http(near_port, "GET", "/api/v1/edge/scope", &[], None)
        .await
        .unwrap();
    assert_eq!(status, 403, "the follower API needs a key");

    // A burst of changes: both edges converge on the last.
    let started = Instant::now();
    for i in 1..=20 {
        fixture::change_feature(&t.store, &fx, 0, &format!("burst-{i}"))
            .await
            .unwrap();
    }
    for port in [near_port, far_port] {
        wait_served(port, &fx, "burst-20", Duration::from_secs(20)).await;
        eprintln!(
            "edge on port {port} converged {:?} after the burst started",
            started.elapsed()
        );
    }

    // Identify on the far edge: the traits travel far -> near -> core -> store.
    let (status, body) = http(
        far_port,
        "POST",
        "/api/v1/identities/",
        &[("X-Environment-Key", &fx.api_key)],
        Some(&json!({"identifier": "far-user", "traits": [{"trait_key": "plan", "trait_value": "gold"}]})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let start = Instant::now();
    loop {
        let stored = {
            let mut tx = t.store.read().await.unwrap();
            flagstone_store::identities::load_identity(&mut tx, fx.environment_id, "far-user")
                .await
                .unwrap()
        };
        if let Some((_, traits, _)) = stored {
            if traits
                .iter()
                .any(|t| t.trait_key == "plan" && t.trait_value == json!("gold"))
            {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the far edge's traits never reached the store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The near edge answers the identity with the stored trait it reads from the core.
    let (status, body) = http(
        near_port,
        "GET",
        "/api/v1/identities/?identifier=far-user",
        &[("X-Environment-Key", &fx.api_key)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"gold\""),
        "stored traits reach the edge: {body}"
    );

    // The core goes away: both edges keep serving, and say they serve last good copies.
    drop(core.take());
    for port in [near_port, far_port] {
        let r = wait_readiness(port, "serving last good copies", |r| {
            r["serving_from_cache"] == true
        })
        .await;
        assert_eq!(r["ready"], true, "{r}");
        assert_eq!(served(port, &fx).await.unwrap(), (200, "burst-20".into()));
    }
    let r = readiness(near_port).await.unwrap();
    assert_eq!(r["upstream_reachable"], false, "{r}");
    let r = readiness(far_port).await.unwrap();
    assert_eq!(
        r["upstream_reachable"], true,
        "its own upstream still answers: {r}"
    );

    // A change while the core is down; the core comes back and both edges catch up.
    fixture::change_feature(&t.store, &fx, 0, "while-down")
        .await
        .unwrap();
    core = Some(serve(&url, core_port, dirs[0].path()));
    for port in [near_port, far_port] {
        wait_served(port, &fx, "while-down", Duration::from_secs(30)).await;
        wait_readiness(port, "current again", |r| r["serving_from_cache"] == false).await;
    }

    // With neither the core nor the near edge, a restarted far edge serves from its cache.
    drop(core.take());
    drop(near.take());
    drop(far.take());
    let _far = edge(near_port, &key, far_port, dirs[2].path());
    wait_served(far_port, &fx, "while-down", Duration::from_secs(20)).await;
    let r = readiness(far_port).await.unwrap();
    assert_eq!(r["ready"], true, "{r}");
    assert_eq!(r["upstream_reachable"], false, "{r}");
    assert_eq!(r["serving_from_cache"], true, "{r}");
}
