//! How one publish ends: [`settle`] turns a build's result into a finish or a classified
//! failure (through [`crate::steps`], which asks the policy), as a [`PublishOutcome`]. Builds
//! run in batches ([`crate::batch::publish_batch`]), a lone one as a batch of one.

use std::time::Duration;

use flagstone_store::document::{BuildError, BuiltDocument};
use flagstone_store::queue::{Decision, Lease, ParkReason};
use flagstone_store::{Store, StoreError};

use crate::finishing::Finishing;
use crate::policy::Failure;
use crate::steps::{self, Finished, Settled};
use crate::{Publications, WorkerConfig};

/// How a publish ended: logged by the worker, counted in `flagstone_publish_builds_total`,
/// and asserted in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Published `revision`; `follow_up` when changes arrived during the build.
    Published { revision: i64, follow_up: bool },
    /// Built, but an equal or newer document was already published.
    Superseded { revision: i64 },
    /// Failed; retried at `run_after`.
    Retrying {
        attempts: i64,
        run_after: i64,
        error: String,
    },
    /// Failed and parked; the environment keeps its last published document.
    Parked { reason: ParkReason, error: String },
    /// The environment was deleted; its job was dropped.
    EnvironmentGone,
    /// The claim no longer holds: another worker took the job over (this one stalled past its
    /// lease), or this worker's claim session ended (its database connection dropped).
    LeaseLost,
    /// The worker is shutting down; the job was handed back.
    Released,
    /// The queue could not be updated (database unreachable); the lease will expire and the
    /// job will be reclaimed.
    Abandoned { error: String },
}

impl PublishOutcome {
    /// Every label value, for metrics registered at zero.
    pub const LABELS: &'static [&'static str] = &[
        "published",
        "superseded",
        "retrying",
        "parked",
        "environment_gone",
        "lease_lost",
        "released",
        "abandoned",
    ];

    /// The outcome's name as a metric label and in logs.
    pub fn label(&self) -> &'static str {
        match self {
            PublishOutcome::Published { .. } => "published",
            PublishOutcome::Superseded { .. } => "superseded",
            PublishOutcome::Retrying { .. } => "retrying",
            PublishOutcome::Parked { .. } => "parked",
            PublishOutcome::EnvironmentGone => "environment_gone",
            PublishOutcome::LeaseLost => "lease_lost",
            PublishOutcome::Released => "released",
            PublishOutcome::Abandoned { .. } => "abandoned",
        }
    }
}

/// What a build attempt produced.
#[derive(Debug)]
pub enum BuildResult {
    Built(BuiltDocument),
    Failed(BuildError),
    TimedOut(Duration),
}

/// Which failures are worth retrying: an oversized document or corrupt data fails the same way
/// until the environment changes; everything else (database errors, timeouts) may pass.
pub fn classify(e: &BuildError) -> Failure {
    match e {
        BuildError::TooLarge { .. } => Failure::Permanent(ParkReason::DocumentTooLarge),
        BuildError::Store(StoreError::Corrupt { .. }) => {
            Failure::Permanent(ParkReason::InvalidData)
        }
        BuildError::Store(e) if e.unavailable().is_some() => Failure::StoreUnavailable,
        _ => Failure::Transient,
    }
}

/// The outcome of finishing a built document (revision `revision` of `environment`, `bytes`
/// uncompressed), announced in-process when it was published.
pub(crate) fn published_outcome(
    publications: &Publications,
    environment: i64,
    revision: i64,
    bytes: i64,
    finished: Result<Finished, StoreError>,
) -> PublishOutcome {
    match finished {
        Ok(f) if f.published => {
            crate::metrics::document_published(bytes);
            publications.announce(environment, revision);
            PublishOutcome::Published {
                revision,
                follow_up: matches!(f.settled, Settled::Decided(Decision::FollowUp { .. })),
            }
        }
        Ok(f) if f.settled == Settled::LeaseLost => PublishOutcome::LeaseLost,
        Ok(_) => PublishOutcome::Superseded { revision },
        Err(e) => PublishOutcome::Abandoned {
            error: e.to_string(),
        },
    }
}

/// Ends the job of `lease` according to what its build produced: finish (and announce) a
/// document (through `finishing`, alone or in a group), drop the job of a deleted environment,
/// or record a classified failure.
pub async fn settle(
    store: &Store,
    lease: &Lease,
    result: BuildResult,
    cfg: &WorkerConfig,
    publications: &Publications,
    finishing: &Finishing,
) -> PublishOutcome {
    let abandoned = |e: StoreError| PublishOutcome::Abandoned {
        error: e.to_string(),
    };
    let (failure, error) = match result {
        BuildResult::Built(doc) => {
            let (environment, revision, bytes) = (doc.environment_id, doc.revision, doc.bytes);
            let finished = finishing.finish(store, lease, doc, cfg).await;
            return published_outcome(publications, environment, revision, bytes, finished);
        }
        BuildResult::Failed(BuildError::EnvironmentNotFound) => {
            return match steps::forget(store, lease.environment_id).await {
                Ok(()) => PublishOutcome::EnvironmentGone,
                Err(e) => abandoned(e),
            };
        }
        BuildResult::Failed(e) => (classify(&e), e.to_string()),
        BuildResult::TimedOut(after) => (
            Failure::Transient,
            format!("build timed out after {after:?}"),
        ),
    };
    match steps::fail(store, lease, failure, &error, cfg).await {
        Ok(Settled::Decided(Decision::Retry {
            attempts,
            run_after,
            ..
        })) => PublishOutcome::Retrying {
            attempts,
            run_after,
            error,
        },
        Ok(Settled::Decided(Decision::Park { reason, .. })) => {
            PublishOutcome::Parked { reason, error }
        }
        Ok(Settled::Decided(other)) => PublishOutcome::Abandoned {
            error: format!("unexpected decision after a failure: {other:?}"),
        },
        Ok(Settled::LeaseLost) => PublishOutcome::LeaseLost,
        Err(e) => abandoned(e),
    }
}
