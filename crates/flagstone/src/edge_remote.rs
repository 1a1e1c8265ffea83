//! What the edges without database access share (`edge --upstream`, [`crate::edge_upstream`];
//! `edge --from-nats`, [`crate::edge_nats`]): one start-up, [`serve`]. Each brings its follower,
//! started (its cache directory is read behind it, so the edge listens at once), and what its
//! readiness says of its source ([`Following`]); this serves the SDK API and the edge-follower
//! API, `/health/liveness`, `/health/readiness` and `/metrics` (on `--metrics-addr` if given),
//! and exports the gauges every edge has.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flagstone_edge::follow::EdgeHealth;
use flagstone_edge::upstream::Client;
use flagstone_edge::{EdgeState, Registry, Source};
use serde::Serialize;

use crate::edge::EdgeArgs;

/// A database-less edge's follower, as its start-up and readiness see it.
pub(crate) trait Following: Send + Sync + 'static {
    /// What `/health/readiness` says of the source beyond the fields every edge has.
    type Status: Serialize;
    /// How fresh what the edge serves is.
    fn health(&self) -> Arc<EdgeHealth>;
    /// In step with the source: ready even with nothing to serve.
    fn in_step(&self) -> bool;
    fn status(&self) -> Self::Status;
    /// Sets the source's own gauges (every 5 s).
    fn export_gauges(&self) {}
}

/// What `/health/readiness` answers on an edge without database access.
#[derive(Serialize)]
struct Readiness<S> {
    /// Ready once the initial load is done, while it has documents to serve (however stale)
    /// or is in step with its source.
    ready: bool,
    environments: usize,
    /// The source is not reachable or not confirmed lately: the documents are the last good
    /// copies.
    serving_from_cache: bool,
    /// Seconds since the source last confirmed what is served (`null`: never).
    staleness_seconds: Option<f64>,
    /// The cache directory is still being read (what is read is already served).
    loading_cache: bool,
    /// Documents read from the cache directory so far.
    cache_loaded: usize,
    #[serde(flatten)]
    source: S,
}

struct Health<F> {
    follower: Arc<F>,
    registry: Arc<Registry>,
}

impl<F> Clone for Health<F> {
    fn clone(&self) -> Self {
        Health {
            follower: self.follower.clone(),
            registry: self.registry.clone(),
        }
    }
}

async fn readiness<F: Following>(State(h): State<Health<F>>) -> Response {
    let health = h.follower.health();
    let initial = h.registry.initial_load();
    let environments = h.registry.len();
    let body = Readiness {
        ready: !initial.loading && (environments > 0 || h.follower.in_step()),
        environments,
        serving_from_cache: health.serving_from_cache(),
        staleness_seconds: health.staleness_seconds(),
        loading_cache: initial.reading_cache,
        cache_loaded: initial.from_cache,
        source: h.follower.status(),
    };
    let code = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Serves a database-less edge until SIGTERM/Ctrl-C: identities and server keys are read, and
/// traits and flag usage sent, through `client`; documents come from `follower` into
/// `registry` (built with [`crate::edge::registry`]). Flushes the last usage counts at the end.
pub(crate) async fn serve<F: Following>(
    args: &EdgeArgs,
    client: Arc<Client>,
    registry: Arc<Registry>,
    follower: Arc<F>,
) -> anyhow::Result<()> {
    let handle = flagstone_observe::install(flagstone_observe::Role::Edge);
    let mut state = EdgeState::with_source(
        Source::Upstream(client),
        registry.clone(),
        crate::edge::edge_config(&args.edge),
    );
    state.health = follower.health();
    spawn_gauges(follower.clone(), registry.clone());
    let usage = state.usage.clone();
    let health = Router::new()
        .route("/health/liveness", get(|| async { "ok" }))
        .route("/health/readiness", get(readiness::<F>))
        .with_state(Health { follower, registry });
    let metrics = flagstone_observe::metrics_router(handle, args.observe.access());
    let side = health.clone().merge(metrics);
    let app = match args.observe.metrics_addr {
        Some(addr) => {
            crate::observability::serve_side(addr, side, &args.http).await?;
            flagstone_edge::router(state).merge(health)
        }
        None => flagstone_edge::router(state).merge(side),
    };
    let app = crate::serve::with_common_routes(app);
    crate::serve::serve_http(args.bind, app, &args.http).await?;
    usage.flush().await;
    Ok(())
}

/// Exports how current this edge is.
fn spawn_gauges<F: Following>(follower: Arc<F>, registry: Arc<Registry>) {
    use flagstone_edge::metrics as m;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics::gauge!("flagstone_edge_environments").set(registry.len() as f64);
            metrics::gauge!(m::SSE_SUBSCRIBERS).set(registry.subscribers() as f64);
            if let Some(s) = follower.health().staleness_seconds() {
                metrics::gauge!("flagstone_edge_staleness_seconds").set(s);
            }
            follower.export_gauges();
        }
    });
}
