//! The core side: keeps the bucket at the store's published documents (`serve`/`worker` with
//! `--documents-nats`).
//!
//! - It follows the same signals as an edge (`flagstone_edge::PublishFeed`: PostgreSQL's
//!   `LISTEN`, or the in-process worker's announcements) and, every `poll_interval`, compares
//!   the store's published revisions with what it knows the bucket holds: anything newer is put,
//!   any environment no longer published is purged. It is not on a build's path: a build
//!   finishes whatever NATS does, and a NATS outage only leaves the bucket behind (the
//!   `flagstone_nats_documents_behind` gauge) until the next successful comparison.
//! - What the bucket holds is read from the bucket itself (headers only) at start, after any
//!   failure, and every `full_resync_interval`, so a bucket emptied or edited behind its back
//!   (a NATS restart without storage, another installation) converges too.
//! - Several publishers may share a bucket (`serve` and workers): a put states the subject
//!   sequence it replaces (`Nats-Expected-Last-Subject-Sequence`), so an older revision never
//!   overwrites a newer one put meanwhile by another publisher.
//! - After each successful comparison it rewrites the heartbeat key (at most every
//!   [`HEARTBEAT_INTERVAL`]), from which edges tell how current the bucket is.
//! - [`Publisher::status`] says how it is doing (connected, last put, documents behind), for
//!   `/health/readiness`; the same figures are gauges in `/metrics`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use flagstone_edge::PublishFeed;
use flagstone_store::queue::Notice;
use flagstone_store::Store;
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};

use crate::bucket::{self, BucketKey, Heartbeat, NatsError, HEARTBEAT_INTERVAL};
use crate::metrics as m;
use crate::value::{self, DocumentValue};

/// Headers and framing a put adds to the document, at most (checked against `max_payload`).
const ENVELOPE_ALLOWANCE: usize = 1024;
/// How long reading the bucket's revisions may wait for the next entry.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Puts of one key retried after another publisher's put raced ours.
const RACE_RETRIES: usize = 3;

#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// `nats://host:4222`.
    pub url: String,
    pub bucket: String,
    /// How often the store's published revisions are compared with the bucket.
    pub poll_interval: Duration,
    /// How often what the bucket holds is read again from the bucket.
    pub full_resync_interval: Duration,
}

impl PublisherConfig {
    pub fn new(url: &str, bucket: &str) -> PublisherConfig {
        PublisherConfig {
            url: url.to_string(),
            bucket: bucket.to_string(),
            poll_interval: Duration::from_secs(2),
            full_resync_interval: Duration::from_secs(300),
        }
    }
}

/// What this publisher knows the bucket holds.
#[derive(Default)]
struct Known {
    /// Revision in the bucket per environment.
    held: HashMap<i64, i64>,
    /// Read from the bucket (rather than a guess after a failure), and when.
    read_at: Option<Instant>,
    /// Revisions too large for the server, not retried until the revision changes.
    too_large: HashMap<i64, i64>,
    heartbeat_at: Option<Instant>,
}

/// How a publisher is doing ([`Publisher::status`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStatus {
    /// The connection to the NATS server is up.
    pub connected: bool,
    /// The last operation on the bucket succeeded.
    pub in_step: bool,
    /// When a document was last put successfully (Unix ms; `None`: not since start).
    pub last_put_at_ms: Option<i64>,
    /// When a comparison last found the bucket in step with the store (Unix ms).
    pub last_in_step_at_ms: Option<i64>,
    /// Published documents not in the bucket at the last comparison.
    pub documents_behind: usize,
    /// Documents larger than the server's `max_payload`, not put.
    pub documents_too_large: usize,
}

pub struct Publisher {
    store: Store,
    client: async_nats::Client,
    js: jetstream::Context,
    config: PublisherConfig,
    known: tokio::sync::Mutex<Known>,
    reachable: AtomicBool,
    behind: Mutex<usize>,
    /// Unix ms of the last successful put (0: none yet).
    last_put_ms: AtomicI64,
    /// Unix ms of the last comparison that left the bucket in step (0: none yet).
    last_in_step_ms: AtomicI64,
    too_large: AtomicUsize,
}

impl Publisher {
    /// Connects (in the background) and starts publishing. Returns at once: NATS being
    /// unreachable at start is reported and retried, never a reason not to start.
    pub async fn start(
        store: Store,
        feed: PublishFeed,
        config: PublisherConfig,
    ) -> Result<Arc<Publisher>, NatsError> {
        let client = bucket::connect(&config.url, "flagstone-publisher").await?;
        let js = jetstream::new(client.clone());
        let p = Arc::new(Publisher {
            store,
            client,
            js,
            config,
            known: tokio::sync::Mutex::default(),
            reachable: AtomicBool::new(false),
            behind: Mutex::new(0),
            last_put_ms: AtomicI64::new(0),
            last_in_step_ms: AtomicI64::new(0),
            too_large: AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::channel::<Notice>(1024);
        match feed {
            PublishFeed::Postgres => {
                tokio::spawn(listen_postgres(p.store.clone(), tx));
            }
            PublishFeed::InProcess(rx) => {
                tokio::spawn(forward_in_process(rx, tx));
            }
            PublishFeed::PollOnly => drop(tx),
        }
        tokio::spawn(p.clone().run(rx));
        tracing::info!(url = %p.config.url, bucket = %p.config.bucket, "publishing documents to NATS");
        Ok(p)
    }

    /// Whether the last operation on NATS succeeded.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Published documents not in the bucket at the last comparison.
    pub fn behind(&self) -> usize {
        *self.behind.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How this publisher is doing, as of now.
    pub fn status(&self) -> PublisherStatus {
        let at = |a: &AtomicI64| Some(a.load(Ordering::Relaxed)).filter(|t| *t > 0);
        PublisherStatus {
            connected: self.client.connection_state() == async_nats::connection::State::Connected,
            in_step: self.reachable(),
            last_put_at_ms: at(&self.last_put_ms),
            last_in_step_at_ms: at(&self.last_in_step_ms),
            documents_behind: self.behind(),
            documents_too_large: self.too_large.load(Ordering::Relaxed),
        }
    }

    async fn run(self: Arc<Self>, mut notices: mpsc::Receiver<Notice>) {
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut feed_open = true;
        loop {
            let result = tokio::select! {
                n = notices.recv(), if feed_open => match n {
                    Some(Notice::Published { environment_id, revision }) => {
                        self.published(environment_id, revision).await
                    }
                    // Confirmed against the store by the comparison (the channel is shared by
                    // every schema of a PostgreSQL database).
                    Some(Notice::Deleted { .. }) => self.sync().await,
                    None => {
                        feed_open = false;
                        Ok(())
                    }
                },
                _ = tick.tick() => self.sync().await,
            };
            self.outcome(result);
        }
    }

    fn outcome(&self, result: Result<(), NatsError>) {
        match result {
            Ok(()) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!(bucket = %self.config.bucket, "NATS bucket in step with the store");
                }
                metrics::gauge!(m::REACHABLE).set(1.0);
            }
            Err(NatsError::Store(e)) => {
                tracing::warn!(error = %e, "cannot read the published documents; NATS publishing retries");
            }
            Err(e) => {
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cannot publish documents to NATS; retrying");
                } else {
                    tracing::debug!(error = %e, "NATS still unreachable");
                }
                metrics::gauge!(m::REACHABLE).set(0.0);
            }
        }
    }

    /// A publish notification: puts that environment's document if the bucket is behind it.
    async fn published(&self, env: i64, revision: i64) -> Result<(), NatsError> {
        let mut known = self.known.lock().await;
        if known.read_at.is_none() {
            // Not read yet (or NATS failed): the next comparison does everything.
            return Ok(());
        }
        if known.held.get(&env).is_some_and(|held| *held >= revision) {
            return Ok(());
        }
        self.put(&mut known, env)
            .await
            .inspect_err(|_| known.read_at = None)
    }

    /// Compares the store's published revisions with the bucket and fixes every difference.
    pub async fn sync(&self) -> Result<(), NatsError> {
        let mut known = self.known.lock().await;
        let stale = known
            .read_at
            .is_none_or(|at| at.elapsed() >= self.config.full_resync_interval);
        if stale {
            known.read_at = None;
            match self.read_bucket().await {
                Ok(held) => {
                    known.held = held;
                    known.read_at = Some(Instant::now());
                }
                Err(e) => {
                    metrics::counter!(m::PUBLISH_ERRORS_TOTAL, "operation" => "read").increment(1);
                    tracing::debug!(error = %e, "reading the bucket failed");
                    // Still counted, against what was last known to be held (nothing, before
                    // the first read): NATS down at start leaves every document behind.
                    if let Ok(published) = self.published_revisions().await {
                        self.set_behind(count_behind(&known, &published));
                    }
                    return Err(e);
                }
            }
        }
        let published = self.published_revisions().await?;
        let live: HashSet<i64> = published.iter().map(|(e, _)| *e).collect();
        let mut first_error = None;
        let mut behind = 0;
        for (env, revision) in published {
            let held = known.held.get(&env).copied().unwrap_or(0);
            if held >= revision || known.too_large.get(&env) == Some(&revision) {
                continue;
            }
            if first_error.is_some() {
                // NATS is failing: the rest waits for the next comparison (counted behind).
                behind += 1;
                continue;
            }
            if let Err(e) = self.put(&mut known, env).await {
                behind += 1;
                if matches!(e, NatsError::Nats(_)) {
                    first_error = Some(e);
                    continue;
                }
                tracing::warn!(environment = env, error = %e, "cannot publish a document to NATS");
            }
        }
        let gone: Vec<i64> = known
            .held
            .keys()
            .filter(|e| !live.contains(e))
            .copied()
            .collect();
        if first_error.is_none() {
            for env in gone {
                if let Err(e) = self.purge(&mut known, env).await {
                    first_error = Some(e);
                    break;
                }
            }
        }
        known.too_large.retain(|e, _| live.contains(e));
        self.set_behind(behind);
        self.too_large
            .store(known.too_large.len(), Ordering::Relaxed);
        metrics::gauge!(m::DOCUMENTS_TOO_LARGE).set(known.too_large.len() as f64);
        if let Some(e) = first_error {
            known.read_at = None;
            return Err(e);
        }
        if known
            .heartbeat_at
            .is_none_or(|at| at.elapsed() >= HEARTBEAT_INTERVAL)
        {
            self.heartbeat()
                .await
                .inspect_err(|_| known.read_at = None)?;
            known.heartbeat_at = Some(Instant::now());
        }
        self.last_in_step_ms
            .store(flagstone_store::now_ms(), Ordering::Relaxed);
        Ok(())
    }

    async fn published_revisions(&self) -> Result<Vec<(i64, i64)>, NatsError> {
        let mut tx = self.store.read().await?;
        Ok(flagstone_store::document::published_revisions(&mut tx).await?)
    }

    fn set_behind(&self, behind: usize) {
        *self.behind.lock().unwrap_or_else(|p| p.into_inner()) = behind;
        metrics::gauge!(m::DOCUMENTS_BEHIND).set(behind as f64);
    }

    /// Every environment's revision in the bucket (headers only, no documents).
    async fn read_bucket(&self) -> Result<HashMap<i64, i64>, NatsError> {
        let bucket = &self.config.bucket;
        let stream = bucket::stream(&self.js, bucket).await?;
        let (pending, mut messages) =
            bucket::watch_latest(&self.client, &stream, bucket, true).await?;
        let mut held = HashMap::new();
        if pending == 0 {
            return Ok(held);
        }
        loop {
            let msg = tokio::time::timeout(READ_TIMEOUT, messages.next())
                .await
                .map_err(|_| NatsError::Nats("reading the bucket timed out".into()))?
                .ok_or_else(|| NatsError::Nats("the bucket's watch ended".into()))?
                .map_err(NatsError::nats)?;
            let info = msg.info().map_err(NatsError::nats)?;
            let last = info.pending == 0;
            if let Some(BucketKey::Environment(env)) =
                BucketKey::of_subject(bucket, msg.subject.as_str())
            {
                if !bucket::is_removal(msg.headers.as_ref()) {
                    // An entry without our headers counts as nothing held: it is replaced.
                    let revision = value::revision_of(msg.headers.as_ref())
                        .filter(|(e, _)| *e == env)
                        .map_or(0, |(_, r)| r);
                    held.insert(env, revision);
                }
            }
            if last {
                return Ok(held);
            }
        }
    }

    /// Puts an environment's published document, unless the bucket already has it or newer.
    async fn put(&self, known: &mut Known, env: i64) -> Result<(), NatsError> {
        let (stored, api_key) = {
            let mut tx = self.store.read().await?;
            let Some(stored) = flagstone_store::document::load(&mut tx, env).await? else {
                return Ok(());
            };
            let api_key = match flagstone_store::environments::get(&mut tx, env).await {
                Ok(e) => e.api_key,
                Err(flagstone_store::StoreError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            (stored, api_key)
        };
        let revision = stored.revision;
        let v = DocumentValue {
            environment_id: env,
            api_key,
            revision,
            updated_at: stored.updated_at,
            etag: stored.etag.clone(),
            shares_second: stored.shares_second_with_previous(),
            sdk_features: stored.sdk_features,
            document_gz: bytes::Bytes::from(stored.body),
        };
        let (headers, payload) = v.encode();
        let max = self.client.server_info().max_payload;
        if max > 0 && payload.len() + ENVELOPE_ALLOWANCE > max {
            known.too_large.insert(env, revision);
            tracing::error!(
                environment = env,
                revision,
                bytes = payload.len(),
                max_payload = max,
                "document too large for the NATS server's max_payload; edges following NATS keep the previous revision"
            );
            return Ok(());
        }
        let subject = BucketKey::Environment(env).subject(&self.config.bucket);
        let stream = format!("KV_{}", self.config.bucket);
        for _ in 0..RACE_RETRIES {
            let current = self.last_revision(&stream, &subject).await?;
            if let Some((_, theirs)) = current.filter(|(_, r)| *r >= revision) {
                known.held.insert(env, theirs);
                return Ok(());
            }
            let mut h = headers.clone();
            h.insert(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                current.map_or(0, |(seq, _)| seq).to_string().as_str(),
            );
            let ack = self
                .js
                .publish_with_headers(subject.clone(), h, payload.clone())
                .await
                .map_err(|e| self.failed("put", e))?;
            match ack.await {
                Ok(_) => {
                    known.held.insert(env, revision);
                    self.last_put_ms
                        .store(flagstone_store::now_ms(), Ordering::Relaxed);
                    metrics::counter!(m::DOCUMENTS_PUT_TOTAL).increment(1);
                    tracing::debug!(
                        environment = env,
                        revision,
                        "document put in the NATS bucket"
                    );
                    return Ok(());
                }
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    // Another publisher put this key meanwhile: look again.
                    continue;
                }
                Err(e) => return Err(self.failed("put", e)),
            }
        }
        Err(NatsError::Nats(format!(
            "environment {env}: the key kept changing under this publisher"
        )))
    }

    /// The stream sequence and revision of a key's latest entry (`None`: no entry, or removed).
    async fn last_revision(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<(u64, i64)>, NatsError> {
        let stream = self
            .js
            .get_stream_no_info(stream)
            .await
            .map_err(|e| self.failed("read", e))?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => {
                let revision = if bucket::is_removal(Some(&msg.headers)) {
                    0
                } else {
                    value::revision_of(Some(&msg.headers)).map_or(0, |(_, r)| r)
                };
                Ok(Some((msg.sequence, revision)))
            }
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok(None)
            }
            Err(e) => Err(self.failed("read", e)),
        }
    }

    async fn kv(&self) -> Result<kv::Store, NatsError> {
        bucket::open(&self.js, &self.config.bucket)
            .await
            .inspect_err(|_| {
                metrics::counter!(m::PUBLISH_ERRORS_TOTAL, "operation" => "open").increment(1);
            })
    }

    async fn purge(&self, known: &mut Known, env: i64) -> Result<(), NatsError> {
        self.kv()
            .await?
            .purge(BucketKey::Environment(env).key())
            .await
            .map_err(|e| self.failed("purge", e))?;
        known.held.remove(&env);
        metrics::counter!(m::DOCUMENTS_PURGED_TOTAL).increment(1);
        tracing::debug!(
            environment = env,
            "deleted environment purged from the NATS bucket"
        );
        Ok(())
    }

    async fn heartbeat(&self) -> Result<(), NatsError> {
        let beat = Heartbeat {
            confirmed_at_ms: flagstone_store::now_ms(),
        };
        let body = serde_json::to_vec(&beat).unwrap_or_default();
        self.kv()
            .await?
            .put(BucketKey::Heartbeat.key(), body.into())
            .await
            .map_err(|e| self.failed("heartbeat", e))?;
        Ok(())
    }

    fn failed(&self, operation: &'static str, e: impl std::fmt::Display) -> NatsError {
        metrics::counter!(m::PUBLISH_ERRORS_TOTAL, "operation" => operation).increment(1);
        NatsError::nats(e)
    }
}

/// Published documents newer than what `known` says the bucket holds (those too large to put
/// left out).
fn count_behind(known: &Known, published: &[(i64, i64)]) -> usize {
    published
        .iter()
        .filter(|(env, revision)| {
            known.held.get(env).copied().unwrap_or(0) < *revision
                && known.too_large.get(env) != Some(revision)
        })
        .count()
}

async fn forward_in_process(mut rx: broadcast::Receiver<(i64, i64)>, tx: mpsc::Sender<Notice>) {
    loop {
        match rx.recv().await {
            Ok((environment_id, revision)) => {
                let n = Notice::Published {
                    environment_id,
                    revision,
                };
                if tx.send(n).await.is_err() {
                    return;
                }
            }
            // Missed some: the periodic comparison finds them.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Forwards PostgreSQL publish notifications; reconnects after a lost connection.
async fn listen_postgres(store: Store, out: mpsc::Sender<Notice>) {
    loop {
        match flagstone_store::queue::notify::listen(&store).await {
            Ok(Some(mut listener)) => loop {
                match listener.recv().await {
                    Ok(n) => {
                        let parsed =
                            flagstone_store::queue::notify::parse_notification(n.payload());
                        if let Some(notice) = parsed {
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
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "cannot listen for publish notifications"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
