//! Keeps the registry at the store's published revisions (DESIGN §5).
//!
//! - At start: [`Follower::start`] returns at once, so the edge listens at once; the initial
//!   load runs behind it ([`Registry::begin_initial_load`]): the last good documents of the
//!   cache directory are read in batches on blocking threads and served as each batch is
//!   installed (read, not compiled: about 0.4 ms each in a release build), then, with nothing
//!   cached, the first check loads every published document. Requests for a key not held yet
//!   wait for that load (bounded) rather than be refused. Then the checks against the store
//!   begin. Documents are loaded in pages of [`PAGE`] when many are behind, and compiled only
//!   when first asked for ([`crate::registry`]).
//! - Then: a publish notification (PostgreSQL `LISTEN flagstone_publish`, or an in-process
//!   channel when the worker runs in the same process) loads that environment at once; a
//!   periodic check of `(environment, revision)` pairs catches anything missed, so a lost
//!   notification delays a change by one interval, never forever.
//! - After each swap the document is written to the cache directory (atomically, on the cache
//!   writer's thread: [`crate::cache_writer`]).
//! - A deleted environment is dropped at once: in this process before the deleting change's
//!   commit returns (`Store::on_environment_deleted`), in others on its `deleted` notification;
//!   the periodic check drops any whose notification was lost.
//!
//! [`EdgeHealth`] says when the store was last reached, which is how stale this edge may be.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flagstone_store::document::StoredDocument;
use flagstone_store::queue::Notice;
use flagstone_store::{now_ms, Store};
use tokio::sync::{broadcast, mpsc};

use crate::cache_writer::{CacheWriter, CachedMeta};
use crate::published::Published;
use crate::registry::Registry;

/// Publish notices handled together (one query for their documents).
const NOTICE_BATCH: usize = 500;
/// Documents read per query when many environments are behind (at start, after an outage).
const PAGE: i64 = 500;
/// From this many environments behind, pages of every document are read rather than one
/// query per environment.
const PAGED_FROM: usize = 64;
/// Cached documents read and installed per blocking task at start (≈ 0.1 s in a release
/// build): each batch is served as soon as it is installed.
const CACHE_BATCH: usize = 256;

/// How this edge hears of publishes.
pub enum PublishFeed {
    /// `LISTEN flagstone_publish` on the store's PostgreSQL.
    Postgres,
    /// `(environment_id, revision)` announced by a worker in the same process.
    InProcess(broadcast::Receiver<(i64, i64)>),
    /// Only the periodic check.
    PollOnly,
}

#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// How often every environment's published revision is compared with what is held.
    pub poll_interval: Duration,
    /// Where last good documents are kept; `None` keeps none.
    pub cache_dir: Option<PathBuf>,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig {
            poll_interval: Duration::from_secs(2),
            cache_dir: None,
        }
    }
}

/// How fresh this edge is.
#[derive(Default)]
pub struct EdgeHealth {
    last_sync_ms: AtomicI64,
    store_reachable: AtomicBool,
    /// Serving documents read from the cache directory, not (yet) confirmed by the store.
    from_cache: AtomicBool,
    /// Woken when the edge becomes current or stops being current (or is confirmed for the
    /// first time), so edges following this one hear it at once rather than at the next
    /// periodic heartbeat.
    changed: tokio::sync::Notify,
}

impl EdgeHealth {
    /// The source (store or upstream) confirmed, now, that what is held is current.
    pub fn confirmed(&self) {
        let first = self.last_sync_ms.swap(now_ms(), Ordering::Relaxed) == 0;
        self.store_reachable.store(true, Ordering::Relaxed);
        let was_cache = self.from_cache.swap(false, Ordering::Relaxed);
        if first || was_cache {
            self.changed.notify_waiters();
        }
    }
    /// The source cannot be reached: what is held is the last good copy.
    pub fn unreachable(&self) {
        self.store_reachable.store(false, Ordering::Relaxed);
        if !self.from_cache.swap(true, Ordering::Relaxed) {
            self.changed.notify_waiters();
        }
    }
    /// Resolves at the next change [`EdgeHealth`] announces (becoming current or not, a first
    /// confirmation).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
    /// When the source last confirmed what is held (Unix ms; `None`: never).
    pub fn confirmed_at_ms(&self) -> Option<i64> {
        let t = self.last_sync_ms.load(Ordering::Relaxed);
        (t > 0).then_some(t)
    }
    /// An upstream's heartbeat: this edge is as fresh as its upstream says it is (an edge
    /// following a stale upstream is stale too, however well it hears it).
    pub fn upstream_says(&self, confirmed_at_ms: Option<i64>, serving_from_cache: bool) {
        self.store_reachable.store(true, Ordering::Relaxed);
        let was_cache = self.from_cache.swap(serving_from_cache, Ordering::Relaxed);
        let at = confirmed_at_ms.unwrap_or(0).min(now_ms());
        let before = self.last_sync_ms.swap(at, Ordering::Relaxed);
        if was_cache != serving_from_cache || (before == 0) != (at == 0) {
            self.changed.notify_waiters();
        }
    }
    /// Seconds since the store last confirmed what this edge serves (`None`: never).
    pub fn staleness_seconds(&self) -> Option<f64> {
        let t = self.last_sync_ms.load(Ordering::Relaxed);
        (t > 0).then(|| (now_ms() - t).max(0) as f64 / 1000.0)
    }
    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(Ordering::Relaxed)
    }
    pub fn serving_from_cache(&self) -> bool {
        self.from_cache.load(Ordering::Relaxed)
    }
}

pub struct Follower {
    store: Store,
    registry: Arc<Registry>,
    config: FollowerConfig,
    cache: Option<CacheWriter>,
    pub health: Arc<EdgeHealth>,
}

impl Follower {
    /// Starts the initial load (the cache directory, then the store if nothing was cached) and
    /// following, in the background. Returns at once: wait for
    /// [`Registry::initial_load_finished`] to know that the load is done.
    pub async fn start(
        store: Store,
        registry: Arc<Registry>,
        config: FollowerConfig,
        feed: PublishFeed,
    ) -> Arc<Follower> {
        let loading = registry.begin_initial_load();
        let f = Arc::new(Follower {
            store,
            registry,
            cache: config.cache_dir.clone().map(CacheWriter::start),
            config,
            health: Arc::default(),
        });
        // Registered before the first load, so a deletion committed meanwhile is not missed
        // (the load would drop it anyway: it is no longer published).
        let weak = Arc::downgrade(&f);
        f.store.on_environment_deleted(move |env| {
            if let Some(f) = weak.upgrade() {
                f.forget(env);
            }
        });
        let (notify_tx, notify_rx) = mpsc::channel::<Notice>(1024);
        match feed {
            PublishFeed::Postgres => {
                tokio::spawn(listen_postgres(f.store.clone(), notify_tx));
            }
            PublishFeed::InProcess(mut rx) => {
                tokio::spawn(async move {
                    loop {
                        match rx.recv().await {
                            Ok((environment_id, revision)) => {
                                let n = Notice::Published {
                                    environment_id,
                                    revision,
                                };
                                if notify_tx.send(n).await.is_err() {
                                    return;
                                }
                            }
                            // Missed some: the periodic check will find them.
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                });
            }
            PublishFeed::PollOnly => drop(notify_tx),
        }
        let follower = f.clone();
        tokio::spawn(async move {
            // Served as they are read; the first periodic check (immediate) brings them up to
            // date.
            let cached = follower.load_cache_dir().await;
            if cached == 0 {
                if let Err(e) = follower.sync_all().await {
                    tracing::warn!(error = %e, "store unreachable at start and nothing cached; retrying");
                }
            }
            drop(loading);
            follower.run(notify_rx).await;
        });
        f
    }

    async fn run(self: Arc<Self>, mut notifications: mpsc::Receiver<Notice>) {
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut feed_open = true;
        loop {
            tokio::select! {
                n = notifications.recv(), if feed_open => match n {
                    Some(Notice::Published { environment_id, revision }) => {
                        // A burst of publishes is read in one query, not one per environment:
                        // take every publish already waiting (a deletion ends the batch, so
                        // notices still apply in order).
                        let mut batch = vec![(environment_id, revision)];
                        let mut then = None;
                        while batch.len() < NOTICE_BATCH {
                            match notifications.try_recv() {
                                Ok(Notice::Published { environment_id, revision }) => {
                                    batch.push((environment_id, revision))
                                }
                                Ok(deleted) => {
                                    then = Some(deleted);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        self.load_published(&batch).await;
                        if let Some(Notice::Deleted { environment_id }) = then {
                            self.deleted(environment_id).await;
                        }
                    }
                    Some(Notice::Deleted { environment_id }) => self.deleted(environment_id).await,
                    None => feed_open = false,
                },
                _ = tick.tick() => {
                    if let Err(e) = self.sync_all().await {
                        self.health.store_reachable.store(false, Ordering::Relaxed);
                        tracing::warn!(error = %e, "cannot reach the store; still serving the last good documents");
                    }
                }
            }
        }
    }

    /// Compares every published revision with what is held; loads the newer, drops the deleted.
    pub async fn sync_all(&self) -> flagstone_store::Result<()> {
        let published = {
            let mut tx = self.store.read().await?;
            flagstone_store::document::published_revisions(&mut tx).await?
        };
        let live: HashSet<i64> = published.iter().map(|(e, _)| *e).collect();
        let behind: Vec<(i64, i64)> = published
            .iter()
            .filter(|(env, revision)| {
                self.registry
                    .revision_of(*env)
                    .is_none_or(|held| held < *revision)
            })
            .copied()
            .collect();
        if behind.len() >= PAGED_FROM {
            self.load_pages().await?;
            release_free_memory();
        } else if !behind.is_empty() {
            self.load_published(&behind).await;
        }
        for (env, _) in self.registry.revisions() {
            if !live.contains(&env) {
                self.forget(env);
            }
        }
        self.health.last_sync_ms.store(now_ms(), Ordering::Relaxed);
        self.health.store_reachable.store(true, Ordering::Relaxed);
        self.health.from_cache.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Reads every published document page by page and installs those newer than held.
    async fn load_pages(&self) -> flagstone_store::Result<()> {
        let mut after = 0;
        loop {
            let page = {
                let mut tx = self.store.read().await?;
                flagstone_store::document::load_page(&mut tx, after, PAGE).await?
            };
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.environment_id;
            let full = page.len() as i64 == PAGE;
            for stored in page {
                if self
                    .registry
                    .revision_of(stored.environment_id)
                    .is_some_and(|held| held >= stored.revision)
                {
                    continue;
                }
                let env = stored.environment_id;
                if let Err(e) = self.install(stored) {
                    tracing::warn!(environment = env, error = %e, "installing a published document failed");
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Loads the documents of `published` `(environment, revision)` pairs newer than held, in
    /// one query. A failure is logged: the periodic check retries.
    async fn load_published(&self, published: &[(i64, i64)]) {
        let mut wanted: Vec<i64> = published
            .iter()
            .filter(|(env, revision)| {
                self.registry
                    .revision_of(*env)
                    .is_none_or(|held| held < *revision)
            })
            .map(|(env, _)| *env)
            .collect();
        if wanted.is_empty() {
            return;
        }
        wanted.sort_unstable();
        wanted.dedup();
        let loaded = async {
            let mut tx = self.store.read().await?;
            flagstone_store::document::load_many(&mut tx, &wanted).await
        };
        match loaded.await {
            Ok(docs) => {
                for stored in docs {
                    let env = stored.environment_id;
                    if let Err(e) = self.install(stored) {
                        tracing::warn!(environment = env, error = %e, "installing a published document failed; the periodic check will retry");
                    }
                }
            }
            Err(e) => tracing::warn!(
                environments = wanted.len(),
                error = %e,
                "loading published documents failed; the periodic check will retry"
            ),
        }
        release_free_memory();
    }

    /// Installs a stored document (compiled now only if its environment is resident) and
    /// keeps it as the last good copy.
    fn install(&self, mut stored: StoredDocument) -> Result<(), FollowError> {
        // The registry keeps the compressed body itself (shared, not copied).
        let body = Bytes::from(std::mem::take(&mut stored.body));
        let published = Published::new(
            stored.environment_id,
            stored.revision,
            &stored.etag,
            body.clone(),
            stored.shares_second_with_previous(),
            stored.sdk_features.as_deref(),
        )?;
        if self.registry.install_published(published)? {
            tracing::debug!(
                environment = stored.environment_id,
                revision = stored.revision,
                "serving a new revision"
            );
            self.write_cached(&stored, body);
        }
        Ok(())
    }

    fn write_cached(&self, stored: &StoredDocument, body: Bytes) {
        if let Some(cache) = &self.cache {
            cache.write(
                &CachedMeta {
                    environment_id: stored.environment_id,
                    revision: stored.revision,
                    etag: &stored.etag,
                    shares_second: stored.shares_second_with_previous(),
                    sdk_features: stored.sdk_features.as_deref(),
                },
                body,
            );
        }
    }

    /// A deletion heard from another process. The channel is shared by every schema of the
    /// database (other installations, parallel tests), so the store confirms the environment
    /// is gone before it stops being served.
    async fn deleted(&self, env: i64) {
        let gone = async {
            let mut tx = self.store.read().await?;
            match flagstone_store::environments::get(&mut tx, env).await {
                Ok(_) => Ok(false),
                Err(flagstone_store::StoreError::NotFound { .. }) => Ok(true),
                Err(e) => Err(e),
            }
        }
        .await;
        match gone {
            Ok(true) => self.forget(env),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(environment = env, error = %e, "cannot confirm a deletion; the periodic check will")
            }
        }
    }

    /// Stops serving an environment that no longer exists, and forgets its last good copy.
    fn forget(&self, env: i64) {
        self.registry.remove(env);
        self.remove_cached(env);
    }

    fn remove_cached(&self, env: i64) {
        if let Some(cache) = &self.cache {
            cache.remove(env);
        }
    }

    /// Resolves once every document installed so far is in the cache directory (its writes
    /// run on a thread of their own).
    pub async fn cache_written(&self) {
        if let Some(cache) = &self.cache {
            cache.written().await;
        }
    }

    /// Loads every document in the cache directory (used when the store is unreachable).
    pub async fn load_cache_dir(&self) -> usize {
        match &self.config.cache_dir {
            Some(dir) => load_cache_dir(dir, &self.registry, &self.health).await,
            None => 0,
        }
    }
}

/// Installs every document of the cache directory into `registry` (read and checked, compiled
/// only when first asked for); returns how many. The directory is read on blocking threads, in
/// batches of [`CACHE_BATCH`], each document served as soon as it is installed; the registry's
/// [`InitialLoad`](crate::registry::InitialLoad) counts them.
pub async fn load_cache_dir(dir: &Path, registry: &Arc<Registry>, health: &EdgeHealth) -> usize {
    registry.reading_cache(true);
    let listed = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || list_cached(&dir)).await
    };
    let mut loaded = 0;
    // The newest cached document tells since when, at least, nothing was confirmed.
    let mut newest_ms = 0;
    let mut paths = listed.unwrap_or_default().into_iter().peekable();
    while paths.peek().is_some() {
        let batch: Vec<PathBuf> = paths.by_ref().take(CACHE_BATCH).collect();
        let registry2 = registry.clone();
        let read = tokio::task::spawn_blocking(move || install_cached(&batch, &registry2)).await;
        // A batch whose thread panicked (it logged why) is skipped; the rest is still read.
        if let Ok((n, newest)) = read {
            loaded += n;
            newest_ms = newest_ms.max(newest);
        }
    }
    registry.reading_cache(false);
    if loaded > 0 {
        release_free_memory();
        health.from_cache.store(true, Ordering::Relaxed);
        // Staleness counts from when the cache was last written, not from "never".
        if health.last_sync_ms.load(Ordering::Relaxed) == 0 {
            health.last_sync_ms.store(newest_ms, Ordering::Relaxed);
        }
    }
    tracing::info!(
        loaded,
        "loaded last good documents from the cache directory"
    );
    loaded
}

/// The metadata files of the cache directory, by name (none when it cannot be read): the
/// same order every start, whatever order the file system lists them in.
fn list_cached(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".meta.json"))
        .collect();
    paths.sort_unstable();
    paths
}

/// Reads and installs cached documents; returns how many were installed and when the newest of
/// them was written (Unix ms).
fn install_cached(meta_paths: &[PathBuf], registry: &Registry) -> (usize, i64) {
    let mut loaded = 0;
    let mut newest_ms = 0;
    for path in meta_paths {
        match read_cached(path) {
            Ok(published) => {
                if registry.install_cached(published).unwrap_or(false) {
                    loaded += 1;
                    let written = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64);
                    newest_ms = newest_ms.max(written);
                }
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable cached document")
            }
        }
    }
    (loaded, newest_ms)
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Store(#[from] flagstone_store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("cached document: {0}")]
    Io(#[from] std::io::Error),
    #[error("cached document metadata: {0}")]
    Meta(String),
}

fn read_cached(meta_path: &Path) -> Result<Published, FollowError> {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta_path)?)
        .map_err(|e| FollowError::Meta(e.to_string()))?;
    let env = meta["environment_id"]
        .as_i64()
        .ok_or_else(|| FollowError::Meta("environment_id".into()))?;
    let revision = meta["revision"]
        .as_i64()
        .ok_or_else(|| FollowError::Meta("revision".into()))?;
    let etag = meta["etag"].as_str().unwrap_or("").to_string();
    let dir = meta_path.parent().unwrap_or(Path::new("."));
    let gz = std::fs::read(dir.join(format!("env-{env}.json.gz")))?;
    // Unknown (an older cache file): assume the worst, so If-Modified-Since never wrongly 304s.
    let shares_second = meta["shares_second"].as_bool().unwrap_or(true);
    // Absent (an older cache file): the items carry the document's feature fields only.
    Ok(Published::new(
        env,
        revision,
        &etag,
        Bytes::from(gz),
        shares_second,
        meta["sdk_features"].as_str(),
    )?)
}

/// Hands the heap pages freed after building a snapshot back to the OS.
///
/// Building one parses the whole document and compiles it: a transient heap peak several
/// times what is kept (massif: 10.6 MB at the peak for the 1.7 MB incident document, 2.5 MB
/// live after). glibc's malloc keeps freed memory in its arenas for reuse, and
/// `MALLOC_TRIM_THRESHOLD_` only returns what sits at the top of a heap, so without this the
/// edge stays near its load peak for good (measured: RssAnon 15.1 MiB without this call, 6.4
/// MiB with it, on the incident environment, before the engine shared its metadata).
/// `malloc_trim(0)` also releases the free pages in the middle of every arena. It takes ≈ 1 ms
/// after the incident document (whose build takes ≈ 25 ms), 7–9 ms after the 10x one (≈ 325
/// ms).
///
/// Preferred to another global allocator, measured as `flagstone`'s: mimalloc (0.1.52, default
/// options) held RssAnon 25 MiB after the same load (VmRSS 40 MiB, over the 23.2 MiB budget)
/// and 11 MiB on an empty edge (glibc: 1.3 MiB); it comes near glibc plus this call only
/// with `MIMALLOC_PURGE_DELAY=0 MIMALLOC_ARENA_EAGER_COMMIT=0` (VmRSS 22.9 MiB), for 5–10%
/// more `POST /identities/` throughput. One call where the peak is known to end, with no
/// allocator swap or tuning, is the smaller change (BENCHMARKS.md, issue 5, "Memory"). A no-op
/// on other platforms.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it has no
    // preconditions and its result (whether memory was released) is informational.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Forwards PostgreSQL publish notifications; reconnects after a lost connection.
async fn listen_postgres(store: Store, out: mpsc::Sender<Notice>) {
    loop {
        match flagstone_store::queue::notify::listen(&store).await {
            Ok(Some(mut listener)) => loop {
                match listener.recv().await {
                    Ok(n) => {
                        if let Some(notice) =
                            flagstone_store::queue::notify::parse_notification(n.payload())
                        {
                            if out.send(notice).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "publish notifications interrupted; reconnecting");
                        break;
                    }
                }
            },
            Ok(None) => return, // not PostgreSQL
            Err(e) => tracing::warn!(error = %e, "cannot listen for publish notifications"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
