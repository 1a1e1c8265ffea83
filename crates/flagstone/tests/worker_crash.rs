//! Real `flagstone worker` processes against one database: a worker killed with SIGKILL in the
//! middle of a build loses nothing (another worker reclaims its job at once — its claim session
//! ended with it — and publishes, without waiting out the 30 s lease), and two workers on
//! PostgreSQL never build the same environment at once.

use std::time::{Duration, Instant};

use flagstone_store::document::fixture;
use flagstone_store::queue;
use flagstone_store::testing::{test_store, TestStore};

mod common;
use common::{assert_builds_never_overlap, child_url, revisions, Children, Proc};
use flagstone_store::Store;

/// Starts `flagstone worker`; with `pause_at`, every publish stops at that breakpoint for good
/// (the process is "mid-build" until the test kills it).
fn start_worker(t: &TestStore, pause_at: Option<&str>, lease_ms: u64) -> Proc {
    let lease_ms = lease_ms.to_string();
    let mut extra = vec!["--worker-lease-ms", &lease_ms];
    if let Some(at) = pause_at {
        extra.extend(["--test-pause-at", at]);
    }
    Children::logging("warn").worker(&child_url(t), &extra)
}

async fn wait_converged(store: &Store, env: i64, within: Duration) {
    let start = Instant::now();
    loop {
        let (current, published) = revisions(store, env).await;
        if published == Some(current) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "environment {env}: revision {current}, published {published:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_build_loses_nothing() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    for n in 0..20 {
        fixture::change_feature(&t.store, &fx, n, "before the crash")
            .await
            .unwrap();
    }
    // The first worker stops right after claiming, holding the lease (its heartbeat keeps it):
    // it is mid-build when it gets killed. Its lease is the production one, 30 s.
    let doomed = start_worker(&t, Some("claimed"), 30_000);
    let start = Instant::now();
    let owner = loop {
        let mut tx = t.store.read().await.unwrap();
        let job = queue::get_job(&mut tx, fx.environment_id).await.unwrap();
        if let Some(owner) = job
            .filter(|j| j.state == queue::JobState::Running)
            .and_then(|j| j.lease_owner)
        {
            break owner;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "worker never claimed the job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(doomed); // SIGKILL, mid-build
    assert_eq!(revisions(&t.store, fx.environment_id).await.1, None);

    // A second worker takes over as soon as it is up: the dead one's claim session ended with
    // its process, 30 s before its lease would have.
    let rescue = Instant::now();
    let _rescuer = start_worker(&t, None, 30_000);
    wait_converged(&t.store, fx.environment_id, Duration::from_secs(10)).await;
    eprintln!("rescued after {:?}", rescue.elapsed());
    let mut tx = t.store.read().await.unwrap();
    let log = queue::publish_log(&mut tx, Some(fx.environment_id), 100)
        .await
        .unwrap();
    let published = log
        .iter()
        .find(|e| e.outcome == queue::BuildOutcome::Published)
        .unwrap();
    assert_ne!(published.worker, owner, "published by the rescuer");

    assert!(queue::get_job(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .is_none());
    let status = queue::status(&mut tx, flagstone_store::now_ms())
        .await
        .unwrap();
    assert_eq!((status.pending, status.running, status.parked), (0, 0, 0));
    assert_eq!(status.stale_environments, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_postgres_never_build_one_environment_at_once() {
    let t = test_store().await;
    if t.pg_schema.is_none() {
        return; // SQLite: one process.
    }
    let mut envs = Vec::new();
    for _ in 0..3 {
        envs.push(
            fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
                .await
                .unwrap(),
        );
    }
    let _a = start_worker(&t, None, 2_000);
    let _b = start_worker(&t, None, 2_000);
    let stop = Instant::now() + Duration::from_secs(4);
    let mut n = 0;
    while Instant::now() < stop {
        for fx in &envs {
            fixture::change_feature(&t.store, fx, n, &format!("v{n}"))
                .await
                .unwrap();
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    for fx in &envs {
        wait_converged(&t.store, fx.environment_id, Duration::from_secs(20)).await;
    }
    let mut tx = t.store.read().await.unwrap();
    let mut workers = std::collections::HashSet::new();
    for fx in &envs {
        let log = queue::publish_log(&mut tx, Some(fx.environment_id), 10_000)
            .await
            .unwrap();
        assert!(log.len() >= 2, "{} builds", log.len());
        assert_builds_never_overlap(fx.environment_id, &log);
        workers.extend(log.iter().map(|e| e.worker.clone()));
    }
    assert_eq!(workers.len(), 2, "both workers took part");
}
