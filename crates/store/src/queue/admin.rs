//! Looking at and steering the queue: job listings, the publish log, staleness, the
//! reconciler, and an operator's retry or discard of a parked job (audited like any change).

use flagstone_access::Visibility;
use serde::Serialize;

use super::{begin, BuildOutcome, JobState, ParkReason};
use crate::scopes::{visible_sql, Placed};
use crate::{sql, Actor, AuditEntry, Page, PageRequest, Result, Store, StoreError, Tx};

/// A publish job as the API and `flagstone status` show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishJob {
    /// The job's id: there is at most one job per environment.
    pub environment_id: i64,
    /// The newest revision that must be published.
    pub wanted_revision: i64,
    /// The revision of the document currently served, if any.
    pub published_revision: Option<i64>,
    pub state: JobState,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub run_after: i64,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub first_requested_at: i64,
    /// Failed or crashed attempts so far.
    pub attempts: i64,
    pub lease_owner: Option<String>,
    #[serde(serialize_with = "crate::clock::iso::option::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    /// Why a parked job was parked.
    pub park_reason: Option<ParkReason>,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: i64,
}

const JOB_COLUMNS: &str = "j.environment_id, j.wanted_revision, d.revision AS published_revision, \
    j.state, j.run_after, j.first_requested_at, j.attempts, j.lease_owner, j.lease_until, \
    j.last_error, j.park_reason, j.updated_at";

/// Jobs, optionally of one state, parked first then by environment.
pub async fn jobs(
    tx: &mut Tx,
    state: Option<JobState>,
    page: PageRequest,
) -> Result<Page<PublishJob>> {
    jobs_visible(tx, state, &Visibility::everything(), page).await
}

/// [`jobs`] of the environments `visible` lets a caller see.
pub async fn jobs_visible(
    tx: &mut Tx,
    state: Option<JobState>,
    visible: &Visibility,
    page: PageRequest,
) -> Result<Page<PublishJob>> {
    let visible = visible_sql(
        visible,
        Placed {
            organisation: Some(
                "(SELECT p.organisation_id FROM environments e JOIN projects p \
                  ON p.id = e.project_id WHERE e.id = j.environment_id)",
            ),
            project: Some(
                "(SELECT e.project_id FROM environments e WHERE e.id = j.environment_id)",
            ),
            environment: Some("j.environment_id"),
        },
    );
    let mut filter = crate::filter::Where::new()
        .bound_if(state.is_some(), "j.state = ?")
        .fixed(visible);
    let (limit, offset, parked) = (
        filter.placeholder(),
        filter.placeholder(),
        filter.placeholder(),
    );
    let filter = filter.sql();
    let count: i64 = sql!(&mut *tx, |c| {
        crate::bind_present!(
            sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM publish_jobs j WHERE {filter}"
            )),
            state
        )
        .fetch_one(c)
        .await?
    });
    let results = sql!(&mut *tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT {JOB_COLUMNS} FROM publish_jobs j \
                 LEFT JOIN environment_documents d ON d.environment_id = j.environment_id \
                 WHERE {filter} \
                 ORDER BY CASE WHEN j.state = {parked} THEN 0 ELSE 1 END, j.environment_id \
                 LIMIT {limit} OFFSET {offset}"
            )),
            state
        )
        .bind(page.page_size)
        .bind(page.offset())
        .bind(JobState::Parked)
        .fetch_all(c)
        .await?
    });
    Ok(Page { count, results })
}

pub async fn get_job(tx: &mut Tx, environment_id: i64) -> Result<Option<PublishJob>> {
    Ok(sql!(tx, |c| {
        sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM publish_jobs j \
             LEFT JOIN environment_documents d ON d.environment_id = j.environment_id \
             WHERE j.environment_id = $1"
        ))
        .bind(environment_id)
        .fetch_optional(c)
        .await?
    }))
}

/// One build in the history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishLogEntry {
    pub id: i64,
    pub environment_id: i64,
    pub revision: i64,
    pub worker: String,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: i64,
    #[serde(serialize_with = "crate::clock::iso::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub finished_at: i64,
    pub duration_ms: i64,
    /// Uncompressed document size, for builds that produced one.
    pub bytes: Option<i64>,
    pub outcome: BuildOutcome,
    pub detail: Option<String>,
}

/// The latest `limit` log entries, of one environment or all, oldest first.
pub async fn publish_log(
    tx: &mut Tx,
    environment_id: Option<i64>,
    limit: i64,
) -> Result<Vec<PublishLogEntry>> {
    let mut filter =
        crate::filter::Where::new().bound_if(environment_id.is_some(), "environment_id = ?");
    let limit_at = filter.placeholder();
    let filter = filter.sql();
    let mut rows: Vec<PublishLogEntry> = sql!(tx, |c| {
        crate::bind_present!(
            sqlx::query_as(&format!(
                "SELECT id, environment_id, revision, worker, started_at, finished_at, \
                     duration_ms, bytes, outcome, detail FROM publish_log \
                 WHERE {filter} ORDER BY id DESC LIMIT {limit_at}"
            )),
            environment_id
        )
        .bind(limit)
        .fetch_all(c)
        .await?
    });
    rows.reverse();
    Ok(rows)
}

/// Gives every environment whose published revision is behind its current revision, and that
/// has no job, a job (a crash, a bug or a restored backup can lose one). Parked jobs stay
/// parked; a discarded revision is not re-queued until the environment changes again. Jobs of
/// deleted environments are dropped. Returns how many jobs were created.
pub async fn reconcile(store: &Store) -> Result<u64> {
    let now = store.clock().now_ms();
    let mut tx = begin(store).await?;
    let created = sql!(&mut tx, |c| {
        sqlx::query(
            "DELETE FROM publish_jobs WHERE NOT EXISTS \
                 (SELECT 1 FROM environments e WHERE e.id = publish_jobs.environment_id)",
        )
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO publish_jobs (environment_id, wanted_revision, state, run_after, \
                 first_requested_at, attempts, updated_at) \
             SELECT e.id, e.revision, $2, $1, $1, 0, $1 FROM environments e \
             LEFT JOIN environment_documents d ON d.environment_id = e.id \
             LEFT JOIN publish_discarded x ON x.environment_id = e.id \
             WHERE (d.revision IS NULL OR d.revision < e.revision) \
               AND (x.revision IS NULL OR x.revision < e.revision) \
               AND NOT EXISTS (SELECT 1 FROM publish_jobs j WHERE j.environment_id = e.id) \
             ON CONFLICT (environment_id) DO NOTHING",
        )
        .bind(now)
        .bind(JobState::Pending)
        .execute(c)
        .await?
        .rows_affected()
    });
    tx.commit().await?;
    Ok(created)
}

fn job_audit(job: &PublishJob, action: &'static str, log: String) -> AuditEntry {
    AuditEntry {
        project_id: None,
        environment_id: Some(job.environment_id),
        action,
        resource_type: "publish_job",
        resource_id: job.environment_id.to_string(),
        log,
        before: serde_json::to_value(job).ok(),
        after: None,
    }
}

/// Makes a parked (or waiting) job due now with fresh attempts. A running job cannot be retried.
pub async fn retry(store: &Store, actor: &Actor, environment_id: i64) -> Result<PublishJob> {
    let mut ch = store.change(actor).await?;
    let job = get_job(ch.tx(), environment_id)
        .await?
        .ok_or(StoreError::not_found("publish job"))?;
    if job.state == JobState::Running {
        return Err(StoreError::conflict(
            "state",
            "the job is running; it can be retried only when parked or pending",
        ));
    }
    let now = store.clock().now_ms();
    sql!(ch.tx(), |c| {
        sqlx::query("DELETE FROM publish_discarded WHERE environment_id = $1")
            .bind(environment_id)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "UPDATE publish_jobs SET state = $3, attempts = 0, run_after = $2, \
                 first_requested_at = $2, park_reason = NULL, updated_at = $2 \
             WHERE environment_id = $1",
        )
        .bind(environment_id)
        .bind(now)
        .bind(JobState::Pending)
        .execute(c)
        .await?
        .rows_affected()
    });
    ch.audit(job_audit(
        &job,
        "retried",
        format!("Publish job of environment {environment_id} retried"),
    ));
    let after = get_job(ch.tx(), environment_id).await?;
    ch.commit().await?;
    after.ok_or(StoreError::not_found("publish job"))
}

/// Drops a parked (or waiting) job: the environment keeps its last published document, and the
/// reconciler leaves it alone until a new change moves its revision on.
pub async fn discard(store: &Store, actor: &Actor, environment_id: i64) -> Result<PublishJob> {
    let mut ch = store.change(actor).await?;
    let job = get_job(ch.tx(), environment_id)
        .await?
        .ok_or(StoreError::not_found("publish job"))?;
    if job.state == JobState::Running {
        return Err(StoreError::conflict(
            "state",
            "the job is running; it can be discarded only when parked or pending",
        ));
    }
    let now = store.clock().now_ms();
    sql!(ch.tx(), |c| {
        sqlx::query(
            "INSERT INTO publish_discarded (environment_id, revision, discarded_at) \
             VALUES ($1, $2, $3) ON CONFLICT (environment_id) DO UPDATE SET \
                 revision = excluded.revision, discarded_at = excluded.discarded_at",
        )
        .bind(environment_id)
        .bind(job.wanted_revision)
        .bind(now)
        .execute(&mut *c)
        .await?;
        sqlx::query("DELETE FROM publish_jobs WHERE environment_id = $1")
            .bind(environment_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    ch.audit(job_audit(
        &job,
        "discarded",
        format!(
            "Publish job of environment {environment_id} discarded at revision {}",
            job.wanted_revision
        ),
    ));
    ch.commit().await?;
    Ok(job)
}

/// An environment whose served document is behind its current revision.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentStaleness {
    pub environment_id: i64,
    pub name: String,
    pub revision: i64,
    pub published_revision: Option<i64>,
    /// When the served document was built.
    #[serde(serialize_with = "crate::clock::iso::option::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub published_at: Option<i64>,
    /// The job's state, or null if it has none.
    pub job_state: Option<JobState>,
    /// Since when a publish has been waiting.
    #[serde(serialize_with = "crate::clock::iso::option::serialize")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub waiting_since: Option<i64>,
    pub attempts: Option<i64>,
    pub last_error: Option<String>,
    pub park_reason: Option<ParkReason>,
}

/// The queue at a glance: what `flagstone status`, `GET /api/v1/tasks/` and metrics report.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStatus {
    pub pending: i64,
    pub running: i64,
    pub parked: i64,
    /// Age of the oldest pending request, in milliseconds.
    pub oldest_pending_age_ms: Option<i64>,
    /// Environments whose served document is behind their revision.
    pub stale_environments: i64,
    /// Up to 100 of them, parked ones first.
    pub stale: Vec<EnvironmentStaleness>,
}

/// The queue's status as of `now` (the store's clock).
pub async fn status(tx: &mut Tx, now: i64) -> Result<QueueStatus> {
    let counts: Vec<(JobState, i64)> = sql!(&mut *tx, |c| {
        sqlx::query_as("SELECT state, COUNT(*) FROM publish_jobs GROUP BY state")
            .fetch_all(c)
            .await?
    });
    let count = |s: JobState| {
        counts
            .iter()
            .find(|(k, _)| *k == s)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let oldest: Option<i64> = sql!(&mut *tx, |c| {
        sqlx::query_scalar("SELECT MIN(first_requested_at) FROM publish_jobs WHERE state = $1")
            .bind(JobState::Pending)
            .fetch_one(c)
            .await?
    });
    const STALE: &str = "FROM environments e \
        LEFT JOIN environment_documents d ON d.environment_id = e.id \
        LEFT JOIN publish_jobs j ON j.environment_id = e.id \
        WHERE d.revision IS NULL OR d.revision < e.revision";
    let stale_environments: i64 = sql!(&mut *tx, |c| {
        sqlx::query_scalar(&format!("SELECT COUNT(*) {STALE}"))
            .fetch_one(c)
            .await?
    });
    let stale = sql!(&mut *tx, |c| {
        sqlx::query_as(&format!(
            "SELECT e.id AS environment_id, e.name, e.revision, \
                 d.revision AS published_revision, d.built_at AS published_at, \
                 j.state AS job_state, j.first_requested_at AS waiting_since, j.attempts, \
                 j.last_error, j.park_reason {STALE} \
             ORDER BY CASE WHEN j.state = $1 THEN 0 ELSE 1 END, e.id LIMIT 100"
        ))
        .bind(JobState::Parked)
        .fetch_all(c)
        .await?
    });
    Ok(QueueStatus {
        pending: count(JobState::Pending),
        running: count(JobState::Running),
        parked: count(JobState::Parked),
        oldest_pending_age_ms: oldest.map(|t| (now - t).max(0)),
        stale_environments,
        stale,
    })
}
