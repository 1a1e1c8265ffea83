//! The incident, replayed against the task processor: a burst of thousands of changes to one
//! environment, and a poison environment next to a healthy one.

use std::time::{Duration, Instant};

use flagstone_store::document::{self, fixture, BuildOptions};
use flagstone_store::queue::{self, QueueSettings};
use flagstone_store::testing::test_store;
use flagstone_store::{sql, Store};
use flagstone_tasks::{Publications, Worker, WorkerConfig};
use tokio::sync::oneshot;

fn config() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(20),
        queue: QueueSettings {
            lease_ms: 5_000,
            backoff_base_ms: 50,
            backoff_cap_ms: 200,
            ..QueueSettings::default()
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

async fn wait_converged(store: &Store, env: i64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (current, published) = revisions(store, env).await;
        if published == Some(current) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "environment {env} not converged after {within:?}: current {current}, published {published:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn builds(store: &Store, env: i64) -> Vec<String> {
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
    let stop = start_worker(&t.store, config(), Publications::new());
    wait_converged(&t.store, fx.environment_id, Duration::from_secs(30)).await;
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
    let converged = wait_converged(&t.store, fx.environment_id, Duration::from_secs(30)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_environment_is_parked_while_another_keeps_publishing() {
    let t = test_store().await;
    let poison = fixture::create(&t.store, fixture::Shape::INCIDENT)
        .await
        .unwrap();
    let healthy = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    // The poison environment's document no longer fits its budget.
    let mut tx = t.store.write().await.unwrap();
    sql!(&mut tx, |c| sqlx::query(
        "UPDATE projects SET limits = '{\"max_document_bytes\": 200000}' WHERE id = $1"
    )
    .bind(poison.project_id)
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    tx.commit().await.unwrap();

    let publications = Publications::new();
    let mut announced = publications.subscribe();
    let stop = start_worker(&t.store, config(), publications);
    wait_converged(&t.store, healthy.environment_id, Duration::from_secs(10)).await;

    // The poison job ends up parked, with a reason an operator understands.
    let start = Instant::now();
    let job = loop {
        let mut tx = t.store.read().await.unwrap();
        let job = queue::get_job(&mut tx, poison.environment_id)
            .await
            .unwrap();
        if let Some(j) = job.filter(|j| j.state == "parked") {
            break j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "poison job never parked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job.park_reason.as_deref(), Some("document_too_large"));
    let err = job.last_error.unwrap();
    assert!(
        err.starts_with("document would exceed ") && err.ends_with("bytes (budget 200000)"),
        "{err}"
    );
    assert_eq!(
        builds(&t.store, poison.environment_id).await,
        vec!["parked"],
        "parked at once, not retried"
    );

    // Meanwhile the healthy environment publishes each change within its normal latency.
    for n in 0..5 {
        let rev = fixture::change_feature(&t.store, &healthy, n, "still fine")
            .await
            .unwrap();
        let took = wait_converged(&t.store, healthy.environment_id, Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(1), "change {n} took {took:?}");
        // Announced in-process too (what the edge follows on SQLite).
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let (env, r) = tokio::time::timeout_at(deadline.into(), announced.recv())
                .await
                .expect("announcement")
                .unwrap();
            if env == healthy.environment_id && r == rev {
                break;
            }
        }
    }
    let mut tx = t.store.read().await.unwrap();
    let status = queue::status(&mut tx).await.unwrap();
    assert_eq!(status.parked, 1);
    assert_eq!(status.stale_environments, 1);
    assert_eq!(status.stale[0].environment_id, poison.environment_id);
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_shutting_down_hands_its_job_back() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    let cfg = WorkerConfig {
        test_build_delay: Duration::from_secs(30),
        shutdown_grace: Duration::from_millis(100),
        ..config()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = Worker::new(t.store.clone(), cfg, Publications::new());
    let handle = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let start = Instant::now();
    loop {
        let mut tx = t.store.read().await.unwrap();
        let job = queue::get_job(&mut tx, fx.environment_id)
            .await
            .unwrap()
            .unwrap();
        if job.state == "running" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
        (job.state.as_str(), job.attempts),
        ("pending", 0),
        "handed back, no attempt counted"
    );
}
