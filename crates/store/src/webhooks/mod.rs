//! Webhooks: where events go. An environment webhook receives its environment's flag events;
//! an organisation webhook receives every audit entry of the organisation (and, as in
//! Flagsmith, the flag events of its environments). Events are enqueued by
//! [`crate::Change::commit`] in the change's own transaction ([`events`]), one delivery row per
//! (event, webhook) ([`deliveries`]), delivered by `flagstone_tasks::deliveries`.
//!
//! Creating, changing and deleting a webhook is itself an audited change. The secret is kept as
//! given — signing needs it — and never written to the audit log.

pub mod announcements;
pub mod deliveries;
pub mod events;
mod states;

use serde::{Deserialize, Serialize};

use flagstone_webhooks::{EventType, WebhookUrl};

use crate::{sql, AuditEntry, Change, Result, StoreError, Tx};

pub use deliveries::{Delivery, DeliveryState};

/// Whose events a webhook receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Environment(i64),
    Organisation(i64),
}

/// A webhook as stored. The API decides how much of `secret` to show.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub enabled: bool,
    pub secret: String,
    /// Flagstone's opt-in event types (`ENVIRONMENT_PUBLISHED`, `QUEUE_HEALTH`).
    pub events: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    pub environment_id: Option<i64>,
    #[serde(skip)]
    pub organisation_id: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    environment_id: Option<i64>,
    organisation_id: Option<i64>,
    url: String,
    secret: String,
    enabled: bool,
    events: String,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Webhook {
    fn from(r: Row) -> Webhook {
        Webhook {
            id: r.id,
            url: r.url,
            enabled: r.enabled,
            secret: r.secret,
            events: serde_json::from_str(&r.events).unwrap_or_default(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            environment_id: r.environment_id,
            organisation_id: r.organisation_id,
        }
    }
}

const COLUMNS: &str =
    "id, environment_id, organisation_id, url, secret, enabled, events, created_at, updated_at";

/// `{url, enabled, secret}` as Flagsmith takes it, plus Flagstone's opt-in `events`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub events: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub enabled: Option<bool>,
    pub secret: Option<String>,
    pub events: Option<Vec<String>>,
}

/// The longest secret accepted (Flagsmith's column is 255 characters).
pub const MAX_SECRET_LEN: usize = 255;

/// The most webhooks one environment or organisation may have.
pub const MAX_WEBHOOKS: i64 = 50;

/// Checks the parts of a webhook that need no network: URL syntax and scheme, secret length,
/// event names. (Whether the host resolves to an allowed address is the API's check.)
pub fn validate(url: &str, secret: Option<&str>, events: &[String]) -> Result<WebhookUrl> {
    let parsed = WebhookUrl::parse(url).map_err(|e| StoreError::invalid("url", e.to_string()))?;
    if secret.is_some_and(|s| s.len() > MAX_SECRET_LEN) {
        return Err(StoreError::invalid(
            "secret",
            format!("must be at most {MAX_SECRET_LEN} characters"),
        ));
    }
    for e in events {
        match EventType::parse(e) {
            Some(t) if t.is_opt_in() => {}
            _ => {
                let names: Vec<&str> = EventType::OPT_IN.iter().map(|t| t.as_str()).collect();
                return Err(StoreError::invalid(
                    "events",
                    format!("{e:?} is not an opt-in event; choose from {names:?}"),
                ));
            }
        }
    }
    Ok(parsed)
}

fn scope_filter(scope: Scope) -> (&'static str, i64) {
    match scope {
        Scope::Environment(id) => ("environment_id = $1", id),
        Scope::Organisation(id) => ("organisation_id = $1", id),
    }
}

pub async fn list(tx: &mut Tx, scope: Scope) -> Result<Vec<Webhook>> {
    let (filter, id) = scope_filter(scope);
    let rows: Vec<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE {filter} ORDER BY id"
        ))
        .bind(id)
        .fetch_all(c)
        .await?
    });
    Ok(rows.into_iter().map(Webhook::from).collect())
}

/// The webhook `id` of `scope`; `NotFound` if it belongs elsewhere.
pub async fn get(tx: &mut Tx, scope: Scope, id: i64) -> Result<Webhook> {
    let (filter, scope_id) = scope_filter(scope);
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE {filter} AND id = $2"
        ))
        .bind(scope_id)
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    row.map(Webhook::from)
        .ok_or(StoreError::not_found("webhook"))
}

/// The webhook `id` whatever its scope (the deliverer's view).
pub async fn get_any(tx: &mut Tx, id: i64) -> Result<Option<Webhook>> {
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    Ok(row.map(Webhook::from))
}

/// What the audit log keeps of a webhook: never its secret.
fn audited(w: &Webhook) -> serde_json::Value {
    serde_json::json!({
        "id": w.id, "url": w.url, "enabled": w.enabled, "events": w.events,
        "has_secret": !w.secret.is_empty(),
    })
}

async fn audit(
    ch: &mut Change,
    scope: Scope,
    action: &'static str,
    before: Option<&Webhook>,
    after: Option<&Webhook>,
) -> Result<()> {
    let w = after.or(before).expect("a webhook before or after");
    let entry = |project_id, environment_id| AuditEntry {
        project_id,
        environment_id,
        action,
        resource_type: "webhook",
        resource_id: w.id.to_string(),
        log: format!("Webhook to {} {action}", w.url),
        before: before.map(audited),
        after: after.map(audited),
    };
    match scope {
        Scope::Environment(env) => {
            let project: i64 = sql!(ch.tx(), |c| {
                sqlx::query_scalar("SELECT project_id FROM environments WHERE id = $1")
                    .bind(env)
                    .fetch_one(c)
                    .await?
            });
            ch.audit(entry(Some(project), Some(env)));
        }
        Scope::Organisation(org) => ch.audit_in_organisation(org, entry(None, None)),
    }
    Ok(())
}

pub async fn create(ch: &mut Change, scope: Scope, new: &NewWebhook) -> Result<Webhook> {
    let url = validate(&new.url, new.secret.as_deref(), &new.events)?;
    let existing = list(ch.tx(), scope).await?.len() as i64;
    if existing >= MAX_WEBHOOKS {
        return Err(StoreError::invalid(
            "url",
            format!("at most {MAX_WEBHOOKS} webhooks per environment or organisation"),
        ));
    }
    let (env, org) = match scope {
        Scope::Environment(e) => (Some(e), None),
        Scope::Organisation(o) => (None, Some(o)),
    };
    let now = ch.now_ms();
    let row: Row = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO webhooks (environment_id, organisation_id, url, secret, enabled, events, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             RETURNING {COLUMNS}"
        ))
        .bind(env)
        .bind(org)
        .bind(url.as_str())
        .bind(new.secret.as_deref().unwrap_or(""))
        .bind(new.enabled)
        .bind(serde_json::to_string(&new.events).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .fetch_one(c)
        .await?
    });
    let w = Webhook::from(row);
    audit(ch, scope, "created", None, Some(&w)).await?;
    Ok(w)
}

pub async fn update(
    ch: &mut Change,
    scope: Scope,
    id: i64,
    patch: &WebhookPatch,
) -> Result<Webhook> {
    let before = get(ch.tx(), scope, id).await?;
    let url = patch.url.clone().unwrap_or_else(|| before.url.clone());
    let events = patch
        .events
        .clone()
        .unwrap_or_else(|| before.events.clone());
    let url = validate(&url, patch.secret.as_deref(), &events)?;
    let now = ch.now_ms();
    let row: Row = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "UPDATE webhooks SET url = $2, secret = $3, enabled = $4, events = $5, updated_at = $6 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(url.as_str())
        .bind(patch.secret.as_deref().unwrap_or(&before.secret))
        .bind(patch.enabled.unwrap_or(before.enabled))
        .bind(serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .fetch_one(c)
        .await?
    });
    let after = Webhook::from(row);
    audit(ch, scope, "updated", Some(&before), Some(&after)).await?;
    Ok(after)
}

pub async fn delete(ch: &mut Change, scope: Scope, id: i64) -> Result<()> {
    let before = get(ch.tx(), scope, id).await?;
    sql!(ch.tx(), |c| {
        // Deliveries go explicitly too, whatever SQLite's foreign_keys pragma says.
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    audit(ch, scope, "deleted", Some(&before), None).await?;
    Ok(())
}

/// The organisation an environment belongs to (for permission checks and org webhooks).
pub async fn organisation_of_environment(tx: &mut Tx, environment_id: i64) -> Result<i64> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT p.organisation_id FROM environments e JOIN projects p ON p.id = e.project_id \
             WHERE e.id = $1",
        )
        .bind(environment_id)
        .fetch_one(c)
        .await?
    }))
}
