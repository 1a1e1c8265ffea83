//! Scheduled changes: feature-state updates that take effect at `live_from`, a time in the
//! future. A scheduled change is stored with its author and listed and cancellable until it
//! takes effect; the task processor (`flagstone_tasks::schedule`) applies it when it is due
//! as an ordinary change (revision, audit, version, publish) made in its author's name.
//!
//! The row is also its own queue job ([`queue`]): applying it and marking it applied happen in
//! one transaction, with the row locked, so a change is applied exactly once however many
//! workers look and whenever they come back after being down.
//!
//! Everything a scheduled change would write is validated when it is scheduled (the feature,
//! the value against the project's limits, the allocations), so a mistake is a 400 at once,
//! not a parked job an hour later. What can still go wrong at `live_from` (the feature was
//! deleted in between, an option went away) parks it with the reason.

mod items;
pub mod queue;

pub(crate) use items::validate_items;
pub use items::{apply_items, OverrideTarget, ScheduledFeatureState};

use serde::Serialize;

use crate::clock::iso8601;
use crate::environments::Environment;
use crate::queue::{text_enum, ParkReason, UnknownValue};
use crate::{sql, Actor, AuditEntry, Change, Page, PageRequest, Result, StoreError, Tx};
use std::fmt;
use std::str::FromStr;

/// Changes one scheduled change may carry.
pub const MAX_ITEMS: usize = 100;

text_enum! {
    /// Where a scheduled change is in its life.
    ScheduledState, "scheduled change state" {
        /// Waiting for `live_from` (or for a retry after a failed attempt).
        Pending = "pending",
        /// Applied: `applied_at`, `applied_revision`.
        Applied = "applied",
        /// Cancelled before it took effect.
        Cancelled = "cancelled",
        /// Applying it was refused (`last_error`); it will not be tried again.
        Parked = "parked",
    }
}

/// A scheduled change, as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledChange {
    pub id: i64,
    pub environment: i64,
    pub feature_states: Vec<ScheduledFeatureState>,
    /// When it takes effect (ISO-8601, UTC).
    pub live_from: String,
    pub state: ScheduledState,
    /// Who scheduled it, as the audit log shows them; the change is applied in their name.
    pub author: String,
    /// The change request that scheduled it, if any.
    pub change_request: Option<i64>,
    pub created_at: String,
    pub applied_at: Option<String>,
    /// The environment's revision once applied.
    pub applied_revision: Option<i64>,
    /// Milliseconds between `live_from` and when it was applied.
    pub delay_ms: Option<i64>,
    /// Failed attempts so far.
    pub attempts: i64,
    pub last_error: Option<String>,
    pub park_reason: Option<ParkReason>,
    pub cancelled_by: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    pub(crate) id: i64,
    pub(crate) environment_id: i64,
    pub(crate) changes: String,
    pub(crate) live_from: i64,
    pub(crate) state: ScheduledState,
    pub(crate) attempts: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) park_reason: Option<ParkReason>,
    pub(crate) author: String,
    pub(crate) author_user_id: Option<i64>,
    pub(crate) author_api_key_id: Option<i64>,
    pub(crate) author_admin_key_id: Option<i64>,
    pub(crate) change_request_id: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) applied_at: Option<i64>,
    pub(crate) applied_revision: Option<i64>,
    pub(crate) cancelled_by: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, environment_id, changes, live_from, state, attempts, \
    last_error, park_reason, author, author_user_id, author_api_key_id, author_admin_key_id, \
    change_request_id, created_at, applied_at, applied_revision, cancelled_by";

impl Row {
    pub(crate) fn items(&self) -> Result<Vec<ScheduledFeatureState>> {
        serde_json::from_str(&self.changes).map_err(|e| StoreError::Corrupt {
            what: "scheduled_changes.changes",
            detail: e.to_string(),
        })
    }

    /// Who the change is applied as: its author.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            admin_key_id: self.author_admin_key_id,
            user_id: self.author_user_id,
            api_key_id: self.author_api_key_id,
            name: self.author.clone(),
        }
    }

    fn shown(self) -> Result<ScheduledChange> {
        Ok(ScheduledChange {
            feature_states: self.items()?,
            id: self.id,
            environment: self.environment_id,
            live_from: iso8601(self.live_from),
            state: self.state,
            author: self.author,
            change_request: self.change_request_id,
            created_at: iso8601(self.created_at),
            applied_at: self.applied_at.map(iso8601),
            applied_revision: self.applied_revision,
            delay_ms: self.applied_at.map(|a| a - self.live_from),
            attempts: self.attempts,
            last_error: self.last_error,
            park_reason: self.park_reason,
            cancelled_by: self.cancelled_by,
        })
    }
}

/// `live_from` as given (ISO-8601 with a zone, e.g. `2026-12-07T09:00:00Z`) in ms; it must lie
/// after `now`.
pub fn parse_live_from(text: &str, now: i64) -> Result<i64> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| {
        StoreError::invalid(
            "live_from",
            format!(
                "{text:?} is not an ISO-8601 date-time with a zone (such as \
                 2026-12-07T09:00:00Z)"
            ),
        )
    })?;
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if ms <= now {
        return Err(StoreError::invalid(
            "live_from",
            format!(
                "{} is not in the future (now is {}); leave live_from out to change it now",
                iso8601(ms),
                iso8601(now)
            ),
        ));
    }
    Ok(ms)
}

/// Schedules `items` to take effect in `env` at `live_from` (ms, checked by
/// [`parse_live_from`]), in the name of `ch`'s actor. `change_request`: the request that
/// schedules it. Audited; the environment's document does not change until it is applied.
pub async fn create(
    ch: &mut Change,
    env: &Environment,
    items: &[ScheduledFeatureState],
    live_from: i64,
    change_request: Option<i64>,
) -> Result<ScheduledChange> {
    validate_items(ch.tx(), env, items).await?;
    let now = ch.now_ms();
    let actor = ch.actor().clone();
    let changes = serde_json::to_string(items).expect("updates serialise");
    let row: Row = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO scheduled_changes (environment_id, changes, live_from, state, \
                 attempts, run_after, author, author_user_id, author_api_key_id, \
                 author_admin_key_id, change_request_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $3, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
        ))
        .bind(env.id)
        .bind(&changes)
        .bind(live_from)
        .bind(ScheduledState::Pending)
        .bind(&actor.name)
        .bind(actor.user_id)
        .bind(actor.api_key_id)
        .bind(actor.admin_key_id)
        .bind(change_request)
        .bind(now)
        .fetch_one(c)
        .await?
    });
    let shown = row.shown()?;
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "scheduled",
        resource_type: "scheduled_change",
        resource_id: shown.id.to_string(),
        log: format!(
            "Change of {} feature state(s) in environment '{}' scheduled for {}",
            items.len(),
            env.name,
            shown.live_from
        ),
        before: None,
        after: serde_json::to_value(&shown).ok(),
    });
    Ok(shown)
}

/// The environment's scheduled changes, soonest first; only those in `state` when given.
pub async fn list(
    tx: &mut Tx,
    environment_id: i64,
    state: Option<ScheduledState>,
    page: PageRequest,
) -> Result<Page<ScheduledChange>> {
    let state = state.map(|s| s.as_str());
    let mut filter = crate::filter::Where::new()
        .bound("environment_id = ?")
        .bound_if(state.is_some(), "state = ?");
    let (limit, offset) = (filter.placeholder(), filter.placeholder());
    let filter = filter.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM scheduled_changes WHERE {filter}"
            ))
            .bind(environment_id),
            state
        )
        .fetch_one(c)
        .await?
    });
    let rows: Vec<Row> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM scheduled_changes WHERE {filter} \
                 ORDER BY live_from, id LIMIT {limit} OFFSET {offset}"
            ))
            .bind(environment_id),
            state
        )
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    let results = rows.into_iter().map(Row::shown).collect::<Result<_>>()?;
    Ok(Page { count, results })
}

/// Scheduled change `id` of the environment; `NotFound` for one of another environment.
pub async fn get(tx: &mut Tx, environment_id: i64, id: i64) -> Result<ScheduledChange> {
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM scheduled_changes WHERE id = $1 AND environment_id = $2"
        ))
        .bind(id)
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("scheduled change"))?
        .shown()
}

/// Cancels a pending scheduled change (a `Conflict` once it was applied, cancelled or parked).
/// Audited.
pub async fn cancel(ch: &mut Change, env: &Environment, id: i64) -> Result<ScheduledChange> {
    let before = get(ch.tx(), env.id, id).await?;
    let now = ch.now_ms();
    let by = ch.actor().name.clone();
    let row: Option<Row> = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE scheduled_changes SET state = $3, cancelled_by = $4, updated_at = $5 \
             WHERE id = $1 AND environment_id = $2 AND state = $6 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(env.id)
        .bind(ScheduledState::Cancelled)
        .bind(&by)
        .bind(now)
        .bind(ScheduledState::Pending)
        .fetch_optional(c)
        .await?
    });
    let Some(row) = row else {
        return Err(StoreError::conflict(
            "state",
            format!(
                "scheduled change {id} is {}, not pending: only a pending change can be \
                 cancelled",
                before.state
            ),
        ));
    };
    let after = row.shown()?;
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "cancelled",
        resource_type: "scheduled_change",
        resource_id: id.to_string(),
        log: format!(
            "Scheduled change {id} in environment '{}' (due {}) cancelled",
            env.name, after.live_from
        ),
        before: serde_json::to_value(&before).ok(),
        after: serde_json::to_value(&after).ok(),
    });
    Ok(after)
}
