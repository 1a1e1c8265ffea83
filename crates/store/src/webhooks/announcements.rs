//! What Flagstone's own events need from the store beyond [`super::events::enqueue`]:
//! - `ENVIRONMENT_PUBLISHED`: whether anyone listens ([`subscribed`]), the identity-override
//!   counts per feature (not part of the document) and the counts of the last announced publish
//!   ([`identity_override_counts`], [`last_announced`], [`record_announced`]);
//! - `QUEUE_HEALTH`: the status last announced, shared by every process on the store
//!   ([`record_health`]), so one transition is alerted once however many processes see it.

use std::collections::BTreeMap;

use flagstone_webhooks::EventType;

use super::events::Target;
use crate::{sql, Result, StoreError, Tx};

/// Whether an enabled webhook of `target` opted in to `event_type` (for opt-in types: the
/// caller then does the work of building the event; nobody listening costs one query).
pub async fn subscribed(tx: &mut Tx, target: Target, event_type: EventType) -> Result<bool> {
    let (env, org, all) = match target {
        Target::Environment {
            environment,
            organisation,
        } => (Some(environment), Some(organisation), false),
        Target::Organisation(o) | Target::Within(o) => (None, Some(o), false),
        Target::Subscribers => (None, None, true),
    };
    let within = match target {
        Target::Within(o) => Some(o),
        _ => None,
    };
    let pattern = format!("%\"{}\"%", event_type.as_str());
    let found: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT id FROM webhooks WHERE enabled = TRUE \
               AND ($1 OR environment_id = $2 OR organisation_id = $3 \
                    OR environment_id IN (SELECT e.id FROM environments e \
                        JOIN projects p ON p.id = e.project_id WHERE p.organisation_id = $6)) \
               AND ($4 = FALSE OR events LIKE $5) LIMIT 1",
        )
        .bind(all)
        .bind(env)
        .bind(org)
        .bind(event_type.is_opt_in())
        .bind(&pattern)
        .bind(within)
        .fetch_optional(c)
        .await?
    });
    Ok(found.is_some())
}

/// The organisation of an environment (`None`: the environment is gone).
pub async fn organisation_of(tx: &mut Tx, environment_id: i64) -> Result<Option<i64>> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT p.organisation_id FROM environments e JOIN projects p ON p.id = e.project_id \
             WHERE e.id = $1",
        )
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    }))
}

/// Identity overrides of the environment, per feature id.
pub async fn identity_override_counts(
    tx: &mut Tx,
    environment_id: i64,
) -> Result<BTreeMap<i64, i64>> {
    let rows: Vec<(i64, i64)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT feature_id, COUNT(*) FROM identity_overrides WHERE environment_id = $1 \
             GROUP BY feature_id",
        )
        .bind(environment_id)
        .fetch_all(c)
        .await?
    });
    Ok(rows.into_iter().collect())
}

/// The revision and identity-override counts of the environment's last announced publish.
pub async fn last_announced(
    tx: &mut Tx,
    environment_id: i64,
) -> Result<Option<(i64, BTreeMap<i64, i64>)>> {
    let row: Option<(i64, String)> = sql!(tx, |c| {
        sqlx::query_as(
            "SELECT revision, identity_overrides FROM publish_announcements \
             WHERE environment_id = $1",
        )
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    });
    row.map(|(revision, counts)| {
        serde_json::from_str::<BTreeMap<i64, i64>>(&counts)
            .map(|c| (revision, c))
            .map_err(|e| StoreError::Corrupt {
                what: "publish_announcements.identity_overrides",
                detail: e.to_string(),
            })
    })
    .transpose()
}

/// Records what was announced for the environment's `revision`.
pub async fn record_announced(
    tx: &mut Tx,
    environment_id: i64,
    revision: i64,
    counts: &BTreeMap<i64, i64>,
    now: i64,
) -> Result<()> {
    let counts = serde_json::to_string(counts).expect("a map of integers serialises");
    sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO publish_announcements (environment_id, revision, identity_overrides, \
                 announced_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (environment_id) DO UPDATE SET revision = excluded.revision, \
                 identity_overrides = excluded.identity_overrides, \
                 announced_at = excluded.announced_at",
        )
        .bind(environment_id)
        .bind(revision)
        .bind(&counts)
        .bind(now)
        .execute(c)
        .await?;
    });
    Ok(())
}

/// Records that health is now `status` (`ok` / `degraded`). Returns the transition's sequence
/// number when this call changed the shared status (the caller alerts under it), `None` when
/// the store already had `status` (another process announced this transition, or this is a
/// restart in the same state). Locks the row on PostgreSQL; SQLite writes are serialised.
pub async fn record_health(tx: &mut Tx, status: &str, now: i64) -> Result<Option<i64>> {
    // The row exists from the first call on: `ok` at sequence 0 (nothing announced yet).
    sql!(&mut *tx, |c| {
        sqlx::query(
            "INSERT INTO health_alerts (id, status, sequence, changed_at) VALUES (1, 'ok', 0, $1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(now)
        .execute(c)
        .await?;
    });
    let lock = match tx.backend() {
        crate::Backend::Postgres => " FOR UPDATE",
        crate::Backend::Sqlite => "",
    };
    let q = format!("SELECT status, sequence FROM health_alerts WHERE id = 1{lock}");
    let (current, sequence): (String, i64) =
        sql!(&mut *tx, |c| sqlx::query_as(&q).fetch_one(c).await?);
    if current == status {
        return Ok(None);
    }
    let next = sequence + 1;
    sql!(tx, |c| {
        sqlx::query(
            "UPDATE health_alerts SET status = $1, sequence = $2, changed_at = $3 WHERE id = 1",
        )
        .bind(status)
        .bind(next)
        .bind(now)
        .execute(c)
        .await?;
    });
    Ok(Some(next))
}

/// The organisations with an enabled webhook (of the organisation or of one of its
/// environments) that opted in to `event_type`.
pub async fn subscribed_organisations(tx: &mut Tx, event_type: EventType) -> Result<Vec<i64>> {
    let pattern = format!("%\"{}\"%", event_type.as_str());
    Ok(sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT DISTINCT COALESCE(w.organisation_id, p.organisation_id) FROM webhooks w \
             LEFT JOIN environments e ON e.id = w.environment_id \
             LEFT JOIN projects p ON p.id = e.project_id \
             WHERE w.enabled = TRUE AND w.events LIKE $1 ORDER BY 1",
        )
        .bind(&pattern)
        .fetch_all(c)
        .await?
    }))
}
