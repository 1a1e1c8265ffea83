//! What the task processor counts: every publish's outcome and duration, the size of every
//! published document, and every webhook delivery attempt. The names are the public contract operators alert on
//! (docs/observability.md); `flagstone-observe` registers each series at zero when a process
//! starts, so they exist before the first publish.

use std::time::Duration;

use crate::publish::PublishOutcome;

/// Counter `{outcome}`: publishes by how they ended ([`PublishOutcome::LABELS`]).
pub const BUILDS_TOTAL: &str = "flagstone_publish_builds_total";
/// Histogram: seconds from claim to settled, per publish.
pub const BUILD_SECONDS: &str = "flagstone_publish_build_seconds";
/// Histogram: uncompressed bytes of each published document.
pub const DOCUMENT_BYTES: &str = "flagstone_document_bytes";

/// Counter `{outcome}`: webhook delivery attempts by how they ended ([`DELIVERY_OUTCOMES`]).
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "flagstone_webhook_deliveries_total";
/// Histogram: seconds per webhook delivery attempt (connect, send, answer).
pub const WEBHOOK_DELIVERY_SECONDS: &str = "flagstone_webhook_delivery_seconds";
/// Every `outcome` of [`WEBHOOK_DELIVERIES_TOTAL`], for metrics registered at zero.
pub const DELIVERY_OUTCOMES: &[&str] = &["delivered", "retrying", "parked", "lease_lost"];

/// Records one delivery attempt that took `took` and was settled as `outcome` (one of
/// [`DELIVERY_OUTCOMES`]).
pub fn delivery_attempted(outcome: &'static str, took: Duration) {
    metrics::counter!(WEBHOOK_DELIVERIES_TOTAL, "outcome" => outcome).increment(1);
    metrics::histogram!(WEBHOOK_DELIVERY_SECONDS).record(took.as_secs_f64());
}

/// Records one publish that ended with `outcome` after `took`.
pub fn publish_ended(outcome: &PublishOutcome, took: Duration) {
    metrics::counter!(BUILDS_TOTAL, "outcome" => outcome.label()).increment(1);
    metrics::histogram!(BUILD_SECONDS).record(took.as_secs_f64());
}

/// Histogram: builds finished per transaction by a worker's group commit
/// (`crate::finishing`).
pub const FINISH_GROUP_BUILDS: &str = "flagstone_publish_finish_group_builds";

/// Records one group of `builds` finished in one transaction.
pub fn finish_group(builds: usize) {
    metrics::histogram!(FINISH_GROUP_BUILDS).record(builds as f64);
}

/// Records the size of a document that was published.
pub fn document_published(bytes: i64) {
    metrics::histogram!(DOCUMENT_BYTES).record(bytes.max(0) as f64);
}
