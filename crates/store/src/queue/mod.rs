//! The publish queue as stored (DESIGN §2): one row per environment in `publish_jobs`, so
//! requests coalesce by construction, and the capped `publish_log` of builds. This module only
//! reads and writes rows; *what* to write — claim or park, retry or park, follow up or finish —
//! is decided by the pure rules of `flagstone_tasks::policy` and handed here as a
//! [`Decision`] or [`ClaimDecision`].
//!
//! A worker's step is one transaction: [`begin`] (it holds the write lock from its first
//! statement), read ([`next_due`], [`owned`]), write the decision ([`take`], [`apply`],
//! [`log`]), commit. Operators' views and actions ([`status`], [`jobs`], [`retry`],
//! [`discard`], [`reconcile`]) are in `admin`.

mod admin;
pub mod notify;
pub mod session;
mod state;

use crate::id_list::{any_of, IdList};
use crate::{sql, Result, Store, Tx};

pub use admin::{
    discard, get_job, jobs, jobs_visible, publish_log, reconcile, retry, status,
    EnvironmentStaleness, PublishJob, PublishLogEntry, QueueStatus,
};
pub use notify::{
    listen, notify_deleted, notify_published, notify_published_many, parse_notification, Notice,
    PUBLISH_CHANNEL,
};
pub use session::ClaimSession;
pub(crate) use state::text_enum;
pub use state::{BuildOutcome, ClaimDecision, Decision, JobState, ParkReason, UnknownValue};

/// A claimed job: the right to build one environment until `lease_until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub environment_id: i64,
    /// The newest revision requested when the job was claimed.
    pub wanted_revision: i64,
    /// Earlier failed or crashed attempts.
    pub attempts: i64,
    pub owner: String,
    /// The claim session the claim is tied to (see [`session`]).
    pub session: i64,
    pub lease_until: i64,
    pub claimed_at: i64,
    /// The worker whose claim this one took over, if any.
    pub reclaimed_from: Option<String>,
}

/// Who held a due job before: nobody, or a claimant whose claim lapsed (it died or stalled;
/// its attempt counts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claimant {
    Unclaimed,
    Lapsed { owner: String, cause: Lapse },
}

/// How a claim was found lapsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lapse {
    /// The claimant's session ended (its process died or its connection dropped): found at
    /// once, without waiting for the lease. `waiting_since` is when the job was first requested
    /// (since its last publish): from the database alone a dead process and a cut connection look
    /// the same, and how long the lapses have gone on is what tells a poison environment
    /// (workers keep dying on it) from a flapping network.
    SessionEnded { waiting_since: i64 },
    /// The lease ran out without a heartbeat (the claimant stalled, or its claim predates
    /// sessions): the backstop.
    LeaseExpired,
}

/// A due job, locked for the claiming transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueJob {
    pub environment_id: i64,
    pub wanted_revision: i64,
    /// Attempts recorded so far (a lapsed claim is not counted yet).
    pub attempts: i64,
    pub claimant: Claimant,
}

/// The job row as its lease holder sees it when it ends its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnedJob {
    /// The newest revision requested: past the lease's when changes arrived meanwhile.
    pub wanted_revision: i64,
    pub attempts: i64,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    environment_id: i64,
    wanted_revision: i64,
    state: JobState,
    attempts: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    first_requested_at: i64,
}

/// A write transaction that holds the write lock from its first statement. On SQLite a
/// deferred transaction that reads first can fail with SQLITE_BUSY when another process wrote
/// in between; `BEGIN IMMEDIATE` waits for the lock instead.
pub async fn begin(store: &Store) -> Result<Tx> {
    store.note_wait();
    match &store.pool {
        crate::db::Pool::Sqlite {
            pool, write_lock, ..
        } => {
            let guard = write_lock.clone().lock_owned().await;
            Ok(Tx::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE").await?,
                Some(guard),
            ))
        }
        crate::db::Pool::Postgres(_) => store.write().await,
    }
}

fn lock_clause(tx: &Tx, skip_locked: bool) -> &'static str {
    match (tx.backend(), skip_locked) {
        (crate::Backend::Postgres, true) => " FOR UPDATE SKIP LOCKED",
        (crate::Backend::Postgres, false) => " FOR UPDATE",
        (crate::Backend::Sqlite, _) => "",
    }
}

/// The oldest due job — pending and due, or running under a claim that lapsed (its session
/// ended, or its lease expired before `now`) — locked for this transaction (other claimants skip
/// it on PostgreSQL; SQLite has one writer). `store` is the one `tx` belongs to.
pub async fn next_due(store: &Store, tx: &mut Tx, now: i64) -> Result<Option<DueJob>> {
    Ok(next_due_many(store, tx, now, 1).await?.into_iter().next())
}

/// Up to `limit` due jobs, oldest first, each as [`next_due`] finds one: a worker with several
/// free build slots claims them in one transaction (a burst touching many environments then
/// costs one claim per batch, not per environment).
pub async fn next_due_many(
    store: &Store,
    tx: &mut Tx,
    now: i64,
    limit: i64,
) -> Result<Vec<DueJob>> {
    // Running claims whose session ended: a handful (one per build in progress).
    let running: Vec<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT environment_id, lease_session FROM publish_jobs \
             WHERE state = $1 AND lease_session IS NOT NULL AND lease_until >= $2",
        )
        .bind(JobState::Running)
        .bind(now)
        .fetch_all(c)
        .await?
    });
    // Asked once per session, not per job: a worker building eight documents holds one.
    let mut sessions: Vec<i64> = running.into_iter().map(|(_, key)| key).collect();
    sessions.sort_unstable();
    sessions.dedup();
    let mut ended = Vec::new();
    for key in sessions {
        if !session::claimant_alive(store, tx, key).await? {
            ended.push(key.to_string());
        }
    }
    // Integers only: formatted into the statement, not bound.
    let ended_clause = if ended.is_empty() {
        String::new()
    } else {
        format!(" OR lease_session IN ({})", ended.join(", "))
    };
    let query = format!(
        "SELECT environment_id, wanted_revision, state, attempts, lease_owner, lease_until, \
             first_requested_at \
         FROM publish_jobs \
         WHERE (state = $2 AND run_after <= $1) \
            OR (state = $3 AND (lease_until < $1{ended_clause})) \
         ORDER BY run_after LIMIT $4{}",
        lock_clause(tx, true)
    );
    let rows: Vec<DueRow> = sql!(tx, |c| {
        sqlx::query_as(&query)
            .bind(now)
            .bind(JobState::Pending)
            .bind(JobState::Running)
            .bind(limit.max(1))
            .fetch_all(c)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| DueJob {
            environment_id: r.environment_id,
            wanted_revision: r.wanted_revision,
            attempts: r.attempts,
            claimant: match r.state {
                JobState::Running => Claimant::Lapsed {
                    owner: r.lease_owner.unwrap_or_else(|| "unknown".to_string()),
                    cause: if r.lease_until.is_some_and(|t| t < now) {
                        Lapse::LeaseExpired
                    } else {
                        Lapse::SessionEnded {
                            waiting_since: r.first_requested_at,
                        }
                    },
                },
                _ => Claimant::Unclaimed,
            },
        })
        .collect())
}

/// Writes a claim decision for `due`: the job runs under a lease tied to `session` (returned),
/// or is parked (`None`).
pub async fn take(
    tx: &mut Tx,
    due: &DueJob,
    session: &ClaimSession,
    decision: &ClaimDecision,
    now: i64,
) -> Result<Option<Lease>> {
    let mut taken = take_many(tx, &[(due, decision)], session, now).await?;
    Ok(taken.pop().flatten())
}

/// [`take`] for several due jobs of one claiming transaction: the takes that write the same
/// values (a burst's fresh jobs all do: no attempts yet, one lease length, no note) share one
/// statement; parks are written one by one. Returns, per job, its lease or `None` (parked).
pub async fn take_many(
    tx: &mut Tx,
    decided: &[(&DueJob, &ClaimDecision)],
    session: &ClaimSession,
    now: i64,
) -> Result<Vec<Option<Lease>>> {
    // (attempts, lease_until, note): the values a take writes besides the claimant's.
    type Written<'a> = (i64, i64, Option<&'a str>);
    let mut groups: Vec<(Written, Vec<i64>)> = Vec::new();
    for (due, decision) in decided {
        match decision {
            ClaimDecision::Take {
                attempts,
                lease_until,
                note,
            } => {
                let key = (*attempts, *lease_until, note.as_deref());
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, envs)) => envs.push(due.environment_id),
                    None => groups.push((key, vec![due.environment_id])),
                }
            }
            ClaimDecision::Park { .. } => {
                if let Some(park) = decision.parked() {
                    apply(tx, due.environment_id, &park, now).await?;
                }
            }
        }
    }
    let q = format!(
        "UPDATE publish_jobs SET state = $1, lease_owner = $2, lease_until = $3, \
             attempts = $4, last_error = COALESCE($5, last_error), updated_at = $6, \
             lease_session = $7 \
         WHERE {}",
        any_of(tx.backend(), "environment_id", 8)
    );
    for ((attempts, lease_until, note), envs) in groups {
        let ids = IdList(envs);
        sql!(tx, |c| {
            sqlx::query(&q)
                .bind(JobState::Running)
                .bind(session.owner())
                .bind(lease_until)
                .bind(attempts)
                .bind(note)
                .bind(now)
                .bind(session.key())
                .bind(&ids)
                .execute(c)
                .await?
                .rows_affected()
        });
    }
    Ok(decided
        .iter()
        .map(|(due, decision)| match decision {
            ClaimDecision::Take {
                attempts,
                lease_until,
                ..
            } => Some(lease_of(due, session, *attempts, *lease_until, now)),
            ClaimDecision::Park { .. } => None,
        })
        .collect())
}

fn lease_of(
    due: &DueJob,
    session: &ClaimSession,
    attempts: i64,
    lease_until: i64,
    now: i64,
) -> Lease {
    Lease {
        environment_id: due.environment_id,
        wanted_revision: due.wanted_revision,
        attempts,
        owner: session.owner().to_string(),
        session: session.key(),
        lease_until,
        claimed_at: now,
        reclaimed_from: match &due.claimant {
            Claimant::Lapsed { owner, .. } => Some(owner.clone()),
            Claimant::Unclaimed => None,
        },
    }
}

/// The job of `lease`, locked, if the lease still owns it (`None`: another worker took it over,
/// or an operator discarded it).
pub async fn owned(tx: &mut Tx, lease: &Lease) -> Result<Option<OwnedJob>> {
    let q = format!(
        "SELECT wanted_revision, attempts FROM publish_jobs \
         WHERE environment_id = $1 AND state = $3 AND lease_owner = $2 \
             AND lease_session = $4{}",
        lock_clause(tx, false)
    );
    let row: Option<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(&q)
            .bind(lease.environment_id)
            .bind(&lease.owner)
            .bind(JobState::Running)
            .bind(lease.session)
            .fetch_optional(c)
            .await?
    });
    Ok(row.map(|(wanted_revision, attempts)| OwnedJob {
        wanted_revision,
        attempts,
    }))
}

/// [`owned`] for several leases of distinct environments in one statement: per lease, its job
/// (locked) if the lease still owns it.
pub async fn owned_many(tx: &mut Tx, leases: &[&Lease]) -> Result<Vec<Option<OwnedJob>>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let ids = IdList(leases.iter().map(|l| l.environment_id).collect());
    let q = format!(
        "SELECT environment_id, wanted_revision, attempts, lease_owner, lease_session \
         FROM publish_jobs WHERE {} AND state = $1{}",
        any_of(tx.backend(), "environment_id", 2),
        lock_clause(tx, false)
    );
    type Row = (i64, i64, i64, Option<String>, Option<i64>);
    let rows: Vec<Row> = sql!(tx, |c| {
        sqlx::query_as(&q)
            .bind(JobState::Running)
            .bind(&ids)
            .fetch_all(c)
            .await?
    });
    Ok(leases
        .iter()
        .map(|lease| {
            rows.iter()
                .find(|(env, _, _, owner, session)| {
                    *env == lease.environment_id
                        && owner.as_deref() == Some(lease.owner.as_str())
                        && *session == Some(lease.session)
                })
                .map(|&(_, wanted_revision, attempts, _, _)| OwnedJob {
                    wanted_revision,
                    attempts,
                })
        })
        .collect())
}

/// Writes each decision to its job, as [`apply`] does one: the jobs that are done are deleted
/// in one statement (the common end of a group of builds), the others one by one.
pub async fn apply_many(tx: &mut Tx, decisions: &[(i64, Decision)], now: i64) -> Result<()> {
    let done = IdList(
        decisions
            .iter()
            .filter(|(_, d)| *d == Decision::Done)
            .map(|(env, _)| *env)
            .collect(),
    );
    if !done.0.is_empty() {
        let q = format!(
            "DELETE FROM publish_jobs WHERE {}",
            any_of(tx.backend(), "environment_id", 1)
        );
        sql!(tx, |c| sqlx::query(&q)
            .bind(&done)
            .execute(c)
            .await?
            .rows_affected());
    }
    for (env, decision) in decisions {
        if *decision != Decision::Done {
            apply(tx, *env, decision, now).await?;
        }
    }
    Ok(())
}

/// Writes `decision` to the job of `environment_id`. The caller checked (in this transaction)
/// that it holds the job.
pub async fn apply(tx: &mut Tx, environment_id: i64, decision: &Decision, now: i64) -> Result<()> {
    match decision {
        Decision::Done => sql!(tx, |c| {
            sqlx::query("DELETE FROM publish_jobs WHERE environment_id = $1")
                .bind(environment_id)
                .execute(c)
                .await?
                .rows_affected()
        }),
        Decision::FollowUp { run_after } => sql!(tx, |c| {
            sqlx::query(
                "UPDATE publish_jobs SET state = $2, run_after = $3, first_requested_at = $4, \
                     attempts = 0, lease_owner = NULL, lease_until = NULL, lease_session = NULL, last_error = NULL, \
                     park_reason = NULL, updated_at = $4 \
                 WHERE environment_id = $1",
            )
            .bind(environment_id)
            .bind(JobState::Pending)
            .bind(run_after)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        }),
        Decision::Retry {
            attempts,
            run_after,
            error,
        } => sql!(tx, |c| {
            sqlx::query(
                "UPDATE publish_jobs SET state = $2, attempts = $3, run_after = $4, \
                     last_error = $5, lease_owner = NULL, lease_until = NULL, lease_session = NULL, updated_at = $6 \
                 WHERE environment_id = $1",
            )
            .bind(environment_id)
            .bind(JobState::Pending)
            .bind(attempts)
            .bind(run_after)
            .bind(error)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        }),
        Decision::Park {
            reason,
            attempts,
            message,
        } => sql!(tx, |c| {
            sqlx::query(
                "UPDATE publish_jobs SET state = $2, park_reason = $3, attempts = $4, \
                     last_error = $5, lease_owner = NULL, lease_until = NULL, lease_session = NULL, updated_at = $6 \
                 WHERE environment_id = $1",
            )
            .bind(environment_id)
            .bind(JobState::Parked)
            .bind(reason)
            .bind(attempts)
            .bind(message)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        }),
        Decision::HandBack { run_after } => sql!(tx, |c| {
            sqlx::query(
                "UPDATE publish_jobs SET state = $2, run_after = $3, lease_owner = NULL, \
                     lease_until = NULL, lease_session = NULL, updated_at = $4 \
                 WHERE environment_id = $1",
            )
            .bind(environment_id)
            .bind(JobState::Pending)
            .bind(run_after)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        }),
    };
    Ok(())
}

/// Extends the lease to `lease_until`. Returns false when the lease was lost (another worker
/// reclaimed the job, or an operator discarded it): the work must stop.
pub async fn heartbeat(store: &Store, lease: &Lease, lease_until: i64, now: i64) -> Result<bool> {
    let mut tx = store.write().await?;
    let n = sql!(&mut tx, |c| {
        sqlx::query(
            "UPDATE publish_jobs SET lease_until = $3, updated_at = $4 \
             WHERE environment_id = $1 AND state = $5 AND lease_owner = $2 AND lease_session = $6",
        )
        .bind(lease.environment_id)
        .bind(&lease.owner)
        .bind(lease_until)
        .bind(now)
        .bind(JobState::Running)
        .bind(lease.session)
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(n > 0)
}

/// Milliseconds from `now` until the next job is due (0 if one is due now), or `None` when
/// nothing is queued except parked jobs. Lets an idle worker sleep exactly as long as it may.
pub async fn next_due_in(store: &Store, now: i64) -> Result<Option<i64>> {
    let mut tx = store.read().await?;
    let next: Option<i64> = sql!(&mut tx, |c| {
        sqlx::query_scalar(
            "SELECT MIN(CASE WHEN state = $1 THEN lease_until ELSE run_after END) \
             FROM publish_jobs WHERE state <> $2",
        )
        .bind(JobState::Running)
        .bind(JobState::Parked)
        .fetch_one(c)
        .await?
    });
    Ok(next.map(|t| (t - now).max(0)))
}

/// One line of the publish log.
#[derive(Clone, Debug)]
pub struct LogLine<'a> {
    pub environment_id: i64,
    pub revision: i64,
    pub worker: &'a str,
    pub started_at: i64,
    pub finished_at: i64,
    pub bytes: Option<i64>,
    pub outcome: BuildOutcome,
    pub detail: Option<&'a str>,
}

/// Appends to `publish_log` and trims it to about `cap` rows (every [`TRIM_EVERY`] lines: a
/// burst of builds does not pay a delete per line).
pub async fn log(tx: &mut Tx, l: &LogLine<'_>, cap: i64) -> Result<()> {
    log_many(tx, std::slice::from_ref(l), cap).await
}

/// [`log`] for several lines in one statement: on PostgreSQL as arrays (`UNNEST`, one
/// prepared statement for any number of lines), on SQLite as `VALUES` rows.
pub async fn log_many(tx: &mut Tx, lines: &[LogLine<'_>], cap: i64) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = match tx {
        Tx::Postgres(t) => {
            let ints = |f: fn(&LogLine) -> i64| -> Vec<i64> { lines.iter().map(f).collect() };
            let bytes: Vec<Option<i64>> = lines.iter().map(|l| l.bytes).collect();
            let outcomes: Vec<&str> = lines.iter().map(|l| l.outcome.as_str()).collect();
            let workers: Vec<&str> = lines.iter().map(|l| l.worker).collect();
            let details: Vec<Option<&str>> = lines.iter().map(|l| l.detail).collect();
            sqlx::query_scalar(
                "INSERT INTO publish_log (environment_id, revision, worker, started_at, \
                     finished_at, duration_ms, bytes, outcome, detail) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], \
                     $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::text[]) \
                 RETURNING id",
            )
            .bind(ints(|l| l.environment_id))
            .bind(ints(|l| l.revision))
            .bind(workers)
            .bind(ints(|l| l.started_at))
            .bind(ints(|l| l.finished_at))
            .bind(ints(|l| l.finished_at - l.started_at))
            .bind(bytes)
            .bind(outcomes)
            .bind(details)
            .fetch_all(&mut **t)
            .await?
        }
        Tx::Sqlite(t, _) => {
            let insert = format!(
                "INSERT INTO publish_log (environment_id, revision, worker, started_at, \
                     finished_at, duration_ms, bytes, outcome, detail) VALUES {} RETURNING id",
                crate::db::values_rows(lines.len(), 9)
            );
            let mut q = sqlx::query_scalar(&insert).persistent(lines.len() == 1);
            for l in lines {
                q = q
                    .bind(l.environment_id)
                    .bind(l.revision)
                    .bind(l.worker)
                    .bind(l.started_at)
                    .bind(l.finished_at)
                    .bind(l.finished_at - l.started_at)
                    .bind(l.bytes)
                    .bind(l.outcome)
                    .bind(l.detail);
            }
            q.fetch_all(&mut **t).await?
        }
    };
    // Trim when this insert passed a multiple of TRIM_EVERY.
    if let Some(&last) = ids.iter().filter(|id| *id % TRIM_EVERY == 0).max() {
        sql!(tx, |c| sqlx::query(
            "DELETE FROM publish_log WHERE id <= $1 - $2"
        )
        .bind(last)
        .bind(cap)
        .execute(c)
        .await?
        .rows_affected());
    }
    Ok(())
}

/// How often [`log`] trims the log: it may hold up to this many lines over its cap.
pub const TRIM_EVERY: i64 = 64;

/// Drops the job of an environment that no longer exists.
pub async fn forget(tx: &mut Tx, environment_id: i64) -> Result<()> {
    apply(tx, environment_id, &Decision::Done, 0).await
}
