//! Issue 14's scale-out topology as real processes on PostgreSQL: `serve` (publishing documents
//! to NATS too) and a second `worker`, two edges over HTTP (`near` follows the core, `far`
//! follows `near`) and one edge on NATS (`--from-nats`); no edge has database access. A burst
//! of changes over several environments: every edge converges on the last value of each.
//! Traits sent to the NATS edge reach the store. The core killed: every edge keeps serving
//! and reports staleness in `/health/readiness`; a change made meanwhile (built by the worker)
//! reaches every edge once the core is back, and each reports it is current again.
//!
//! PostgreSQL only (several processes on one database): skipped, with a message, when
//! `FLAGSTONE_TEST_DATABASE_URL` is unset. NATS from `FLAGSTONE_TEST_NATS_URL` (default
//! `nats://127.0.0.1:4222`), in a bucket of this test's own. Waits are polls with a deadline
//! (separate processes).

use std::time::{Duration, Instant};

use flagstone_store::document::fixture::{self, Fixture};
use flagstone_store::testing::test_store;
use flagstone_store::{Actor, Store};
use serde_json::json;

mod common;
use common::{
    child_url, follower_key, free_port, identify_reaches_store, readiness, served, wait_readiness,
    wait_served, Children, Proc,
};

const ENVIRONMENTS: usize = 4;
const BURST: usize = 10;

// SCALE_OUT_CHILD_LOG=info shows what the children did when a run fails.
const CHILDREN: Children = Children::logging("warn").overridden_by("SCALE_OUT_CHILD_LOG");

/// How long an edge may take to notice the core left or came back.
const WITHIN: Duration = Duration::from_secs(40);

fn nats_url() -> String {
    std::env::var("FLAGSTONE_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into())
}

/// The core, publishing documents to NATS too.
fn serve(url: &str, port: u16, cache: &std::path::Path, bucket: &str) -> Proc {
    let nats = nats_url();
    let extra = ["--edge-poll-ms", "200", "--documents-nats", &nats];
    CHILDREN.serve(
        url,
        port,
        cache,
        &[&extra[..], &["--nats-bucket", bucket]].concat(),
    )
}

/// An edge following documents on NATS, and the core over HTTP for the rest.
fn nats_edge(core: u16, key: &str, port: u16, cache: &std::path::Path, bucket: &str) -> Proc {
    let nats = nats_url();
    let extra = [
        "--from-nats",
        &nats,
        "--nats-bucket",
        bucket,
        "--nats-publisher-silence-secs",
        "6",
    ];
    CHILDREN.upstream_edge(core, key, port, cache, &extra)
}

async fn delete_bucket(bucket: &str) {
    if let Ok(client) = async_nats_connect().await {
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_key_value(bucket).await;
    }
}

async fn async_nats_connect() -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::connect(nats_url()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_worker_and_edges_over_http_and_nats_converge_survive_the_core_and_catch_up() {
    if std::env::var("FLAGSTONE_TEST_DATABASE_URL").map_or(true, |u| u.is_empty()) {
        eprintln!(
            "skipped: the scale-out test runs several processes on one PostgreSQL database; \
             set FLAGSTONE_TEST_DATABASE_URL"
        );
        return;
    }
    let t = test_store().await;
    let first = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    // Its siblings in the same project: one organisation key follows them all.
    let mut envs = vec![first.clone()];
    for i in 1..ENVIRONMENTS {
        envs.push(sibling(&t.store, &first, i).await);
    }
    for e in &envs {
        fixture::change_feature(&t.store, e, 0, "v0").await.unwrap();
    }
    let key = follower_key(&t.store, &first).await;
    let fx = envs[0].clone();
    let url = child_url(&t);
    let bucket = format!("t-scale-out-{}", std::process::id());
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let (core_port, near_port, far_port, nats_port) = (ports[0], ports[1], ports[2], ports[3]);
    let mut core = Some(serve(&url, core_port, dirs[0].path(), &bucket));
    let _worker = CHILDREN.worker(&url, &[]);
    let _near = CHILDREN.upstream_edge(core_port, &key, near_port, dirs[1].path(), &[]);
    let _far = CHILDREN.upstream_edge(near_port, &key, far_port, dirs[2].path(), &[]);
    let _nats = nats_edge(core_port, &key, nats_port, dirs[3].path(), &bucket);
    let edges = [
        ("near (HTTP)", near_port),
        ("far (HTTP, behind near)", far_port),
        ("nats", nats_port),
    ];
    for (name, port) in [("core", core_port)].iter().chain(edges.iter()) {
        wait_served(name, *port, &fx, "v0", Duration::from_secs(60)).await;
    }

    // A burst over every environment: each edge converges on the last value of each.
    let started = Instant::now();
    for i in 1..=BURST {
        for e in &envs {
            fixture::change_feature(&t.store, e, 0, &format!("burst-{i}"))
                .await
                .unwrap();
        }
    }
    let last = format!("burst-{BURST}");
    for (name, port) in edges {
        for e in &envs {
            wait_served(name, port, e, &last, Duration::from_secs(30)).await;
        }
        eprintln!(
            "{name} converged {:?} after the burst started",
            started.elapsed()
        );
    }

    // Traits sent to the NATS edge reach the store (over HTTP to the core, batched).
    identify_reaches_store("the NATS edge", nats_port, &t.store, &fx, "nats-user").await;

    // Every edge has heard it is current before the core goes: an upstream's heartbeat (every
    // 5 s) may still carry what that upstream said before it had synced itself.
    for (name, port) in edges {
        wait_readiness(name, port, "current", WITHIN, |r| {
            r["serving_from_cache"] == false
        })
        .await;
    }

    // The core goes away: every edge keeps serving and reports that it may be stale.
    drop(core.take());
    for (name, port) in edges {
        let r = wait_readiness(
            name,
            port,
            "reports serving last good copies",
            WITHIN,
            |r| r["serving_from_cache"] == true,
        )
        .await;
        assert_eq!(r["ready"], true, "{name}: {r}");
        assert!(r["staleness_seconds"].is_number(), "{name}: {r}");
        assert_eq!(
            served(port, &fx).await.unwrap(),
            (200, last.clone()),
            "{name}"
        );
    }
    let r = readiness(nats_port).await.unwrap();
    assert_eq!(
        r["nats_reachable"], true,
        "NATS itself is up; its publisher is not: {r}"
    );

    // Changes while the core is down (the second worker builds them); the core comes back and
    // every edge catches up with them, then reports it is current again.
    for e in &envs {
        fixture::change_feature(&t.store, e, 0, "while-down")
            .await
            .unwrap();
    }
    core = Some(serve(&url, core_port, dirs[0].path(), &bucket));
    for (name, port) in edges {
        for e in &envs {
            wait_served(name, port, e, "while-down", WITHIN).await;
        }
        wait_readiness(name, port, "current again", WITHIN, |r| {
            r["serving_from_cache"] == false
        })
        .await;
    }
    drop(core);
    delete_bucket(&bucket).await;
}

/// Another environment of `fx`'s project, as a fixture whose feature 0 can be changed.
async fn sibling(store: &Store, fx: &Fixture, i: usize) -> Fixture {
    let mut ch = store.change(&Actor::system("test")).await.unwrap();
    let new: flagstone_store::environments::NewEnvironment =
        serde_json::from_value(json!({"name": format!("Region {i}"), "project": fx.project_id}))
            .unwrap();
    let env = flagstone_store::environments::create(&mut ch, &new)
        .await
        .unwrap();
    ch.commit().await.unwrap();
    let mut tx = t_read(store).await;
    let states = flagstone_store::features::states::list(
        &mut tx,
        env.id,
        None,
        flagstone_store::PageRequest::new(1, 1000),
    )
    .await
    .unwrap()
    .results;
    let mut states = states;
    states.sort_by_key(|s| s.feature);
    Fixture {
        environment_id: env.id,
        api_key: env.api_key,
        feature_state_ids: states.iter().map(|s| s.id).collect(),
        ..fx.clone()
    }
}

async fn t_read(store: &Store) -> flagstone_store::Tx {
    store.read().await.unwrap()
}
