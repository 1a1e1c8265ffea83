//! Flag-usage retention: hourly evaluation rows older than the retention are deleted by the task
//! processor, in bounded batches (one transaction each), so the table stays proportional to
//! the retention instead of growing forever and no single delete holds the store for long.
//! The latest row of each feature in each environment is kept (it carries `last_evaluated_at`;
//! see `flagstone_store::evaluations::prune`).
//!
//! [`prune_once`] is one pass (what tests step through); [`UsagePruner`] runs it periodically.
//! Several processes may prune at once: deletes of the same rows are idempotent.

use std::future::Future;
use std::time::Duration;

use flagstone_store::evaluations::{self, DAY_MS};
use flagstone_store::{Result, Store};

/// Counter: flag-usage rows deleted past the retention.
pub const PRUNED_TOTAL: &str = "flagstone_usage_rows_pruned_total";

/// How usage rows are kept. Defaults suit production.
#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Days of hourly rows kept.
    pub retention_days: i64,
    /// Rows deleted per transaction.
    pub batch: i64,
    /// Batches per pass at most: a backlog (a long outage, a retention just shortened) is
    /// worked off over several passes instead of in one long burst.
    pub max_batches: usize,
    /// Time between passes.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            retention_days: 90,
            batch: 5_000,
            max_batches: 100,
            interval: Duration::from_secs(3_600),
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruned {
    pub rows: u64,
    pub batches: usize,
    /// The pass stopped at `max_batches` with rows still past the retention.
    pub more: bool,
}

/// One pass: deletes rows older than the retention (as of the store's clock), one batch per
/// transaction, until a batch comes back short or `max_batches` ran.
pub async fn prune_once(store: &Store, cfg: &RetentionConfig) -> Result<Pruned> {
    let cutoff = store.clock().now_ms() - cfg.retention_days.max(1) * DAY_MS;
    let mut done = Pruned {
        rows: 0,
        batches: 0,
        more: false,
    };
    while done.batches < cfg.max_batches.max(1) {
        let mut tx = store.write().await?;
        let n = evaluations::prune(&mut tx, cutoff, cfg.batch).await?;
        tx.commit().await?;
        done.rows += n;
        done.batches += 1;
        metrics::counter!(PRUNED_TOTAL).increment(n);
        if (n as i64) < cfg.batch.max(1) {
            return Ok(done);
        }
    }
    done.more = true;
    Ok(done)
}

/// Runs [`prune_once`] every `interval` (the first pass at start) until `stop` resolves.
pub struct UsagePruner {
    store: Store,
    config: RetentionConfig,
}

impl UsagePruner {
    pub fn new(store: Store, config: RetentionConfig) -> UsagePruner {
        UsagePruner { store, config }
    }

    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            match prune_once(&self.store, &self.config).await {
                Ok(p) if p.rows > 0 => tracing::info!(
                    rows = p.rows,
                    batches = p.batches,
                    more = p.more,
                    retention_days = self.config.retention_days,
                    "flag-usage rows past the retention deleted"
                ),
                Ok(_) => {}
                // Next pass tries again; nothing is lost by waiting.
                Err(e) => tracing::warn!(error = %e, "flag-usage retention pass failed"),
            }
        }
    }
}
