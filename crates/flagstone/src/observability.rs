//! The process's metrics recorder: installed once, rendered in Prometheus text format at
//! `/metrics` by every server role.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The Prometheus handle, installing the global recorder on first use. `None` if another
/// recorder was installed first (metrics are then not exported).
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the metrics recorder");
                None
            }
        })
        .clone()
}

/// Exports the publish queue's health every few seconds: depth by state, the oldest pending
/// request's age, and how many environments serve a document behind their revision. These are
/// the signals that would have shown the July 2023 incident in minutes instead of hours.
pub fn spawn_queue_gauges(store: flagstone_store::Store) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            let status = async {
                let mut tx = store.read().await?;
                flagstone_store::queue::status(&mut tx, store.clock().now_ms()).await
            }
            .await;
            match status {
                Ok(s) => {
                    for (state, n) in [
                        ("pending", s.pending),
                        ("running", s.running),
                        ("parked", s.parked),
                    ] {
                        metrics::gauge!("flagstone_publish_jobs", "state" => state).set(n as f64);
                    }
                    let age = s.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0;
                    metrics::gauge!("flagstone_publish_oldest_pending_seconds").set(age);
                    metrics::gauge!("flagstone_stale_environments")
                        .set(s.stale_environments as f64);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the publish queue's status"),
            }
        }
    });
}
