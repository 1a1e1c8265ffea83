//! The publish queue (DESIGN §2): one row per environment in `publish_jobs`, so requests
//! coalesce by construction. Workers [`claim`] a due job under a lease, renew it with
//! [`heartbeat`], and end it with [`finish`] (publish, then exactly one follow-up if changes
//! arrived meanwhile) or [`fail`] (backoff with jitter, then parking). An expired lease is
//! reclaimed by any worker and counts as an attempt: the worker may have died from this very job.
//! Operators [`retry`] or [`discard`] parked jobs; [`reconcile`] re-creates jobs that a crash or a
//! bug lost; [`status`] reports depth, age, parked jobs and staleness.
//!
//! Every write here is one statement or one transaction that begins with the write lock
//! (`BEGIN IMMEDIATE` on SQLite), so concurrent workers never interleave on a row.

mod admin;
mod finish;
pub mod notify;

use crate::{clock::now_ms, sql, Result, Store, Tx};

pub use admin::{
    discard, get_job, jobs, publish_log, reconcile, retry, status, EnvironmentStaleness,
    PublishJob, PublishLogEntry, QueueStatus,
};
pub use finish::{backoff_ms, fail, finish, forget, release, FailOutcome, FailureKind, Finished};
pub use notify::{listen, parse_notification, PUBLISH_CHANNEL};

/// Tunables of the queue. Defaults suit production; tests shorten them.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// How long a claim is valid without a heartbeat.
    pub lease_ms: i64,
    /// Failed or crashed attempts before a job is parked.
    pub max_attempts: i64,
    /// First retry delay; doubles per attempt up to `backoff_cap_ms`, with jitter.
    pub backoff_base_ms: i64,
    pub backoff_cap_ms: i64,
    /// Rows kept in `publish_log`.
    pub publish_log_cap: i64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            lease_ms: 30_000,
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 5 * 60_000,
            publish_log_cap: 10_000,
        }
    }
}

/// Why a job was parked: shown in the API, `flagstone status`, logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// The document would pass the project's `max_document_bytes` budget.
    DocumentTooLarge,
    /// Stored data could not be turned into a document.
    InvalidData,
    /// Transient failures (database errors, timeouts) `max_attempts` times in a row.
    TooManyFailures,
    /// Workers lost the lease `max_attempts` times: they died or stalled while building.
    WorkersDied,
}

impl ParkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ParkReason::DocumentTooLarge => "document_too_large",
            ParkReason::InvalidData => "invalid_data",
            ParkReason::TooManyFailures => "too_many_failures",
            ParkReason::WorkersDied => "workers_died",
        }
    }
}

/// A claimed job: the right to build one environment until `lease_until`.
#[derive(Clone, Debug)]
pub struct Lease {
    pub environment_id: i64,
    /// The newest revision requested when the job was claimed.
    pub wanted_revision: i64,
    /// Earlier failed or crashed attempts.
    pub attempts: i64,
    pub owner: String,
    pub lease_until: i64,
    pub claimed_at: i64,
    /// The worker whose expired lease this claim took over, if any.
    pub reclaimed_from: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Candidate {
    environment_id: i64,
    wanted_revision: i64,
    state: String,
    attempts: i64,
    lease_owner: Option<String>,
}

/// A write transaction that holds the write lock from its first statement. On SQLite a
/// deferred transaction that reads first can fail with SQLITE_BUSY when another process wrote
/// in between; `BEGIN IMMEDIATE` waits for the lock instead.
pub(crate) async fn begin_write(store: &Store) -> Result<Tx> {
    match &store.pool {
        crate::db::Pool::Sqlite { pool, write_lock } => {
            let guard = write_lock.clone().lock_owned().await;
            Ok(Tx::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE").await?,
                Some(guard),
            ))
        }
        crate::db::Pool::Postgres(_) => store.write().await,
    }
}

fn lock_clause(tx: &Tx) -> &'static str {
    match tx.backend() {
        crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        crate::Backend::Sqlite => "",
    }
}

/// Claims the oldest due job — pending and due, or running with an expired lease — for
/// `owner`. Returns `None` when nothing is due. A job whose workers keep dying is parked here
/// instead of being handed out again.
pub async fn claim(store: &Store, owner: &str, s: &QueueSettings) -> Result<Option<Lease>> {
    // Each loop either claims a job or parks one; the bound only guards against surprises.
    for _ in 0..16 {
        let now = now_ms();
        let mut tx = begin_write(store).await?;
        let query = format!(
            "SELECT environment_id, wanted_revision, state, attempts, lease_owner \
             FROM publish_jobs \
             WHERE (state = 'pending' AND run_after <= $1) \
                OR (state = 'running' AND lease_until < $1) \
             ORDER BY run_after LIMIT 1{}",
            lock_clause(&tx)
        );
        let cand: Option<Candidate> = sql!(&mut tx, |c| {
            sqlx::query_as(&query).bind(now).fetch_optional(c).await?
        });
        let Some(cand) = cand else {
            return Ok(None);
        };
        let reclaimed_from = (cand.state == "running").then(|| {
            cand.lease_owner
                .clone()
                .unwrap_or_else(|| "unknown".to_string())
        });
        let attempts = cand.attempts + i64::from(reclaimed_from.is_some());
        if let Some(dead) = &reclaimed_from {
            if attempts >= s.max_attempts {
                let msg = format!(
                    "the lease expired {attempts} times (last held by worker {dead}): workers \
                     died or stalled while building this environment (crash, kill -9, out of \
                     memory)"
                );
                finish::park(
                    &mut tx,
                    cand.environment_id,
                    ParkReason::WorkersDied,
                    &msg,
                    now,
                )
                .await?;
                finish::log(
                    &mut tx,
                    &finish::LogLine {
                        environment_id: cand.environment_id,
                        revision: cand.wanted_revision,
                        worker: dead,
                        started_at: now,
                        bytes: None,
                        outcome: "parked",
                        detail: Some(&msg),
                    },
                    s.publish_log_cap,
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(environment = cand.environment_id, "{msg}; parked");
                continue;
            }
        }
        let lease_until = now + s.lease_ms;
        let note = reclaimed_from.as_ref().map(|dead| {
            format!("worker {dead} lost its lease mid-build (crashed or stalled); reclaimed")
        });
        sql!(&mut tx, |c| {
            sqlx::query(
                "UPDATE publish_jobs SET state = 'running', lease_owner = $2, lease_until = $3, \
                     attempts = $4, last_error = COALESCE($5, last_error), \
                     updated_at = $6 \
                 WHERE environment_id = $1",
            )
            .bind(cand.environment_id)
            .bind(owner)
            .bind(lease_until)
            .bind(attempts)
            .bind(note.as_deref())
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        });
        tx.commit().await?;
        return Ok(Some(Lease {
            environment_id: cand.environment_id,
            wanted_revision: cand.wanted_revision,
            attempts,
            owner: owner.to_string(),
            lease_until,
            claimed_at: now,
            reclaimed_from,
        }));
    }
    Ok(None)
}

/// Extends the lease. Returns false when the lease was lost (another worker reclaimed the job,
/// or an operator discarded it): the build must stop.
pub async fn heartbeat(store: &Store, lease: &Lease, s: &QueueSettings) -> Result<bool> {
    let now = now_ms();
    let mut tx = store.write().await?;
    let n = sql!(&mut tx, |c| {
        sqlx::query(
            "UPDATE publish_jobs SET lease_until = $3, updated_at = $4 \
             WHERE environment_id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(lease.environment_id)
        .bind(&lease.owner)
        .bind(now + s.lease_ms)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(n > 0)
}

/// Milliseconds until the next job is due (0 if one is due now), or `None` when nothing is
/// queued except parked jobs. Lets an idle worker sleep exactly as long as it may.
pub async fn next_due_in(store: &Store) -> Result<Option<i64>> {
    let mut tx = store.read().await?;
    let next: Option<i64> = sql!(&mut tx, |c| {
        sqlx::query_scalar(
            "SELECT MIN(CASE WHEN state = 'running' THEN lease_until ELSE run_after END) \
             FROM publish_jobs WHERE state <> 'parked'",
        )
        .fetch_one(c)
        .await?
    });
    Ok(next.map(|t| (t - now_ms()).max(0)))
}
