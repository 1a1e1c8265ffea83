//! Keeps the registry at the upstream's revisions, over HTTP only.
//!
//! - At start: the last good documents of the cache directory are served as they are read, in
//!   the background (a restart without the upstream still serves); the first connection to the
//!   upstream follows (with nothing cached, the initial load lasts until it synchronises or
//!   fails). Documents are compiled on first request ([`crate::registry`]).
//! - Then, per connection to the upstream's revision stream: its first event lists every
//!   followed environment's revision; what is behind is fetched (conditional GETs, several at
//!   once) and what the upstream no longer serves is dropped, so a reconnect is a full resync.
//!   Each later `revision` event fetches that document; `removed` drops it.
//! - The stream is the contact: something (heartbeats come every few seconds) within
//!   `heartbeat_timeout`, or the connection is considered lost. A heartbeat says how current
//!   the upstream itself is, which this edge then reports as its own staleness. A lost connection marks the edge as serving its last good
//!   copies ([`EdgeHealth`]) and is retried with exponential backoff (capped, with jitter).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use super::client::{Client, Fetched, UpstreamError};
use super::protocol::{
    take_events, Heartbeat, Removed, Revision, Snapshot, EVENT_HEARTBEAT, EVENT_REMOVED,
    EVENT_REVISION, EVENT_SNAPSHOT,
};
use crate::cache_writer::{CacheWriter, CachedMeta};
use crate::follow::{load_cache_dir, release_free_memory, EdgeHealth};
use crate::published::Published;
use crate::registry::{InitialLoadGuard, Registry};

/// The longest an unread part of the stream may grow (a misbehaving upstream cannot make this
/// edge hold more).
const MAX_PENDING_STREAM_BYTES: usize = 16 << 20;
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Where last good documents are kept; `None` keeps none.
    pub cache_dir: Option<PathBuf>,
    /// Follow only these environments (client keys); `None`: every one the key sees.
    pub environments: Option<Vec<String>>,
    /// Silence on the stream longer than this means the upstream is gone.
    pub heartbeat_timeout: Duration,
    /// Documents fetched at once.
    pub fetch_concurrency: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            cache_dir: None,
            environments: None,
            heartbeat_timeout: Duration::from_secs(30),
            fetch_concurrency: 8,
        }
    }
}

pub struct UpstreamFollower {
    client: Arc<Client>,
    registry: Arc<Registry>,
    config: UpstreamConfig,
    cache: Option<CacheWriter>,
    pub health: Arc<EdgeHealth>,
    /// The newest revision the upstream announced per environment (for the lag).
    announced: Mutex<HashMap<i64, i64>>,
}

/// How far behind the upstream this edge is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Environments whose announced revision is not held yet.
    pub environments_behind: usize,
    /// The largest difference between an announced and a held revision.
    pub max_revisions: i64,
}

impl UpstreamFollower {
    /// Starts the initial load (the cache directory's documents, served as they are read) and
    /// then following, in the background. Returns at once.
    pub fn start(
        client: Arc<Client>,
        registry: Arc<Registry>,
        config: UpstreamConfig,
    ) -> Arc<UpstreamFollower> {
        let loading = registry.begin_initial_load();
        let f = Arc::new(UpstreamFollower {
            client,
            registry,
            cache: config.cache_dir.clone().map(CacheWriter::start),
            config,
            health: Arc::default(),
            announced: Mutex::default(),
        });
        let follower = f.clone();
        tokio::spawn(async move {
            let cached = match &follower.config.cache_dir {
                Some(dir) => load_cache_dir(dir, &follower.registry, &follower.health).await,
                None => 0,
            };
            // With nothing cached, the first synchronisation with the upstream (or the first
            // failure to reach it) ends the initial load, as the store's first load does on an
            // edge on the database: edges following this one get a full first list, not an
            // empty one that would make them drop what they hold.
            let loading = if cached == 0 {
                Some(loading)
            } else {
                drop(loading);
                None
            };
            follower.run(loading).await;
        });
        f
    }

    /// How far behind the upstream's announced revisions this edge is.
    pub fn lag(&self) -> Lag {
        let announced = self.lock_announced().clone();
        let mut lag = Lag::default();
        for (env, revision) in announced {
            let held = self.registry.revision_of(env).unwrap_or(0);
            if held < revision {
                lag.environments_behind += 1;
                lag.max_revisions = lag.max_revisions.max(revision - held);
            }
        }
        lag
    }

    async fn run(self: Arc<Self>, mut loading: Option<InitialLoadGuard>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let session = self.session(&mut loading).await;
            // The first attempt is over, in step or not: nobody waits any longer.
            loading = None;
            match session {
                Ok(true) => backoff = MIN_BACKOFF,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "lost the upstream; serving the last good documents")
                }
            }
            self.health.unreachable();
            metrics::counter!(crate::metrics::UPSTREAM_RECONNECTS_TOTAL).increment(1);
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection to the revision stream, until it ends. Returns whether it synchronised.
    /// The initial load, if still running, ends with the first synchronisation.
    async fn session(&self, loading: &mut Option<InitialLoadGuard>) -> Result<bool, UpstreamError> {
        let mut resp = self
            .client
            .revisions(self.config.environments.as_deref())
            .await?;
        let mut buf = Vec::new();
        let mut synced = false;
        loop {
            let chunk = match tokio::time::timeout(self.config.heartbeat_timeout, resp.chunk())
                .await
            {
                Err(_) => {
                    return Err(UpstreamError::Unreachable(
                        "no heartbeat from the upstream".into(),
                    ))
                }
                Ok(Err(e)) => return Err(UpstreamError::Unreachable(e.without_url().to_string())),
                Ok(Ok(None)) => return Ok(synced),
                Ok(Ok(Some(chunk))) => chunk,
            };
            buf.extend_from_slice(&chunk);
            if buf.len() > MAX_PENDING_STREAM_BYTES {
                return Err(UpstreamError::Body(
                    "revision stream event too large".into(),
                ));
            }
            let mut changed: Vec<Revision> = Vec::new();
            for ev in take_events(&mut buf) {
                match ev.event.as_str() {
                    EVENT_SNAPSHOT => {
                        let snap: Snapshot = parse(&ev.data)?;
                        self.resync(snap.environments).await?;
                        synced = true;
                        self.health.confirmed();
                        *loading = None;
                    }
                    EVENT_REVISION => changed.push(parse(&ev.data)?),
                    EVENT_REMOVED => {
                        let r: Removed = parse(&ev.data)?;
                        self.lock_announced().remove(&r.environment_id);
                        self.forget(r.environment_id);
                    }
                    EVENT_HEARTBEAT if synced => {
                        let beat: Heartbeat = parse(&ev.data)?;
                        self.health
                            .upstream_says(beat.confirmed_at_ms, beat.serving_from_cache);
                    }
                    _ => {}
                }
            }
            if !changed.is_empty() {
                self.fetch_newer(changed).await?;
            }
        }
    }

    /// Brings every listed environment to its revision and drops what is not listed.
    async fn resync(&self, listed: Vec<Revision>) -> Result<(), UpstreamError> {
        let live: HashSet<i64> = listed.iter().map(|r| r.environment_id).collect();
        {
            let mut announced = self.lock_announced();
            announced.clear();
            announced.extend(listed.iter().map(|r| (r.environment_id, r.revision)));
        }
        for (env, _) in self.registry.revisions() {
            if !live.contains(&env) {
                self.forget(env);
            }
        }
        self.fetch_newer(listed).await
    }

    /// Fetches the documents of those revisions newer than what is held, several at once.
    async fn fetch_newer(&self, revisions: Vec<Revision>) -> Result<(), UpstreamError> {
        {
            let mut announced = self.lock_announced();
            for r in &revisions {
                let a = announced.entry(r.environment_id).or_insert(r.revision);
                *a = (*a).max(r.revision);
            }
        }
        let behind: Vec<Revision> = revisions
            .into_iter()
            .filter(|r| {
                self.registry
                    .revision_of(r.environment_id)
                    .is_none_or(|held| held < r.revision)
            })
            .collect();
        let fetched = !behind.is_empty();
        let results: Vec<Result<(), UpstreamError>> = stream::iter(behind)
            .map(|r| self.fetch(r))
            .buffer_unordered(self.config.fetch_concurrency.max(1))
            .collect()
            .await;
        if fetched {
            release_free_memory();
        }
        // One failure ends the session: the reconnect's resync retries what is missing.
        results.into_iter().collect()
    }

    async fn fetch(&self, r: Revision) -> Result<(), UpstreamError> {
        let held = self.registry.revision_of(r.environment_id);
        match self.client.document(&r.api_key, held).await? {
            Fetched::NotModified => Ok(()),
            Fetched::Gone => {
                self.forget(r.environment_id);
                Ok(())
            }
            Fetched::Document(doc) => {
                // Checked now (its head read, its SDK feature fields parsed); compiled now only
                // if the environment is resident, otherwise on its first request.
                flagstone_store::document::sdk_features::parse(doc.sdk_features.as_deref())
                    .map_err(|e| UpstreamError::Body(format!("SDK feature fields: {e}")))?;
                let published = Published::new(
                    doc.environment_id,
                    doc.revision,
                    &doc.etag,
                    doc.body.clone(),
                    doc.shares_second,
                    doc.sdk_features.as_deref(),
                )
                .map_err(|e| UpstreamError::Body(e.to_string()))?;
                let installed = self
                    .registry
                    .install_published(published)
                    .map_err(|e| UpstreamError::Body(e.to_string()))?;
                if installed {
                    if let Some(cache) = &self.cache {
                        let meta = CachedMeta {
                            environment_id: doc.environment_id,
                            revision: doc.revision,
                            etag: &doc.etag,
                            shares_second: doc.shares_second,
                            sdk_features: doc.sdk_features.as_deref(),
                        };
                        cache.write(&meta, doc.body.clone());
                    }
                }
                Ok(())
            }
        }
    }

    fn forget(&self, env: i64) {
        self.registry.remove(env);
        if let Some(cache) = &self.cache {
            cache.remove(env);
        }
    }

    fn lock_announced(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.announced.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn parse<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, UpstreamError> {
    serde_json::from_str(data).map_err(|e| UpstreamError::Body(e.to_string()))
}

/// `d` give or take a quarter, so many edges cut off at once do not reconnect in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let spread = d.as_millis() as u64 / 2;
    let offset = if spread == 0 {
        0
    } else {
        u64::from(nanos) % spread
    };
    Duration::from_millis(d.as_millis() as u64 * 3 / 4 + offset)
}
