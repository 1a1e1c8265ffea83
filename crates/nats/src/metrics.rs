//! Metric names of the NATS paths (`/metrics`).

/// Documents put in the bucket (core side).
pub const DOCUMENTS_PUT_TOTAL: &str = "flagstone_nats_documents_put_total";
/// Environment keys purged from the bucket (core side).
pub const DOCUMENTS_PURGED_TOTAL: &str = "flagstone_nats_documents_purged_total";
/// Failed puts, purges or bucket reads, by `operation` (core side); retried.
pub const PUBLISH_ERRORS_TOTAL: &str = "flagstone_nats_publish_errors_total";
/// Published documents not (yet) in the bucket at the last comparison (core side).
pub const DOCUMENTS_BEHIND: &str = "flagstone_nats_documents_behind";
/// Documents larger than the server's `max_payload`, never put (core side).
pub const DOCUMENTS_TOO_LARGE: &str = "flagstone_nats_documents_too_large";
/// 1 while NATS is reachable, else 0 (both sides).
pub const REACHABLE: &str = "flagstone_nats_reachable";
/// Sessions of the edge's watch of the bucket that ended (lost connection, errors).
pub const WATCH_RESTARTS_TOTAL: &str = "flagstone_nats_watch_restarts_total";
/// Entries of the bucket an edge could not use (malformed, or a document that does not build).
pub const ENTRIES_REJECTED_TOTAL: &str = "flagstone_nats_entries_rejected_total";
