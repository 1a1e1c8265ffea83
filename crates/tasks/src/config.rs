//! How a worker runs: concurrency, polling, the queue's [`Rules`], timeouts. Defaults suit
//! production.

use std::time::Duration;

use flagstone_store::document::BuildOptions;

use crate::breakpoints::Breakpoints;
use crate::policy::{Jitter, Rules};

/// Where retry jitter comes from: random in production, fixed in deterministic tests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum JitterSource {
    #[default]
    Random,
    Fixed(Jitter),
}

impl JitterSource {
    pub fn next(self) -> Jitter {
        match self {
            JitterSource::Random => Jitter::random(),
            JitterSource::Fixed(j) => j,
        }
    }
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Builds that run at once in this process.
    pub concurrency: usize,
    /// Most environments one build slot takes at a time during a burst, built from one
    /// snapshot and finished in one transaction ([`crate::batch`]); at most
    /// [`crate::finishing::MAX_GROUP`].
    pub batch: usize,
    /// Longest idle sleep between looks at the queue.
    pub poll_interval: Duration,
    /// How often the reconciler runs.
    pub reconcile_interval: Duration,
    /// A build that takes longer is abandoned and counted as a failed attempt.
    pub build_timeout: Duration,
    /// How long a graceful shutdown waits for running builds before handing them back.
    pub shutdown_grace: Duration,
    /// Leases, attempts and backoff of the publish queue.
    pub rules: Rules,
    pub jitter: JitterSource,
    /// Rows kept in `publish_log`.
    pub publish_log_cap: i64,
    pub build: BuildOptions,
    /// This worker's name in leases and logs; unique per process.
    pub owner: String,
    /// Test hook: named points where the worker stops until the test lets it go on (never set
    /// in production; see [`Breakpoints`]).
    pub breakpoints: Option<Breakpoints>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 2,
            batch: 16,
            poll_interval: Duration::from_millis(100),
            reconcile_interval: Duration::from_secs(30),
            build_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            rules: Rules::default(),
            jitter: JitterSource::Random,
            publish_log_cap: 10_000,
            build: BuildOptions::default(),
            owner: default_owner(),
            breakpoints: None,
        }
    }
}

/// `<host>-<pid>-<random>`: readable in `flagstone status`, unique across restarts.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &rand[..6])
}
