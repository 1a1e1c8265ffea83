//! The steps of a change request after it is opened: approving, committing (now, or as a
//! scheduled change), closing. Each gathers the facts, asks [`super::decide`], and writes only
//! when the answer is yes.

use super::decide::{self, Conflict, Refusal};
use super::{actor_key, approvals, get, row, snapshots, ChangeRequest};
use crate::environments::Environment;
use crate::scheduled;
use crate::{sql, AuditEntry, Change, Result};

/// Approves `id` as `ch`'s actor (approving twice keeps one approval, with the newer time).
/// `Ok(Err(_))`: refused, nothing written.
pub async fn approve(
    ch: &mut Change,
    env: &Environment,
    id: i64,
) -> Result<std::result::Result<ChangeRequest, Refusal>> {
    let r = row(ch.tx(), id).await?;
    let actor = ch.actor().clone();
    let key = actor_key(&actor);
    if let Err(refused) = decide::approve(r.status(), &r.author_key, &key) {
        return Ok(Err(refused));
    }
    let now = ch.now_ms();
    sql!(ch.tx(), |c| {
        // An assignee's row (or an earlier approval) is filled in, keeping `required`.
        let filled = sqlx::query(
            "UPDATE change_request_approvals SET approved_at = $3, approver = $4 \
             WHERE change_request_id = $1 AND approver_key = $2",
        )
        .bind(id)
        .bind(&key)
        .bind(now)
        .bind(&actor.name)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if filled == 0 {
            sqlx::query(
                "INSERT INTO change_request_approvals \
                     (change_request_id, approver, approver_key, user_id, approved_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(&actor.name)
            .bind(&key)
            .bind(actor.user_id)
            .bind(now)
            .execute(&mut *c)
            .await?;
        }
        sqlx::query("UPDATE change_requests SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
    });
    let after = get(ch.tx(), id).await?;
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "approved",
        resource_type: "change_request",
        resource_id: id.to_string(),
        log: format!(
            "Change request {id} '{}' approved by {} ({} of {} approval(s))",
            after.title,
            actor.name,
            super::approved(&after.approvals),
            after.required_approvals.unwrap_or(0)
        ),
        before: None,
        after: serde_json::to_value(&after).ok(),
    });
    Ok(Ok(after))
}

/// Why a commit did not happen.
#[derive(Debug)]
pub enum CommitRefused {
    Refused(Refusal),
    /// Fields it changes were changed since it was opened.
    Stale(Vec<Conflict>),
}

/// Commits `id` as `ch`'s actor: applies it now (each update through the ordinary feature-state
/// write path) or schedules it for its `live_from`. `author_or_approver`: whether the caller
/// may commit it, if approved. The request as committed (`scheduled_change` names the
/// scheduled change a future `live_from` made). `Ok(Err(_))`: refused; drop `ch` and nothing
/// is written.
pub async fn commit(
    ch: &mut Change,
    env: &Environment,
    id: i64,
    author_or_approver: bool,
) -> Result<std::result::Result<ChangeRequest, CommitRefused>> {
    let r = row(ch.tx(), id).await?;
    let now = ch.now_ms();
    let approvals = super::approved(&approvals(ch.tx(), id).await?);
    let facts = decide::CommitFacts {
        status: r.status(),
        author_or_approver,
        approvals,
        required: env.minimum_change_request_approvals,
        live_from: r.live_from,
        now,
    };
    let plan = match decide::commit(facts) {
        Ok(p) => p,
        Err(refused) => return Ok(Err(CommitRefused::Refused(refused))),
    };
    let by = ch.actor().name.clone();
    // Marking it committed only while it is still open makes two commits at once apply it
    // once: the second waits for the first's row lock, then matches nothing. It comes before
    // the staleness check so that the second sees "already committed", not the first's own
    // writes as a conflict; a stale refusal drops the change, and the mark with it.
    let marked = sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE change_requests SET committed_at = $2, committed_by = $3, updated_at = $2 \
             WHERE id = $1 AND committed_at IS NULL AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .bind(&by)
        .execute(c)
        .await?
        .rows_affected()
    });
    if marked == 0 {
        let again = row(ch.tx(), id).await?;
        return Ok(Err(CommitRefused::Refused(Refusal::NotOpen(
            again.status(),
        ))));
    }
    let items = r.items()?;
    let current = snapshots(ch.tx(), env.id, &items).await?;
    let conflicts = decide::conflicts(&items, &r.base()?, &current);
    if !conflicts.is_empty() {
        return Ok(Err(CommitRefused::Stale(conflicts)));
    }
    let scheduled = match plan {
        decide::Commit::Now => {
            scheduled::apply_items(ch, env, &items).await?;
            None
        }
        decide::Commit::At(at) => {
            let s = scheduled::create(ch, env, &items, at, Some(id)).await?;
            sql!(ch.tx(), |c| {
                sqlx::query("UPDATE change_requests SET scheduled_change_id = $2 WHERE id = $1")
                    .bind(id)
                    .bind(s.id)
                    .execute(c)
                    .await?
                    .rows_affected()
            });
            Some(s)
        }
    };
    let after = get(ch.tx(), id).await?;
    let when = match &scheduled {
        Some(s) => format!("scheduled for {}", s.live_from),
        None => "applied".to_string(),
    };
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "committed",
        resource_type: "change_request",
        resource_id: id.to_string(),
        log: format!(
            "Change request {id} '{}' by {} committed by {by} and {when}",
            after.title, after.author
        ),
        before: None,
        after: serde_json::to_value(&after).ok(),
    });
    Ok(Ok(after))
}

/// Closes an open request without committing it (Flagsmith's delete). `Ok(Err(_))`: refused.
pub async fn close(
    ch: &mut Change,
    env: &Environment,
    id: i64,
    author_or_approver: bool,
) -> Result<std::result::Result<ChangeRequest, Refusal>> {
    let r = row(ch.tx(), id).await?;
    if let Err(refused) = decide::close(r.status(), author_or_approver) {
        return Ok(Err(refused));
    }
    let now = ch.now_ms();
    let by = ch.actor().name.clone();
    let closed = sql!(ch.tx(), |c| {
        sqlx::query(
            "UPDATE change_requests SET deleted_at = $2, deleted_by = $3, updated_at = $2 \
             WHERE id = $1 AND committed_at IS NULL AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(now)
        .bind(&by)
        .execute(c)
        .await?
        .rows_affected()
    });
    if closed == 0 {
        let again = row(ch.tx(), id).await?;
        return Ok(Err(Refusal::NotOpen(again.status())));
    }
    let after = get(ch.tx(), id).await?;
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "deleted",
        resource_type: "change_request",
        resource_id: id.to_string(),
        log: format!("Change request {id} '{}' closed by {by}", after.title),
        before: None,
        after: serde_json::to_value(&after).ok(),
    });
    Ok(Ok(after))
}
