//! Real processes: `flagstone edge` on the database and `flagstone edge --upstream`, restarted
//! on a cache directory of many environments while their store or upstream does not answer,
//! listen before the directory is read. `/health/readiness` answers at once, not ready, with
//! `loading_cache: true`; a cached key asked meanwhile is answered 200 with its cached flags,
//! never refused as unknown; once the directory is read, readiness says so and the edge is
//! ready. One cached document is a FIFO the test writes when it chooses (the edge reads the
//! directory by name, that one last), so "still loading" is a state the test holds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flagstone_edge::cache_writer::{write_cached, CachedMeta};
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::testing::test_store;
use serde_json::Value;

mod common;
use common::{free_port, http, Proc};

const CACHED: i64 = 300;
const FIRST_ENV: i64 = 1_000_000;
/// Sorts after every `env-1…` file: read last.
const LATE_ENV: i64 = 2_000_000;

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

/// `doc` as environment `env` with client key `key`, gzip, as cached.
fn as_environment(doc: &Value, env: i64, key: &str) -> Vec<u8> {
    use std::io::Write;
    let mut doc = doc.clone();
    doc["api_key"] = Value::from(key);
    doc["id"] = Value::from(env);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(doc.to_string().as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn cache(dir: &Path, env: i64, doc: &Value, sdk_features: &str) {
    let key = if env == LATE_ENV {
        "cached-late".to_string()
    } else {
        format!("cached-{}", env - FIRST_ENV)
    };
    write_cached(
        dir,
        &CachedMeta {
            environment_id: env,
            revision: 1,
            etag: "cached",
            shares_second: false,
            sdk_features: Some(sdk_features),
        },
        &as_environment(doc, env, &key),
    );
}

/// The late document's metadata, replaced by a FIFO: the edge's loader blocks on it until
/// `release` (or drop) writes it.
struct Late {
    fifo: PathBuf,
    meta: Option<Vec<u8>>,
}

impl Late {
    fn new(dir: &Path) -> Late {
        let fifo = dir.join(format!("env-{LATE_ENV}.meta.json"));
        let meta = std::fs::read(&fifo).unwrap();
        std::fs::remove_file(&fifo).unwrap();
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo");
        Late {
            fifo,
            meta: Some(meta),
        }
    }

    fn release(&mut self) {
        if let Some(meta) = self.meta.take() {
            let fifo = self.fifo.clone();
            // Returns once the edge has opened it; nothing waits for that here.
            std::thread::spawn(move || std::fs::write(fifo, meta));
        }
    }
}

impl Drop for Late {
    fn drop(&mut self) {
        self.release();
    }
}

async fn flags(port: u16, key: &str) -> Option<(u16, Value)> {
    let (status, body) = http(
        port,
        "GET",
        "/api/v1/flags/",
        &[("X-Environment-Key", key)],
        None,
    )
    .await?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// `(feature name, value)` of every flag, sorted.
fn values(flags: &Value) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = flags
        .as_array()
        .unwrap_or_else(|| panic!("not a flag list: {flags}"))
        .iter()
        .map(|f| {
            (
                f["feature"]["name"].as_str().unwrap().to_string(),
                f["feature_state_value"].clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

async fn readiness(port: u16) -> Option<(u16, Value)> {
    let (status, body) = http(port, "GET", "/health/readiness", &[], None).await?;
    Some((status, serde_json::from_str(&body).ok()?))
}

/// The first readiness answer (polled until the port is open).
async fn first_readiness(port: u16, started: Instant) -> (u16, Value) {
    loop {
        if let Some(r) = readiness(port).await {
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the edge on port {port} never listened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_listen_before_their_cache_is_read_and_answer_cached_keys_meanwhile() {
    let t = test_store().await;
    let fx = fixture::create(
        &t.store,
        Shape {
            features: 20,
            mv_features: 2,
            segments: 0,
            overrides: 0,
        },
    )
    .await
    .unwrap();
    let built = flagstone_store::document::build(&t.store, fx.environment_id, &Default::default())
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&built.json().unwrap()).unwrap();
    // An upstream and a database that accept connections and never answer (a connect would
    // wait for its timeout: the edge must not).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let no_database = format!("postgres://postgres@{}/none", silent.local_addr().unwrap());

    for kind in ["database", "upstream"] {
        let dir = tempfile::tempdir().unwrap();
        for env in (FIRST_ENV..FIRST_ENV + CACHED).chain([LATE_ENV]) {
            cache(dir.path(), env, &doc, &built.sdk_features);
        }
        let mut late = Late::new(dir.path());
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let cache_dir = dir.path().to_str().unwrap();
        let started = Instant::now();
        let _edge = match kind {
            "database" => spawn(&[
                "edge",
                "--database-url",
                &no_database,
                "--bind",
                &bind,
                "--edge-cache-dir",
                cache_dir,
            ]),
            _ => spawn(&[
                "edge",
                "--upstream",
                &silent_url,
                "--upstream-key",
                "fsk_never_checked",
                "--bind",
                &bind,
                "--edge-cache-dir",
                cache_dir,
            ]),
        };

        // Readiness answers as soon as the edge listens: loading, not ready yet.
        let (status, body) = first_readiness(port, started).await;
        eprintln!(
            "{kind} edge: first readiness answer after {:?}",
            started.elapsed()
        );
        // Generous for a loaded machine, and still below any connect timeout (3 s and more).
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{kind}: the edge waited for its source before listening"
        );
        assert_eq!(status, 503, "{kind}: {body}");
        assert_eq!(body["ready"], false, "{kind}: {body}");
        assert_eq!(body["loading_cache"], true, "{kind}: {body}");
        assert!(body["cache_loaded"].as_u64().unwrap() <= CACHED as u64);
        if kind == "database" {
            assert_eq!(body["documents_loaded"], false, "{body}");
        }

        // Cached keys asked while loading: their cached flags, at once or once read.
        let (status, body) = flags(port, "cached-0").await.unwrap();
        assert_eq!(status, 200, "{kind}: cached-0: {body}");
        let expected = values(&body);
        assert_eq!(expected.len(), 20, "{kind}: {body}");
        for i in [CACHED / 2, CACHED - 1] {
            let (status, body) = flags(port, &format!("cached-{i}")).await.unwrap();
            assert_eq!(status, 200, "{kind}: cached-{i}: {body}");
            assert_eq!(values(&body), expected, "{kind}: cached-{i}");
        }
        // Everything but the late document is read; the load is not over.
        let (_, body) = readiness(port).await.unwrap();
        assert_eq!(body["loading_cache"], true, "{kind}: {body}");
        assert_eq!(body["cache_loaded"], CACHED, "{kind}: {body}");
        // The late one, asked before its document is read, is answered from it.
        let late_answer = tokio::spawn(async move { flags(port, "cached-late").await });
        tokio::task::yield_now().await;
        late.release();
        let (status, body) = late_answer.await.unwrap().unwrap();
        assert_eq!(status, 200, "{kind}: {body}");
        assert_eq!(values(&body), expected);

        // Read: ready (serving the cache, its source still silent). The directory is read a
        // moment before the initial load is declared over.
        let deadline = Instant::now() + Duration::from_secs(30);
        let body = loop {
            let (status, body) = readiness(port).await.unwrap();
            if body["loading_cache"] == false && status == 200 {
                break body;
            }
            assert!(Instant::now() < deadline, "{kind}: still loading: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(body["ready"], true, "{kind}: {body}");
        assert_eq!(body["cache_loaded"], CACHED + 1, "{kind}: {body}");
        assert_eq!(body["environments"], CACHED + 1, "{kind}: {body}");
        assert_eq!(body["serving_from_cache"], true, "{kind}: {body}");
        let (status, _) = flags(port, "never-cached").await.unwrap();
        assert_eq!(status, 403, "{kind}: an unknown key is refused once loaded");
    }
}
