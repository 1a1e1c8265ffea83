//! Scheduled changes (`flagstone_store::scheduled`): the loop that applies each one when its
//! `live_from` comes, and the rules for one that fails.
//!
//! A due change is applied by the store in one transaction that also marks it applied, with
//! its row locked: it takes effect exactly once, whichever worker gets there, and a process
//! that was down at `live_from` applies it on its first look after it comes back (the row is
//! still pending). A failed attempt is settled with the queue's [`policy`]: a refusal (the
//! feature was deleted, a value no longer valid) parks it with the reason at once; a database
//! error retries with backoff and parks after `max_attempts`.
//!
//! [`step`] is one look at the queue (what tests step through); [`Scheduler`] runs it in a
//! loop, sleeping until the next change is due (at most `poll_interval`).

use std::future::Future;
use std::time::{Duration, Instant};

use flagstone_store::change_requests::decide::Conflict;
use flagstone_store::queue::{Decision, ParkReason};
use flagstone_store::scheduled::queue::{self, Applied, Due};
use flagstone_store::{Result, Store, StoreError};

use crate::policy::{self, Failed, Failure, Rules};
use crate::JitterSource;

/// Counter `{outcome}`: attempts to apply a scheduled change, by how they ended
/// ([`StepOutcome::LABELS`]).
pub const APPLIED_TOTAL: &str = "flagstone_scheduled_changes_total";
/// Histogram: seconds between a change's `live_from` and when it was applied (a worker that
/// was down at `live_from` shows here as a long delay).
pub const DELAY_SECONDS: &str = "flagstone_scheduled_change_delay_seconds";
/// Gauge: scheduled changes waiting (pending), due or not.
pub const PENDING: &str = "flagstone_scheduled_changes_pending";
/// Gauge: seconds the oldest due, still pending change is past its `live_from` (0 when none).
pub const OVERDUE_SECONDS: &str = "flagstone_scheduled_changes_overdue_seconds";

/// How the scheduler runs. Defaults suit production.
#[derive(Clone, Debug)]
pub struct ScheduleConfig {
    /// Attempts and backoff for a change whose application fails (the lease is unused: the
    /// application is one transaction).
    pub rules: Rules,
    pub jitter: JitterSource,
    /// Longest sleep between looks at the queue: how late a change scheduled while the loop
    /// sleeps can be.
    pub poll_interval: Duration,
    /// How often the pending and overdue gauges are refreshed.
    pub gauge_interval: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            rules: Rules {
                lease_ms: 0,
                max_attempts: 5,
                backoff_base_ms: 1_000,
                backoff_cap_ms: 60_000,
                session_lapse_window_ms: 30_000,
            },
            jitter: JitterSource::Random,
            poll_interval: Duration::from_millis(200),
            gauge_interval: Duration::from_secs(5),
        }
    }
}

/// What one look at the queue did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// Change `id` was applied `delay_ms` after its `live_from`, as `revision`.
    Applied {
        id: i64,
        revision: i64,
        delay_ms: i64,
    },
    /// Change `id` was applied or cancelled by someone else first; nothing written.
    Gone { id: i64 },
    /// Applying change `id` failed; `decision` (retry or park) was recorded.
    Failed { id: i64, decision: Decision },
}

impl StepOutcome {
    /// Every `outcome` label of [`APPLIED_TOTAL`].
    pub const LABELS: &'static [&'static str] = &["applied", "gone", "retrying", "parked"];

    pub fn label(&self) -> &'static str {
        match self {
            StepOutcome::Applied { .. } => "applied",
            StepOutcome::Gone { .. } => "gone",
            StepOutcome::Failed {
                decision: Decision::Park { .. },
                ..
            } => "parked",
            StepOutcome::Failed { .. } => "retrying",
        }
    }
}

/// How an application error counts for the queue: the store refusing the change is permanent
/// (trying again is refused the same way); anything else (the database) is transient.
pub fn classify(e: &StoreError) -> Failure {
    match e {
        StoreError::NotFound { .. }
        | StoreError::Invalid { .. }
        | StoreError::Conflict { .. }
        | StoreError::LimitExceeded { .. }
        | StoreError::Corrupt { .. } => Failure::Permanent(ParkReason::ChangeRefused),
        e if e.unavailable().is_some() => Failure::StoreUnavailable,
        _ => Failure::Transient,
    }
}

/// What to do after applying `due` failed with `error` at `now`.
pub fn after_failure(cfg: &ScheduleConfig, due: &Due, error: &StoreError, now: i64) -> Decision {
    let text = error.to_string();
    let failed = Failed {
        attempts_before: due.attempts,
        failure: classify(error),
        newer_input: false,
        error: &text,
    };
    policy::after_failure(&cfg.rules, &failed, now, 0, cfg.jitter.next())
}

/// What to do with `due`, a committed change request's change, when what the request changes
/// was changed since it was opened: park it (typed reason `change_request_stale`, the
/// conflicts in words), never apply it over someone else's change; trying again would find
/// the same conflicts.
pub fn after_stale(cfg: &ScheduleConfig, due: &Due, conflicts: &[Conflict], now: i64) -> Decision {
    let fields: Vec<String> = conflicts
        .iter()
        .map(|c| {
            let what = match c.segment {
                Some(s) => format!("feature {}'s override for segment {s}", c.feature),
                None => format!("feature {}", c.feature),
            };
            format!(
                "{what}: {} was {} when it was opened, is {} now",
                c.field, c.when_opened, c.now
            )
        })
        .collect();
    let text = format!(
        "the change request's changes were changed since it was opened ({}); close it and \
         open a new one against the current state",
        fields.join("; ")
    );
    let failed = Failed {
        attempts_before: due.attempts,
        failure: Failure::Permanent(ParkReason::ChangeRequestStale),
        newer_input: false,
        error: &text,
    };
    policy::after_failure(&cfg.rules, &failed, now, 0, cfg.jitter.next())
}

/// Applies the soonest due change, if any (`None`: nothing is due).
pub async fn step(store: &Store, cfg: &ScheduleConfig) -> Result<Option<StepOutcome>> {
    let now = store.clock().now_ms();
    let Some(due) = queue::next_due(store, now).await? else {
        return Ok(None);
    };
    // Every line of this application names its environment and task (the scheduled change).
    let span = tracing::info_span!(
        "scheduled_change",
        environment = due.environment_id,
        task = due.id,
        attempt = due.attempts + 1,
    );
    tracing::Instrument::instrument(settle_one(store, cfg, due), span).await
}

/// Applies `due` and records the outcome (failures settled with the queue's policy).
async fn settle_one(store: &Store, cfg: &ScheduleConfig, due: Due) -> Result<Option<StepOutcome>> {
    let outcome = match queue::apply(store, &due).await {
        Ok(Applied::Applied { revision, at }) => StepOutcome::Applied {
            id: due.id,
            revision,
            delay_ms: (at - due.live_from).max(0),
        },
        Ok(Applied::Gone) => StepOutcome::Gone { id: due.id },
        Ok(Applied::Stale { conflicts }) => {
            let decision = after_stale(cfg, &due, &conflicts, store.clock().now_ms());
            queue::settle_stale(store, &due, &decision, &conflicts).await?;
            StepOutcome::Failed {
                id: due.id,
                decision,
            }
        }
        Err(e) => {
            let decision = after_failure(cfg, &due, &e, store.clock().now_ms());
            queue::settle_failure(store, due.id, &decision).await?;
            StepOutcome::Failed {
                id: due.id,
                decision,
            }
        }
    };
    record(&outcome);
    Ok(Some(outcome))
}

fn record(outcome: &StepOutcome) {
    metrics::counter!(APPLIED_TOTAL, "outcome" => outcome.label()).increment(1);
    match outcome {
        StepOutcome::Applied {
            id,
            revision,
            delay_ms,
        } => {
            metrics::histogram!(DELAY_SECONDS).record(*delay_ms as f64 / 1000.0);
            tracing::info!(
                scheduled_change = id,
                revision,
                delay_ms,
                "scheduled change applied"
            );
        }
        StepOutcome::Gone { id } => {
            tracing::debug!(
                scheduled_change = id,
                "scheduled change already applied or cancelled"
            )
        }
        StepOutcome::Failed {
            id,
            decision: Decision::Park {
                reason, message, ..
            },
        } => tracing::error!(scheduled_change = id, reason = reason.as_str(), error = %message,
            "scheduled change parked: it will not be applied"),
        StepOutcome::Failed { id, decision } => {
            tracing::warn!(
                scheduled_change = id,
                ?decision,
                "scheduled change failed; will retry"
            )
        }
    }
}

/// Refreshes the pending and overdue gauges.
pub async fn export_gauges(store: &Store) -> Result<()> {
    let (pending, overdue_ms) = queue::backlog(store, store.clock().now_ms()).await?;
    metrics::gauge!(PENDING).set(pending as f64);
    metrics::gauge!(OVERDUE_SECONDS).set(overdue_ms as f64 / 1000.0);
    Ok(())
}

/// The scheduler loop: applies due changes one after another, then sleeps until the next is
/// due (at most `poll_interval`).
pub struct Scheduler {
    store: Store,
    config: ScheduleConfig,
}

impl Scheduler {
    pub fn new(store: Store, config: ScheduleConfig) -> Scheduler {
        Scheduler { store, config }
    }

    /// Runs until `shutdown` resolves. A change being applied when it does is either committed
    /// or rolled back with its transaction, never half-applied.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let cfg = &self.config;
        tracing::info!("scheduler started");
        tokio::pin!(shutdown);
        let mut next_gauges = Instant::now();
        loop {
            if Instant::now() >= next_gauges {
                if let Err(e) = export_gauges(&self.store).await {
                    tracing::warn!(error = %e, "cannot read the scheduled changes' backlog");
                }
                next_gauges = Instant::now() + cfg.gauge_interval;
            }
            let idle = match step(&self.store, cfg).await {
                Ok(Some(_)) => continue,
                Ok(None) => {
                    match queue::next_due_in(&self.store, self.store.clock().now_ms()).await {
                        Ok(Some(ms)) => Duration::from_millis(ms.max(1) as u64),
                        _ => cfg.poll_interval,
                    }
                    .min(cfg.poll_interval)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot apply scheduled changes; retrying");
                    cfg.poll_interval.max(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = &mut shutdown => break,
            }
        }
        tracing::info!("scheduler stopped");
    }
}
