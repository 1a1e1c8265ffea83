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
