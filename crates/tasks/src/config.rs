//! How a worker runs: concurrency, polling, leases, timeouts. Defaults suit production.

use std::time::Duration;

use flagstone_store::document::BuildOptions;
use flagstone_store::queue::QueueSettings;

/// Test hook: milliseconds every build sleeps before it starts, so crash tests can kill a
/// worker mid-build. Never set it in production.
pub const TEST_BUILD_DELAY_VAR: &str = "FLAGSTONE_TEST_BUILD_DELAY_MS";

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Builds that run at once in this process.
    pub concurrency: usize,
    /// Longest idle sleep between looks at the queue.
    pub poll_interval: Duration,
    /// How often the reconciler runs.
    pub reconcile_interval: Duration,
    /// A build that takes longer is abandoned and counted as a failed attempt.
    pub build_timeout: Duration,
    /// How long a graceful shutdown waits for running builds before handing them back.
    pub shutdown_grace: Duration,
    pub queue: QueueSettings,
    pub build: BuildOptions,
    /// This worker's name in leases and logs; unique per process.
    pub owner: String,
    /// See [`TEST_BUILD_DELAY_VAR`].
    pub test_build_delay: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 2,
            poll_interval: Duration::from_millis(100),
            reconcile_interval: Duration::from_secs(30),
            build_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            queue: QueueSettings::default(),
            build: BuildOptions::default(),
            owner: default_owner(),
            test_build_delay: std::env::var(TEST_BUILD_DELAY_VAR)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or_default(),
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
