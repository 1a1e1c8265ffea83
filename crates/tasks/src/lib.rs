//! Flagstone's task processor: workers that claim publish jobs, build and publish environment
//! documents, and keep every environment converged (DESIGN.md §2-§5).
//!
//! The queue and the builder live in the store (`flagstone_store::queue`,
//! `flagstone_store::document`); this crate decides *when* and *how many*: [`Worker`] runs N
//! concurrent builds, renews leases while they run, reports failures for backoff or parking,
//! runs the reconciler periodically, and announces every publish in-process through
//! [`Publications`] (PostgreSQL listeners also get a `NOTIFY` from the store).

mod config;
mod publications;
mod publish;
mod worker;

pub use config::{WorkerConfig, TEST_BUILD_DELAY_VAR};
pub use publications::Publications;
pub use publish::{publish_job, PublishOutcome};
pub use worker::Worker;

/// The process's peak resident set size in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
