//! The periodic exporter every role runs: the queue's gauges (depth by state, oldest pending
//! age, per-environment revision lag and staleness under a label cap), the webhook queue's
//! (depth by state, oldest pending age), the store pool, and the
//! health status (which announces transitions). Also the recorder's upkeep.

use std::sync::Arc;
use std::time::Duration;

use flagstone_store::queue::JobState;
use flagstone_store::webhooks::deliveries::{self, QueueStatus};
use flagstone_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::catalogue::{
    ENVIRONMENT_LABEL_CAP, OLDEST_PENDING_SECONDS, OTHER_ENVIRONMENTS, POOL_IN_USE, POOL_MAX,
    POOL_SIZE, POOL_WAITS_TOTAL, QUEUE_DEPTH, REVISION_LAG, STALENESS_SECONDS, STALE_ENVIRONMENTS,
    WEBHOOK_OLDEST_PENDING_SECONDS, WEBHOOK_QUEUE_DEPTH,
};
use crate::health::{HealthInputs, Lagging};
use crate::probe::{gather, HealthMonitor};

/// How often gauges are refreshed.
pub const EXPORT_INTERVAL: Duration = Duration::from_secs(5);

/// One `{environment}` series of the lag and staleness gauges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentSeries {
    /// The environment's id, or [`OTHER_ENVIRONMENTS`].
    pub label: String,
    pub revision_lag: i64,
    pub staleness_seconds: i64,
}

/// The per-environment series: the `cap` most stale environments (ties: the larger lag, then
/// the lower id) under their id, and one `_other` series summing the rest's lag and holding
/// their worst staleness. `_other` is always present (zero when nothing else lags).
pub fn environment_series(lagging: &[Lagging], cap: usize) -> Vec<EnvironmentSeries> {
    let mut sorted: Vec<&Lagging> = lagging.iter().collect();
    sorted.sort_by(|a, b| {
        b.staleness_seconds
            .cmp(&a.staleness_seconds)
            .then(b.revision_lag.cmp(&a.revision_lag))
            .then(a.environment_id.cmp(&b.environment_id))
    });
    let mut out: Vec<EnvironmentSeries> = sorted
        .iter()
        .take(cap)
        .map(|l| EnvironmentSeries {
            label: l.environment_id.to_string(),
            revision_lag: l.revision_lag,
            staleness_seconds: l.staleness_seconds,
        })
        .collect();
    let rest = sorted.iter().skip(cap);
    out.push(EnvironmentSeries {
        label: OTHER_ENVIRONMENTS.to_string(),
        revision_lag: rest.clone().map(|l| l.revision_lag).sum(),
        staleness_seconds: rest.map(|l| l.staleness_seconds).max().unwrap_or(0),
    });
    out
}

/// Sets the queue gauges from `inputs`.
pub fn export_queue(inputs: &HealthInputs) {
    for (state, n) in [
        (JobState::Pending, inputs.pending),
        (JobState::Running, inputs.running),
        (JobState::Parked, inputs.parked),
    ] {
        metrics::gauge!(QUEUE_DEPTH, "state" => state.as_str()).set(n as f64);
    }
    metrics::gauge!(OLDEST_PENDING_SECONDS).set(inputs.oldest_pending_secs.unwrap_or(0) as f64);
    metrics::gauge!(STALE_ENVIRONMENTS).set(inputs.lagging.len() as f64);
    for s in environment_series(&inputs.lagging, ENVIRONMENT_LABEL_CAP) {
        metrics::gauge!(REVISION_LAG, "environment" => s.label.clone()).set(s.revision_lag as f64);
        metrics::gauge!(STALENESS_SECONDS, "environment" => s.label)
            .set(s.staleness_seconds as f64);
    }
}

/// Sets the webhook queue's gauges from `s`.
pub fn export_webhooks(s: &QueueStatus) {
    for (state, n) in [
        ("pending", s.pending),
        ("running", s.running),
        ("parked", s.parked),
    ] {
        metrics::gauge!(WEBHOOK_QUEUE_DEPTH, "state" => state).set(n as f64);
    }
    metrics::gauge!(WEBHOOK_OLDEST_PENDING_SECONDS)
        .set(s.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0);
}

async fn webhook_status(store: &Store) -> Result<QueueStatus, flagstone_store::StoreError> {
    let mut tx = store.read().await?;
    deliveries::queue_status(&mut tx, store.clock().now_ms()).await
}

/// Sets the store pool gauges.
pub fn export_pool(store: &Store) {
    let p = store.pool_stats();
    metrics::gauge!(POOL_SIZE).set(p.size as f64);
    metrics::gauge!(POOL_IN_USE).set(p.in_use as f64);
    metrics::gauge!(POOL_MAX).set(p.max as f64);
    metrics::counter!(POOL_WAITS_TOTAL).absolute(p.waits);
}

/// Refreshes every gauge each [`EXPORT_INTERVAL`] until the runtime stops. While the store
/// cannot be read the last values are exported again (gauges not refreshed for a minute are
/// dropped, which is how environments that recovered leave the label set).
pub fn spawn_exporter(store: Store, monitor: Arc<HealthMonitor>, handle: Option<PrometheusHandle>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPORT_INTERVAL);
        let mut last = HealthInputs::default();
        let mut last_webhooks = QueueStatus::default();
        loop {
            tick.tick().await;
            if let Some(h) = &handle {
                h.run_upkeep();
            }
            export_pool(&store);
            match gather(&store).await {
                Ok(inputs) => {
                    monitor.record(&inputs);
                    last = inputs;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the publish queue's status");
                    monitor.check(&store).await;
                }
            }
            export_queue(&last);
            match webhook_status(&store).await {
                Ok(s) => last_webhooks = s,
                Err(e) => tracing::warn!(error = %e, "cannot read the webhook queue's status"),
            }
            export_webhooks(&last_webhooks);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(id: i64, revision_lag: i64, staleness_seconds: i64) -> Lagging {
        Lagging {
            environment_id: id,
            name: None,
            task_id: Some(id),
            job_state: Some(JobState::Pending),
            park_reason: None,
            revision_lag,
            staleness_seconds,
            attempts: None,
            last_error: None,
        }
    }

    #[test]
    fn nothing_lagging_is_one_zero_other_series() {
        assert_eq!(
            environment_series(&[], 20),
            vec![EnvironmentSeries {
                label: OTHER_ENVIRONMENTS.into(),
                revision_lag: 0,
                staleness_seconds: 0
            }]
        );
    }

    #[test]
    fn the_worst_get_labels_and_the_rest_aggregate() {
        let lagging: Vec<Lagging> = (1..=5).map(|i| lag(i, i, i * 10)).collect();
        let s = environment_series(&lagging, 2);
        let labels: Vec<&str> = s.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, vec!["5", "4", OTHER_ENVIRONMENTS]);
        assert_eq!(s[2].revision_lag, 1 + 2 + 3, "lag is summed");
        assert_eq!(s[2].staleness_seconds, 30, "staleness is the worst");
        // However many lag, the series count is the cap plus one.
        let many: Vec<Lagging> = (1..=1000).map(|i| lag(i, 1, i)).collect();
        assert_eq!(environment_series(&many, ENVIRONMENT_LABEL_CAP).len(), 21);
    }
}
