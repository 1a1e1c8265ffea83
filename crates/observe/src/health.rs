//! The health decision, pure: from what the queue looks like ([`HealthInputs`]) and the
//! operator's [`Thresholds`], whether Flagstone is `ok` or `degraded`, which checks failed and
//! which environments and tasks are responsible ([`decide`]). Also readiness ([`Readiness`]) and
//! the alert hook: [`transition`] says when the status changed, as a [`HealthTransition`] an
//! alert sender (webhooks) can deliver. The I/O that gathers inputs is in [`crate::probe`].

use flagstone_store::queue::{JobState, ParkReason, PublishJob, QueueStatus};
use serde::Serialize;

/// Overall health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Degraded,
}

/// Limits past which `/health/status` is degraded. A value *above* its threshold degrades.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Publish jobs pending or running.
    pub max_queue_depth: i64,
    /// Seconds the oldest pending publish request may wait.
    pub max_oldest_pending_secs: i64,
    /// Parked publish jobs tolerated (default 0: any parked job degrades).
    pub max_parked: i64,
    /// Seconds any environment may wait for its document.
    pub max_staleness_secs: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_queue_depth: 1000,
            max_oldest_pending_secs: 60,
            max_parked: 0,
            max_staleness_secs: 300,
        }
    }
}

/// The checks `/health/status` makes, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The store answered (only reported when it did not: the other checks need it).
    StoreReachable,
    QueueDepth,
    OldestPending,
    ParkedTasks,
    EnvironmentStaleness,
}

/// An environment behind its revision, as health sees it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Lagging {
    pub environment_id: i64,
    pub name: Option<String>,
    /// The publish job's id (one job per environment: the environment's id), if it has one.
    pub task_id: Option<i64>,
    /// The publish job's state (`pending`, `running`, `parked`).
    #[schema(value_type = Option<String>)]
    pub job_state: Option<JobState>,
    /// Why the job was parked, if it is.
    #[schema(value_type = Option<String>)]
    pub park_reason: Option<ParkReason>,
    /// Revisions the served document is behind.
    pub revision_lag: i64,
    /// Seconds the environment has waited for its document.
    pub staleness_seconds: i64,
    pub attempts: Option<i64>,
    pub last_error: Option<String>,
}

/// Everything the decision needs, gathered from the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthInputs {
    pub pending: i64,
    pub running: i64,
    pub parked: i64,
    pub oldest_pending_secs: Option<i64>,
    /// Environments behind their revision (at most the store's listing cap), parked first.
    pub lagging: Vec<Lagging>,
}

impl HealthInputs {
    /// Inputs from the queue's status and its parked jobs, as of `now_ms`. An environment's
    /// staleness counts from its oldest unpublished request, or (its job discarded) from when its
    /// served document was built.
    pub fn from_queue(status: &QueueStatus, parked: &[PublishJob], now_ms: i64) -> HealthInputs {
        let secs = |since: i64| ((now_ms - since).max(0)) / 1000;
        let mut lagging: Vec<Lagging> = status
            .stale
            .iter()
            .map(|e| Lagging {
                environment_id: e.environment_id,
                name: Some(e.name.clone()),
                task_id: e.job_state.map(|_| e.environment_id),
                job_state: e.job_state,
                park_reason: e.park_reason,
                revision_lag: e.revision - e.published_revision.unwrap_or(0),
                staleness_seconds: e.waiting_since.or(e.published_at).map(secs).unwrap_or(0),
                attempts: e.attempts,
                last_error: e.last_error.clone(),
            })
            .collect();
        // A parked job whose environment is not listed as behind (e.g. beyond the listing cap)
        // is still named.
        for j in parked {
            if !lagging.iter().any(|l| l.environment_id == j.environment_id) {
                lagging.push(Lagging {
                    environment_id: j.environment_id,
                    name: None,
                    task_id: Some(j.environment_id),
                    job_state: Some(j.state),
                    park_reason: j.park_reason,
                    revision_lag: j.wanted_revision - j.published_revision.unwrap_or(0),
                    staleness_seconds: secs(j.first_requested_at),
                    attempts: Some(j.attempts),
                    last_error: j.last_error.clone(),
                });
            }
        }
        HealthInputs {
            pending: status.pending,
            running: status.running,
            parked: status.parked,
            oldest_pending_secs: status.oldest_pending_age_ms.map(|ms| ms / 1000),
            lagging,
        }
    }
}

/// One check of the report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub name: CheckName,
    pub status: Status,
    pub value: i64,
    pub threshold: i64,
    /// What an operator reads: the figure and, when degraded, what to do.
    pub message: String,
    /// The environments responsible (empty when the check is ok or not about environments).
    pub environments: Vec<Lagging>,
}

/// What `/health/status` answers.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub status: Status,
    pub checks: Vec<Check>,
}

impl HealthReport {
    /// The checks that failed.
    pub fn reasons(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Degraded)
    }
}

fn check(name: CheckName, value: i64, threshold: i64, message: String) -> Check {
    Check {
        name,
        status: if value > threshold {
            Status::Degraded
        } else {
            Status::Ok
        },
        value,
        threshold,
        message,
        environments: Vec::new(),
    }
}

/// The decision: each check compares one figure with its threshold; any failing check makes
/// the whole report degraded, and the parked and staleness checks name their environments.
pub fn decide(inputs: &HealthInputs, t: &Thresholds) -> HealthReport {
    let depth = inputs.pending + inputs.running;
    let oldest = inputs.oldest_pending_secs.unwrap_or(0);
    let mut parked = check(
        CheckName::ParkedTasks,
        inputs.parked,
        t.max_parked,
        format!("{} publish job(s) parked", inputs.parked),
    );
    if parked.status == Status::Degraded {
        parked.environments = inputs
            .lagging
            .iter()
            .filter(|l| l.job_state == Some(JobState::Parked))
            .cloned()
            .collect();
        parked.message.push_str(
            "; they keep serving their last document: fix the cause, then `flagstone tasks retry <id>`",
        );
    }
    let worst = inputs
        .lagging
        .iter()
        .map(|l| l.staleness_seconds)
        .max()
        .unwrap_or(0);
    let mut stale = check(
        CheckName::EnvironmentStaleness,
        worst,
        t.max_staleness_secs,
        format!("the most stale environment has waited {worst} s for its document"),
    );
    if stale.status == Status::Degraded {
        stale.environments = inputs
            .lagging
            .iter()
            .filter(|l| l.staleness_seconds > t.max_staleness_secs)
            .cloned()
            .collect();
    }
    let checks = vec![
        check(
            CheckName::QueueDepth,
            depth,
            t.max_queue_depth,
            format!("{depth} publish job(s) pending or running"),
        ),
        check(
            CheckName::OldestPending,
            oldest,
            t.max_oldest_pending_secs,
            format!("the oldest pending publish request has waited {oldest} s"),
        ),
        parked,
        stale,
    ];
    let status = if checks.iter().any(|c| c.status == Status::Degraded) {
        Status::Degraded
    } else {
        Status::Ok
    };
    HealthReport { status, checks }
}

/// The report when the store cannot be read: degraded, saying why.
pub fn unreachable(error: &str) -> HealthReport {
    HealthReport {
        status: Status::Degraded,
        checks: vec![Check {
            name: CheckName::StoreReachable,
            status: Status::Degraded,
            value: 0,
            threshold: 1,
            message: format!("the store cannot be read: {error}"),
            environments: Vec::new(),
        }],
    }
}

/// A change of overall status: what an alert (the webhooks' health alert) delivers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthTransition {
    pub from: Status,
    pub to: Status,
    /// The report that made the change (its failing checks name the culprits).
    pub report: HealthReport,
}

/// The transition from `previous` to `report`'s status, if the status changed. A process's
/// first report is compared with `ok` (starting degraded is a transition; starting ok is not).
pub fn transition(previous: Option<Status>, report: &HealthReport) -> Option<HealthTransition> {
    let from = previous.unwrap_or(Status::Ok);
    (from != report.status).then(|| HealthTransition {
        from,
        to: report.status,
        report: report.clone(),
    })
}

/// What readiness looks at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Readiness {
    /// The store answered a transaction in time.
    pub store_reachable: bool,
    /// Documents held by this process's edge (None: this role serves no SDK API).
    pub documents: Option<DocumentsLoaded>,
}

/// The edge's documents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocumentsLoaded {
    /// The initial load finished (from the store, or from the last-good cache).
    pub loaded: bool,
    pub environments: usize,
    pub serving_from_cache: bool,
    pub staleness_seconds: Option<f64>,
    /// The last-good cache directory is being read (the edge already answers: what is read is
    /// served, and a request for a key not read yet waits for it).
    pub loading_cache: bool,
    /// Documents read from the cache directory so far.
    pub cache_loaded: usize,
}

/// A document publisher's state (`--documents-nats`: the NATS key-value bucket edges follow).
/// Reported, never a reason not to be ready: edges following the bucket serve their last good
/// documents while it is behind.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublisherState {
    /// The connection to the NATS server is up.
    pub connected: bool,
    /// The last comparison with the bucket (or put) succeeded: the bucket is in step with the
    /// store as of `last_in_step_at_ms`.
    pub in_step: bool,
    /// When a document was last put in the bucket successfully (Unix ms; `null`: not since
    /// this process started).
    pub last_put_at_ms: Option<i64>,
    /// When the bucket was last found in step with the store (Unix ms; `null`: not yet).
    pub last_in_step_at_ms: Option<i64>,
    /// Published documents not in the bucket at the last comparison.
    pub documents_behind: usize,
    /// Documents larger than the NATS server's `max_payload`, never put.
    pub documents_too_large: usize,
}

/// Whether readiness requires the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadinessRule {
    /// Ready only while the store is reachable (and documents, if any, are loaded): `serve`,
    /// `worker`.
    StoreRequired,
    /// An edge with documents is ready even while the store is unreachable: it serves its
    /// last good documents (that is what its cache is for).
    DocumentsSuffice,
}

impl Readiness {
    pub fn ready(&self, rule: ReadinessRule) -> bool {
        let docs_loaded = self.documents.as_ref().is_none_or(|d| d.loaded);
        match rule {
            ReadinessRule::StoreRequired => self.store_reachable && docs_loaded,
            ReadinessRule::DocumentsSuffice => {
                docs_loaded
                    && (self.store_reachable
                        || self.documents.as_ref().is_some_and(|d| d.environments > 0))
            }
        }
    }
}

#[cfg(test)]
mod tests;
