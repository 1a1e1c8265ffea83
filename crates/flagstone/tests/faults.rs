//! The fault suite: real `flagstone worker` and `flagstone edge` processes on one database while
//! changes stream in, with faults injected from outside — SIGKILL of workers at random moments,
//! database connections cut with `pg_terminate_backend`. Each test is bounded in time and ends
//! by checking that nothing was lost (every environment publishes its current revision), nothing
//! is stuck (no job left running or parked) and no environment was built by two workers at once.
//! `.ci/run` runs it on PostgreSQL (the connection faults are PostgreSQL-only).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flagstone_store::document::{fixture, fixture::Fixture};
use flagstone_store::queue;
use flagstone_store::testing::{test_store, TestStore};
use flagstone_store::{sql, Store};
use rand::Rng;

mod common;
use common::{
    assert_builds_never_overlap, child_url, eventually, flags, free_port, http, readiness,
    revisions, wait_live, Children, Proc,
};

const SHAPE: fixture::Shape = fixture::Shape {
    features: 20,
    mv_features: 2,
    segments: 10,
    overrides: 50,
};

// FAULTS_CHILD_LOG=warn shows what the children decided when a run fails.
const CHILDREN: Children = Children::logging("error").overridden_by("FAULTS_CHILD_LOG");

/// A worker with the production lease: anything faster than 30 s is the claim session's doing.
fn start_worker(url: &str) -> Proc {
    CHILDREN.worker(url, &["--worker-lease-ms", "30000"])
}

/// Commits a change to every environment every 10 ms until stopped.
/// The writer returns the number of its last change (feature `n` of each got value `w<n>`).
fn start_writes(
    store: &Store,
    envs: &[Fixture],
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (store, envs, flag) = (store.clone(), envs.to_vec(), stop.clone());
    let writer = tokio::spawn(async move {
        let mut n = 0;
        while !flag.load(Ordering::SeqCst) {
            n += 1;
            for fx in &envs {
                // A store the test process owns: its connections are never cut.
                fixture::change_feature(&store, fx, n, &format!("w{n}"))
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        n
    });
    (stop, writer)
}

/// Every environment publishes its current revision within `within`; then the queue is empty
/// (nothing running, nothing parked) and no environment's builds overlap in the publish log.
async fn assert_converged(store: &Store, envs: &[Fixture], within: Duration) {
    let start = Instant::now();
    for fx in envs {
        loop {
            let (current, published) = revisions(store, fx.environment_id).await;
            if published == Some(current) {
                break;
            }
            if start.elapsed() >= within {
                let mut tx = store.read().await.unwrap();
                let job = queue::get_job(&mut tx, fx.environment_id).await.unwrap();
                let log = queue::publish_log(&mut tx, Some(fx.environment_id), 5)
                    .await
                    .unwrap();
                panic!(
                    "environment {}: revision {current}, published {published:?} after \
                     {within:?}; job {job:?}; last builds {log:?}",
                    fx.environment_id
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut tx = store.read().await.unwrap();
    for fx in envs {
        // A follow-up may still be due for a moment; nothing may be parked or held.
        let job = queue::get_job(&mut tx, fx.environment_id).await.unwrap();
        assert!(
            job.as_ref()
                .is_none_or(|j| j.state == queue::JobState::Pending),
            "{job:?}"
        );
        let log = queue::publish_log(&mut tx, Some(fx.environment_id), 10_000)
            .await
            .unwrap();
        assert_builds_never_overlap(fx.environment_id, &log);
    }
}

/// Waits until the edge on `port` answers `fx`'s flags with what `ok` accepts; returns that.
async fn wait_flags(port: u16, fx: &Fixture, ok: impl Fn(&(u16, String)) -> bool) -> (u16, String) {
    let ok = &ok;
    let what = format!(
        "the edge on port {port} serves environment {}",
        fx.environment_id
    );
    eventually(
        &what,
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async move {
            match flags(port, &fx.api_key).await {
                Some(answer) if ok(&answer) => Ok(answer),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

async fn environments(t: &TestStore, n: usize) -> Vec<Fixture> {
    let mut envs = Vec::new();
    for _ in 0..n {
        envs.push(fixture::create(&t.store, SHAPE).await.unwrap());
    }
    envs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_during_a_burst_lose_nothing() {
    let t = test_store().await;
    let envs = environments(&t, 3).await;
    let url = child_url(&t);
    let mut workers = [start_worker(&url), start_worker(&url)];
    let (stop, writer) = start_writes(&t.store, &envs);
    let mut rng = rand::thread_rng();
    let started = Instant::now();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..250))).await;
        let victim = rng.gen_range(0..2);
        // SIGKILL (the old process is reaped when replaced), and a new worker at once.
        workers[victim] = start_worker(&url);
    }
    stop.store(true, Ordering::SeqCst);
    let _ = writer.await.unwrap();
    eprintln!("20 SIGKILLs in {:?}", started.elapsed());
    // Far less than the 30 s lease: nothing waited for one.
    assert_converged(&t.store, &envs, Duration::from_secs(10)).await;
}

/// Cuts every connection the test's child processes hold (they are tagged with an
/// `application_name`), as a database failover or a network blip would.
async fn cut_connections(store: &Store, app: &str) -> i64 {
    let mut tx = store.read().await.unwrap();
    let cut: Vec<bool> = sql!(&mut tx, |c| {
        sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(app)
        .fetch_all(c)
        .await
        .unwrap()
    });
    cut.len() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_during_a_burst_workers_and_edges_reconnect_and_converge() {
    let t = test_store().await;
    if t.pg_schema.is_none() {
        eprintln!("skipped: connection cuts need PostgreSQL (FLAGSTONE_TEST_DATABASE_URL)");
        return;
    }
    let envs = environments(&t, 2).await;
    let app = format!("faults_{}", &t.pg_schema.as_deref().unwrap()[2..14]);
    let url = format!("{}&application_name={app}", child_url(&t));
    let _workers = [start_worker(&url), start_worker(&url)];
    let port = free_port();
    let cache = tempfile::tempdir().unwrap();
    let _edge = CHILDREN.db_edge(&url, port, cache.path(), &["--edge-poll-ms", "500"]);
    // The first documents are published and served before the faults start.
    let (stop, writer) = start_writes(&t.store, &envs);
    for fx in &envs {
        wait_flags(port, fx, |(s, _)| *s == 200).await;
    }

    // For two seconds every connection of the workers and the edge is cut as soon as it
    // opens. The edge keeps answering from its last good documents meanwhile.
    let mut cuts = 0;
    let mut answered = 0;
    let mut saw_unreachable = false;
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(2) {
        cuts += cut_connections(&t.store, &app).await;
        for fx in &envs {
            let (status, body) = flags(port, &fx.api_key).await.expect("the edge answers");
            assert_eq!(status, 200, "{body}");
            answered += 1;
        }
        let (status, body) = http(port, "GET", "/health/readiness", &[], None)
            .await
            .expect("readiness answers");
        // Ready throughout: it has documents to serve, whatever the store does.
        assert_eq!(status, 200, "{body}");
        if let Ok(r) = serde_json::from_str::<serde_json::Value>(&body) {
            if r["store_reachable"] == false {
                saw_unreachable = true;
                // Still ready: it has documents to serve.
                assert_eq!(r["ready"], true, "{r}");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "cut {cuts} connections in 2 s; the edge answered all {answered} SDK requests; \
         readiness reported the store unreachable: {saw_unreachable}"
    );
    assert!(cuts > 0, "no connection was cut");
    stop.store(true, Ordering::SeqCst);
    let last = writer.await.unwrap();

    // Everyone reconnects on their own: every change is published, and the edge serves the
    // last one of each environment and says it is in sync again.
    assert_converged(&t.store, &envs, Duration::from_secs(15)).await;
    let needle = format!("\"w{last}\"");
    let start = Instant::now();
    for fx in &envs {
        loop {
            let body = flags(port, &fx.api_key)
                .await
                .map(|(_, b)| b)
                .unwrap_or_default();
            let r = readiness(port).await;
            let in_sync = r.as_ref().is_some_and(|r| {
                r["store_reachable"] == true
                    && r["serving_from_cache"] == false
                    && r["staleness_seconds"].as_f64().is_some_and(|s| s < 5.0)
            });
            if body.contains(&needle) && in_sync {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the edge did not catch up with change {needle}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_restarted_while_the_store_is_unreachable_serves_its_cached_documents() {
    let t = test_store().await;
    if t.pg_schema.is_none() {
        eprintln!("skipped: an unreachable store needs PostgreSQL (FLAGSTONE_TEST_DATABASE_URL)");
        return;
    }
    let envs = environments(&t, 1).await;
    let fx = &envs[0];
    fixture::change_feature(&t.store, fx, 0, "w-cached")
        .await
        .unwrap();
    let url = child_url(&t);
    let _worker = start_worker(&url);
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let edge = CHILDREN.db_edge(&url, port, cache.path(), &[]);
    wait_flags(port, fx, |(s, b)| *s == 200 && b.contains("\"w-cached\"")).await;
    drop(edge); // SIGKILL

    // The same edge comes back while the database is unreachable (nothing listens there).
    let unreachable = format!("postgres://postgres@127.0.0.1:{}/test", free_port());
    let port = free_port();
    let _edge = CHILDREN.db_edge(&unreachable, port, cache.path(), &[]);
    let (_, body) = wait_flags(port, fx, |(s, _)| *s == 200).await;
    assert!(body.contains("\"w-cached\""), "{body}");
    let r = readiness(port).await.expect("readiness answers");
    assert_eq!(r["ready"], true, "{r}");
    assert_eq!(r["store_reachable"], false, "{r}");
    assert_eq!(r["serving_from_cache"], true, "{r}");
    assert!(r["staleness_seconds"].as_f64().is_some(), "{r}");
    // An unknown key is still refused: the cache is no open door.
    let (status, _) = http(
        port,
        "GET",
        "/api/v1/flags/",
        &[("X-Environment-Key", "not-a-key")],
        None,
    )
    .await
    .unwrap();
    assert!((400..500).contains(&status), "{status}");
}

/// Commits one change to `fx` and times how long until it is published.
async fn publish_latency(store: &Store, fx: &Fixture, n: usize) -> Duration {
    let revision = fixture::change_feature(store, fx, n, &format!("probe{n}"))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        if revisions(store, fx.environment_id).await.1 >= Some(revision) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "environment {} did not publish revision {revision}",
            fx.environment_id
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_environment_is_parked_while_a_healthy_one_keeps_its_latency() {
    let t = test_store().await;
    let envs = environments(&t, 2).await;
    let (poison, healthy) = (&envs[0], &envs[1]);
    let url = child_url(&t);
    let _workers = [start_worker(&url), start_worker(&url)];
    // Usual latency: the healthy environment alone.
    let mut usual = Vec::new();
    for n in 0..10 {
        usual.push(publish_latency(&t.store, healthy, n).await);
    }
    // The poison environment's document no longer fits its project's budget, and changes keep
    // coming to it (each one un-parks it for another try: the change might be the fix).
    let mut tx = t.store.write().await.unwrap();
    sql!(&mut tx, |c| sqlx::query(
        "UPDATE projects SET limits = '{\"max_document_bytes\": 1000}' WHERE id = $1"
    )
    .bind(poison.project_id)
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    tx.commit().await.unwrap();
    let (stop, writer) = start_writes(&t.store, std::slice::from_ref(poison));
    let mut beside = Vec::new();
    for n in 10..20 {
        beside.push(publish_latency(&t.store, healthy, n).await);
    }
    stop.store(true, Ordering::SeqCst);
    let _ = writer.await.unwrap();

    // The poison job ends parked with its reason; the healthy one converged.
    let start = Instant::now();
    loop {
        let mut tx = t.store.read().await.unwrap();
        let job = queue::get_job(&mut tx, poison.environment_id)
            .await
            .unwrap();
        if job
            .as_ref()
            .is_some_and(|j| j.state == queue::JobState::Parked)
        {
            assert_eq!(
                job.unwrap().park_reason,
                Some(queue::ParkReason::DocumentTooLarge)
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the poison environment was not parked: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_converged(
        &t.store,
        std::slice::from_ref(healthy),
        Duration::from_secs(5),
    )
    .await;
    let (usual, beside) = (median(usual), median(beside));
    eprintln!(
        "healthy environment publish latency, median of 10: alone {usual:?}, beside a poison \
         environment under a stream of changes {beside:?}"
    );
    assert!(
        beside <= usual * 3 + Duration::from_millis(300),
        "the poison environment slowed the healthy one: {usual:?} -> {beside:?}"
    );
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with a file until it refuses more.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).and_then(|_| f.flush()).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_on_sqlite_refuses_writes_with_503_loses_nothing_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = match SmallDisk::mount(&tmp.path().join("disk"), "4m") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: cannot mount a small tmpfs to fill ({e}); run as root");
            return;
        }
    };
    let url = format!("sqlite://{}", disk.0.join("flagstone.db").display());
    let project = {
        let store = Store::open(&flagstone_store::ConnectOptions::new(url.clone()))
            .await
            .unwrap();
        let fx = fixture::create(&store, SHAPE).await.unwrap();
        // Room for the features the test creates: the disk must be what runs out.
        let mut tx = store.write().await.unwrap();
        sql!(&mut tx, |c| sqlx::query(
            "UPDATE projects SET limits = '{\"max_features\": 100000}' WHERE id = $1"
        )
        .bind(fx.project_id)
        .execute(c)
        .await
        .unwrap()
        .rows_affected());
        tx.commit().await.unwrap();
        store.close().await;
        fx.project_id
    };
    let key = "disk-full-admin-key-0123456789";
    let port = free_port();
    let cache = tmp.path().join("cache");
    let serve = CHILDREN.serve(&url, port, &cache, &["--admin-key", key]);
    wait_live("serve", port, Duration::from_secs(20)).await;
    let auth = format!("Api-Key {key}");
    let path = format!("/api/v1/projects/{project}/features/");
    let create = |name: String| {
        let (auth, path) = (auth.clone(), path.clone());
        async move {
            http(
                port,
                "POST",
                &path,
                &[("Authorization", &auth)],
                Some(&serde_json::json!({ "name": name })),
            )
            .await
            .expect("serve answers")
        }
    };

    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let name = format!("before_full_{n}");
        assert_eq!(create(name.clone()).await.0, 201);
        acknowledged.push(name);
    }
    let filler = fill(&disk.0);
    let mut refused = None;
    for n in 0..500 {
        let name = format!("while_full_{n}");
        match create(name.clone()).await {
            (201, _) => acknowledged.push(name),
            (503, body) => {
                refused = Some(body);
                break;
            }
            (status, body) => panic!("{status} while the disk is full: {body}"),
        }
    }
    let body = refused.expect("500 writes on a full disk and none refused");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
    assert_eq!(body["reason"], "storage_full", "{body}");
    // Reads go on.
    let (status, _) = http(port, "GET", &path, &[("Authorization", &auth)], None)
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Space returns: writes succeed again without a restart.
    std::fs::remove_file(filler).unwrap();
    let start = Instant::now();
    loop {
        match create("after_space_returned".into()).await {
            (201, _) => break,
            (503, _) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            (status, body) => panic!("{status} after space returned: {body}"),
        }
    }
    acknowledged.push("after_space_returned".into());

    // Nothing acknowledged was lost, even through a crash.
    drop(serve);
    let store = Store::open(&flagstone_store::ConnectOptions::new(url))
        .await
        .unwrap();
    let mut tx = store.read().await.unwrap();
    let names: Vec<String> = sql!(&mut tx, |c| {
        sqlx::query_scalar("SELECT name FROM features WHERE project_id = $1")
            .bind(project)
            .fetch_all(c)
            .await
            .unwrap()
    });
    for name in &acknowledged {
        assert!(names.contains(name), "acknowledged feature {name} lost");
    }
    eprintln!(
        "disk full: {} writes acknowledged on the full disk before the first 503 (reason \
         storage_full); all {} acknowledged features present after space returned and a SIGKILL",
        acknowledged.len() - 6,
        acknowledged.len()
    );
    drop(tx);
    store.close().await;
}
