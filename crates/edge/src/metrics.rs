//! The names of what an edge counts beyond HTTP requests (docs/observability.md);
//! `flagstone-observe` registers each at zero when a process starts.

/// Counter: identify requests refused because the environment created its allowance of new
/// identities on this edge for now (`max_new_identities_per_minute`).
pub const NEW_IDENTITIES_REFUSED_TOTAL: &str = "flagstone_edge_new_identities_refused_total";

/// Gauge: open real-time (SSE) streams on this node.
pub const SSE_SUBSCRIBERS: &str = "flagstone_sse_subscribers";
/// Counter: analytics reports received from SDKs (`POST /api/v1/analytics/flags/`).
pub const ANALYTICS_REPORTS_TOTAL: &str = "flagstone_analytics_reports_total";
/// Counter: flag evaluations those reports counted, summed over features and environments.
pub const ANALYTICS_EVALUATIONS_TOTAL: &str = "flagstone_analytics_evaluations_total";
/// Counter `{outcome}`: flag-usage flushes to the store (`ok`, `failed`).
pub const USAGE_FLUSHES_TOTAL: &str = "flagstone_usage_flushes_total";
/// Gauge: `(environment, feature, hour)` usage rows waiting to be written (a failed flush
/// keeps them, up to `usage::MAX_PENDING_ROWS`).
pub const USAGE_PENDING_ROWS: &str = "flagstone_usage_pending_rows";
/// Counter: evaluations dropped because the store stayed unreachable past the pending cap.
pub const USAGE_DROPPED_TOTAL: &str = "flagstone_usage_evaluations_dropped_total";

/// Counter: connections to the upstream's revision stream that ended (an edge following an
/// upstream over HTTP); each is followed by a reconnect with backoff.
pub const UPSTREAM_RECONNECTS_TOTAL: &str = "flagstone_edge_upstream_reconnects_total";
/// Gauge: environments whose revision announced by the upstream is not served yet.
pub const UPSTREAM_ENVIRONMENTS_BEHIND: &str = "flagstone_edge_upstream_environments_behind";
/// Gauge: the largest revision lag of one environment behind the upstream.
pub const UPSTREAM_REVISION_LAG_MAX: &str = "flagstone_edge_upstream_revision_lag_max";
/// Gauge: 1 while the upstream's revision stream is connected and synchronised.
pub const UPSTREAM_REACHABLE: &str = "flagstone_edge_upstream_reachable";

/// Gauge: the budget of compiled snapshots, in bytes (`--edge-memory-budget-mib`).
pub const MEMORY_BUDGET_BYTES: &str = "flagstone_edge_memory_budget_bytes";
/// Gauge: estimated bytes of the compiled snapshots held (kept within the budget).
pub const RESIDENT_BYTES: &str = "flagstone_edge_resident_bytes";
/// Gauge: environments whose compiled snapshot is held.
pub const RESIDENT_ENVIRONMENTS: &str = "flagstone_edge_resident_environments";
/// Gauge: bytes of the compressed documents held for every environment served.
pub const DOCUMENTS_BYTES: &str = "flagstone_edge_documents_bytes";
/// Counter: lookups answered by a compiled snapshot already held.
pub const SNAPSHOT_HITS_TOTAL: &str = "flagstone_edge_snapshot_hits_total";
/// Counter: lookups that compiled the environment's snapshot first (cold or evicted).
pub const SNAPSHOT_MISSES_TOTAL: &str = "flagstone_edge_snapshot_misses_total";
/// Counter: compiled snapshots dropped to stay within the budget.
pub const SNAPSHOT_EVICTIONS_TOTAL: &str = "flagstone_edge_snapshot_evictions_total";
/// Counter: held documents that could not be compiled on demand (dropped until reloaded).
pub const SNAPSHOT_LOAD_FAILURES_TOTAL: &str = "flagstone_edge_snapshot_load_failures_total";

/// Sets the memory series from what `registry` holds (called by the edge's gauge refresh).
pub fn export_memory(registry: &crate::Registry) {
    let m = registry.memory();
    let r = m.resident;
    metrics::gauge!(MEMORY_BUDGET_BYTES).set(r.budget_bytes as f64);
    metrics::gauge!(RESIDENT_BYTES).set(r.resident_bytes as f64);
    metrics::gauge!(RESIDENT_ENVIRONMENTS).set(r.resident_environments as f64);
    metrics::gauge!(DOCUMENTS_BYTES).set(m.documents_bytes as f64);
    metrics::counter!(SNAPSHOT_HITS_TOTAL).absolute(r.hits);
    metrics::counter!(SNAPSHOT_MISSES_TOTAL).absolute(r.misses);
    metrics::counter!(SNAPSHOT_EVICTIONS_TOTAL).absolute(r.evictions);
    metrics::counter!(SNAPSHOT_LOAD_FAILURES_TOTAL).absolute(r.load_failures);
}
