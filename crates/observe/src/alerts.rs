//! The health alert: every transition the [`HealthMonitor`] announces (ok → degraded and back)
//! becomes a `QUEUE_HEALTH` webhook event, queued through the webhook queue like every event
//! (signed, retried, parked, in order per webhook).
//!
//! Several processes watch one store (`serve`, or `api` + workers on PostgreSQL) and each sees
//! the same transition. [`queue_alert`] records the new status in the store first
//! (`flagstone_store::webhooks::announcements::record_health`): only the process that changes
//! it queues the alert, under the transition's sequence number (`queue-health.<n>`), so one
//! transition is alerted once, and a restart in the same state alerts nothing.
//!
//! Each organisation with a subscribed webhook gets the alert with only its own environments
//! named (the queue's figures are installation-wide; another organisation's environments are
//! not its business).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flagstone_store::queue;
use flagstone_store::webhooks::{announcements, events};
use flagstone_store::{Store, StoreError};
use flagstone_webhooks::event as ev;
use flagstone_webhooks::EventType;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::health::{HealthTransition, Status};
use crate::probe::HealthMonitor;

/// The event id of the transition numbered `sequence` in the store.
pub fn event_id(sequence: i64) -> String {
    format!("queue-health.{sequence}")
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Degraded => "degraded",
    }
}

/// The alert's data for one organisation: the transition, its sequence number, the failing
/// checks with only the environments `shown` lets through.
pub fn alert_data(
    t: &HealthTransition,
    sequence: i64,
    now_ms: i64,
    shown: impl Fn(i64) -> bool,
) -> Value {
    let checks: Vec<Value> = t
        .report
        .reasons()
        .map(|c| {
            let mut c = c.clone();
            c.environments.retain(|l| shown(l.environment_id));
            serde_json::to_value(&c).unwrap_or(Value::Null)
        })
        .collect();
    json!({
        "status": status_str(t.to),
        "previous_status": status_str(t.from),
        "sequence": sequence,
        "timestamp": ev::timestamp(now_ms),
        "failing_checks": checks,
    })
}

/// Records `t` in the store and, if this call changed the shared status, queues its alert for
/// every organisation with a webhook subscribed to `QUEUE_HEALTH`, in one transaction. Returns
/// the transition's sequence number (`None`: already announced by another process, or no
/// change).
pub async fn queue_alert(store: &Store, t: &HealthTransition) -> Result<Option<i64>, StoreError> {
    let now = store.clock().now_ms();
    let mut tx = queue::begin(store).await?;
    let Some(sequence) = announcements::record_health(&mut tx, status_str(t.to), now).await? else {
        return Ok(None);
    };
    let organisations =
        announcements::subscribed_organisations(&mut tx, EventType::QueueHealth).await?;
    let mut owner: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    if !organisations.is_empty() {
        for c in t.report.reasons() {
            for l in &c.environments {
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    owner.entry(l.environment_id)
                {
                    slot.insert(announcements::organisation_of(&mut tx, l.environment_id).await?);
                }
            }
        }
    }
    let mut queued = 0;
    for org in organisations {
        let data = alert_data(t, sequence, now, |env| {
            owner.get(&env).copied().flatten() == Some(org)
        });
        queued += events::enqueue(
            &mut tx,
            events::Target::Within(org),
            EventType::QueueHealth,
            &event_id(sequence),
            &data,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    if queued > 0 {
        store.webhook_notifier().notify_one();
    }
    Ok(Some(sequence))
}

/// Forwards the monitor's transitions to [`queue_alert`] until the monitor goes away. A
/// transition that cannot be recorded (the store is unreachable, which is often why health
/// degraded) is retried with backoff until it is, or until a newer transition replaces it.
pub fn spawn(store: Store, monitor: &Arc<HealthMonitor>) -> tokio::task::JoinHandle<()> {
    let mut rx = monitor.subscribe();
    tokio::spawn(async move {
        loop {
            let mut t = match rx.recv().await {
                Ok(t) => t,
                // Missed transitions are covered by the next one (the store keeps the status).
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            let mut delay = Duration::from_secs(1);
            loop {
                match queue_alert(&store, &t).await {
                    Ok(Some(sequence)) => {
                        tracing::info!(sequence, status = status_str(t.to), "health alert queued");
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot queue the health alert; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            next = rx.recv() => match next {
                                Ok(newer) => t = newer,
                                Err(RecvError::Lagged(_)) => {}
                                Err(RecvError::Closed) => return,
                            },
                        }
                        delay = (delay * 2).min(Duration::from_secs(60));
                    }
                }
            }
        }
    })
}
