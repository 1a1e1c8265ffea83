//! Turning a change into webhook deliveries, inside the change's own transaction: if the change
//! commits, its deliveries exist; if it rolls back, they never did.
//!
//! [`crate::Change::commit`] calls [`on_commit`] with the audit entries it has just written.
//! Every entry is an `AUDIT_LOG_CREATED` event for its organisation's webhooks; entries that
//! change what an environment serves are also `FLAG_UPDATED` / `FLAG_DELETED` events, sent to
//! the environment's webhooks and (as Flagsmith does) its organisation's:
//!
//! | audit entry | flag events |
//! |---|---|
//! | `feature_state` updated | `FLAG_UPDATED`, previous and new state |
//! | `segment_override` created / updated / reordered | `FLAG_UPDATED` per override |
//! | `segment_override` deleted | `FLAG_DELETED`, the override as previous state |
//! | `identity_override` created / updated | `FLAG_UPDATED` with `identity` / `identity_identifier` |
//! | `identity_override` deleted | `FLAG_DELETED`, the override as previous state |
//! | `feature` created | `FLAG_UPDATED` per environment (no previous state) |
//! | `segment` updated (rules changed) | `FLAG_UPDATED` per override of the segment, each environment |
//! | `feature` / `segment` deleted | `FLAG_DELETED` per state the deletion takes away ([`capture_feature_deletion`], [`capture_segment_deletion`] record them before the rows go) |
//!
//! Each event has an id derived from its audit entry (`<audit id>`, `<audit id>.<n>`), and a
//! delivery is unique per (webhook, event id): the same event can never be queued twice for
//! the same receiver. Other subsystems (the health alert) enqueue with [`enqueue`].

use flagstone_webhooks::event::{self as ev, Named};
use flagstone_webhooks::{EventType, FeatureStateData};
use serde_json::{json, Value};

use super::deliveries::DeliveryState;
use super::states::Lookup;
use crate::{sql, Actor, AuditEntry, Change, Result, Tx};

/// A flag event recorded before the rows it describes are deleted.
#[derive(Clone, Debug)]
pub struct CapturedFlagEvent {
    pub environment_id: i64,
    pub event_type: EventType,
    pub previous: Option<FeatureStateData>,
    pub new: Option<FeatureStateData>,
}

/// Who receives an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The environment's webhooks and its organisation's.
    Environment { environment: i64, organisation: i64 },
    /// The organisation's webhooks.
    Organisation(i64),
    /// Every enabled webhook that opted in to the event type (installation-wide events).
    Subscribers,
    /// The organisation's webhooks and those of its environments (`QUEUE_HEALTH`, sent to
    /// each organisation with only its own environments named).
    Within(i64),
}

/// Whether any enabled webhook exists: when none does (the common case), a change pays one
/// indexed query and nothing else.
pub async fn any_enabled(tx: &mut Tx) -> Result<bool> {
    let n: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar("SELECT id FROM webhooks WHERE enabled = TRUE LIMIT 1")
            .fetch_optional(c)
            .await?
    });
    Ok(n.is_some())
}

/// Queues `event_type` with `data` for every webhook of `target` that takes it; returns how
/// many deliveries were queued. Opt-in types reach only webhooks that listed them; an event id
/// already queued for a webhook is not queued again. Runs in the caller's transaction.
pub async fn enqueue(
    tx: &mut Tx,
    target: Target,
    event_type: EventType,
    event_id: &str,
    data: &Value,
    now: i64,
) -> Result<u64> {
    let body = ev::body(event_type, data);
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
    // Environment-only events never reach organisation webhooks unless Flagsmith sends them
    // there too (flag events do; AUDIT_LOG_CREATED is organisation-only anyway).
    let opt_in = event_type.is_opt_in();
    let pattern = format!("%\"{}\"%", event_type.as_str());
    let n = sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, body, state, \
                 attempts, run_after, created_at, updated_at) \
             SELECT id, $1, $2, $3, $4, 0, $5, $5, $5 FROM webhooks \
             WHERE enabled = TRUE \
               AND ($8 OR environment_id = $6 OR organisation_id = $7 \
                    OR environment_id IN (SELECT e.id FROM environments e \
                        JOIN projects p ON p.id = e.project_id WHERE p.organisation_id = $11)) \
               AND ($9 = FALSE OR events LIKE $10) \
             ON CONFLICT (webhook_id, event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(event_type.as_str())
        .bind(&body)
        .bind(DeliveryState::Pending)
        .bind(now)
        .bind(env)
        .bind(org)
        .bind(all)
        .bind(opt_in)
        .bind(&pattern)
        .bind(within)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n)
}

/// An audit entry as written: its id and the organisation it was filed under.
pub(crate) struct Written<'a> {
    pub id: i64,
    pub organisation_id: Option<i64>,
    pub entry: &'a AuditEntry,
}

/// Queues the events of a committing change. Returns how many deliveries were queued.
pub(crate) async fn on_commit(
    tx: &mut Tx,
    actor: &Actor,
    now: i64,
    written: &[Written<'_>],
    captured: Vec<CapturedFlagEvent>,
) -> Result<u64> {
    if !any_enabled(tx).await? {
        return Ok(0);
    }
    let mut lookup = Lookup::default();
    let mut queued = 0;
    for w in written {
        if let Some(org) = w.organisation_id {
            let data = audit_data(tx, &mut lookup, actor, w, now).await?;
            queued += enqueue(
                tx,
                Target::Organisation(org),
                EventType::AuditLogCreated,
                &w.id.to_string(),
                &data,
                now,
            )
            .await?;
        }
        let flags = flag_events_of(tx, &mut lookup, w.entry).await?;
        for (n, f) in flags.into_iter().enumerate() {
            queued += send_flag(tx, actor, now, &format!("{}.{}", w.id, n + 1), &f).await?;
        }
        queued += send_change_request(tx, actor, now, w).await?;
    }
    let anchor = written
        .first()
        .map(|w| w.id.to_string())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    for (n, f) in captured.into_iter().enumerate() {
        queued += send_flag(tx, actor, now, &format!("{anchor}.d{}", n + 1), &f).await?;
    }
    Ok(queued)
}

/// The opt-in event a change request's audit entry stands for, if any.
fn change_request_event(e: &AuditEntry) -> Option<EventType> {
    match (e.resource_type, e.action) {
        ("change_request", "created") => Some(EventType::ChangeRequestCreated),
        ("change_request", "approved") => Some(EventType::ChangeRequestApproved),
        ("change_request", "committed") => Some(EventType::ChangeRequestCommitted),
        _ => None,
    }
}

/// `CHANGE_REQUEST_CREATED` / `_APPROVED` / `_COMMITTED` (Flagstone's, opt-in) to the
/// environment's and its organisation's webhooks: the request as the API shows it, who did
/// it, when, and the audit log's sentence.
async fn send_change_request(tx: &mut Tx, actor: &Actor, now: i64, w: &Written<'_>) -> Result<u64> {
    let (Some(event_type), Some(environment)) =
        (change_request_event(w.entry), w.entry.environment_id)
    else {
        return Ok(0);
    };
    let Ok(organisation) = super::organisation_of_environment(tx, environment).await else {
        return Ok(0);
    };
    let data = json!({
        "change_request": w.entry.after,
        "triggered_by": actor.name,
        "timestamp": ev::timestamp(now),
        "log": w.entry.log,
    });
    enqueue(
        tx,
        Target::Environment {
            environment,
            organisation,
        },
        event_type,
        &format!("{}.change_request", w.id),
        &data,
        now,
    )
    .await
}

async fn send_flag(
    tx: &mut Tx,
    actor: &Actor,
    now: i64,
    event_id: &str,
    f: &CapturedFlagEvent,
) -> Result<u64> {
    let organisation = super::organisation_of_environment(tx, f.environment_id).await;
    // The environment went in this very change: its webhooks went with it.
    let Ok(organisation) = organisation else {
        return Ok(0);
    };
    let data = ev::flag_data(&actor.name, now, f.new.as_ref(), f.previous.as_ref());
    enqueue(
        tx,
        Target::Environment {
            environment: f.environment_id,
            organisation,
        },
        f.event_type,
        event_id,
        &data,
        now,
    )
    .await
}

/// The flag events an audit entry stands for (see the module's table).
async fn flag_events_of(
    tx: &mut Tx,
    lookup: &mut Lookup,
    e: &AuditEntry,
) -> Result<Vec<CapturedFlagEvent>> {
    let mut out = Vec::new();
    let updated = |previous: Option<FeatureStateData>, new: FeatureStateData| CapturedFlagEvent {
        environment_id: new.environment.id,
        event_type: EventType::FlagUpdated,
        previous,
        new: Some(new),
    };
    match (e.resource_type, e.action) {
        ("feature_state", _) | ("segment_override", "created" | "updated" | "reordered") => {
            // `reordered` records arrays of overrides; the others one state.
            let afters = as_list(e.after.as_ref());
            let befores = as_list(e.before.as_ref());
            for (i, after) in afters.iter().enumerate() {
                let Some(new) = lookup.state_of_json(tx, after).await? else {
                    continue;
                };
                let previous = match befores.get(i) {
                    Some(b) => lookup.state_of_json(tx, b).await?,
                    None => None,
                };
                out.push(updated(previous, new));
            }
        }
        // Flagsmith sends FLAG_UPDATED for every saved feature state, identity overrides
        // included (with `identity` and `identity_identifier` set).
        ("identity_override", "created" | "updated") => {
            if let Some(new) = match e.after.as_ref() {
                Some(a) => lookup.state_of_json(tx, a).await?,
                None => None,
            } {
                let previous = match e.before.as_ref() {
                    Some(b) => lookup.state_of_json(tx, b).await?,
                    None => None,
                };
                out.push(updated(previous, new));
            }
        }
        ("segment_override" | "identity_override", "deleted") => {
            for before in as_list(e.before.as_ref()) {
                if let Some(previous) = lookup.state_of_json(tx, &before).await? {
                    out.push(CapturedFlagEvent {
                        environment_id: previous.environment.id,
                        event_type: EventType::FlagDeleted,
                        previous: Some(previous),
                        new: None,
                    });
                }
            }
        }
        ("feature", "created") => {
            if let Some(id) = resource_id(e) {
                for new in lookup.defaults_of_feature(tx, id).await? {
                    out.push(updated(None, new));
                }
            }
        }
        ("segment", "updated") => {
            let rules = |v: Option<&Value>| v.and_then(|v| v.get("rules")).cloned();
            if rules(e.before.as_ref()) != rules(e.after.as_ref()) {
                if let Some(id) = resource_id(e) {
                    for state in lookup.overrides_of_segment(tx, id).await? {
                        out.push(updated(Some(state.clone()), state));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

fn resource_id(e: &AuditEntry) -> Option<i64> {
    e.resource_id.parse().ok()
}

fn as_list(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// Records the `FLAG_DELETED` events of deleting a feature (every state it has), before the
/// rows go. Does nothing when no webhook is enabled.
pub async fn capture_feature_deletion(ch: &mut Change, feature: i64) -> Result<()> {
    if !any_enabled(ch.tx()).await? {
        return Ok(());
    }
    let mut lookup = Lookup::default();
    for previous in lookup.all_of_feature(ch.tx(), feature).await? {
        ch.capture_flag_event(deleted(previous));
    }
    Ok(())
}

/// Records the `FLAG_DELETED` events of deleting a segment (each of its overrides).
pub async fn capture_segment_deletion(ch: &mut Change, segment: i64) -> Result<()> {
    if !any_enabled(ch.tx()).await? {
        return Ok(());
    }
    let mut lookup = Lookup::default();
    for previous in lookup.overrides_of_segment(ch.tx(), segment).await? {
        ch.capture_flag_event(deleted(previous));
    }
    Ok(())
}

fn deleted(previous: FeatureStateData) -> CapturedFlagEvent {
    CapturedFlagEvent {
        environment_id: previous.environment.id,
        event_type: EventType::FlagDeleted,
        previous: Some(previous),
        new: None,
    }
}

/// `AUDIT_LOG_CREATED`'s data: Flagsmith's `AuditLogListSerializer` fields, plus Flagstone's
/// `action`, `actor` and `resource_type` as recorded.
async fn audit_data(
    tx: &mut Tx,
    lookup: &mut Lookup,
    actor: &Actor,
    w: &Written<'_>,
    now: i64,
) -> Result<Value> {
    let e = w.entry;
    let environment = match e.environment_id {
        Some(id) => lookup.environment(tx, id).await?,
        None => None,
    };
    let project: Option<Named> = match e.project_id {
        Some(id) => sql!(tx, |c| {
            sqlx::query_as::<_, (i64, String)>("SELECT id, name FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(c)
                .await?
        })
        .map(|(id, name)| Named { id, name }),
        None => None,
    };
    let author = actor
        .user_id
        .map(|id| json!({"id": id, "email": actor.name}));
    let system =
        actor.user_id.is_none() && actor.api_key_id.is_none() && actor.admin_key_id.is_none();
    Ok(json!({
        "id": w.id,
        "created_date": ev::timestamp(now),
        "log": e.log,
        "author": author,
        "environment": environment,
        "project": project,
        "related_object_id": e.resource_id.parse::<i64>().ok(),
        "related_object_uuid": null,
        "related_object_type": e.resource_type.to_ascii_uppercase(),
        "is_system_event": system,
        "action": e.action,
        "actor": actor.name,
        "resource_type": e.resource_type,
    }))
}
