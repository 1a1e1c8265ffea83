//! The I/O behind health: gather [`HealthInputs`] from the store, probe the store, remember the
//! last status to announce transitions ([`HealthMonitor`]), and what the `/health/*` endpoints
//! look at ([`HealthEndpoints`]; the endpoints themselves are in [`crate::health_api`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagstone_store::queue::{self, JobState};
use flagstone_store::{PageRequest, Store, StoreError};
use tokio::sync::broadcast;

use crate::catalogue::HEALTH_DEGRADED;
use crate::health::{
    decide, transition, unreachable, DocumentsLoaded, HealthInputs, HealthReport, HealthTransition,
    PublisherState, Readiness, ReadinessRule, Status, Thresholds,
};

/// How long the store gets to answer a readiness probe.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads what the health decision needs: the queue's status and its parked jobs.
pub async fn gather(store: &Store) -> Result<HealthInputs, StoreError> {
    let now = store.clock().now_ms();
    let mut tx = store.read().await?;
    let status = queue::status(&mut tx, now).await?;
    let parked = queue::jobs(&mut tx, Some(JobState::Parked), PageRequest::new(1, 100)).await?;
    Ok(HealthInputs::from_queue(&status, &parked.results, now))
}

/// Whether the store begins a transaction within [`STORE_PROBE_TIMEOUT`].
pub async fn store_reachable(store: &Store) -> bool {
    matches!(
        tokio::time::timeout(STORE_PROBE_TIMEOUT, store.read()).await,
        Ok(Ok(_))
    )
}

/// Decides health with the configured thresholds and announces every change of status: in the
/// log, in `flagstone_health_degraded`, and to [`HealthMonitor::subscribe`]rs (the alert hook).
pub struct HealthMonitor {
    thresholds: Thresholds,
    last: Mutex<Option<Status>>,
    alerts: broadcast::Sender<HealthTransition>,
}

impl HealthMonitor {
    pub fn new(thresholds: Thresholds) -> Arc<HealthMonitor> {
        Arc::new(HealthMonitor {
            thresholds,
            last: Mutex::new(None),
            alerts: broadcast::channel(16).0,
        })
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Every transition from now on (ok → degraded and back), for alert delivery.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthTransition> {
        self.alerts.subscribe()
    }

    /// Decides on `inputs` and records the result; returns the report and, if the status
    /// changed, the transition (already announced).
    pub fn record(&self, inputs: &HealthInputs) -> (HealthReport, Option<HealthTransition>) {
        let report = decide(inputs, &self.thresholds);
        let t = self.note(&report);
        (report, t)
    }

    /// Gathers from `store`, decides and records. A store that cannot be read is a degraded
    /// report.
    pub async fn check(&self, store: &Store) -> HealthReport {
        match gather(store).await {
            Ok(inputs) => self.record(&inputs).0,
            Err(e) => {
                let report = unreachable(&e.to_string());
                self.note(&report);
                report
            }
        }
    }

    fn note(&self, report: &HealthReport) -> Option<HealthTransition> {
        let mut last = self.last.lock().expect("health lock");
        let t = transition(*last, report);
        *last = Some(report.status);
        drop(last);
        let degraded = report.status == Status::Degraded;
        metrics::gauge!(HEALTH_DEGRADED).set(if degraded { 1.0 } else { 0.0 });
        if let Some(t) = &t {
            let reasons: Vec<&str> = report.reasons().map(|c| c.message.as_str()).collect();
            if degraded {
                tracing::warn!(reasons = ?reasons, "health degraded");
            } else {
                tracing::info!("health back to ok");
            }
            // Nobody subscribed is fine: alerts are optional.
            let _ = self.alerts.send(t.clone());
        }
        t
    }
}

/// What a role's documents look like right now (`None`: the role serves no SDK API).
pub type DocumentsProbe = Arc<dyn Fn() -> DocumentsLoaded + Send + Sync>;

/// What a role's document publisher looks like right now (`--documents-nats`).
pub type PublisherProbe = Arc<dyn Fn() -> PublisherState + Send + Sync>;

/// The health endpoints of one process.
#[derive(Clone)]
pub struct HealthEndpoints {
    pub store: Store,
    pub monitor: Arc<HealthMonitor>,
    pub documents: Option<DocumentsProbe>,
    /// The role's NATS document publisher, if it runs one (reported, not required).
    pub publisher: Option<PublisherProbe>,
    pub rule: ReadinessRule,
}

impl HealthEndpoints {
    /// Readiness as of now.
    pub async fn readiness(&self) -> Readiness {
        Readiness {
            store_reachable: store_reachable(&self.store).await,
            documents: self.documents.as_ref().map(|d| d()),
        }
    }

    /// The document publisher's state as of now, if the role runs one.
    pub fn publisher(&self) -> Option<PublisherState> {
        self.publisher.as_ref().map(|p| p())
    }
}
