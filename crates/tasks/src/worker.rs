//! The worker loop: keeps up to `concurrency` build slots busy, each with a batch of up to
//! `batch` claimed environments ([`crate::batch`]), sleeps exactly until the next job is due (at
//! most `poll_interval`), reconciles periodically, and on shutdown hands running jobs back. The
//! main entry point is [`Worker::run`].
//!
//! Claims run one at a time in this loop, so during a burst the loop claims ahead: up to one
//! batch of leases beyond what its free slots take waits in a short queue, and a slot that
//! frees starts its next batch without a claim round trip (a claim is a transaction and a
//! commit; claiming only for the slots free at that moment left slots idle behind it). A
//! waiting lease older than a third of the lease length is handed back rather than started, so
//! it can never expire unrenewed and be counted as a crashed attempt.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flagstone_store::queue;
use flagstone_store::Store;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::batch::{publish_batch, BatchContext};
use crate::finishing::Finishing;
use crate::publish::PublishOutcome;
use crate::{steps, Publications, WorkerConfig};

pub struct Worker {
    store: Store,
    config: WorkerConfig,
    publications: Publications,
    wake: Arc<Notify>,
}

/// Logs how a publish ended, inside the job's span (which carries its environment and task id).
fn log_outcome(outcome: &PublishOutcome, took: Duration) {
    let ms = took.as_millis() as u64;
    match outcome {
        PublishOutcome::Published {
            revision,
            follow_up,
        } => tracing::info!(revision, follow_up, ms, "published"),
        PublishOutcome::Superseded { revision } => tracing::info!(revision, ms, "superseded"),
        PublishOutcome::Retrying {
            attempts, error, ..
        } => tracing::warn!(attempts, error = %error, "publish failed; will retry"),
        PublishOutcome::Parked { reason, error } => tracing::error!(
            reason = reason.as_str(),
            error = %error,
            "publish parked; the environment keeps its last published document"
        ),
        other => tracing::warn!(outcome = other.label(), detail = ?other, "publish ended"),
    }
}

impl Worker {
    pub fn new(store: Store, config: WorkerConfig, publications: Publications) -> Worker {
        Worker {
            store,
            config,
            publications,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the worker's loop now (e.g. after an in-process change), instead of at its next
    /// poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Runs until `shutdown` resolves, then waits up to `shutdown_grace` for running builds and
    /// hands back the jobs of those still running.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let cfg = Arc::new(self.config);
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        let mut running: JoinSet<()> = JoinSet::new();
        let mut next_reconcile = Instant::now();
        let mut ahead: VecDeque<queue::Lease> = VecDeque::new();
        // Builds that end together are finished in one transaction.
        let finishing = Finishing::grouped(self.store.clone(), cfg.clone());
        tokio::pin!(shutdown);
        // Claims are tied to this session: if the process dies, they are reclaimed at once.
        let Some(mut session) = open_session(&self.store, &cfg, &mut shutdown).await else {
            tracing::info!("worker stopped before its claim session opened");
            return;
        };
        tracing::info!(
            owner = %cfg.owner,
            session = session.key(),
            concurrency = cfg.concurrency,
            "worker started"
        );
        loop {
            if session.is_lost() {
                // Leases claimed ahead under the old session are no longer this worker's.
                ahead.clear();
                // Builds under the old session stop (they watch it); new claims need a new one.
                match open_session(&self.store, &cfg, &mut shutdown).await {
                    Some(s) => session = s,
                    None => break,
                }
                tracing::info!(session = session.key(), "claim session reopened");
            }
            while running.try_join_next().is_some() {}
            if Instant::now() >= next_reconcile {
                match queue::reconcile(&self.store).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(jobs = n, "reconciler re-queued unpublished environments")
                    }
                    Err(e) => tracing::warn!(error = %e, "reconcile failed"),
                }
                next_reconcile = Instant::now() + cfg.reconcile_interval;
            }
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = &mut shutdown => break,
            };
            // Every free slot is filled by one claim: a burst over many environments costs a
            // queue round per batch, not per environment.
            let mut slots = vec![permit];
            while let Ok(p) = permits.clone().try_acquire_owned() {
                slots.push(p);
            }
            let now = self.store.clock().now_ms();
            let stale = take_stale(&mut ahead, now, cfg.rules.lease_ms / 3);
            hand_back_all(&self.store, stale).await;
            let batch = cfg.batch.clamp(1, crate::finishing::MAX_GROUP);
            let claimed = if ahead.len() < slots.len() * batch {
                // Full batches for every free slot, and one more batch ahead.
                let want = slots.len() * batch - ahead.len() + batch;
                steps::claim_batch(&self.store, &session, &cfg, want)
                    .await
                    .map(|leases| ahead.extend(leases))
            } else {
                Ok(())
            };
            // A failed claim does not hold back leases already in hand.
            let claimed = match claimed {
                Err(e) if !ahead.is_empty() => {
                    tracing::warn!(error = %e, "cannot claim publish jobs; starting those in hand");
                    Ok(())
                }
                other => other,
            };
            let idle = match claimed {
                Ok(()) if !ahead.is_empty() => {
                    for size in batch_sizes(ahead.len(), slots.len(), batch) {
                        let permit = slots.pop().expect("a slot per batch");
                        let leases: Vec<queue::Lease> = ahead.drain(..size).collect();
                        let store = self.store.clone();
                        let cfg = cfg.clone();
                        let publications = self.publications.clone();
                        let finishing = finishing.clone();
                        let stop = stop_rx.clone();
                        let session_lost = session.lost();
                        running.spawn(async move {
                            let ctx = BatchContext {
                                store: &store,
                                cfg: &cfg,
                                publications: &publications,
                                finishing: &finishing,
                            };
                            for (lease, outcome, took) in
                                publish_batch(&ctx, leases, stop, session_lost).await
                            {
                                crate::metrics::publish_ended(&outcome, took);
                                crate::batch::publish_span(&lease)
                                    .in_scope(|| log_outcome(&outcome, took));
                            }
                            drop(permit);
                        });
                    }
                    continue;
                }
                Ok(()) => {
                    match queue::next_due_in(&self.store, self.store.clock().now_ms()).await {
                        Ok(Some(ms)) => Duration::from_millis(ms as u64).min(cfg.poll_interval),
                        _ => cfg.poll_interval,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim publish jobs; retrying");
                    cfg.poll_interval.max(Duration::from_secs(1))
                }
            };
            drop(slots);
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = self.wake.notified() => {}
                _ = &mut shutdown => break,
            }
        }
        tracing::info!(running = running.len(), "worker stopping");
        // Claimed ahead, never started: back to the queue at once, for another worker.
        hand_back_all(&self.store, ahead.drain(..).collect()).await;
        let grace = tokio::time::sleep(cfg.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                _ = &mut grace => {
                    // Running builds hand their jobs back instead of waiting for lease expiry.
                    let _ = stop_tx.send(true);
                    while running.join_next().await.is_some() {}
                    break;
                }
            }
        }
        drop(session);
        tracing::info!("worker stopped");
    }
}

/// How `available` leases in hand are shared among `free` slots, at most `max` each: evenly,
/// so a burst keeps every slot busy and a trickle still starts each lease at once. One size per
/// batch to start; leases beyond the sizes stay in hand.
pub fn batch_sizes(available: usize, free: usize, max: usize) -> Vec<usize> {
    let max = max.max(1);
    let batches = available.min(free);
    if batches == 0 {
        return Vec::new();
    }
    let total = available.min(batches * max);
    (0..batches)
        .map(|i| total / batches + usize::from(i < total % batches))
        .collect()
}

/// Opens a claim session, retrying while the database is unreachable; `None` if `shutdown`
/// comes first.
async fn open_session(
    store: &Store,
    cfg: &WorkerConfig,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<queue::ClaimSession> {
    loop {
        match queue::ClaimSession::open(store, &cfg.owner).await {
            Ok(s) => return Some(s),
            Err(e) => tracing::warn!(error = %e, "cannot open a claim session; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.poll_interval.max(Duration::from_millis(500))) => {}
            _ = shutdown.as_mut() => return None,
        }
    }
}

/// Removes from `ahead` (leases claimed ahead of free slots, oldest first) and returns those
/// claimed more than `max_wait_ms` before `now`: nothing renews a lease that waits there, so
/// one that waited that long is handed back instead of started.
fn take_stale(ahead: &mut VecDeque<queue::Lease>, now: i64, max_wait_ms: i64) -> Vec<queue::Lease> {
    let mut stale = Vec::new();
    ahead.retain(|l| {
        let waited_too_long = now - l.claimed_at > max_wait_ms;
        if waited_too_long {
            stale.push(l.clone());
        }
        !waited_too_long
    });
    stale
}

/// Hands back leases that were claimed but never started (their jobs are pending again,
/// without an attempt counted).
async fn hand_back_all(store: &Store, leases: Vec<queue::Lease>) {
    for lease in leases {
        if let Err(e) = steps::hand_back(store, &lease).await {
            tracing::warn!(
                environment = lease.environment_id,
                error = %e,
                "cannot hand back a job claimed ahead; it is reclaimed when its lease ends"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::batch_sizes;

    #[test]
    fn leases_in_hand_are_shared_evenly_among_free_slots() {
        // A burst: full batches for every free slot, the rest stays in hand.
        assert_eq!(batch_sizes(48, 2, 16), vec![16, 16]);
        // Fewer than full batches: spread, so both slots work.
        assert_eq!(batch_sizes(5, 2, 16), vec![3, 2]);
        assert_eq!(batch_sizes(17, 2, 16), vec![9, 8]);
        // A trickle: one lease starts at once in one slot; the other stays free.
        assert_eq!(batch_sizes(1, 2, 16), vec![1]);
        assert_eq!(batch_sizes(0, 2, 16), Vec::<usize>::new());
        assert_eq!(batch_sizes(3, 0, 16), Vec::<usize>::new());
        // Batches of one: one lease per slot, as without batching.
        assert_eq!(batch_sizes(10, 4, 1), vec![1, 1, 1, 1]);
        assert_eq!(batch_sizes(10, 4, 0), vec![1, 1, 1, 1]);
    }
}
