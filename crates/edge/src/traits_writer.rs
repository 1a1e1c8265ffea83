//! Persists traits sent by SDKs behind the request: handlers hand writes to a bounded queue and
//! answer; one background task drains the queue in batches, each batch written in one store
//! transaction (one commit for up to [`MAX_BATCH`] identities instead of one per request), so
//! the writer keeps up with a flood of new identities rather than dropping their traits.
//!
//! When the queue is full a request waits for room (`flagstone_edge_trait_queue_full_total`
//! counts how often): that paces a flood to what the store can write, with memory bounded by
//! the queue. The writer always makes progress (each batch commits or fails within the store's
//! timeouts; in an outage writes fail fast and are counted), so the wait is bounded by the
//! store, not by the flood. A write is dropped (`flagstone_edge_trait_writes_dropped_total`)
//! only when the writer has stopped.
//!
//! A batch that fails as a whole (a store error, not a refused write) is retried one write per
//! transaction, so one poisonous write costs only itself
//! (`flagstone_edge_trait_writes_failed_total`).
//!
//! An edge without a store ([`Source::Upstream`]) sends each batch to its upstream in one HTTP
//! POST instead, retried with backoff while the upstream is unreachable. There a full queue
//! never makes a request wait (the upstream may be gone for hours): the write is dropped and
//! counted (`flagstone_edge_trait_writes_dropped_total`), so memory stays bounded by the queue
//! and the batch being retried.

use std::time::Duration;

use flagstone_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::Source;

/// Writes persisted in one transaction, at most.
pub const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraitWrite {
    pub environment_id: i64,
    pub identifier: String,
    /// `(key, None)` deletes the trait.
    pub traits: Vec<(String, Option<Value>)>,
}

/// What the queue carries: writes, and markers answered once everything queued before them
/// is written.
enum Job {
    Write(TraitWrite),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct TraitWriter {
    tx: mpsc::Sender<Job>,
    /// A full queue drops the write rather than wait (an edge without a store).
    drop_when_full: bool,
}

impl TraitWriter {
    /// Starts the writer task; it ends when every `TraitWriter` is dropped and the queue drains.
    pub fn spawn(source: Source, capacity: usize) -> TraitWriter {
        let (tx, mut rx) = mpsc::channel::<Job>(capacity.max(1));
        let drop_when_full = matches!(source, Source::Upstream(_));
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                for job in jobs.drain(..) {
                    match job {
                        Job::Write(w) => batch.push(w),
                        Job::Flush(done) => {
                            write_batch(&source, &batch).await;
                            batch.clear();
                            let _ = done.send(());
                        }
                    }
                }
                write_batch(&source, &batch).await;
                batch.clear();
            }
        });
        TraitWriter { tx, drop_when_full }
    }

    /// Queues a write; waits for room when the queue is full.
    pub async fn submit(&self, w: TraitWrite) {
        let job = match self.tx.try_send(Job::Write(w)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) if self.drop_when_full => {
                metrics::counter!("flagstone_edge_trait_queue_full_total").increment(1);
                metrics::counter!("flagstone_edge_trait_writes_dropped_total").increment(1);
                return;
            }
            Err(mpsc::error::TrySendError::Full(job)) => job,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::counter!("flagstone_edge_trait_writes_dropped_total").increment(1);
                return;
            }
        };
        metrics::counter!("flagstone_edge_trait_queue_full_total").increment(1);
        if self.tx.send(job).await.is_err() {
            metrics::counter!("flagstone_edge_trait_writes_dropped_total").increment(1);
        }
    }

    /// Waits until every write queued before this call has been written (or has failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batch(source: &Source, batch: &[TraitWrite]) {
    if batch.is_empty() {
        return;
    }
    match source {
        Source::Store(store) => write_batch_to_store(store, batch).await,
        Source::Upstream(client) => send_batch_upstream(client, batch).await,
    }
}

/// Longest wait between two attempts to send a batch to the upstream.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// Sends a batch to the upstream; retries (with backoff) while it cannot be reached or fails,
/// gives up on a batch it refuses as malformed (that would never succeed).
async fn send_batch_upstream(client: &crate::upstream::Client, batch: &[TraitWrite]) {
    let mut delay = Duration::from_millis(200);
    loop {
        match client.send_traits(batch).await {
            Ok(()) => {
                metrics::counter!("flagstone_edge_trait_write_batches_total").increment(1);
                metrics::counter!("flagstone_edge_trait_writes_total")
                    .increment(batch.len() as u64);
                return;
            }
            Err(e) if e.is_refusal() => {
                metrics::counter!("flagstone_edge_trait_writes_failed_total")
                    .increment(batch.len() as u64);
                tracing::warn!(writes = batch.len(), error = %e, "the upstream refused a batch of SDK trait writes");
                return;
            }
            Err(e) => {
                tracing::warn!(writes = batch.len(), error = %e, "cannot send SDK trait writes to the upstream; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

/// Writes a batch in one transaction; if that fails, each write in its own.
async fn write_batch_to_store(store: &Store, batch: &[TraitWrite]) {
    let written = async {
        let mut tx = store.write().await?;
        for w in batch {
            match persist(&mut tx, w).await {
                Ok(()) => {}
                // Refused before anything of it was written: the others still go in.
                Err(e @ (StoreError::Invalid { .. } | StoreError::LimitExceeded { .. })) => {
                    failed(w, &e)
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await
    }
    .await;
    match written {
        Ok(()) => {
            metrics::counter!("flagstone_edge_trait_write_batches_total").increment(1);
            metrics::counter!("flagstone_edge_trait_writes_total").increment(batch.len() as u64);
        }
        Err(e) if batch.len() == 1 => failed(&batch[0], &e),
        Err(e) => {
            tracing::warn!(writes = batch.len(), error = %e, "a batch of SDK trait writes failed; writing them one by one");
            for w in batch {
                let one = async {
                    let mut tx = store.write().await?;
                    persist(&mut tx, w).await?;
                    tx.commit().await
                }
                .await;
                match one {
                    Ok(()) => metrics::counter!("flagstone_edge_trait_writes_total").increment(1),
                    Err(e) => failed(w, &e),
                }
            }
        }
    }
}

async fn persist(tx: &mut flagstone_store::Tx, w: &TraitWrite) -> flagstone_store::Result<()> {
    flagstone_store::identities::persist_sdk_traits(tx, w.environment_id, &w.identifier, &w.traits)
        .await
        .map(drop)
}

fn failed(w: &TraitWrite, e: &StoreError) {
    metrics::counter!("flagstone_edge_trait_writes_failed_total").increment(1);
    tracing::warn!(environment = w.environment_id, error = %e, "persisting SDK traits failed");
}
