//! The edge side: keeps an edge's registry at the bucket (`flagstone edge --from-nats`).
//!
//! - At start: the last good documents of the cache directory are served as they are read, in
//!   the background; the watch of the bucket begins once they are all read.
//! - Per connection: an ordered consumer on the bucket's stream delivers the latest entry of
//!   every key, then every change. Each environment entry newer than what is held is built and
//!   installed (and written to the cache directory); a deleted key drops the environment. Once
//!   the initial delivery is complete, whatever the bucket does not hold is dropped, so every
//!   (re)connection is a full resynchronisation and nothing missed while cut off stays missed.
//! - Staleness: the core's publishers rewrite a heartbeat key every few seconds with when they
//!   last confirmed the bucket against the store. This edge reports that as its own
//!   confirmation time, and serves "from cache" when NATS is unreachable or the heartbeat is
//!   older than `publisher_silence` (no publisher alive: the bucket itself may be stale).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use flagstone_edge::cache_writer::{CacheWriter, CachedMeta};
use flagstone_edge::follow::{load_cache_dir, release_free_memory, EdgeHealth};
use flagstone_edge::snapshot::EnvSnapshot;
use flagstone_edge::Registry;
use futures_util::StreamExt;

use crate::bucket::{self, BucketKey, Heartbeat, NatsError, HEARTBEAT_INTERVAL};
use crate::metrics as m;
use crate::value::DocumentValue;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the connection's state is looked at (and staleness refreshed) while nothing comes.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct NatsFollowerConfig {
    pub url: String,
    pub bucket: String,
    /// Where last good documents are kept; `None` keeps none.
    pub cache_dir: Option<PathBuf>,
    /// A publisher heartbeat older than this means no publisher is alive.
    pub publisher_silence: Duration,
}

impl NatsFollowerConfig {
    pub fn new(url: &str, bucket: &str) -> NatsFollowerConfig {
        NatsFollowerConfig {
            url: url.to_string(),
            bucket: bucket.to_string(),
            cache_dir: None,
            publisher_silence: HEARTBEAT_INTERVAL * 3,
        }
    }
}

/// What `/health/readiness` tells of a NATS edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatsStatus {
    /// Connected, and the bucket's latest entries all read.
    pub synchronised: bool,
    /// When a publisher last confirmed the bucket against the store (Unix ms).
    pub publisher_confirmed_at_ms: Option<i64>,
    /// Entries that could not be used (kept serving the previous revision), since start.
    pub entries_rejected: u64,
}

pub struct NatsFollower {
    client: async_nats::Client,
    registry: Arc<Registry>,
    config: NatsFollowerConfig,
    cache: Option<CacheWriter>,
    pub health: Arc<EdgeHealth>,
    status: Mutex<NatsStatus>,
}

impl NatsFollower {
    /// Starts the initial load (the cache directory's documents, served as they are read) and
    /// then following (connecting in the background). Returns at once.
    pub async fn start(
        registry: Arc<Registry>,
        config: NatsFollowerConfig,
    ) -> Result<Arc<NatsFollower>, NatsError> {
        let client = bucket::connect(&config.url, "flagstone-edge").await?;
        let loading = registry.begin_initial_load();
        let f = Arc::new(NatsFollower {
            client,
            registry,
            cache: config.cache_dir.clone().map(CacheWriter::start),
            config,
            health: Arc::default(),
            status: Mutex::default(),
        });
        let follower = f.clone();
        tokio::spawn(async move {
            if let Some(dir) = &follower.config.cache_dir {
                load_cache_dir(dir, &follower.registry, &follower.health).await;
            }
            drop(loading);
            follower.run().await;
        });
        Ok(f)
    }

    pub fn status(&self) -> NatsStatus {
        *self.lock_status()
    }

    /// Whether the NATS connection is up.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn run(self: Arc<Self>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            if self.connected() {
                match self.session().await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the NATS bucket; serving the last good documents")
                    }
                }
                self.lock_status().synchronised = false;
                self.health.unreachable();
                metrics::counter!(m::WATCH_RESTARTS_TOTAL).increment(1);
                metrics::gauge!(m::REACHABLE).set(0.0);
            } else {
                self.health.unreachable();
                metrics::gauge!(m::REACHABLE).set(0.0);
            }
            tokio::time::sleep(backoff).await;
            // Reset once connected: a session that ends soon after starting backs off further.
            backoff = if self.connected() {
                (backoff * 2).min(MAX_BACKOFF)
            } else {
                MIN_BACKOFF
            };
        }
    }

    /// One watch of the bucket, until the connection or the watch fails.
    async fn session(&self) -> Result<(), NatsError> {
        let js = jetstream::new(self.client.clone());
        let bucket = &self.config.bucket;
        let stream = bucket::stream(&js, bucket).await?;
        let (pending, mut messages) =
            bucket::watch_latest(&self.client, &stream, bucket, false).await?;
        metrics::gauge!(m::REACHABLE).set(1.0);
        let mut seen: HashSet<i64> = HashSet::new();
        let mut synced = false;
        if pending == 0 {
            synced = self.resynced(&seen);
        }
        let mut check = tokio::time::interval(CHECK_INTERVAL);
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let msg = msg
                        .ok_or_else(|| NatsError::Nats("the bucket's watch ended".into()))?
                        .map_err(NatsError::nats)?;
                    let last = msg.info().map_err(NatsError::nats)?.pending == 0;
                    self.apply(&msg.message, &mut seen);
                    if !synced && last {
                        synced = self.resynced(&seen);
                    }
                    if synced {
                        self.refresh_health();
                    }
                }
                _ = check.tick() => {
                    if !self.connected() {
                        return Err(NatsError::Nats("connection lost".into()));
                    }
                    if synced {
                        self.refresh_health();
                    }
                }
            }
        }
    }

    /// The initial delivery is complete: drops what the bucket does not hold.
    fn resynced(&self, seen: &HashSet<i64>) -> bool {
        for (env, _) in self.registry.revisions() {
            if !seen.contains(&env) {
                self.forget(env);
            }
        }
        self.lock_status().synchronised = true;
        tracing::info!(
            environments = self.registry.len(),
            bucket = %self.config.bucket,
            "in step with the NATS bucket"
        );
        true
    }

    fn refresh_health(&self) {
        let confirmed = self.lock_status().publisher_confirmed_at_ms;
        let silence = self.config.publisher_silence.as_millis() as i64;
        let fresh = confirmed.is_some_and(|t| flagstone_store::now_ms() - t <= silence);
        self.health.upstream_says(confirmed, !fresh);
    }

    /// One entry of the bucket.
    fn apply(&self, msg: &async_nats::Message, seen: &mut HashSet<i64>) {
        match BucketKey::of_subject(&self.config.bucket, msg.subject.as_str()) {
            Some(BucketKey::Environment(env)) => {
                if bucket::is_removal(msg.headers.as_ref()) {
                    seen.remove(&env);
                    self.forget(env);
                    return;
                }
                // Held whatever happens next: an unusable entry keeps the previous revision
                // served rather than dropping the environment.
                seen.insert(env);
                if let Err(e) = self.install(env, msg) {
                    self.lock_status().entries_rejected += 1;
                    metrics::counter!(m::ENTRIES_REJECTED_TOTAL).increment(1);
                    tracing::warn!(environment = env, error = %e, "unusable entry in the NATS bucket; serving the previous revision");
                }
            }
            Some(BucketKey::Heartbeat) => match serde_json::from_slice::<Heartbeat>(&msg.payload) {
                Ok(beat) => {
                    let mut s = self.lock_status();
                    let at = beat.confirmed_at_ms.min(flagstone_store::now_ms());
                    s.publisher_confirmed_at_ms =
                        Some(s.publisher_confirmed_at_ms.map_or(at, |t| t.max(at)));
                }
                Err(e) => tracing::debug!(error = %e, "unreadable publisher heartbeat"),
            },
            None => {}
        }
    }

    fn install(&self, env: i64, msg: &async_nats::Message) -> Result<(), InstallError> {
        let headers = msg.headers.clone().unwrap_or_default();
        let v = DocumentValue::decode(&headers, msg.payload.clone())?;
        if v.environment_id != env {
            return Err(InstallError::Mismatch(v.environment_id));
        }
        if self
            .registry
            .revision_of(env)
            .is_some_and(|held| held >= v.revision)
        {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let sdk_features =
            flagstone_store::document::sdk_features::parse(v.sdk_features.as_deref())
                .map_err(|e| InstallError::Document(format!("SDK feature fields: {e}")))?;
        let snap = EnvSnapshot::build(
            env,
            v.revision,
            &v.etag,
            v.document_gz.clone(),
            &sdk_features,
        )
        .map_err(|e| InstallError::Document(e.to_string()))?
        .sharing_its_second(v.shares_second)
        .with_sdk_features_json(v.sdk_features.as_deref());
        if self.registry.install(snap) {
            metrics::histogram!("flagstone_edge_compile_seconds")
                .record(started.elapsed().as_secs_f64());
            tracing::debug!(
                environment = env,
                revision = v.revision,
                "serving a new revision from NATS"
            );
            if let Some(cache) = &self.cache {
                let meta = CachedMeta {
                    environment_id: env,
                    revision: v.revision,
                    etag: &v.etag,
                    shares_second: v.shares_second,
                    sdk_features: v.sdk_features.as_deref(),
                };
                cache.write(&meta, v.document_gz.clone());
            }
        }
        drop(v);
        release_free_memory();
        Ok(())
    }

    /// Forgets the last good copy first: once the registry announces the removal, a restart
    /// cannot serve the environment again.
    fn forget(&self, env: i64) {
        if let Some(cache) = &self.cache {
            cache.remove(env);
        }
        self.registry.remove(env);
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, NatsStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
enum InstallError {
    #[error(transparent)]
    Value(#[from] crate::value::ValueError),
    #[error("the entry names environment {0}")]
    Mismatch(i64),
    #[error("{0}")]
    Document(String),
}
