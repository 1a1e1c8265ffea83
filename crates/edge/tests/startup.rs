//! An edge's start-up and first compiles. Restarted on a cache directory of many environments
//! with its store not answering, an edge is loading at once and answers while it reads: a
//! cached key asked meanwhile gets its cached flags (200), never "unknown key", whether its
//! document was read yet or not (it waits for it); a key the cache does not hold is refused
//! once the load is over. One cached document is a FIFO the test writes when it chooses, so
//! "still loading" is a state the test holds, not a race it hopes to win.
//!
//! A large environment's first compile runs once for concurrent first requests, on a blocking
//! thread: the async worker that asked keeps answering meanwhile.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use flagstone_edge::cache_writer::{write_cached, CachedMeta};
use flagstone_edge::published::Published;
use flagstone_edge::registry::BLOCKING_BUILD_FROM_BYTES;
use flagstone_edge::{EdgeConfig, EdgeState, Follower, FollowerConfig, PublishFeed, Registry};
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::document::BuiltDocument;
use flagstone_store::testing::test_store;
use flagstone_store::Store;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Environments in the cache directory (the loader reads 256 per batch). The late one's files
/// sort after theirs, and the loader reads by name: it blocks on the FIFO only once all of
/// these are read.
const CACHED: i64 = 300;
const FIRST_ENV: i64 = 1_000_000;
const LATE_ENV: i64 = 2_000_000;

async fn flags(app: &Router, key: &str) -> (StatusCode, Value) {
    let req = Request::get("/api/v1/flags")
        .header("x-environment-key", key)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
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

async fn document(store: &Store, shape: Shape) -> BuiltDocument {
    let fx = fixture::create(store, shape).await.unwrap();
    flagstone_store::document::build(store, fx.environment_id, &Default::default())
        .await
        .unwrap()
}

/// `doc` as environment `env` with client key `key` (gzip, as cached).
fn as_environment(doc: &Value, env: i64, key: &str) -> Vec<u8> {
    use std::io::Write;
    let mut doc = doc.clone();
    doc["api_key"] = Value::from(key);
    doc["id"] = Value::from(env);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(doc.to_string().as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn cache(dir: &Path, env: i64, body: &[u8], sdk_features: &str) {
    write_cached(
        dir,
        &CachedMeta {
            environment_id: env,
            revision: 1,
            etag: "cached",
            shares_second: false,
            sdk_features: Some(sdk_features),
        },
        body,
    );
}

/// A cached document whose metadata file is a FIFO: reading it blocks the loader until
/// [`Late::release`] writes it (also on drop, so a failing test does not leave the loader's
/// blocking thread, and the runtime's shutdown, waiting forever).
struct Late {
    fifo: PathBuf,
    meta: Option<Vec<u8>>,
}

impl Late {
    fn new(dir: &Path, env: i64, body: &[u8], sdk_features: &str) -> Late {
        cache(dir, env, body, sdk_features);
        let fifo = dir.join(format!("env-{env}.meta.json"));
        let meta = std::fs::read(&fifo).unwrap();
        std::fs::remove_file(&fifo).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo");
        Late {
            fifo,
            meta: Some(meta),
        }
    }

    /// Lets the loader read it: blocks (on a blocking thread) until the loader opens it.
    async fn release(&mut self) {
        if let Some(meta) = self.meta.take() {
            let fifo = self.fifo.clone();
            tokio::task::spawn_blocking(move || std::fs::write(fifo, meta))
                .await
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Late {
    fn drop(&mut self) {
        if let Some(meta) = self.meta.take() {
            let fifo = self.fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, meta));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edge_answers_while_its_cache_loads_and_never_calls_a_cached_key_unknown() {
    let t = test_store().await;
    let built = document(
        &t.store,
        Shape {
            features: 20,
            mv_features: 2,
            segments: 0,
            overrides: 0,
        },
    )
    .await;
    let doc: Value = serde_json::from_slice(&built.json().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..CACHED {
        let env = FIRST_ENV + i;
        let body = as_environment(&doc, env, &format!("cached-{i}"));
        cache(dir.path(), env, &body, &built.sdk_features);
    }
    let mut late = Late::new(
        dir.path(),
        LATE_ENV,
        &as_environment(&doc, LATE_ENV, "cached-late"),
        &built.sdk_features,
    );
    // The store does not answer: all there is to serve is the cache.
    t.store.close().await;

    let registry = Arc::new(Registry::default());
    let follower = Follower::start(
        t.store.clone(),
        registry.clone(),
        FollowerConfig {
            poll_interval: Duration::from_secs(3600),
            cache_dir: Some(dir.path().to_path_buf()),
        },
        PublishFeed::PollOnly,
    )
    .await;
    // Returned at once, loading (what readiness reports).
    let initial = registry.initial_load();
    assert!(initial.loading, "{initial:?}");
    let app = flagstone_edge::router(EdgeState::new(
        t.store.clone(),
        registry.clone(),
        EdgeConfig::default(),
    ));

    // Asked while loading: the late key (its document cannot have been read) and one the
    // cache does not hold at all. Both wait.
    let late_answer = tokio::spawn({
        let app = app.clone();
        async move { flags(&app, "cached-late").await }
    });
    let unknown_answer = tokio::spawn({
        let app = app.clone();
        async move { flags(&app, "never-cached").await }
    });
    // Cached keys asked while loading are answered with their cached flags, at once if read
    // already, or once their batch is.
    let expected = values(&flags_of(&registry, "cached-0").await);
    for i in [0, CACHED / 2, CACHED - 1] {
        let (status, body) = flags(&app, &format!("cached-{i}")).await;
        assert_eq!(status, StatusCode::OK, "cached-{i}: {body}");
        assert_eq!(values(&body), expected, "cached-{i}");
    }
    let initial = registry.initial_load();
    assert!(initial.loading && initial.reading_cache, "{initial:?}");
    assert!(
        !late_answer.is_finished() && !unknown_answer.is_finished(),
        "keys not read yet wait while the cache loads"
    );

    // The late document is read: its waiting request is answered from it.
    late.release().await;
    let (status, body) = late_answer.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(values(&body), expected);
    // The load ends; a key it did not bring is unknown then, not before.
    let (status, body) = unknown_answer.await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    registry.initial_load_finished().await;
    let initial = registry.initial_load();
    assert_eq!(
        (initial.loading, initial.reading_cache, initial.from_cache),
        (false, false, CACHED as usize + 1)
    );
    assert_eq!(registry.len(), CACHED as usize + 1);
    assert!(follower.health.serving_from_cache());
    let (status, _) = flags(&app, "never-cached").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The client `/flags/` body of a held environment, as its snapshot has it.
async fn flags_of(registry: &Arc<Registry>, key: &str) -> Value {
    let snap = registry
        .get_waiting(key, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("{key} is cached"));
    serde_json::from_slice(&snap.flags_client).unwrap()
}

/// The incident's environment (100 features, 400 segments, 5,000 overrides): 229 kB compressed.
async fn large(store: &Store) -> Published {
    let built = document(store, Shape::INCIDENT).await;
    assert!(
        built.body.len() >= BLOCKING_BUILD_FROM_BYTES,
        "{} bytes compressed",
        built.body.len()
    );
    Published::new(
        built.environment_id,
        built.revision,
        &built.etag,
        Bytes::from(built.body.clone()),
        false,
        Some(built.sdk_features.as_str()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_for_a_large_environment_compile_it_once() {
    let t = test_store().await;
    let registry = Arc::new(Registry::default());
    let published = large(&t.store).await;
    let key = published.api_key.clone();
    registry.install_published(published).unwrap();
    let before = registry.memory().resident;

    let asks: Vec<_> = (0..4)
        .map(|_| {
            let (registry, key) = (registry.clone(), key.clone());
            tokio::spawn(async move { registry.get(&key).await.unwrap() })
        })
        .collect();
    let mut snaps = Vec::new();
    for a in asks {
        snaps.push(a.await.unwrap());
    }
    let after = registry.memory().resident;
    assert_eq!(after.misses - before.misses, 1, "compiled once");
    assert_eq!(after.hits - before.hits, 3, "the others waited for it");
    assert!(snaps.iter().all(|s| Arc::ptr_eq(s, &snaps[0])));
    assert_eq!(after.resident_environments, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_large_first_compile_leaves_the_async_thread_free() {
    let t = test_store().await;
    let registry = Arc::new(Registry::default());
    let published = large(&t.store).await;
    let key = published.api_key.clone();
    registry.install_published(published).unwrap();
    let entry = registry.published(&key).unwrap();

    // On the runtime's only thread: the first request starts the compile; another task runs
    // while it is under way (an inline compile would finish before anything else ran).
    let first = tokio::spawn({
        let (registry, key) = (registry.clone(), key.clone());
        async move { registry.get(&key).await.is_some() }
    });
    let meanwhile = tokio::spawn(async move { entry.is_resident() });
    assert!(
        !meanwhile.await.unwrap(),
        "another task ran before the compile was done"
    );
    assert!(first.await.unwrap());
    assert_eq!(registry.memory().resident.misses, 1);
}
