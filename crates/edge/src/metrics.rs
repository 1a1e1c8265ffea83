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
