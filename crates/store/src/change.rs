//! The one-transaction rule. An admin change is a [`Change`]: the caller writes its entities
//! through [`Change::tx`], records audit entries and which environments or projects it affects,
//! then [`Change::commit`] — in the same transaction — appends the audit log, bumps every
//! affected environment's `revision` and requests its publication in `publish_jobs`.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Notify;

use serde_json::Value;

use crate::queue::JobState;
use crate::{sql, Clock, Result, Tx};

/// Who makes a change; recorded in the audit log. Never holds a key itself.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    /// The installation's key (`admin_keys`), when that is who.
    pub admin_key_id: Option<i64>,
    /// The user, when a person made the change.
    pub user_id: Option<i64>,
    /// The organisation API key (`api_keys`), when that is who.
    pub api_key_id: Option<i64>,
    /// What the audit log shows: a user's email, `api-key:<name>`, `admin-key:<name>`, or a
    /// system actor's name. Webhooks send it as `changed_by`.
    pub name: String,
}

impl Actor {
    /// Changes made by Flagstone itself (import from the CLI, first start-up).
    pub fn system(name: &str) -> Actor {
        Actor {
            name: name.to_string(),
            ..Actor::default()
        }
    }

    /// A person, shown by email.
    pub fn user(user_id: i64, email: &str) -> Actor {
        Actor {
            user_id: Some(user_id),
            name: email.to_string(),
            ..Actor::default()
        }
    }

    /// The installation's key.
    pub fn installation_key(key_id: i64, name: &str) -> Actor {
        Actor {
            admin_key_id: Some(key_id),
            name: format!("admin-key:{name}"),
            ..Actor::default()
        }
    }

    /// An organisation API key, shown by its name.
    pub fn organisation_key(key_id: i64, name: &str) -> Actor {
        Actor {
            api_key_id: Some(key_id),
            name: format!("api-key:{name}"),
            ..Actor::default()
        }
    }
}

/// How publish requests are debounced. A burst settles for `debounce_ms`; a constant stream
/// still publishes at least every `max_delay_ms`.
#[derive(Clone, Copy, Debug)]
pub struct PublishSettings {
    pub debounce_ms: i64,
    pub max_delay_ms: i64,
}

impl Default for PublishSettings {
    fn default() -> Self {
        PublishSettings {
            debounce_ms: 50,
            max_delay_ms: 1_000,
        }
    }
}

/// One line of the audit log.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub project_id: Option<i64>,
    pub environment_id: Option<i64>,
    /// `created`, `updated`, `deleted`, or a verb such as `reordered`.
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub log: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// An admin change in progress. Dropping it without `commit` rolls everything back.
pub struct Change {
    tx: Tx,
    actor: Actor,
    publish: PublishSettings,
    environments: BTreeSet<i64>,
    projects: BTreeSet<i64>,
    /// Entries with the organisation they belong to when the caller said so (else it is the
    /// organisation of the entry's project).
    audit: Vec<(Option<i64>, AuditEntry)>,
    committed: Arc<Notify>,
    clock: Clock,
    /// Feature configurations to version at commit (`crate::history`).
    history: crate::history::Pending,
    /// Flag events recorded before their rows were deleted (see `webhooks::events`).
    captured: Vec<crate::webhooks::events::CapturedFlagEvent>,
    /// Signalled when the change queued webhook deliveries.
    webhook_events: Arc<Notify>,
    /// Environments this change deletes, announced when it commits.
    deleted: Vec<i64>,
    deletions: Arc<DeletionListeners>,
}

type DeletionListener = Arc<dyn Fn(i64) + Send + Sync>;

/// Who is told, in this process, that an environment was deleted (edges serving its keys).
#[derive(Default)]
pub(crate) struct DeletionListeners(std::sync::RwLock<Vec<DeletionListener>>);

impl DeletionListeners {
    pub(crate) fn add(&self, listener: impl Fn(i64) + Send + Sync + 'static) {
        self.0
            .write()
            .expect("deletion listeners lock")
            .push(Arc::new(listener));
    }

    fn announce(&self, environment_id: i64) {
        let listeners = self.0.read().expect("deletion listeners lock").clone();
        for l in listeners {
            l(environment_id);
        }
    }
}

/// What a committed change did to revisions.
#[derive(Clone, Debug, Default)]
pub struct Committed {
    /// `(environment_id, new revision)` for every environment the change affected.
    pub revisions: Vec<(i64, i64)>,
}

impl Change {
    pub(crate) fn new(
        tx: Tx,
        actor: Actor,
        publish: PublishSettings,
        committed: Arc<Notify>,
        clock: Clock,
        webhook_events: Arc<Notify>,
        deletions: Arc<DeletionListeners>,
    ) -> Change {
        Change {
            tx,
            actor,
            publish,
            environments: BTreeSet::new(),
            projects: BTreeSet::new(),
            audit: Vec::new(),
            committed,
            clock,
            history: Default::default(),
            captured: Vec::new(),
            webhook_events,
            deleted: Vec::new(),
            deletions,
        }
    }

    /// Now, on the store's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Records a webhook flag event whose rows this change is about to delete.
    pub(crate) fn capture_flag_event(&mut self, e: crate::webhooks::events::CapturedFlagEvent) {
        self.captured.push(e);
    }

    pub fn tx(&mut self) -> &mut Tx {
        &mut self.tx
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The change affects what this environment's document contains.
    pub fn touch_environment(&mut self, environment_id: i64) {
        self.environments.insert(environment_id);
    }

    /// The change deletes this environment: when it commits, edges stop serving its keys (in
    /// this process before `commit` returns; elsewhere by notification).
    pub(crate) fn delete_environment(&mut self, environment_id: i64) {
        self.deleted.push(environment_id);
    }

    /// The change affects every environment of this project (a segment, a feature).
    pub fn touch_project(&mut self, project_id: i64) {
        self.projects.insert(project_id);
    }

    /// What the change versions (see `crate::history::track`).
    pub(crate) fn history(&mut self) -> &mut crate::history::Pending {
        &mut self.history
    }

    pub fn audit(&mut self, entry: AuditEntry) {
        self.audit.push((None, entry));
    }

    /// Records an entry that belongs to an organisation: one about the organisation itself
    /// (members, invites, keys), or about a project that the change deletes.
    pub fn audit_in_organisation(&mut self, organisation_id: i64, entry: AuditEntry) {
        self.audit.push((Some(organisation_id), entry));
    }

    /// Writes the audit entries, bumps revisions, requests publication and commits.
    pub async fn commit(mut self) -> Result<Committed> {
        let now = self.clock.now_ms();
        for project_id in std::mem::take(&mut self.projects) {
            let ids: Vec<i64> = sql!(&mut self.tx, |c| {
                sqlx::query_scalar("SELECT id FROM environments WHERE project_id = $1")
                    .bind(project_id)
                    .fetch_all(c)
                    .await?
            });
            self.environments.extend(ids);
        }
        let mut committed = Committed::default();
        for &env in &self.environments {
            let revision: Option<i64> = sql!(&mut self.tx, |c| {
                sqlx::query_scalar(
                    "UPDATE environments SET revision = revision + 1, updated_at = $2 \
                     WHERE id = $1 RETURNING revision",
                )
                .bind(env)
                .bind(now)
                .fetch_optional(c)
                .await?
            });
            // An environment deleted by this very change has nothing left to publish.
            let Some(revision) = revision else { continue };
            request_publish(&mut self.tx, env, revision, now, self.publish).await?;
            committed.revisions.push((env, revision));
        }
        crate::history::record(
            &mut self.tx,
            &self.actor,
            &self.history,
            &committed.revisions,
            now,
        )
        .await?;
        let audit = std::mem::take(&mut self.audit);
        let mut written = Vec::with_capacity(audit.len());
        for (organisation, e) in &audit {
            let (id, organisation_id) =
                write_audit(&mut self.tx, &self.actor, *organisation, e, now).await?;
            written.push(crate::webhooks::events::Written {
                id,
                organisation_id,
                entry: e,
            });
        }
        // Webhook events go in this same transaction: they exist if and only if the change does.
        let captured = std::mem::take(&mut self.captured);
        let queued =
            crate::webhooks::events::on_commit(&mut self.tx, &self.actor, now, &written, captured)
                .await?;
        for &env in &self.deleted {
            crate::queue::notify_deleted(&mut self.tx, env).await?;
        }
        self.tx.commit().await?;
        for &env in &self.deleted {
            self.deletions.announce(env);
        }
        if !committed.revisions.is_empty() {
            self.committed.notify_one();
        }
        if queued > 0 {
            self.webhook_events.notify_one();
        }
        Ok(committed)
    }
}

/// Upserts the environment's single publish job (DESIGN §2 "Request"): a pending job is kept
/// and debounced (bounded by `max_delay_ms` since it was first requested), a parked job is
/// un-parked with fresh attempts (the change may be the fix), a running job is left running —
/// its worker sees the higher `wanted_revision` when it finishes.
///
/// This is the one queue rule that stays in SQL: it runs inside every admin change's
/// transaction and must be a single statement that cannot race a claim. Everything a worker
/// decides afterwards is `flagstone_tasks::policy`.
pub(crate) async fn request_publish(
    tx: &mut Tx,
    environment_id: i64,
    revision: i64,
    now: i64,
    s: PublishSettings,
) -> Result<()> {
    let debounced = now + s.debounce_ms;
    sql!(tx, |c| {
        sqlx::query(
            "INSERT INTO publish_jobs (environment_id, wanted_revision, state, run_after, \
                 first_requested_at, attempts, updated_at) \
             VALUES ($1, $2, $6, $3, $4, 0, $4) \
             ON CONFLICT (environment_id) DO UPDATE SET \
                 wanted_revision = CASE WHEN publish_jobs.wanted_revision > excluded.wanted_revision \
                     THEN publish_jobs.wanted_revision ELSE excluded.wanted_revision END, \
                 run_after = CASE \
                     WHEN publish_jobs.state = $7 THEN publish_jobs.run_after \
                     WHEN publish_jobs.state = $8 THEN excluded.run_after \
                     WHEN excluded.run_after > publish_jobs.first_requested_at + $5 \
                         THEN publish_jobs.first_requested_at + $5 \
                     ELSE excluded.run_after END, \
                 first_requested_at = CASE WHEN publish_jobs.state = $8 \
                     THEN excluded.first_requested_at ELSE publish_jobs.first_requested_at END, \
                 attempts = CASE WHEN publish_jobs.state = $8 THEN 0 \
                     ELSE publish_jobs.attempts END, \
                 last_error = CASE WHEN publish_jobs.state = $8 THEN NULL \
                     ELSE publish_jobs.last_error END, \
                 park_reason = CASE WHEN publish_jobs.state = $8 THEN NULL \
                     ELSE publish_jobs.park_reason END, \
                 state = CASE WHEN publish_jobs.state = $7 THEN $7 ELSE $6 END, \
                 updated_at = excluded.updated_at",
        )
        .bind(environment_id)
        .bind(revision)
        .bind(debounced)
        .bind(now)
        .bind(s.max_delay_ms)
        .bind(JobState::Pending)
        .bind(JobState::Running)
        .bind(JobState::Parked)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

async fn write_audit(
    tx: &mut Tx,
    actor: &Actor,
    organisation: Option<i64>,
    e: &AuditEntry,
    now: i64,
) -> Result<(i64, Option<i64>)> {
    let before = e.before.as_ref().map(Value::to_string);
    let after = e.after.as_ref().map(Value::to_string);
    // The organisation decides who may read the entry (organisation admins); unless given, it
    // is the organisation of the entry's project.
    let written: (i64, Option<i64>) = sql!(tx, |c| {
        sqlx::query_as(
            "INSERT INTO audit_log (created_at, project_id, environment_id, actor, admin_key_id, \
                 action, resource_type, resource_id, log, before_state, after_state, \
                 organisation_id, user_id, api_key_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 COALESCE($12, (SELECT organisation_id FROM projects WHERE id = $2)), $13, $14) \
             RETURNING id, organisation_id",
        )
        .bind(now)
        .bind(e.project_id)
        .bind(e.environment_id)
        .bind(&actor.name)
        .bind(actor.admin_key_id)
        .bind(e.action)
        .bind(e.resource_type)
        .bind(&e.resource_id)
        .bind(&e.log)
        .bind(before)
        .bind(after)
        .bind(organisation)
        .bind(actor.user_id)
        .bind(actor.api_key_id)
        .fetch_one(c)
        .await?
    });
    Ok(written)
}
