//! Every metric Flagstone exports, by name, with its description, and the recorder that renders
//! them. [`install`] registers each series at zero so a fresh process's `/metrics` already
//! lists it: an alert on an absent series never fires, which is how an incident stays silent.
//! docs/observability.md is this list for operators.

use std::sync::OnceLock;
use std::time::Duration;

use flagstone_store::queue::JobState;
use flagstone_tasks::PublishOutcome;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

pub use flagstone_edge::metrics::{
    ANALYTICS_EVALUATIONS_TOTAL, ANALYTICS_REPORTS_TOTAL, NEW_IDENTITIES_REFUSED_TOTAL,
    SSE_SUBSCRIBERS, USAGE_DROPPED_TOTAL, USAGE_FLUSHES_TOTAL, USAGE_PENDING_ROWS,
};
pub use flagstone_tasks::metrics::{
    BUILDS_TOTAL, BUILD_SECONDS, DELIVERY_OUTCOMES, DOCUMENT_BYTES, FINISH_GROUP_BUILDS,
    WEBHOOK_DELIVERIES_TOTAL, WEBHOOK_DELIVERY_SECONDS,
};
pub use flagstone_tasks::retention::PRUNED_TOTAL as USAGE_ROWS_PRUNED_TOTAL;
pub use flagstone_tasks::schedule::{
    APPLIED_TOTAL as SCHEDULED_CHANGES_TOTAL, DELAY_SECONDS as SCHEDULED_CHANGE_DELAY_SECONDS,
    OVERDUE_SECONDS as SCHEDULED_CHANGES_OVERDUE_SECONDS, PENDING as SCHEDULED_CHANGES_PENDING,
};

/// Gauge `{state}`: publish jobs by state (`pending`, `running`, `parked`).
pub const QUEUE_DEPTH: &str = "flagstone_publish_queue_depth";
/// Gauge: seconds the oldest pending publish request has waited.
pub const OLDEST_PENDING_SECONDS: &str = "flagstone_publish_oldest_pending_seconds";
/// Gauge `{state}`: webhook deliveries by state (`pending`, `running`, `parked`).
pub const WEBHOOK_QUEUE_DEPTH: &str = "flagstone_webhook_queue_depth";
/// Gauge: seconds the oldest pending webhook delivery has waited since its event was queued.
pub const WEBHOOK_OLDEST_PENDING_SECONDS: &str = "flagstone_webhook_oldest_pending_seconds";
/// The `state` labels of [`WEBHOOK_QUEUE_DEPTH`].
pub const WEBHOOK_STATES: &[&str] = &["pending", "running", "parked"];
/// Gauge: environments whose served document is behind their revision.
pub const STALE_ENVIRONMENTS: &str = "flagstone_stale_environments";
/// Gauge `{environment}`: revisions an environment's served document is behind.
pub const REVISION_LAG: &str = "flagstone_environment_revision_lag";
/// Gauge `{environment}`: seconds an environment has been waiting for its document.
pub const STALENESS_SECONDS: &str = "flagstone_environment_staleness_seconds";
/// Gauge: 1 while `/health/status` is degraded.
pub const HEALTH_DEGRADED: &str = "flagstone_health_degraded";
/// Counter `{route,method,status}`: HTTP requests answered.
pub const HTTP_REQUESTS_TOTAL: &str = "flagstone_http_requests_total";
/// Histogram `{route,method}`: seconds to answer (to the response head).
pub const HTTP_REQUEST_SECONDS: &str = "flagstone_http_request_seconds";
/// Gauges: the store's connection pool.
pub const POOL_SIZE: &str = "flagstone_store_pool_connections";
pub const POOL_IN_USE: &str = "flagstone_store_pool_in_use";
pub const POOL_MAX: &str = "flagstone_store_pool_max";
/// Counter: transactions that found every connection of a full pool in use.
pub const POOL_WAITS_TOTAL: &str = "flagstone_store_pool_waits_total";

/// How many environments get their own `{environment}` series; the rest are summed (revision
/// lag) or maxed (staleness) into `environment="_other"`. Keeps cardinality bounded however many
/// environments fall behind.
pub const ENVIRONMENT_LABEL_CAP: usize = 20;
/// The `environment` label of the aggregate beyond [`ENVIRONMENT_LABEL_CAP`].
pub const OTHER_ENVIRONMENTS: &str = "_other";
/// The `route` label of requests no route matched (never the raw path: it may hold a key).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Which process is starting: decides which series it registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Admin API, worker and edge in one process.
    Serve,
    /// The SDK API alone.
    Edge,
    /// The task processor alone.
    Worker,
}

impl Role {
    fn runs_worker(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
    fn runs_edge(self) -> bool {
        matches!(self, Role::Serve | Role::Edge)
    }
}

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const BYTES_BUCKETS: &[f64] = &[
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];

static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process's recorder is installed (metric handles taken before record nowhere).
pub fn installed() -> bool {
    INSTALLED.load(std::sync::atomic::Ordering::Acquire)
}

/// The process's Prometheus handle, installing the global recorder (with histogram buckets and
/// every series of `role` at zero) on first use. `None` if another recorder was installed first.
pub fn install(role: Role) -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    let handle = HANDLE
        .get_or_init(|| {
            // Gauges not refreshed for a minute are dropped: per-environment series of
            // environments that caught up leave, keeping the label set bounded.
            let built = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(60)))
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(FINISH_GROUP_BUILDS.into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
                    )
                })
                .and_then(|b| b.install_recorder());
            match built {
                Ok(h) => {
                    INSTALLED.store(true, std::sync::atomic::Ordering::Release);
                    describe_all();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .clone();
    register_at_zero(role);
    handle
}

fn describe_all() {
    describe_gauge!(
        QUEUE_DEPTH,
        "Publish jobs by state (pending, running, parked)."
    );
    describe_gauge!(
        OLDEST_PENDING_SECONDS,
        Unit::Seconds,
        "Age of the oldest pending publish request."
    );
    describe_gauge!(
        STALE_ENVIRONMENTS,
        "Environments whose served document is behind their revision."
    );
    describe_gauge!(
        REVISION_LAG,
        "Revisions an environment's served document is behind (worst environments; _other sums the rest)."
    );
    describe_gauge!(
        STALENESS_SECONDS,
        Unit::Seconds,
        "How long an environment has waited for its document (worst environments; _other is the max of the rest)."
    );
    describe_gauge!(HEALTH_DEGRADED, "1 while /health/status is degraded.");
    describe_gauge!(
        WEBHOOK_QUEUE_DEPTH,
        "Webhook deliveries by state (pending, running, parked)."
    );
    describe_gauge!(
        WEBHOOK_OLDEST_PENDING_SECONDS,
        Unit::Seconds,
        "Age of the oldest pending webhook delivery."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        "Webhook delivery attempts by how they ended."
    );
    describe_histogram!(
        WEBHOOK_DELIVERY_SECONDS,
        Unit::Seconds,
        "Time per webhook delivery attempt."
    );
    describe_counter!(BUILDS_TOTAL, "Publishes by how they ended.");
    describe_histogram!(
        BUILD_SECONDS,
        Unit::Seconds,
        "Time from claim to settled per publish."
    );
    describe_histogram!(
        DOCUMENT_BYTES,
        Unit::Bytes,
        "Uncompressed size of published documents."
    );
    describe_histogram!(
        FINISH_GROUP_BUILDS,
        Unit::Count,
        "Builds finished per transaction by a worker's group commit."
    );
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests by route template, method and status."
    );
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer HTTP requests, by route template and method."
    );
    describe_counter!(
        SCHEDULED_CHANGES_TOTAL,
        "Attempts to apply a scheduled change, by outcome."
    );
    describe_histogram!(
        SCHEDULED_CHANGE_DELAY_SECONDS,
        Unit::Seconds,
        "Seconds between a scheduled change's live_from and when it was applied."
    );
    describe_gauge!(
        SCHEDULED_CHANGES_PENDING,
        "Scheduled changes waiting to be applied."
    );
    describe_gauge!(
        SCHEDULED_CHANGES_OVERDUE_SECONDS,
        "Seconds the oldest due, unapplied scheduled change is past its live_from."
    );
    describe_gauge!(SSE_SUBSCRIBERS, "Open real-time (SSE) streams.");
    describe_counter!(ANALYTICS_REPORTS_TOTAL, "SDK analytics reports received.");
    describe_counter!(
        ANALYTICS_EVALUATIONS_TOTAL,
        "Flag evaluations counted by SDK analytics reports."
    );
    describe_counter!(
        USAGE_FLUSHES_TOTAL,
        "Flag-usage batches written to the store, by outcome (ok, failed)."
    );
    describe_gauge!(
        USAGE_PENDING_ROWS,
        "Flag-usage rows waiting for the next flush (kept while the store is unreachable)."
    );
    describe_counter!(
        USAGE_DROPPED_TOTAL,
        "Flag evaluations dropped because the store stayed unreachable past the pending cap."
    );
    describe_counter!(
        USAGE_ROWS_PRUNED_TOTAL,
        "Hourly flag-usage rows deleted past the retention (--usage-retention-days)."
    );
    describe_counter!(
        NEW_IDENTITIES_REFUSED_TOTAL,
        "Identify requests refused (429) because their environment created its allowance of new identities on this edge (max_new_identities_per_minute)."
    );
    {
        use flagstone_edge::metrics as e;
        describe_gauge!(
            e::MEMORY_BUDGET_BYTES,
            Unit::Bytes,
            "Budget of compiled environments held by this edge (--edge-memory-budget-mib)."
        );
        describe_gauge!(
            e::RESIDENT_BYTES,
            Unit::Bytes,
            "Estimated bytes of the compiled environments held (within the budget)."
        );
        describe_gauge!(
            e::RESIDENT_ENVIRONMENTS,
            "Environments whose compiled form is held."
        );
        describe_gauge!(
            e::DOCUMENTS_BYTES,
            Unit::Bytes,
            "Bytes of the compressed documents held for every environment served."
        );
        describe_counter!(
            e::SNAPSHOT_HITS_TOTAL,
            "Lookups answered by a compiled environment already held."
        );
        describe_counter!(
            e::SNAPSHOT_MISSES_TOTAL,
            "Lookups that compiled the environment first (never asked for, or evicted)."
        );
        describe_counter!(
            e::SNAPSHOT_EVICTIONS_TOTAL,
            "Compiled environments dropped to stay within the memory budget."
        );
        describe_counter!(
            e::SNAPSHOT_LOAD_FAILURES_TOTAL,
            "Held documents that could not be compiled on demand (dropped until loaded again)."
        );
    }
    describe_gauge!(POOL_SIZE, "Store connections open.");
    describe_gauge!(POOL_IN_USE, "Store connections in use.");
    describe_gauge!(POOL_MAX, "The store pool's ceiling.");
    describe_counter!(
        POOL_WAITS_TOTAL,
        "Transactions that found every connection of a full pool in use."
    );
}

/// Touches every series `role` exports so each is rendered (at zero) before anything happens.
fn register_at_zero(role: Role) {
    for p in [POOL_SIZE, POOL_IN_USE, POOL_MAX] {
        metrics::gauge!(p).set(0.0);
    }
    metrics::counter!(POOL_WAITS_TOTAL).absolute(0);
    metrics::gauge!(HEALTH_DEGRADED).set(0.0);
    // Every role can be asked for the queue's state (it reads the shared store).
    for s in JobState::ALL {
        metrics::gauge!(QUEUE_DEPTH, "state" => s.as_str()).set(0.0);
    }
    metrics::gauge!(OLDEST_PENDING_SECONDS).set(0.0);
    for s in WEBHOOK_STATES {
        metrics::gauge!(WEBHOOK_QUEUE_DEPTH, "state" => *s).set(0.0);
    }
    metrics::gauge!(WEBHOOK_OLDEST_PENDING_SECONDS).set(0.0);
    metrics::gauge!(STALE_ENVIRONMENTS).set(0.0);
    metrics::gauge!(REVISION_LAG, "environment" => OTHER_ENVIRONMENTS).set(0.0);
    metrics::gauge!(STALENESS_SECONDS, "environment" => OTHER_ENVIRONMENTS).set(0.0);
    if role.runs_worker() {
        for o in PublishOutcome::LABELS {
            metrics::counter!(BUILDS_TOTAL, "outcome" => *o).absolute(0);
        }
        let _ = metrics::histogram!(BUILD_SECONDS);
        let _ = metrics::histogram!(DOCUMENT_BYTES);
        let _ = metrics::histogram!(FINISH_GROUP_BUILDS);
        for o in DELIVERY_OUTCOMES {
            metrics::counter!(WEBHOOK_DELIVERIES_TOTAL, "outcome" => *o).absolute(0);
        }
        let _ = metrics::histogram!(WEBHOOK_DELIVERY_SECONDS);
        for o in flagstone_tasks::schedule::StepOutcome::LABELS {
            metrics::counter!(SCHEDULED_CHANGES_TOTAL, "outcome" => *o).absolute(0);
        }
        let _ = metrics::histogram!(SCHEDULED_CHANGE_DELAY_SECONDS);
        metrics::gauge!(SCHEDULED_CHANGES_PENDING).set(0.0);
        metrics::gauge!(SCHEDULED_CHANGES_OVERDUE_SECONDS).set(0.0);
        metrics::counter!(USAGE_ROWS_PRUNED_TOTAL).absolute(0);
    }
    if role.runs_edge() {
        metrics::gauge!(SSE_SUBSCRIBERS).set(0.0);
        metrics::counter!(ANALYTICS_REPORTS_TOTAL).absolute(0);
        metrics::counter!(ANALYTICS_EVALUATIONS_TOTAL).absolute(0);
        for o in ["ok", "failed"] {
            metrics::counter!(USAGE_FLUSHES_TOTAL, "outcome" => o).absolute(0);
        }
        metrics::gauge!(USAGE_PENDING_ROWS).set(0.0);
        metrics::counter!(USAGE_DROPPED_TOTAL).absolute(0);
        metrics::counter!(NEW_IDENTITIES_REFUSED_TOTAL).absolute(0);
        use flagstone_edge::metrics as e;
        for g in [
            e::MEMORY_BUDGET_BYTES,
            e::RESIDENT_BYTES,
            e::RESIDENT_ENVIRONMENTS,
            e::DOCUMENTS_BYTES,
        ] {
            metrics::gauge!(g).set(0.0);
        }
        for c in [
            e::SNAPSHOT_HITS_TOTAL,
            e::SNAPSHOT_MISSES_TOTAL,
            e::SNAPSHOT_EVICTIONS_TOTAL,
            e::SNAPSHOT_LOAD_FAILURES_TOTAL,
        ] {
            metrics::counter!(c).absolute(0);
        }
    }
    // The request series exist from the start with the route every role serves; others appear
    // with their first request (their labels are not known before).
    crate::http::register_route("GET", "/metrics");
}
