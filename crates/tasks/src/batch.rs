//! A slot's run of publishes: the environments of several leases claimed together, built one
//! after another from one snapshot ([`flagstone_store::document::Builder`]) and finished
//! together in one transaction ([`Finishing::finish_all`]). The main function is
//! [`publish_batch`]; a lone lease is a batch of one.
//!
//! Why: during a burst over many environments each build on its own cost about seventeen
//! statements (snapshot, project reads, header, segments, states, rollback; then lease check,
//! store, notify, log, job update and commit), and PostgreSQL's share of a 1,000-environment
//! burst was mostly that per-statement overhead. In a batch a build costs its own three reads,
//! and the batch shares one snapshot, one read of each project's features and one finishing
//! transaction.
//!
//! Each environment is still decided alone: a lost lease, a failed or timed-out build, a deleted
//! environment or a superseded document affects only its own lease. The exception is a database
//! that cannot be reached: the rest of the batch goes back to the queue unbuilt. Memory stays bounded: built
//! documents are finished as soon as they hold [`HELD_BYTES`], and a snapshot is replaced once
//! it is [`SNAPSHOT_AGE`] old (an old snapshot holds back PostgreSQL's cleanup).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flagstone_store::document::{BuildError, Builder, BuiltDocument};
use flagstone_store::queue::Lease;
use flagstone_store::Store;
use tokio::sync::{watch, Notify};
use tracing::Instrument;

use crate::breakpoints::Breakpoint;
use crate::finishing::Finishing;
use crate::policy::Failure;
use crate::publish::{classify, published_outcome, settle, BuildResult, PublishOutcome};
use crate::steps::{self, Settled};
use crate::{Publications, WorkerConfig};

/// Built documents held (compressed bytes) before the batch finishes them and goes on.
pub const HELD_BYTES: usize = 8 << 20;

/// A snapshot older than this is replaced before the next build.
pub const SNAPSHOT_AGE: Duration = Duration::from_secs(1);

/// What the batch does before building its next environment: a typed decision, so the rule is
/// tested without a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeforeBuild {
    /// Finish the documents built so far first.
    pub finish_held: bool,
    /// Build from a new snapshot.
    pub new_snapshot: bool,
}

/// Decides [`BeforeBuild`] from the bytes of the documents held and the snapshot's age (`None`:
/// no snapshot open).
pub fn before_build(held_bytes: usize, snapshot_age: Option<Duration>) -> BeforeBuild {
    BeforeBuild {
        finish_held: held_bytes >= HELD_BYTES,
        new_snapshot: snapshot_age.is_none_or(|age| age >= SNAPSHOT_AGE),
    }
}

/// The leases of a batch not yet settled, and those the heartbeat found lost.
#[derive(Default)]
struct Renewals {
    open: Mutex<Vec<Lease>>,
    lost: Mutex<HashSet<i64>>,
    lost_one: Notify,
}

impl Renewals {
    fn is_lost(&self, environment_id: i64) -> bool {
        self.lost
            .lock()
            .expect("not poisoned")
            .contains(&environment_id)
    }

    /// Stops renewing the leases of `environments` (settled).
    fn settled(&self, environments: &[i64]) {
        self.open
            .lock()
            .expect("not poisoned")
            .retain(|l| !environments.contains(&l.environment_id));
    }
}

/// Renews every open lease of the batch every third of a lease; records those it cannot.
fn spawn_heartbeat(
    store: Store,
    renewals: Arc<Renewals>,
    cfg: &WorkerConfig,
) -> tokio::task::JoinHandle<()> {
    let cfg = cfg.clone();
    let every = Duration::from_millis((cfg.rules.lease_ms / 3).max(10) as u64);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let open = renewals.open.lock().expect("not poisoned").clone();
            for lease in open {
                match steps::heartbeat(&store, &lease, &cfg).await {
                    Ok(true) => {}
                    Ok(false) => {
                        renewals
                            .lost
                            .lock()
                            .expect("not poisoned")
                            .insert(lease.environment_id);
                        renewals.lost_one.notify_waiters();
                    }
                    // Transient: try again next beat; the lease is still ours until it expires.
                    Err(e) => tracing::warn!(
                        environment = lease.environment_id,
                        error = %e,
                        "heartbeat failed"
                    ),
                }
            }
        }
    })
}

/// The span of `lease`'s publish in logs. The job's id is its environment's id: one job per
/// environment.
pub(crate) fn publish_span(lease: &Lease) -> tracing::Span {
    tracing::info_span!(
        "publish",
        environment = lease.environment_id,
        task = lease.environment_id,
        attempt = lease.attempts + 1,
    )
}

/// The batch's signals, shared by every build in it.
struct Signals {
    shutdown: watch::Receiver<bool>,
    session_lost: watch::Receiver<bool>,
}

/// How one environment's build ended, before it is settled.
enum Ended {
    Result(BuildResult),
    /// Its lease was lost (the heartbeat could not renew it: another worker took the job
    /// over): record nothing.
    LeaseLost,
    /// The claim session ended: nothing of the batch can be recorded any more.
    SessionLost,
    Shutdown,
}

/// Everything a batch needs besides its leases.
pub struct BatchContext<'a> {
    pub store: &'a Store,
    pub cfg: &'a WorkerConfig,
    pub publications: &'a Publications,
    pub finishing: &'a Finishing,
}

/// Builds and publishes the environments of `leases` (claimed together, distinct
/// environments) and returns each lease's [`PublishOutcome`] with the time from the batch's
/// start to its settling, in the order settled. Never returns an error: every job's row ends
/// up in a state another worker can act on. `shutdown` hands back the jobs not yet built;
/// `session_lost` (the claim session's) ends the batch, since another worker may be
/// reclaiming its jobs.
pub async fn publish_batch(
    ctx: &BatchContext<'_>,
    leases: Vec<Lease>,
    shutdown: watch::Receiver<bool>,
    session_lost: watch::Receiver<bool>,
) -> Vec<(Lease, PublishOutcome, Duration)> {
    let started = Instant::now();
    let renewals = Arc::new(Renewals {
        open: Mutex::new(leases.clone()),
        ..Default::default()
    });
    let heartbeat = spawn_heartbeat(ctx.store.clone(), renewals.clone(), ctx.cfg);
    let mut signals = Signals {
        shutdown,
        session_lost,
    };
    let mut out = Vec::with_capacity(leases.len());
    let mut held: Vec<(Lease, BuiltDocument)> = Vec::new();
    let mut builder: Option<Builder> = None;
    let mut leases = leases.into_iter();
    while let Some(lease) = leases.next() {
        let env = lease.environment_id;
        let next = before_build(
            held.iter().map(|(_, d)| d.body.len()).sum(),
            builder.as_ref().map(Builder::age),
        );
        if next.finish_held {
            finish_held(ctx, &mut held, &renewals, &mut out, started).await;
        }
        if next.new_snapshot {
            builder = None;
        }
        let ended = if renewals.is_lost(env) {
            Ended::LeaseLost
        } else {
            build_one(ctx, &lease, &mut builder, &renewals, &mut signals)
                .instrument(publish_span(&lease))
                .await
        };
        let outcome = match ended {
            Ended::Result(BuildResult::Built(doc)) => {
                held.push((lease, doc));
                continue;
            }
            Ended::Result(result) => {
                // The snapshot may be unusable after a failed build (see `Builder::build`).
                if !matches!(result, BuildResult::Failed(BuildError::EnvironmentNotFound)) {
                    builder = None;
                }
                let unreachable = matches!(&result,
                    BuildResult::Failed(e) if classify(e) == Failure::StoreUnavailable);
                let outcome = settle(
                    ctx.store,
                    &lease,
                    result,
                    ctx.cfg,
                    ctx.publications,
                    ctx.finishing,
                )
                .await;
                if unreachable {
                    // The rest would wait for the database one by one: back to the queue.
                    renewals.settled(&[env]);
                    out.push((lease, outcome, started.elapsed()));
                    hand_back_rest(ctx, leases.by_ref(), &mut out, started).await;
                    break;
                }
                outcome
            }
            Ended::LeaseLost => PublishOutcome::LeaseLost,
            Ended::SessionLost => {
                for lease in std::iter::once(lease).chain(leases.by_ref()) {
                    out.push((lease, PublishOutcome::LeaseLost, started.elapsed()));
                }
                break;
            }
            Ended::Shutdown => {
                // Not built: back to the queue at once. What was built is still finished.
                hand_back_rest(
                    ctx,
                    std::iter::once(lease).chain(leases.by_ref()),
                    &mut out,
                    started,
                )
                .await;
                break;
            }
        };
        renewals.settled(&[env]);
        out.push((lease, outcome, started.elapsed()));
    }
    drop(builder);
    finish_held(ctx, &mut held, &renewals, &mut out, started).await;
    heartbeat.abort();
    out
}

/// Builds `lease`'s environment (opening a snapshot when `builder` has none), unless its lease
/// is lost, the session ends or the worker shuts down first.
async fn build_one(
    ctx: &BatchContext<'_>,
    lease: &Lease,
    builder: &mut Option<Builder>,
    renewals: &Renewals,
    signals: &mut Signals,
) -> Ended {
    let env = lease.environment_id;
    let cfg = ctx.cfg;
    let build = async {
        if let Some(b) = &cfg.breakpoints {
            b.reached(Breakpoint::Claimed, env).await;
        }
        let result = match tokio::time::timeout(cfg.build_timeout, async {
            if builder.is_none() {
                *builder = Some(Builder::open(ctx.store).await?);
            }
            let b = builder.as_mut().expect("just opened");
            b.build(env, &cfg.build).await
        })
        .await
        {
            Ok(Ok(doc)) => BuildResult::Built(doc),
            Ok(Err(e)) => BuildResult::Failed(e),
            Err(_) => {
                // Stopped mid-query: the snapshot's connection is in no state to go on.
                *builder = None;
                BuildResult::TimedOut(cfg.build_timeout)
            }
        };
        if let Some(b) = &cfg.breakpoints {
            b.reached(Breakpoint::Built, env).await;
        }
        result
    };
    tokio::pin!(build);
    let lost = async {
        loop {
            let notified = renewals.lost_one.notified();
            if renewals.is_lost(env) {
                return;
            }
            notified.await;
        }
    };
    let Signals {
        shutdown,
        session_lost,
    } = signals;
    tokio::select! {
        r = &mut build => Ended::Result(r),
        _ = lost => Ended::LeaseLost,
        // A closed channel means the session was dropped: just as lost.
        _ = async { let _ = session_lost.wait_for(|lost| *lost).await; } => Ended::SessionLost,
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => Ended::Shutdown,
    }
}

/// Hands the jobs of `leases` back to the queue unbuilt, without an attempt counted. After the
/// first hand-back that cannot reach the database, the rest are left to lapse (their claim
/// session or lease ends and they are reclaimed) rather than each waiting for it in turn.
async fn hand_back_rest(
    ctx: &BatchContext<'_>,
    leases: impl Iterator<Item = Lease>,
    out: &mut Vec<(Lease, PublishOutcome, Duration)>,
    started: Instant,
) {
    let mut unreachable: Option<String> = None;
    for lease in leases {
        let outcome = match &unreachable {
            Some(error) => PublishOutcome::Abandoned {
                error: error.clone(),
            },
            None => match steps::hand_back(ctx.store, &lease).await {
                Ok(Settled::Decided(_)) => PublishOutcome::Released,
                Ok(Settled::LeaseLost) => PublishOutcome::LeaseLost,
                Err(e) => {
                    let error = e.to_string();
                    unreachable = Some(error.clone());
                    PublishOutcome::Abandoned { error }
                }
            },
        };
        out.push((lease, outcome, started.elapsed()));
    }
}

/// Finishes the documents in `held` together (each decided alone) and records their outcomes.
async fn finish_held(
    ctx: &BatchContext<'_>,
    held: &mut Vec<(Lease, BuiltDocument)>,
    renewals: &Renewals,
    out: &mut Vec<(Lease, PublishOutcome, Duration)>,
    started: Instant,
) {
    if held.is_empty() {
        return;
    }
    let builds = std::mem::take(held);
    let summaries: Vec<(Lease, i64, i64, i64)> = builds
        .iter()
        .map(|(l, d)| (l.clone(), d.environment_id, d.revision, d.bytes))
        .collect();
    let finished = ctx.finishing.finish_all(ctx.store, builds, ctx.cfg).await;
    let envs: Vec<i64> = summaries.iter().map(|s| s.1).collect();
    renewals.settled(&envs);
    for ((lease, environment, revision, bytes), finished) in summaries.into_iter().zip(finished) {
        let outcome = published_outcome(ctx.publications, environment, revision, bytes, finished);
        out.push((lease, outcome, started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_opens_a_snapshot_when_it_has_none_or_an_old_one() {
        let fresh = Some(Duration::from_millis(5));
        assert_eq!(
            before_build(0, None),
            BeforeBuild {
                finish_held: false,
                new_snapshot: true
            }
        );
        assert!(!before_build(0, fresh).new_snapshot);
        assert!(before_build(0, Some(SNAPSHOT_AGE)).new_snapshot);
    }

    #[test]
    fn a_batch_finishes_what_it_holds_past_the_byte_bound() {
        let fresh = Some(Duration::from_millis(5));
        assert!(!before_build(HELD_BYTES - 1, fresh).finish_held);
        assert_eq!(
            before_build(HELD_BYTES, fresh),
            BeforeBuild {
                finish_held: true,
                new_snapshot: false
            }
        );
    }
}
