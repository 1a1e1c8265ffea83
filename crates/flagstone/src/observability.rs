//! How each role is observed: the `--metrics-*` and `--health-*` options, and [`observe`],
//! which adds `/metrics`, `/health/*` and request metrics to a role's router and starts the
//! gauge exporter. The logic lives in `flagstone-observe`; this module only wires it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use flagstone_observe::health::{ReadinessRule, Thresholds};
use flagstone_observe::probe::{DocumentsProbe, PublisherProbe};
use flagstone_observe::{HealthEndpoints, HealthMonitor, MetricsAccess, Role};
use flagstone_store::Store;

/// Metrics and health options shared by every role.
#[derive(clap::Args, Debug, Clone)]
pub struct ObserveOptions {
    /// Serve `/metrics` (and `/health/*`) on this address instead of the main listener. The
    /// standalone worker has no other listener: without it, it exports nothing.
    #[arg(long, env = "FLAGSTONE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on `/metrics`.
    #[arg(long, env = "FLAGSTONE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    #[command(flatten)]
    pub health: HealthThresholdArgs,
}

/// When `/health/status` (and `flagstone status`) turns degraded.
#[derive(clap::Args, Debug, Clone)]
pub struct HealthThresholdArgs {
    /// Degraded past this many publish jobs pending or running.
    #[arg(long, env = "FLAGSTONE_HEALTH_MAX_QUEUE_DEPTH", default_value_t = Thresholds::default().max_queue_depth)]
    pub health_max_queue_depth: i64,
    /// …past this age of the oldest pending publish request, in seconds.
    #[arg(long, env = "FLAGSTONE_HEALTH_MAX_OLDEST_PENDING_SECS", default_value_t = Thresholds::default().max_oldest_pending_secs)]
    pub health_max_oldest_pending_secs: i64,
    /// …past this many parked publish jobs (0: any parked job degrades).
    #[arg(long, env = "FLAGSTONE_HEALTH_MAX_PARKED", default_value_t = Thresholds::default().max_parked)]
    pub health_max_parked: i64,
    /// …when any environment has waited longer than this for its document, in seconds.
    #[arg(long, env = "FLAGSTONE_HEALTH_MAX_STALENESS_SECS", default_value_t = Thresholds::default().max_staleness_secs)]
    pub health_max_staleness_secs: i64,
}

impl HealthThresholdArgs {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            max_queue_depth: self.health_max_queue_depth,
            max_oldest_pending_secs: self.health_max_oldest_pending_secs,
            max_parked: self.health_max_parked,
            max_staleness_secs: self.health_max_staleness_secs,
        }
    }
}

impl ObserveOptions {
    fn thresholds(&self) -> Thresholds {
        self.health.thresholds()
    }

    pub(crate) fn access(&self) -> MetricsAccess {
        match self.metrics_token.as_deref() {
            Some(t) if !t.is_empty() => MetricsAccess::bearer(t),
            _ => MetricsAccess::open(),
        }
    }
}

/// A role's observability, started.
pub struct Observed {
    /// The role's router with `/health/*` and `/metrics` (unless on its own address); request
    /// metrics are added by `serve::with_common_routes`.
    pub app: Router,
    /// Where health transitions can be subscribed (the `QUEUE_HEALTH` alert already is).
    #[allow(dead_code)]
    pub monitor: Arc<HealthMonitor>,
}

/// Installs the metrics recorder for `role` (every series at zero), starts the gauge exporter
/// and adds health and metrics routes to `app`. With `--metrics-addr`, `/metrics` and
/// `/health/*` are (also) served on that address, behind the same transport limits as the main
/// listener (`http`: header and idle timeouts, connection cap): a scraper's port is no softer a
/// target than the public one. `documents` is the role's edge, if any; `publisher` its NATS
/// document publisher (`--documents-nats`), if any.
pub async fn observe(
    role: Role,
    store: &Store,
    opts: &ObserveOptions,
    http: &crate::transport::HttpOptions,
    documents: Option<DocumentsProbe>,
    publisher: Option<PublisherProbe>,
    app: Router,
) -> anyhow::Result<Observed> {
    let handle = flagstone_observe::install(role);
    let monitor = HealthMonitor::new(opts.thresholds());
    // Roles that run the worker deliver the health alert (the store makes sure one transition
    // is alerted once however many of them see it); subscribed before the first check.
    if matches!(role, Role::Serve | Role::Worker) {
        flagstone_observe::alerts::spawn(store.clone(), &monitor);
    }
    flagstone_observe::gauges::spawn_exporter(store.clone(), monitor.clone(), handle.clone());
    let health = flagstone_observe::health_router(HealthEndpoints {
        store: store.clone(),
        monitor: monitor.clone(),
        rule: match role {
            Role::Edge => ReadinessRule::DocumentsSuffice,
            Role::Serve | Role::Worker => ReadinessRule::StoreRequired,
        },
        documents,
        publisher,
    });
    let metrics = flagstone_observe::metrics_router(handle, opts.access());
    let app = match opts.metrics_addr {
        Some(addr) => {
            serve_side(addr, metrics.merge(health.clone()), http).await?;
            app.merge(health)
        }
        None => app.merge(health).merge(metrics),
    };
    Ok(Observed { app, monitor })
}

/// Serves `side` (`/metrics` and `/health/*`) on `--metrics-addr`, with request metrics, behind
/// the same transport limits as the main listener. Returns once it listens; it serves until
/// the process exits (the main listener's shutdown ends the process), so health stays
/// answerable while the role drains.
pub async fn serve_side(
    addr: SocketAddr,
    side: Router,
    http: &crate::transport::HttpOptions,
) -> anyhow::Result<()> {
    let side = flagstone_observe::http::with_request_metrics(side);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // The bound address: with port 0 this is how to find the port.
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "metrics and health listening on {addr}");
    let http = http.clone();
    tokio::spawn(async move {
        crate::transport::serve(
            listener,
            crate::transport::Listener::Metrics,
            side,
            &http,
            std::future::pending(),
        )
        .await;
    });
    Ok(())
}
