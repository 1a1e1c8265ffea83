//! One publish: build the claimed environment's document while a heartbeat keeps the lease,
//! then hand the result to the queue (`finish`) or the failure (`fail`, classified as
//! transient or permanent). The main function is [`publish_job`].

use std::sync::Arc;
use std::time::Duration;

use flagstone_store::document::{self, BuildError};
use flagstone_store::queue::{self, FailOutcome, FailureKind, Lease, ParkReason};
use flagstone_store::{Store, StoreError};
use tokio::sync::{watch, Notify};

use crate::{Publications, WorkerConfig};

/// How a publish ended: logged by the worker and asserted in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Published `revision`; `follow_up` when changes arrived during the build.
    Published { revision: i64, follow_up: bool },
    /// Built, but an equal or newer document was already published.
    Superseded { revision: i64 },
    /// Failed; retried after backoff.
    Retrying { attempts: i64, error: String },
    /// Failed and parked; the environment keeps its last published document.
    Parked { reason: ParkReason, error: String },
    /// The environment was deleted; its job was dropped.
    EnvironmentGone,
    /// Another worker took the job over (this one stalled past its lease).
    LeaseLost,
    /// The worker is shutting down; the job was handed back.
    Released,
    /// The queue could not be updated (database unreachable); the lease will expire and the
    /// job will be reclaimed.
    Abandoned { error: String },
}

fn classify(e: &BuildError) -> FailureKind {
    match e {
        BuildError::TooLarge { .. } => FailureKind::Permanent(ParkReason::DocumentTooLarge),
        BuildError::Store(StoreError::Corrupt { .. }) => {
            FailureKind::Permanent(ParkReason::InvalidData)
        }
        _ => FailureKind::Transient,
    }
}

/// Renews the lease every third of its length until dropped; signals `lost` if it cannot.
fn spawn_heartbeat(
    store: Store,
    lease: Lease,
    cfg: &WorkerConfig,
    lost: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    let settings = cfg.queue.clone();
    let every = Duration::from_millis((settings.lease_ms / 3).max(10) as u64);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match queue::heartbeat(&store, &lease, &settings).await {
                Ok(true) => {}
                Ok(false) => {
                    lost.notify_one();
                    return;
                }
                // Transient: try again next beat; the lease is still ours until it expires.
                Err(e) => {
                    tracing::warn!(environment = lease.environment_id, error = %e, "heartbeat failed")
                }
            }
        }
    })
}

/// Builds and publishes the environment of `lease`. Never returns an error: every ending is a
/// [`PublishOutcome`], and the queue row always ends up in a state another worker can act on.
pub async fn publish_job(
    store: &Store,
    lease: &Lease,
    cfg: &WorkerConfig,
    publications: &Publications,
    mut shutdown: watch::Receiver<bool>,
) -> PublishOutcome {
    let lost = Arc::new(Notify::new());
    let heartbeat = spawn_heartbeat(store.clone(), lease.clone(), cfg, lost.clone());
    let build = async {
        if !cfg.test_build_delay.is_zero() {
            tokio::time::sleep(cfg.test_build_delay).await;
        }
        document::build(store, lease.environment_id, &cfg.build).await
    };
    let result = tokio::select! {
        r = tokio::time::timeout(cfg.build_timeout, build) => Some(r),
        _ = lost.notified() => None,
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            heartbeat.abort();
            return match queue::release(store, lease).await {
                Ok(_) => PublishOutcome::Released,
                Err(e) => PublishOutcome::Abandoned { error: e.to_string() },
            };
        }
    };
    heartbeat.abort();
    let Some(result) = result else {
        return PublishOutcome::LeaseLost;
    };
    let (kind, error) = match result {
        Ok(Ok(doc)) => {
            return match queue::finish(store, lease, &doc, &cfg.queue).await {
                Ok(f) if f.published => {
                    publications.announce(doc.environment_id, doc.revision);
                    PublishOutcome::Published {
                        revision: doc.revision,
                        follow_up: f.follow_up,
                    }
                }
                Ok(f) if f.lease_lost => PublishOutcome::LeaseLost,
                Ok(_) => PublishOutcome::Superseded {
                    revision: doc.revision,
                },
                Err(e) => PublishOutcome::Abandoned {
                    error: e.to_string(),
                },
            };
        }
        Ok(Err(BuildError::EnvironmentNotFound)) => {
            return match queue::forget(store, lease.environment_id).await {
                Ok(()) => PublishOutcome::EnvironmentGone,
                Err(e) => PublishOutcome::Abandoned {
                    error: e.to_string(),
                },
            };
        }
        Ok(Err(e)) => (classify(&e), e.to_string()),
        Err(_) => (
            FailureKind::Transient,
            format!("build timed out after {:?}", cfg.build_timeout),
        ),
    };
    match queue::fail(store, lease, kind, &error, &cfg.queue).await {
        Ok(FailOutcome::Retrying { attempts, .. }) => PublishOutcome::Retrying { attempts, error },
        Ok(FailOutcome::Parked(reason)) => PublishOutcome::Parked { reason, error },
        Ok(FailOutcome::LeaseLost) => PublishOutcome::LeaseLost,
        Err(e) => PublishOutcome::Abandoned {
            error: e.to_string(),
        },
    }
}
