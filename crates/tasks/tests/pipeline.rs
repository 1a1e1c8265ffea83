//! The task processor's worker loop, for real: a burst of thousands of changes to one
//! environment converges in a handful of builds, and a worker shutting down hands its job back.
//! The queue's rules themselves are stepped deterministically in `queue.rs`.

use std::time::{Duration, Instant};

use flagstone_store::document::{self, fixture, BuildOptions};
use flagstone_store::queue::{self, BuildOutcome, JobState};
use flagstone_store::testing::test_store;
use flagstone_store::{sql, Store};
use flagstone_tasks::{Breakpoint, Breakpoints, Publications, Rules, Worker, WorkerConfig};
use tokio::sync::{broadcast, oneshot};

fn config() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(20),
        rules: Rules {
            lease_ms: 5_000,
            backoff_base_ms: 50,
            backoff_cap_ms: 200,
            ..Rules::default()
        },
        ..WorkerConfig::default()
    }
}

/// Starts a worker; dropping the returned sender stops it.
fn start_worker(
    store: &Store,
    cfg: WorkerConfig,
    publications: Publications,
) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = Worker::new(store.clone(), cfg, publications);
    tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    stop
}

async fn revisions(store: &Store, env: i64) -> (i64, Option<i64>) {
    let mut tx = store.read().await.unwrap();
    let current: i64 = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT revision FROM environments WHERE id = $1"
    )
    .bind(env)
    .fetch_one(c)
    .await
    .unwrap());
    let published = document::stored::published_revision(&mut tx, env)
        .await
        .unwrap();
    (current, published)
}

/// Waits for the environment's current revision to be published, listening to the worker's
/// announcements (no polling); returns how long it took.
async fn wait_converged(
    store: &Store,
    announced: &mut broadcast::Receiver<(i64, i64)>,
    env: i64,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (current, published) = revisions(store, env).await;
        if published == Some(current) {
            return start.elapsed();
        }
        // Wait for the next publish of anything, then look again.
        match tokio::time::timeout_at(deadline, announced.recv()).await {
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("announcements ended: {e}"),
            Err(_) => panic!(
                "environment {env} not converged after {within:?}: current {current}, published {published:?}"
            ),
        }
    }
}

async fn builds(store: &Store, env: i64) -> Vec<BuildOutcome> {
    let mut tx = store.read().await.unwrap();
    queue::publish_log(&mut tx, Some(env), 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.outcome)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_5000_changes_costs_at_most_10_builds_and_publishes_the_final_state() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, fixture::Shape::INCIDENT)
        .await
        .unwrap();
    let publications = Publications::new();
    let mut announced = publications.subscribe();
    let stop = start_worker(&t.store, config(), publications);
    wait_converged(
        &t.store,
        &mut announced,
        fx.environment_id,
        Duration::from_secs(30),
    )
    .await;
    let before = builds(&t.store, fx.environment_id).await.len();

    // 5,000 changes as fast as the store takes them, from 4 concurrent clients.
    let burst = Instant::now();
    let mut clients = Vec::new();
    for client in 0..4 {
        let store = t.store.clone();
        let fx = fx.clone();
        clients.push(tokio::spawn(async move {
            for n in (client..5_000).step_by(4) {
                fixture::change_feature(&store, &fx, n, &format!("burst-{n}"))
                    .await
                    .unwrap();
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let burst = burst.elapsed();
    let converged = wait_converged(
        &t.store,
        &mut announced,
        fx.environment_id,
        Duration::from_secs(30),
    )
    .await;
    let all = builds(&t.store, fx.environment_id).await;
    let during = &all[before..];
    eprintln!(
        "burst of 5000 changes took {burst:?}; converged {converged:?} after the last; {} builds: {during:?}",
        during.len()
    );
    // Coalescing is bounded by time, not by the number of changes: during a sustained burst
    // an environment is published at most about once per `max_delay` (1 s), so readers never
    // wait long. A burst that the store absorbs within 8 s costs at most 10 builds; a slower
    // store (PostgreSQL with fsync on a slow disk takes ~25 s for 5,000 commits to one
    // environment) gets at most one build per second of burst, plus two.
    let max_delay = t.store.publish_settings().max_delay_ms as f64 / 1000.0;
    let bound = if burst < Duration::from_secs(8) {
        10
    } else {
        (burst.as_secs_f64() / max_delay).ceil() as usize + 2
    };
    assert!(
        during.len() <= bound,
        "{} builds for one burst (bound {bound})",
        during.len()
    );
    assert!(
        converged < Duration::from_secs(2),
        "converged after {converged:?}"
    );

    // What is published is exactly a fresh build of the final state.
    let fresh = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    let mut tx = t.store.read().await.unwrap();
    let stored = document::load(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision, fresh.revision);
    assert_eq!(stored.etag, fresh.etag);
    assert_eq!(stored.json().unwrap(), fresh.json().unwrap());
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_shutting_down_hands_its_job_back() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    let (breakpoints, mut paused) = Breakpoints::stepped();
    let cfg = WorkerConfig {
        breakpoints: Some(breakpoints),
        shutdown_grace: Duration::from_millis(100),
        ..config()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = Worker::new(t.store.clone(), cfg, Publications::new());
    let handle = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    // The worker stops right after claiming: the job is running under its lease.
    let at = paused.recv().await.unwrap();
    assert_eq!(
        (at.at, at.environment_id),
        (Breakpoint::Claimed, fx.environment_id)
    );
    let mut tx = t.store.read().await.unwrap();
    let job = queue::get_job(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    assert_eq!(job.state, JobState::Running);
    // Shut down while it is held there (never resumed): the grace period passes and the job
    // is handed back.
    drop(stop);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
    let mut tx = t.store.read().await.unwrap();
    let job = queue::get_job(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Pending, 0),
        "handed back, no attempt counted"
    );
    drop(at);
}
