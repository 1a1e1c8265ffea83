//! Real processes: `serve` (the core), an edge following it over HTTP (`edge --upstream`), and
//! a second edge chained behind the first; neither edge has database access. A burst of
//! changes reaches both; identify on the far edge writes traits that reach the core's store;
//! with the core killed both keep serving and report that they serve last good copies; a
//! change made meanwhile arrives once the core is back; an edge restarted with no upstream
//! serves from its cache. Waits are polls with a deadline (separate processes).

use std::time::{Duration, Instant};

use flagstone_store::document::fixture;
use flagstone_store::testing::test_store;

mod common;
use common::{
    child_url, follower_key, free_port, http, identify_reaches_store, readiness, served,
    wait_readiness, wait_served, Children, Proc,
};

const CHILDREN: Children = Children::logging("warn");

fn serve(url: &str, port: u16, cache: &std::path::Path) -> Proc {
    CHILDREN.serve(url, port, cache, &["--edge-poll-ms", "200"])
}

fn edge(upstream: u16, key: &str, port: u16, cache: &std::path::Path) -> Proc {
    CHILDREN.upstream_edge(upstream, key, port, cache, &[])
}

/// How long an edge may take to notice the core left or came back.
const WITHIN: Duration = Duration::from_secs(30);

/// The node on `port`, for messages.
fn node(port: u16) -> String {
    format!("node on port {port}")
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
        wait_served(&node(port), port, &fx, "v0", Duration::from_secs(30)).await;
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
        wait_served(&node(port), port, &fx, "burst-20", Duration::from_secs(20)).await;
        eprintln!(
            "edge on port {port} converged {:?} after the burst started",
            started.elapsed()
        );
    }

    // Identify on the far edge: the traits travel far -> near -> core -> store.
    identify_reaches_store("the far edge", far_port, &t.store, &fx, "far-user").await;
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

    // Both edges have heard they are current before the core goes: an upstream's heartbeat
    // (every 5 s) may still carry what that upstream said before it had synced itself.
    for port in [near_port, far_port] {
        wait_readiness(&node(port), port, "current", WITHIN, |r| {
            r["serving_from_cache"] == false
        })
        .await;
    }

    // The core goes away: both edges keep serving, and say they serve last good copies.
    drop(core.take());
    for port in [near_port, far_port] {
        let r = wait_readiness(&node(port), port, "serving last good copies", WITHIN, |r| {
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
        wait_served(&node(port), port, &fx, "while-down", WITHIN).await;
        wait_readiness(&node(port), port, "current again", WITHIN, |r| {
            r["serving_from_cache"] == false
        })
        .await;
    }

    // With neither the core nor the near edge, a restarted far edge serves from its cache.
    drop(core.take());
    drop(near.take());
    drop(far.take());
    let _far = edge(near_port, &key, far_port, dirs[2].path());
    wait_served(
        "the restarted far edge",
        far_port,
        &fx,
        "while-down",
        Duration::from_secs(20),
    )
    .await;
    let r = readiness(far_port).await.unwrap();
    assert_eq!(r["ready"], true, "{r}");
    assert_eq!(r["upstream_reachable"], false, "{r}");
    assert_eq!(r["serving_from_cache"], true, "{r}");
}
