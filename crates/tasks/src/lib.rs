//! Flagstone's task processor: workers that claim publish jobs, build and publish environment
//! documents, and keep every environment converged (docs/design.md).
//!
//! The store keeps the queue's rows and builds documents (`flagstone_store::queue`,
//! `flagstone_store::document`); this crate *decides*:
//! - [`policy`]: the queue's rules as pure functions (claim, retry, back off, park, follow up);
//! - [`steps`]: one transaction per step of a job (claim, finish, fail, hand back), each asking
//!   the policy and having the store write its decision;
//! - [`batch`]: a slot's run of publishes — builds of several claimed environments from one
//!   snapshot, under one heartbeat, finished together;
//! - [`publish`]: how one publish ends — settle a build's result as a [`PublishOutcome`];
//! - [`finishing`]: group commit — builds that end together are finished in one transaction;
//! - [`Worker`]: N concurrent publishes, the reconciler, graceful shutdown; every publish is
//!   announced in-process through [`Publications`] (PostgreSQL listeners also get a `NOTIFY`);
//! - [`metrics`]: the names and recording of the processor's metrics;
//! - [`deliveries`]: the webhook delivery queue, on the same [`policy`];
//! - [`published`]: the `ENVIRONMENT_PUBLISHED` event of each publish and its diff;
//! - [`schedule`]: applying scheduled changes at their `live_from`, exactly once;
//! - [`retention`]: deleting flag-usage rows past their retention, in bounded batches;
//! - [`breakpoints`] and `testing` (feature `testing`): stepping the pipeline in tests.

pub mod batch;
pub mod breakpoints;
mod config;
pub mod deliveries;
pub mod finishing;
pub mod metrics;
pub mod policy;
mod publications;
pub mod publish;
pub mod published;
pub mod retention;
pub mod schedule;
pub mod steps;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use breakpoints::{Breakpoint, Breakpoints};
pub use config::{default_owner, JitterSource, WorkerConfig};
pub use policy::Rules;
pub use publications::Publications;
pub use publish::PublishOutcome;
pub use worker::Worker;

/// The process's peak resident set size in bytes (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
