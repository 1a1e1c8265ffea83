//! Scheduled changes as a queue: finding the next due change, applying it in one transaction
//! with its row locked (so it is applied exactly once), and writing what the task processor
//! decided after a failed attempt (`flagstone_tasks::schedule` decides with the queue policy).
//!
//! There is no lease: the work is a database transaction. The row is locked (`FOR UPDATE` on
//! PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises writers) and marked applied in the same
//! transaction as the change itself. A worker that dies mid-way rolls back both, and the row
//! is due again for the next look; a second worker waits on the lock, then finds it applied.

use super::{Row, ScheduledState, COLUMNS};
use crate::change_requests::{self, decide::Conflict};
use crate::environments;
use crate::queue::Decision;
use crate::{sql, Actor, Change, Result, Store, StoreError, Tx};

/// A due scheduled change, as the task processor sees it before applying it.
#[derive(Clone, Debug)]
pub struct Due {
    pub id: i64,
    pub environment_id: i64,
    pub live_from: i64,
    /// Failed attempts so far.
    pub attempts: i64,
    /// Its author, whom the change is made as.
    pub actor: Actor,
}

/// What applying a due change did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// Applied now: the environment's new revision, and when (on the store's clock).
    Applied { revision: i64, at: i64 },
    /// Another worker applied or someone cancelled it first; nothing was written.
    Gone,
    /// It is a committed change request's, and what the request changes was changed since
    /// the request was opened: nothing was written (settle it with [`settle_stale`]).
    Stale { conflicts: Vec<Conflict> },
}

/// The soonest due pending change at `now` (`None`: nothing is due). Not locked: [`apply`]
/// locks it and checks it is still pending.
pub async fn next_due(store: &Store, now: i64) -> Result<Option<Due>> {
    let mut tx = store.read().await?;
    let row: Option<Row> = sql!(&mut tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM scheduled_changes WHERE state = $1 AND run_after <= $2 \
             ORDER BY run_after, id LIMIT 1"
        ))
        .bind(ScheduledState::Pending)
        .bind(now)
        .fetch_optional(c)
        .await?
    });
    Ok(row.map(|r| Due {
        id: r.id,
        environment_id: r.environment_id,
        live_from: r.live_from,
        attempts: r.attempts,
        actor: r.actor(),
    }))
}

/// Milliseconds until the next pending change is due (0 when one is due now).
pub async fn next_due_in(store: &Store, now: i64) -> Result<Option<i64>> {
    let mut tx = store.read().await?;
    let next: Option<i64> = sql!(&mut tx, |c| {
        sqlx::query_scalar("SELECT MIN(run_after) FROM scheduled_changes WHERE state = $1")
            .bind(ScheduledState::Pending)
            .fetch_one(c)
            .await?
    });
    Ok(next.map(|t| (t - now).max(0)))
}

/// Locks `id` in `tx` if it is still pending (`FOR UPDATE` waits for a worker applying it).
async fn lock_pending(tx: &mut Tx, id: i64) -> Result<Option<Row>> {
    let lock = match tx.backend() {
        crate::Backend::Postgres => " FOR UPDATE",
        crate::Backend::Sqlite => "",
    };
    Ok(sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM scheduled_changes WHERE id = $1 AND state = $2{lock}"
        ))
        .bind(id)
        .bind(ScheduledState::Pending)
        .fetch_optional(c)
        .await?
    }))
}

/// Applies `due` as a change made by its author, marking it applied in the same transaction.
/// On an error nothing is written (the change rolls back); settle the attempt with
/// [`settle_failure`].
pub async fn apply(store: &Store, due: &Due) -> Result<Applied> {
    let mut ch: Change = store.change(&due.actor).await?;
    let Some(row) = lock_pending(ch.tx(), due.id).await? else {
        return Ok(Applied::Gone);
    };
    let items = row.items()?;
    if let Some(request) = row.change_request_id {
        // Re-checked at its time, not only at commit: someone may have changed the same
        // thing while it waited. Dropping `ch` writes nothing.
        let conflicts = change_requests::stale(ch.tx(), request).await?;
        if !conflicts.is_empty() {
            return Ok(Applied::Stale { conflicts });
        }
    }
    let env = environments::get(ch.tx(), row.environment_id).await?;
    super::apply_items(&mut ch, &env, &items).await?;
    ch.audit(crate::AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "applied",
        resource_type: "scheduled_change",
        resource_id: due.id.to_string(),
        log: format!(
            "Scheduled change {} in environment '{}' applied (due {})",
            due.id,
            env.name,
            crate::clock::iso8601(row.live_from)
        ),
        before: None,
        after: None,
    });
    let at = ch.now_ms();
    ch.touch_environment(env.id);
    // The row is marked with the revision the commit will give: one more than now, with the
    // environment locked until then.
    // Locked after the rows the change wrote, in the order every change's commit locks them.
    let lock = match ch.tx().backend() {
        crate::Backend::Postgres => " FOR UPDATE",
        crate::Backend::Sqlite => "",
    };
    let revision: i64 = sql!(ch.tx(), |c| {
        sqlx::query_scalar(&format!(
            "SELECT revision + 1 FROM environments WHERE id = $1{lock}"
        ))
        .bind(env.id)
        .fetch_one(c)
        .await?
    });
    let marked = sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE scheduled_changes SET state = $2, applied_at = $3, applied_revision = $4, \
                 updated_at = $3 WHERE id = $1 AND state = $5",
        )
        .bind(due.id)
        .bind(ScheduledState::Applied)
        .bind(at)
        .bind(revision)
        .bind(ScheduledState::Pending)
        .execute(c)
        .await?
        .rows_affected()
    });
    if marked != 1 {
        return Ok(Applied::Gone);
    }
    let committed = ch.commit().await?;
    let revision = committed
        .revisions
        .iter()
        .find(|(e, _)| *e == env.id)
        .map(|(_, r)| *r)
        .ok_or_else(|| StoreError::Corrupt {
            what: "scheduled_changes",
            detail: format!("applying {} bumped no revision", due.id),
        })?;
    Ok(Applied::Applied { revision, at })
}

/// Writes what the task processor decided after a failed attempt on `id`: retry later, or
/// park with the reason. Only a pending change is touched (a cancel in between stands).
pub async fn settle_failure(store: &Store, id: i64, decision: &Decision) -> Result<()> {
    let now = store.clock().now_ms();
    let mut tx = store.write().await?;
    let (state, attempts, run_after, error, reason) = match decision {
        Decision::Retry {
            attempts,
            run_after,
            error,
        } => (
            ScheduledState::Pending,
            Some(*attempts),
            Some(*run_after),
            Some(error.as_str()),
            None,
        ),
        Decision::Park {
            reason,
            attempts,
            message,
        } => (
            ScheduledState::Parked,
            Some(*attempts),
            None,
            Some(message.as_str()),
            Some(*reason),
        ),
        Decision::HandBack { run_after } => {
            (ScheduledState::Pending, None, Some(*run_after), None, None)
        }
        Decision::Done | Decision::FollowUp { .. } => return Ok(()),
    };
    sql!(&mut tx, |c| {
        sqlx::query(
            "UPDATE scheduled_changes SET state = $2, attempts = COALESCE($3, attempts), \
                 run_after = COALESCE($4, run_after), last_error = COALESCE($5, last_error), \
                 park_reason = $6, updated_at = $7 WHERE id = $1 AND state = $8",
        )
        .bind(id)
        .bind(state)
        .bind(attempts)
        .bind(run_after)
        .bind(error)
        .bind(reason)
        .bind(now)
        .bind(ScheduledState::Pending)
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(())
}

/// Parks `due`, a committed change request's change that went stale, as `decision` says,
/// and audits why (in its author's name, with the conflicts), in one transaction. Only a
/// pending change is touched.
pub async fn settle_stale(
    store: &Store,
    due: &Due,
    decision: &Decision,
    conflicts: &[Conflict],
) -> Result<()> {
    let Decision::Park {
        reason,
        attempts,
        message,
    } = decision
    else {
        return settle_failure(store, due.id, decision).await;
    };
    let mut ch: Change = store.change(&due.actor).await?;
    let now = ch.now_ms();
    let parked = sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE scheduled_changes SET state = $2, attempts = $3, last_error = $4, \
                 park_reason = $5, updated_at = $6 WHERE id = $1 AND state = $7",
        )
        .bind(due.id)
        .bind(ScheduledState::Parked)
        .bind(*attempts)
        .bind(message)
        .bind(*reason)
        .bind(now)
        .bind(ScheduledState::Pending)
        .execute(c)
        .await?
        .rows_affected()
    });
    if parked == 0 {
        return Ok(());
    }
    let env = environments::get(ch.tx(), due.environment_id).await?;
    ch.audit(crate::AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "parked",
        resource_type: "scheduled_change",
        resource_id: due.id.to_string(),
        log: format!(
            "Scheduled change {} in environment '{}' not applied: {message}",
            due.id, env.name
        ),
        before: None,
        after: serde_json::to_value(conflicts).ok(),
    });
    ch.commit().await?;
    Ok(())
}

/// Pending changes by how overdue the oldest is: (pending count, ms the oldest due one is
/// past its `live_from`, 0 when none is due), for the metrics exporter.
pub async fn backlog(store: &Store, now: i64) -> Result<(i64, i64)> {
    let mut tx = store.read().await?;
    let (pending, oldest): (i64, Option<i64>) = sql!(&mut tx, |c| {
        sqlx::query_as(
            "SELECT COUNT(*), MIN(CASE WHEN live_from <= $2 THEN live_from END) \
             FROM scheduled_changes WHERE state = $1",
        )
        .bind(ScheduledState::Pending)
        .bind(now)
        .fetch_one(c)
        .await?
    });
    Ok((pending, oldest.map(|t| (now - t).max(0)).unwrap_or(0)))
}
