//! Change requests: proposed changes of an environment's feature states that take effect only
//! once enough people approved them (the environment's `minimum_change_request_approvals`).
//! A request carries the same updates a scheduled change does ([`ScheduledFeatureState`]), an
//! optional `live_from`, and the state of each feature it changes as it was when it was opened,
//! so a commit can tell whether someone changed the same thing since (a stale request is
//! refused rather than silently overwriting that change).
//!
//! Committing applies the updates through the ordinary feature-state write path (revision,
//! audit, history version, publish, webhooks), or, with a future `live_from`, hands them to the
//! scheduled-changes machinery. The rules (who may approve, when a commit is allowed, what is
//! stale) are pure functions in [`decide`].

mod assign;
mod compare;
pub mod decide;
mod steps;

pub use assign::{approved, Approval, Assignment, MAX_ASSIGNEES};
pub use steps::{approve, close, commit, CommitRefused};

use serde::{Deserialize, Serialize};

use crate::clock::iso8601;
use crate::environments::Environment;
use crate::scheduled::{self, ScheduledFeatureState};
use crate::values::{decode_allocations, decode_value};
use crate::{sql, Actor, AuditEntry, Change, Page, PageRequest, Result, StoreError, Tx};
use decide::{Conflict, FieldChange, StateSnapshot, Status};

/// The longest title (Flagsmith's limit).
pub const MAX_TITLE: usize = 500;
/// The longest description.
pub const MAX_DESCRIPTION: usize = 10_000;

/// A stable key for who did something: two actors are the same person (or key) exactly when
/// their keys are equal.
pub fn actor_key(a: &Actor) -> String {
    match (a.user_id, a.api_key_id, a.admin_key_id) {
        (Some(u), _, _) => format!("user:{u}"),
        (None, Some(k), _) => format!("api-key:{k}"),
        (None, None, Some(k)) => format!("admin-key:{k}"),
        (None, None, None) => format!("name:{}", a.name),
    }
}

/// `POST …/create-change-request/`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewChangeRequest {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The environment default states to change, as `PATCH …/featurestates/{id}/` takes them,
    /// each naming its `feature`.
    pub feature_states: Vec<ScheduledFeatureState>,
    /// ISO-8601 with a zone, in the future: committing schedules the change for then.
    #[serde(default)]
    pub live_from: Option<String>,
    /// Assigned approvers (Flagsmith's `approvals: [{user}]`): members of the organisation,
    /// shown in `approvals` until they approve, and found with `?assignee=`.
    #[serde(default)]
    pub approvals: Vec<Assignment>,
}

/// A change request as the API shows it (Flagsmith's fields, plus `status`, `author`, the
/// diff against the current state and any conflicts).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeRequest {
    pub id: i64,
    pub environment: i64,
    pub title: String,
    pub description: Option<String>,
    pub feature_states: Vec<ScheduledFeatureState>,
    pub live_from: Option<String>,
    pub status: Status,
    /// The author's user id (null when a key opened it).
    pub user: Option<i64>,
    /// The author, as the audit log names them.
    pub author: String,
    pub created_at: String,
    pub updated_at: String,
    pub committed_at: Option<String>,
    pub committed_by: Option<String>,
    /// The scheduled change a commit with a future `live_from` made.
    pub scheduled_change: Option<i64>,
    /// When it was closed without being committed.
    pub deleted_at: Option<String>,
    pub deleted_by: Option<String>,
    pub approvals: Vec<Approval>,
    /// Approvals the environment requires now (null: none).
    pub required_approvals: Option<i64>,
    pub is_approved: bool,
    /// What committing now would change (open requests; empty once committed or closed).
    pub diff: Vec<FieldChange>,
    /// Fields it changes that were changed since it was opened: while any, it cannot be
    /// committed.
    pub conflicts: Vec<Conflict>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    environment_id: i64,
    title: String,
    description: Option<String>,
    changes: String,
    base: String,
    live_from: Option<i64>,
    author: String,
    author_key: String,
    author_user_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
    committed_at: Option<i64>,
    committed_by: Option<String>,
    scheduled_change_id: Option<i64>,
    deleted_at: Option<i64>,
    deleted_by: Option<String>,
}

const COLUMNS: &str = "id, environment_id, title, description, changes, base, live_from, \
    author, author_key, author_user_id, created_at, updated_at, committed_at, committed_by, \
    scheduled_change_id, deleted_at, deleted_by";

fn corrupt(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

impl Row {
    fn status(&self) -> Status {
        Status::of(self.committed_at.is_some(), self.deleted_at.is_some())
    }
    fn items(&self) -> Result<Vec<ScheduledFeatureState>> {
        serde_json::from_str(&self.changes).map_err(corrupt("change_requests.changes"))
    }
    fn base(&self) -> Result<Vec<StateSnapshot>> {
        serde_json::from_str(&self.base).map_err(corrupt("change_requests.base"))
    }
}

/// The current state of each default state and override `items` change (ones that do not
/// exist are left out: a deleted feature, an override not created yet).
async fn snapshots(
    tx: &mut Tx,
    environment_id: i64,
    items: &[ScheduledFeatureState],
) -> Result<Vec<StateSnapshot>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let feature = item.feature;
        let row: Option<(bool, Option<String>, String, Option<i64>)> = match item.segment() {
            None => sql!(tx, |c| {
                sqlx::query_as(
                    "SELECT enabled, value, mv_allocations, CAST(NULL AS BIGINT) FROM feature_states \
                     WHERE environment_id = $1 AND feature_id = $2",
                )
                .bind(environment_id)
                .bind(feature)
                .fetch_optional(c)
                .await?
            }),
            Some(segment) => sql!(tx, |c| {
                sqlx::query_as(
                    "SELECT enabled, value, mv_allocations, priority FROM segment_overrides \
                     WHERE environment_id = $1 AND feature_id = $2 AND segment_id = $3",
                )
                .bind(environment_id)
                .bind(feature)
                .bind(segment)
                .fetch_optional(c)
                .await?
            }),
        };
        if let Some((enabled, value, mv, priority)) = row {
            out.push(StateSnapshot {
                feature,
                segment: item.segment(),
                priority,
                enabled,
                feature_state_value: decode_value("feature_states.value", value.as_deref())?,
                multivariate_feature_state_values: decode_allocations(&mv)?,
            });
        }
    }
    Ok(out)
}

async fn approvals(tx: &mut Tx, id: i64) -> Result<Vec<Approval>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(
            "SELECT id, user_id, approver, required, approved_at FROM change_request_approvals \
             WHERE change_request_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(c)
        .await?
    }))
}

async fn required_approvals(tx: &mut Tx, environment_id: i64) -> Result<Option<i64>> {
    Ok(sql!(tx, |c| {
        sqlx::query_scalar(
            "SELECT minimum_change_request_approvals FROM environments WHERE id = $1",
        )
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    })
    .flatten())
}

async fn shown(tx: &mut Tx, row: Row) -> Result<ChangeRequest> {
    let items = row.items()?;
    let status = row.status();
    let (diff, conflicts) = if status == Status::Open {
        let current = snapshots(tx, row.environment_id, &items).await?;
        (
            decide::diff(&items, &current),
            decide::conflicts(&items, &row.base()?, &current),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let approvals = approvals(tx, row.id).await?;
    let required = required_approvals(tx, row.environment_id).await?;
    let is_approved = required.is_none_or(|r| approved(&approvals) >= r);
    Ok(ChangeRequest {
        id: row.id,
        environment: row.environment_id,
        title: row.title,
        description: row.description,
        feature_states: items,
        live_from: row.live_from.map(iso8601),
        status,
        user: row.author_user_id,
        author: row.author,
        created_at: iso8601(row.created_at),
        updated_at: iso8601(row.updated_at),
        committed_at: row.committed_at.map(iso8601),
        committed_by: row.committed_by,
        scheduled_change: row.scheduled_change_id,
        deleted_at: row.deleted_at.map(iso8601),
        deleted_by: row.deleted_by,
        approvals,
        required_approvals: required,
        is_approved,
        diff,
        conflicts,
    })
}

fn validate_text(new: &NewChangeRequest) -> Result<(String, Option<String>)> {
    let title = new.title.trim();
    if title.is_empty() {
        return Err(StoreError::invalid("title", "must not be empty"));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(StoreError::invalid(
            "title",
            format!("at most {MAX_TITLE} characters"),
        ));
    }
    let description = new.description.as_deref().map(str::trim);
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(StoreError::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok((
        title.to_string(),
        description.filter(|d| !d.is_empty()).map(str::to_string),
    ))
}

/// Opens a change request in `env` by `ch`'s actor. Everything it would write is checked now
/// (as for a scheduled change), so a mistake is a 400 at once. Audited; nothing else changes.
pub async fn create(
    ch: &mut Change,
    env: &Environment,
    new: &NewChangeRequest,
) -> Result<ChangeRequest> {
    let (title, description) = validate_text(new)?;
    let live_from = match &new.live_from {
        Some(t) => Some(scheduled::parse_live_from(t, ch.now_ms())?),
        None => None,
    };
    scheduled::validate_items(ch.tx(), env, &new.feature_states).await?;
    let author = ch.actor().clone();
    let assignees = assign::validate(ch.tx(), env, &author, &new.approvals).await?;
    let base = snapshots(ch.tx(), env.id, &new.feature_states).await?;
    let now = ch.now_ms();
    let actor = ch.actor().clone();
    let changes = serde_json::to_string(&new.feature_states).expect("updates serialise");
    let base = serde_json::to_string(&base).expect("snapshots serialise");
    let row: Row = sql!(ch.tx(), |c| {
        sqlx::query_as(&format!(
            "INSERT INTO change_requests (environment_id, title, description, changes, base, \
                 live_from, author, author_key, author_user_id, author_api_key_id, \
                 author_admin_key_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING {COLUMNS}"
        ))
        .bind(env.id)
        .bind(&title)
        .bind(&description)
        .bind(&changes)
        .bind(&base)
        .bind(live_from)
        .bind(&actor.name)
        .bind(actor_key(&actor))
        .bind(actor.user_id)
        .bind(actor.api_key_id)
        .bind(actor.admin_key_id)
        .bind(now)
        .fetch_one(c)
        .await?
    });
    assign::insert(ch.tx(), row.id, &new.approvals, &assignees).await?;
    let shown = shown(ch.tx(), row).await?;
    ch.audit(AuditEntry {
        project_id: Some(env.project),
        environment_id: Some(env.id),
        action: "created",
        resource_type: "change_request",
        resource_id: shown.id.to_string(),
        log: format!(
            "Change request {} '{}' opened in environment '{}'",
            shown.id, shown.title, env.name
        ),
        before: None,
        after: serde_json::to_value(&shown).ok(),
    });
    Ok(shown)
}

/// Which change requests of an environment to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFilter {
    /// Only committed ones (`true`) or only uncommitted ones (`false`).
    pub committed: Option<bool>,
    /// Only those this user is assigned to (approved yet or not).
    pub assignee: Option<i64>,
}

/// The environment's change requests that are not closed, newest first, as `filter` says.
pub async fn list(
    tx: &mut Tx,
    environment_id: i64,
    filter: ListFilter,
    page: PageRequest,
) -> Result<Page<ChangeRequest>> {
    let (committed, assignee) = (filter.committed, filter.assignee);
    let mut filter = crate::filter::Where::new()
        .bound("environment_id = ?")
        .fixed("deleted_at IS NULL")
        .bound_if(committed.is_some(), "(committed_at IS NOT NULL) = ?")
        .bound_if(
            assignee.is_some(),
            "id IN (SELECT change_request_id FROM change_request_approvals \
             WHERE user_id = ? AND required)",
        );
    let (limit, offset) = (filter.placeholder(), filter.placeholder());
    let filter = filter.sql();
    let count: i64 = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM change_requests WHERE {filter}"
            ))
            .bind(environment_id),
            committed,
            assignee
        )
        .fetch_one(c)
        .await?
    });
    let rows: Vec<Row> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM change_requests WHERE {filter} \
                 ORDER BY id DESC LIMIT {limit} OFFSET {offset}"
            ))
            .bind(environment_id),
            committed,
            assignee
        )
        .bind(page.page_size)
        .bind(page.offset())
        .fetch_all(c)
        .await?
    });
    let mut results = Vec::with_capacity(rows.len());
    for row in rows {
        results.push(shown(tx, row).await?);
    }
    Ok(Page { count, results })
}

async fn row(tx: &mut Tx, id: i64) -> Result<Row> {
    let row: Option<Row> = sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM change_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    row.ok_or(StoreError::not_found("change request"))
}

/// The environment a change request belongs to (what its permissions are checked on).
pub async fn environment_of(tx: &mut Tx, id: i64) -> Result<i64> {
    Ok(row(tx, id).await?.environment_id)
}

/// Change request `id`, with its diff against the current state.
pub async fn get(tx: &mut Tx, id: i64) -> Result<ChangeRequest> {
    let r = row(tx, id).await?;
    shown(tx, r).await
}

/// Whether `key` (an [`actor_key`]) opened change request `id`.
pub async fn is_author(tx: &mut Tx, id: i64, key: &str) -> Result<bool> {
    Ok(row(tx, id).await?.author_key == key)
}

/// The conflicts of change request `id` with the environment now: what it changes that was
/// changed since it was opened (empty: it can be applied as it is).
pub(crate) async fn stale(tx: &mut Tx, id: i64) -> Result<Vec<Conflict>> {
    let r = row(tx, id).await?;
    let items = r.items()?;
    let current = snapshots(tx, r.environment_id, &items).await?;
    Ok(decide::conflicts(&items, &r.base()?, &current))
}
