//! "A crash must not cost the lease": `flagstone serve` killed with SIGKILL 20 times at random
//! moments while changes stream in, restarted each time. After every restart, every change
//! acknowledged before it is published within 2 s of the new process being up — on SQLite and
//! on PostgreSQL — although the publish lease is 30 s: a claim held by the killed process is
//! reclaimed because its session ended, not because its lease ran out. The figures this prints
//! are the ones in RELIABILITY.md (`FLAGSTONE_CRASH_KILLS` changes the number of kills).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flagstone_store::document::fixture;
use flagstone_store::queue;
use flagstone_store::testing::test_store;
use flagstone_store::Store;
use rand::Rng;

mod common;
use common::{child_url, free_port, http, revisions, wait_live, Children, Proc};

/// The target: published within this long after the restarted process is up (RELIABILITY.md).
const TARGET: Duration = Duration::from_secs(2);
/// What fails the test: well under the 30 s lease (a reclaim that waited for it fails), with
/// room for a CI machine far busier than the one the target was measured on.
const LIMIT: Duration = Duration::from_secs(5);

fn start_serve(url: &str, port: u16) -> Proc {
    let bind = format!("127.0.0.1:{port}");
    Children::logging("error").spawn(&[
        "serve",
        "--database-url",
        url,
        "--bind",
        &bind,
        "--admin-key",
        "crash-test-admin-key-0123456789",
        // The production lease: a reclaim that waited for it would take 30 s.
        "--worker-lease-ms",
        "30000",
    ])
}

async fn job_state(store: &Store, env: i64) -> Option<queue::JobState> {
    let mut tx = store.read().await.unwrap();
    queue::get_job(&mut tx, env).await.unwrap().map(|j| j.state)
}

/// How long after `since` the environment published `revision` (bounded).
async fn published_after(store: &Store, env: i64, revision: i64, since: Instant) -> Duration {
    loop {
        if revisions(store, env).await.1.unwrap_or(0) >= revision {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "revision {revision} of environment {env} not published 20 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The value the SDK endpoint serves for the fixture's first feature.
async fn served_value(port: u16, key: &str) -> Option<String> {
    let (status, body) = http(
        port,
        "GET",
        "/api/v1/flags/",
        &[("X-Environment-Key", key)],
        None,
    )
    .await?;
    if status != 200 {
        return None;
    }
    let flags: serde_json::Value = serde_json::from_str(&body).ok()?;
    flags
        .as_array()?
        .iter()
        .filter_map(|f| f["feature_state_value"].as_str())
        .find(|v| v.starts_with('w'))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_of_serve_during_writes_lose_nothing_and_cost_no_lease() {
    let kills: usize = std::env::var("FLAGSTONE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let t = test_store().await;
    let backend = if t.pg_schema.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    // Some segments and overrides make each build take a while, so kills land mid-build.
    let shape = fixture::Shape {
        segments: 40,
        overrides: 500,
        ..fixture::Shape::INCIDENT
    };
    let fx = fixture::create(&t.store, shape).await.unwrap();
    let url = child_url(&t);
    let port = free_port();

    // A stream of changes, each acknowledged (committed) before the next; only feature 0
    // changes, to "w<n>".
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, fx, stop, acked) = (t.store.clone(), fx.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                // The feature count is the stride: always feature 0.
                let i = n * fx.feature_state_ids.len();
                fixture::change_feature(&store, &fx, i, &format!("w{n}"))
                    .await
                    .unwrap();
                acked.store(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let mut serve = start_serve(&url, port);
    wait_live("serve", port, Duration::from_secs(30)).await;
    let mut rng = rand::thread_rng();
    let mut samples = Vec::new(); // (published after the restart, killed mid-build)
    for k in 0..kills {
        if k % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(100..600))).await;
        } else {
            // Every other kill is aimed: the moment the process has claimed a publish.
            let start = Instant::now();
            while job_state(&t.store, fx.environment_id).await != Some(queue::JobState::Running)
                && start.elapsed() < Duration::from_secs(5)
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        drop(serve); // SIGKILL, and reaped
                     // Whether the dead process held the claim (it was mid-build).
        let held = job_state(&t.store, fx.environment_id).await == Some(queue::JobState::Running);
        serve = start_serve(&url, port);
        wait_live("serve", port, Duration::from_secs(30)).await;
        let up = Instant::now();
        // Everything acknowledged by now — before and during the downtime.
        let (acknowledged, _) = revisions(&t.store, fx.environment_id).await;
        let took = published_after(&t.store, fx.environment_id, acknowledged, up).await;
        samples.push((took, held));
    }

    // The last change, checked as an SDK sees it.
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let last = format!("w{}", acked.load(Ordering::SeqCst));
    let up = Instant::now();
    loop {
        if served_value(port, &fx.api_key).await.as_deref() == Some(last.as_str()) {
            break;
        }
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "the SDK endpoint never served the last acknowledged change {last}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sdk = up.elapsed();

    let mut tx = t.store.read().await.unwrap();
    let status = queue::status(&mut tx, flagstone_store::now_ms())
        .await
        .unwrap();
    assert_eq!(status.parked, 0, "nothing parked");
    let mut builds: Vec<i64> = queue::publish_log(&mut tx, Some(fx.environment_id), 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.finished_at - e.started_at)
        .collect();
    builds.sort();
    drop(tx);
    let mid_build: Vec<Duration> = samples.iter().filter(|s| s.1).map(|s| s.0).collect();
    let mut samples: Vec<Duration> = samples.into_iter().map(|s| s.0).collect();
    samples.sort();
    let ms = |d: &Duration| d.as_millis();
    eprintln!(
        "serve crash ({backend}): {kills} SIGKILLs, {} while the dead process held the publish \
         claim (those published after {:?} ms); all changes acknowledged before a restart \
         published after the process was up in: median {} ms, p90 {} ms, max {} ms; last \
         change served by the SDK endpoint after {} ms; a build takes {} ms (median of {})",
        mid_build.len(),
        mid_build.iter().map(ms).collect::<Vec<_>>(),
        ms(&samples[samples.len() / 2]),
        ms(&samples[samples.len() * 9 / 10]),
        ms(samples.last().unwrap()),
        ms(&sdk),
        builds.get(builds.len() / 2).copied().unwrap_or(0),
        builds.len(),
    );
    assert!(
        mid_build.len() >= kills / 4,
        "too few kills landed mid-build to show anything"
    );
    let worst = *samples.last().unwrap();
    eprintln!(
        "target of {TARGET:?} {}",
        if worst <= TARGET { "met" } else { "MISSED" }
    );
    assert!(
        worst <= LIMIT,
        "a restart took {worst:?} to publish what was acknowledged (target {TARGET:?})"
    );
}
