//! Ending a claimed job: [`finish`] publishes a built document, [`fail`] schedules a retry or
//! parks the job, [`release`] hands it back untouched (graceful shutdown). Each runs in one
//! transaction and only while the caller still holds the lease.

use rand::Rng;

use super::{begin_write, Lease, ParkReason, QueueSettings, PUBLISH_CHANNEL};
use crate::document::{self, BuiltDocument};
use crate::{clock::now_ms, sql, Backend, Result, Store, Tx};

/// What [`finish`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The document was stored (it was newer than the published one).
    pub published: bool,
    /// Changes arrived during the build: the job is pending again, for exactly one follow-up.
    pub follow_up: bool,
    /// The lease had been lost; the job row was left to its new owner.
    pub lease_lost: bool,
}

/// How a build failed, as far as the queue is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Worth retrying (database unreachable, timeout): backoff, park after `max_attempts`.
    Transient,
    /// Rebuilding the same revision fails the same way: park now, unless newer changes arrived
    /// (they may be the fix).
    Permanent(ParkReason),
}

/// What [`fail`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    Retrying { attempts: i64, run_after: i64 },
    Parked(ParkReason),
    LeaseLost,
}

pub(super) struct LogLine<'a> {
    pub environment_id: i64,
    pub revision: i64,
    pub worker: &'a str,
    pub started_at: i64,
    pub bytes: Option<i64>,
    pub outcome: &'a str,
    pub detail: Option<&'a str>,
}

/// Appends to `publish_log` and trims it to `cap` rows.
pub(super) async fn log(tx: &mut Tx, l: &LogLine<'_>, cap: i64) -> Result<()> {
    let now = now_ms();
    sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO publish_log (environment_id, revision, worker, started_at, finished_at, \
                 duration_ms, bytes, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(l.environment_id)
        .bind(l.revision)
        .bind(l.worker)
        .bind(l.started_at)
        .bind(now)
        .bind(now - l.started_at)
        .bind(l.bytes)
        .bind(l.outcome)
        .bind(l.detail)
        .execute(&mut *c)
        .await?;
        sqlx::query("DELETE FROM publish_log WHERE id <= (SELECT MAX(id) FROM publish_log) - $1")
            .bind(cap)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(())
}

pub(super) async fn park(
    tx: &mut Tx,
    environment_id: i64,
    reason: ParkReason,
    message: &str,
    now: i64,
) -> Result<()> {
    sql!(tx, |c| {
        sqlx::query(
            "UPDATE publish_jobs SET state = 'parked', park_reason = $2, last_error = $3, \
                 lease_owner = NULL, lease_until = NULL, updated_at = $4 \
             WHERE environment_id = $1",
        )
        .bind(environment_id)
        .bind(reason.as_str())
        .bind(message)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// The job's wanted revision, locked, if `lease` still owns it.
async fn owned_wanted_revision(tx: &mut Tx, lease: &Lease) -> Result<Option<(i64, i64)>> {
    let lock = match tx.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let q = format!(
        "SELECT wanted_revision, attempts FROM publish_jobs \
         WHERE environment_id = $1 AND state = 'running' AND lease_owner = $2{lock}"
    );
    Ok(sql!(tx, |c| {
        sqlx::query_as(&q)
            .bind(lease.environment_id)
            .bind(&lease.owner)
            .fetch_optional(c)
            .await?
    }))
}

/// Publishes `doc` and ends the job, in one transaction: the document is stored only if newer
/// than the published one; subscribers are notified (PostgreSQL `NOTIFY`, delivered on commit);
/// if the job's wanted revision moved past what is now published, the job goes back to pending
/// (one follow-up however many changes came in), else it is deleted.
pub async fn finish(
    store: &Store,
    lease: &Lease,
    doc: &BuiltDocument,
    s: &QueueSettings,
) -> Result<Finished> {
    let now = now_ms();
    let mut tx = begin_write(store).await?;
    let published = document::store_if_newer(&mut tx, doc).await?;
    if published {
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(PUBLISH_CHANNEL)
                .bind(format!("{}:{}", doc.environment_id, doc.revision))
                .execute(&mut **t)
                .await?;
        }
    }
    log(
        &mut tx,
        &LogLine {
            environment_id: doc.environment_id,
            revision: doc.revision,
            worker: &lease.owner,
            started_at: lease.claimed_at,
            bytes: Some(doc.bytes),
            outcome: if published { "published" } else { "superseded" },
            detail: None,
        },
        s.publish_log_cap,
    )
    .await?;
    let mut done = Finished {
        published,
        follow_up: false,
        lease_lost: false,
    };
    match owned_wanted_revision(&mut tx, lease).await? {
        None => done.lease_lost = true,
        Some((wanted, _)) => {
            let current = document::stored::published_revision(&mut tx, doc.environment_id)
                .await?
                .unwrap_or(doc.revision);
            if wanted > current {
                let settings = store.publish_settings();
                sql!(&mut tx, |c| {
                    sqlx::query(
                        "UPDATE publish_jobs SET state = 'pending', run_after = $2, \
                             first_requested_at = $3, attempts = 0, lease_owner = NULL, \
                             lease_until = NULL, last_error = NULL, park_reason = NULL, \
                             updated_at = $3 \
                         WHERE environment_id = $1",
                    )
                    .bind(doc.environment_id)
                    .bind(now + settings.debounce_ms)
                    .bind(now)
                    .execute(c)
                    .await?
                    .rows_affected()
                });
                done.follow_up = true;
            } else {
                sql!(&mut tx, |c| {
                    sqlx::query("DELETE FROM publish_jobs WHERE environment_id = $1")
                        .bind(doc.environment_id)
                        .execute(c)
                        .await?
                        .rows_affected()
                });
            }
        }
    }
    tx.commit().await?;
    Ok(done)
}

/// The delay before retry number `attempts`: `min(cap, base * 2^(attempts-1))`, scaled by a
/// random factor in [0.5, 1] so workers that failed together do not retry together.
pub fn backoff_ms(s: &QueueSettings, attempts: i64) -> i64 {
    let exp = (attempts - 1).clamp(0, 30) as u32;
    let full = s
        .backoff_base_ms
        .saturating_mul(1i64 << exp)
        .min(s.backoff_cap_ms);
    let jitter: f64 = rand::thread_rng().gen_range(0.5..=1.0);
    (full as f64 * jitter) as i64
}

/// Records a failed build: a retry after backoff, or parking (permanent failure, or
/// `max_attempts` reached). The environment keeps serving its last published document.
pub async fn fail(
    store: &Store,
    lease: &Lease,
    kind: FailureKind,
    message: &str,
    s: &QueueSettings,
) -> Result<FailOutcome> {
    let now = now_ms();
    let mut tx = begin_write(store).await?;
    let Some((wanted, attempts)) = owned_wanted_revision(&mut tx, lease).await? else {
        return Ok(FailOutcome::LeaseLost);
    };
    let attempts = attempts + 1;
    let newer_changes = wanted > lease.wanted_revision;
    let park_reason = match kind {
        FailureKind::Permanent(reason) if !newer_changes => Some(reason),
        _ if attempts >= s.max_attempts => Some(match kind {
            FailureKind::Permanent(reason) => reason,
            FailureKind::Transient => ParkReason::TooManyFailures,
        }),
        _ => None,
    };
    let outcome = match park_reason {
        Some(reason) => {
            let msg = if reason == ParkReason::TooManyFailures {
                format!("failed {attempts} times; last error: {message}")
            } else {
                message.to_string()
            };
            park(&mut tx, lease.environment_id, reason, &msg, now).await?;
            FailOutcome::Parked(reason)
        }
        None => {
            let run_after = if newer_changes && matches!(kind, FailureKind::Permanent(_)) {
                now + store.publish_settings().debounce_ms
            } else {
                now + backoff_ms(s, attempts)
            };
            sql!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE publish_jobs SET state = 'pending', attempts = $2, run_after = $3, \
                         last_error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
                     WHERE environment_id = $1",
                )
                .bind(lease.environment_id)
                .bind(attempts)
                .bind(run_after)
                .bind(message)
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
            });
            FailOutcome::Retrying {
                attempts,
                run_after,
            }
        }
    };
    log(
        &mut tx,
        &LogLine {
            environment_id: lease.environment_id,
            revision: lease.wanted_revision,
            worker: &lease.owner,
            started_at: lease.claimed_at,
            bytes: None,
            outcome: if matches!(outcome, FailOutcome::Parked(_)) {
                "parked"
            } else {
                "failed"
            },
            detail: Some(message),
        },
        s.publish_log_cap,
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Hands a claimed job back without counting an attempt (the worker is shutting down).
pub async fn release(store: &Store, lease: &Lease) -> Result<bool> {
    let now = now_ms();
    let mut tx = begin_write(store).await?;
    let n = sql!(&mut tx, |c| {
        sqlx::query(
            "UPDATE publish_jobs SET state = 'pending', run_after = $3, lease_owner = NULL, \
                 lease_until = NULL, updated_at = $3 \
             WHERE environment_id = $1 AND state = 'running' AND lease_owner = $2",
        )
        .bind(lease.environment_id)
        .bind(&lease.owner)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(n > 0)
}

/// The build found the environment gone: drop its job.
pub async fn forget(store: &Store, environment_id: i64) -> Result<()> {
    let mut tx = begin_write(store).await?;
    sql!(&mut tx, |c| {
        sqlx::query("DELETE FROM publish_jobs WHERE environment_id = $1")
            .bind(environment_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    tx.commit().await
}
