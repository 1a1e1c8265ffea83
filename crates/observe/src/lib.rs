//! What an operator sees of Flagstone (docs/observability.md):
//! - [`alerts`]: health transitions delivered as `QUEUE_HEALTH` webhook events;
//! - [`catalogue`]: every metric's name and description, the Prometheus recorder, and every
//!   series registered at zero when a process starts;
//! - [`http`]: request metrics by route template;
//! - [`endpoint`]: `GET /metrics`, optionally behind a bearer token;
//! - [`gauges`]: the periodic exporter of queue, per-environment and pool gauges;
//! - [`health`]: the health decision as a pure function, readiness, transitions (the alert hook);
//! - [`probe`]: gathering health inputs from the store;
//! - [`health_api`]: the `/health/*` endpoints and their OpenAPI description;
//! - [`logging`]: text or JSON logs.

pub mod alerts;
pub mod catalogue;
pub mod endpoint;
pub mod gauges;
pub mod health;
pub mod health_api;
pub mod http;
pub mod logging;
pub mod probe;

pub use catalogue::{install, Role};
pub use endpoint::{metrics_router, MetricsAccess};
pub use health::{HealthReport, HealthTransition, Status, Thresholds};
pub use health_api::health_router;
pub use probe::{HealthEndpoints, HealthMonitor};
