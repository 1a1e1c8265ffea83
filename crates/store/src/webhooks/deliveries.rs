//! The webhook delivery queue as stored: one row per (event, webhook) in `webhook_deliveries`,
//! with the publish queue's columns (state, attempts, run_after, lease, last error, park
//! reason) so the same rules apply — `flagstone_tasks::policy` decides, this module writes the
//! resulting [`ClaimDecision`] or [`Decision`]. A delivered row stays as the delivery log
//! (capped per webhook) instead of being deleted.
//!
//! Deliveries of one webhook go out in order: a delivery is due only when no earlier delivery of
//! the same webhook is still pending or running (a parked one no longer holds the others up).

use serde::Serialize;

use crate::queue::{
    text_enum, ClaimDecision, Claimant, Decision, DueJob, ParkReason, UnknownValue,
};
use crate::{list_window, sql, ListOf, Page, PageRequest, Result, StoreError, Tx};
use flagstone_webhooks::EventType;
use std::fmt;
use std::str::FromStr;

text_enum! {
    /// Where a delivery is in its life.
    DeliveryState, "delivery state" {
        /// Waiting for `run_after` (new, or backing off after a failed attempt).
        Pending = "pending",
        /// Being sent by a worker whose lease runs until `lease_until`.
        Running = "running",
        /// The receiver answered 2xx.
        Delivered = "delivered",
        /// Gave up: too many failures, a 4xx, or a refused address. Redeliver to try again.
        Parked = "parked",
    }
}

/// Delivered rows kept per webhook as its delivery log.
pub const LOG_CAP: i64 = 1_000;

/// One delivery, as the delivery log shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    /// The event's id, sent as `X-Flagstone-Event-Id` (the same on every attempt).
    pub event_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the event was queued.
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: i64,
    /// When the next attempt is due, while pending.
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub run_after: i64,
    #[serde(serialize_with = "crate::clock::iso::option::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub delivered_at: Option<i64>,
    /// The last attempt's HTTP status, if the receiver answered.
    pub response_status: Option<i64>,
    /// How long the last attempt took, in milliseconds.
    pub response_ms: Option<i64>,
    pub last_error: Option<String>,
    pub park_reason: Option<ParkReason>,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
}

const COLUMNS: &str = "id, webhook_id, event_id, event_type, state, attempts, created_at, \
    run_after, delivered_at, response_status, response_ms, last_error, park_reason, updated_at";

/// A delivery claimed by a worker: everything needed to send it.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: i64,
    pub webhook_id: i64,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    /// Attempts before this one.
    pub attempts: i64,
    pub owner: String,
    pub lease_until: i64,
    /// The worker whose lease this claim took over, if any.
    pub reclaimed_from: Option<String>,
}

/// How an attempt went, as the log records it.
#[derive(Clone, Debug, Default)]
pub struct AttemptRecord {
    pub status: Option<i64>,
    pub ms: Option<i64>,
}

fn lock_clause(tx: &Tx) -> &'static str {
    match tx.backend() {
        crate::Backend::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        crate::Backend::Sqlite => "",
    }
}

#[derive(sqlx::FromRow)]
struct DueRow {
    id: i64,
    state: DeliveryState,
    attempts: i64,
    lease_owner: Option<String>,
}

/// The oldest due delivery — pending and due, or running under an expired lease — whose
/// webhook is enabled and has nothing earlier still in flight; locked for this transaction.
/// Returned as the publish queue's [`DueJob`] (its `environment_id` holds the delivery id) so
/// `flagstone_tasks::policy::on_claim` decides for both queues.
pub async fn next_due(tx: &mut Tx, now: i64) -> Result<Option<DueJob>> {
    let q = format!(
        "SELECT d.id, d.state, d.attempts, d.lease_owner FROM webhook_deliveries d \
         JOIN webhooks w ON w.id = d.webhook_id AND w.enabled = TRUE \
         WHERE ((d.state = $2 AND d.run_after <= $1) OR (d.state = $3 AND d.lease_until < $1)) \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id \
               AND e.id < d.id AND (e.state = $2 OR e.state = $3)) \
         ORDER BY d.run_after, d.id LIMIT 1{}",
        lock_clause(tx)
    );
    let row: Option<DueRow> = sql!(tx, |c| {
        sqlx::query_as(&q)
            .bind(now)
            .bind(DeliveryState::Pending)
            .bind(DeliveryState::Running)
            .fetch_optional(c)
            .await?
    });
    Ok(row.map(|r| DueJob {
        environment_id: r.id,
        wanted_revision: 0,
        attempts: r.attempts,
        claimant: match r.state {
            DeliveryState::Running => Claimant::Lapsed {
                owner: r.lease_owner.unwrap_or_else(|| "unknown".into()),
                // Deliveries are short and tie nothing to a session: only leases lapse.
                cause: crate::queue::Lapse::LeaseExpired,
            },
            _ => Claimant::Unclaimed,
        },
    }))
}

/// Writes a claim decision for `due` (from [`next_due`]): the delivery, leased to `owner`, or
/// `None` when it was parked instead.
pub async fn take(
    tx: &mut Tx,
    due: &DueJob,
    owner: &str,
    decision: &ClaimDecision,
    now: i64,
) -> Result<Option<Claimed>> {
    let id = due.environment_id;
    match decision {
        ClaimDecision::Take {
            attempts,
            lease_until,
            note,
        } => {
            let row: (i64, String, String, String, String, String) = sql!(tx, |c| {
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = $2, lease_owner = $3, \
                         lease_until = $4, attempts = $5, last_error = COALESCE($6, last_error), \
                         updated_at = $7 WHERE id = $1",
                )
                .bind(id)
                .bind(DeliveryState::Running)
                .bind(owner)
                .bind(lease_until)
                .bind(attempts)
                .bind(note.as_deref())
                .bind(now)
                .execute(&mut *c)
                .await?;
                sqlx::query_as(
                    "SELECT d.webhook_id, w.url, w.secret, d.event_id, d.event_type, d.body \
                     FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                     WHERE d.id = $1",
                )
                .bind(id)
                .fetch_one(c)
                .await?
            });
            let (webhook_id, url, secret, event_id, event_type, body) = row;
            Ok(Some(Claimed {
                id,
                webhook_id,
                url,
                secret,
                event_id,
                event_type,
                body,
                attempts: *attempts,
                owner: owner.to_string(),
                lease_until: *lease_until,
                reclaimed_from: match &due.claimant {
                    Claimant::Lapsed { owner, .. } => Some(owner.clone()),
                    Claimant::Unclaimed => None,
                },
            }))
        }
        ClaimDecision::Park { .. } => {
            if let Some(park) = decision.parked() {
                apply(tx, id, &park, &AttemptRecord::default(), now).await?;
            }
            Ok(None)
        }
    }
}

/// The attempts recorded on delivery `id`, locked, if `owner`'s lease still holds it.
pub async fn owned(tx: &mut Tx, id: i64, owner: &str) -> Result<Option<i64>> {
    let q = format!(
        "SELECT attempts FROM webhook_deliveries WHERE id = $1 AND state = $2 AND lease_owner = $3{}",
        match tx.backend() {
            crate::Backend::Postgres => " FOR UPDATE",
            crate::Backend::Sqlite => "",
        }
    );
    Ok(sql!(tx, |c| {
        sqlx::query_scalar(&q)
            .bind(id)
            .bind(DeliveryState::Running)
            .bind(owner)
            .fetch_optional(c)
            .await?
    }))
}

/// The columns a [`Decision`] sets (`None`: left as they are).
struct Row<'a> {
    state: DeliveryState,
    attempts: Option<i64>,
    run_after: Option<i64>,
    error: Option<&'a str>,
    reason: Option<ParkReason>,
    delivered: Option<i64>,
}

impl<'a> Row<'a> {
    fn of(decision: &'a Decision, now: i64) -> Row<'a> {
        let pending = |attempts, run_after, error| Row {
            state: DeliveryState::Pending,
            attempts,
            run_after: Some(run_after),
            error,
            reason: None,
            delivered: None,
        };
        match decision {
            Decision::Done | Decision::FollowUp { .. } => Row {
                state: DeliveryState::Delivered,
                attempts: None,
                run_after: None,
                error: None,
                reason: None,
                delivered: Some(now),
            },
            Decision::Retry {
                attempts,
                run_after,
                error,
            } => pending(Some(*attempts), *run_after, Some(error.as_str())),
            Decision::Park {
                reason,
                attempts,
                message,
            } => Row {
                state: DeliveryState::Parked,
                attempts: Some(*attempts),
                run_after: None,
                error: Some(message.as_str()),
                reason: Some(*reason),
                delivered: None,
            },
            Decision::HandBack { run_after } => pending(None, *run_after, None),
        }
    }
}

/// Writes `decision` for delivery `id` with what the attempt saw. `Done` marks it delivered
/// (and trims the webhook's log); `FollowUp` does not happen to deliveries (an event never
/// changes once queued) and is treated as `Done`.
pub async fn apply(
    tx: &mut Tx,
    id: i64,
    decision: &Decision,
    attempt: &AttemptRecord,
    now: i64,
) -> Result<()> {
    let w = Row::of(decision, now);
    let (state, attempts, run_after, error, reason, delivered) = (
        w.state,
        w.attempts,
        w.run_after,
        w.error,
        w.reason,
        w.delivered,
    );
    let delivered_ok = matches!(state, DeliveryState::Delivered);
    sql!(tx, |c| {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $2, \
                 attempts = CASE WHEN $9 THEN attempts + 1 ELSE COALESCE($3, attempts) END, \
                 run_after = COALESCE($4, run_after), \
                 last_error = CASE WHEN $9 THEN NULL ELSE COALESCE($5, last_error) END, \
                 park_reason = $6, delivered_at = COALESCE($7, delivered_at), \
                 response_status = COALESCE($10, response_status), \
                 response_ms = COALESCE($11, response_ms), \
                 lease_owner = NULL, lease_until = NULL, updated_at = $8 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(attempts)
        .bind(run_after)
        .bind(error)
        .bind(reason)
        .bind(delivered)
        .bind(now)
        .bind(delivered_ok)
        .bind(attempt.status)
        .bind(attempt.ms)
        .execute(c)
        .await?
        .rows_affected()
    });
    if delivered_ok {
        sql!(tx, |c| {
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE state = $2 AND webhook_id = \
                     (SELECT webhook_id FROM webhook_deliveries WHERE id = $1) \
                 AND id <= (SELECT MAX(id) FROM webhook_deliveries WHERE webhook_id = \
                     (SELECT webhook_id FROM webhook_deliveries WHERE id = $1)) - $3",
            )
            .bind(id)
            .bind(DeliveryState::Delivered)
            .bind(LOG_CAP)
            .execute(c)
            .await?
            .rows_affected()
        });
    }
    Ok(())
}

/// Milliseconds until the next delivery may be due (0: now), `None` when nothing waits.
pub async fn next_due_in(tx: &mut Tx, now: i64) -> Result<Option<i64>> {
    let next: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT MIN(CASE WHEN state = $1 THEN lease_until ELSE run_after END) \
             FROM webhook_deliveries WHERE state = $1 OR state = $2",
        )
        .bind(DeliveryState::Running)
        .bind(DeliveryState::Pending)
        .fetch_one(c)
        .await?
    });
    Ok(next.map(|t| (t - now).max(0)))
}

/// A webhook's deliveries, newest first.
pub async fn list(tx: &mut Tx, webhook_id: i64, page: PageRequest) -> Result<Page<Delivery>> {
    let of = ListOf::new("webhook_deliveries", COLUMNS, "webhook_id", "id DESC");
    list_window(tx, of, webhook_id, page).await
}

pub async fn get(tx: &mut Tx, webhook_id: i64, id: i64) -> Result<Delivery> {
    let row: Option<Delivery> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 AND id = $2"
        ))
        .bind(webhook_id)
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("delivery"))
}

/// Sends delivery `id` again, with the same event id and body: due now with fresh attempts.
/// A delivery being sent right now cannot be redelivered (409).
pub async fn redeliver(tx: &mut Tx, webhook_id: i64, id: i64, now: i64) -> Result<Delivery> {
    let d = get(tx, webhook_id, id).await?;
    if d.state == DeliveryState::Running {
        return Err(StoreError::conflict(
            "state",
            "the delivery is being sent right now",
        ));
    }
    sql!(tx, |c| {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $2, attempts = 0, run_after = $3, \
                 park_reason = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(DeliveryState::Pending)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    get(tx, webhook_id, id).await
}

/// Queues an event for one webhook (the test event); the delivery, or `None` if that event id
/// was already queued for it.
pub async fn enqueue_one(
    tx: &mut Tx,
    webhook_id: i64,
    event_type: EventType,
    event_id: &str,
    data: &serde_json::Value,
    now: i64,
) -> Result<Option<Delivery>> {
    let body = flagstone_webhooks::event::body(event_type, data);
    let id: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, body, state, \
                 attempts, run_after, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $6) \
             ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING id",
        )
        .bind(webhook_id)
        .bind(event_id)
        .bind(event_type.as_str())
        .bind(&body)
        .bind(DeliveryState::Pending)
        .bind(now)
        .fetch_optional(c)
        .await?
    });
    match id {
        Some(id) => Ok(Some(get(tx, webhook_id, id).await?)),
        None => Ok(None),
    }
}

/// The exact body of a delivery (tests, and operators comparing what a receiver got).
pub async fn body(tx: &mut Tx, id: i64) -> Result<String> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar("SELECT body FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(c)
            .await?
    }))
}

/// The delivery queue at a glance, for the webhook queue's gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStatus {
    pub pending: i64,
    pub running: i64,
    pub parked: i64,
    /// How long the oldest pending delivery's event has been queued.
    pub oldest_pending_age_ms: Option<i64>,
}

/// Deliveries pending, running and parked, and the age of the oldest pending one.
pub async fn queue_status(tx: &mut Tx, now: i64) -> Result<QueueStatus> {
    let rows: Vec<(DeliveryState, i64, Option<i64>)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT state, COUNT(*), MIN(created_at) FROM webhook_deliveries \
             WHERE state IN ($1, $2, $3) GROUP BY state",
        )
        .bind(DeliveryState::Pending)
        .bind(DeliveryState::Running)
        .bind(DeliveryState::Parked)
        .fetch_all(c)
        .await?
    });
    let mut s = QueueStatus::default();
    for (state, n, oldest) in rows {
        match state {
            DeliveryState::Pending => {
                s.pending = n;
                s.oldest_pending_age_ms = oldest.map(|t| (now - t).max(0));
            }
            DeliveryState::Running => s.running = n,
            DeliveryState::Parked => s.parked = n,
            DeliveryState::Delivered => {}
        }
    }
    Ok(s)
}
