//! `flagstone edge --from-nats <url> --upstream <core URL> --upstream-key <key>`: an edge
//! without database access whose documents come from the NATS key-value bucket the core
//! publishes to (`--documents-nats`), not from the core's HTTP revision stream. Identities are
//! read, and traits and flag usage sent back (batched, bounded, never on a request's path),
//! over HTTP to `--upstream`, as on an HTTP-upstream edge ([`crate::edge_upstream`]). It serves
//! its last good documents from the cache directory from the moment it starts, reports at
//! `/health/readiness` whether NATS is reachable and how stale it may be, and serves the
//! edge-follower API itself, so HTTP edges can chain behind it (docs/topologies.md).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flagstone_edge::upstream::Client;
use flagstone_edge::{EdgeState, Registry, Source};
use flagstone_nats::bucket::{parse_bucket_name, parse_nats_url};
use flagstone_nats::{NatsFollower, NatsFollowerConfig, DEFAULT_BUCKET};
use serde::Serialize;

use crate::edge::EdgeArgs;

/// Following the documents in a NATS bucket.
#[derive(clap::Args, Debug, Clone)]
pub struct NatsEdgeOptions {
    /// Follow the documents the core puts in a NATS JetStream key-value bucket
    /// (`--documents-nats`) at this server (`nats://host:4222`) instead of the database. Needs
    /// `--upstream` and `--upstream-key`: identities are read, and traits and flag usage sent
    /// back, over HTTP to that Flagstone.
    #[arg(
        long,
        env = "FLAGSTONE_FROM_NATS",
        value_parser = parse_nats_url,
        requires_all = ["upstream", "upstream_key"]
    )]
    pub from_nats: Option<String>,
    /// The NATS key-value bucket of the documents (one key per environment, `env.<id>`).
    #[arg(
        long,
        env = "FLAGSTONE_NATS_BUCKET",
        default_value = DEFAULT_BUCKET,
        value_parser = parse_bucket_name
    )]
    pub nats_bucket: String,
    /// Seconds without a heartbeat from the core's publishers in the bucket (they write one
    /// every 5 s) after which this edge reports its documents as possibly stale.
    #[arg(
        long,
        env = "FLAGSTONE_NATS_PUBLISHER_SILENCE_SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(6..=3600)
    )]
    pub nats_publisher_silence_secs: u64,
}

#[derive(Clone)]
struct Health {
    follower: Arc<NatsFollower>,
    registry: Arc<Registry>,
}

/// What `/health/readiness` answers on an edge following a NATS bucket.
#[derive(Serialize)]
struct Readiness {
    /// Ready while it has documents to serve (however stale) or is synchronised.
    ready: bool,
    nats_reachable: bool,
    /// Every entry of the bucket read since the last (re)connection.
    synchronised: bool,
    environments: usize,
    /// NATS is unreachable, or no publisher has confirmed the bucket lately: the documents
    /// are the last good copies.
    serving_from_cache: bool,
    /// Seconds since a publisher last confirmed the bucket against the store (`null`: never).
    staleness_seconds: Option<f64>,
    /// Entries of the bucket this edge could not use since it started.
    entries_rejected: u64,
}

async fn readiness(State(h): State<Health>) -> Response {
    let health = &h.follower.health;
    let status = h.follower.status();
    let environments = h.registry.len();
    let body = Readiness {
        ready: environments > 0 || status.synchronised,
        nats_reachable: h.follower.connected(),
        synchronised: status.synchronised,
        environments,
        serving_from_cache: health.serving_from_cache(),
        staleness_seconds: health.staleness_seconds(),
        entries_rejected: status.entries_rejected,
    };
    let code = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    let handle = flagstone_observe::install(flagstone_observe::Role::Edge);
    let (Some(nats), Some(url), Some(key)) = (
        &args.nats.from_nats,
        &args.upstream.upstream,
        &args.upstream.upstream_key,
    ) else {
        anyhow::bail!("--from-nats needs --upstream and --upstream-key (identities, traits and usage go over HTTP)");
    };
    let client = Arc::new(Client::new(url, key)?);
    let registry = Arc::new(Registry::default());
    let follower = NatsFollower::start(
        registry.clone(),
        NatsFollowerConfig {
            cache_dir: Some(args.edge.edge_cache_dir.clone()),
            publisher_silence: Duration::from_secs(args.nats.nats_publisher_silence_secs),
            ..NatsFollowerConfig::new(nats, &args.nats.nats_bucket)
        },
    )
    .await?;
    tracing::info!(nats = %nats, bucket = %args.nats.nats_bucket, upstream = %url, cached = registry.len(), "edge following a NATS bucket");
    let mut state = EdgeState::with_source(
        Source::Upstream(client),
        registry.clone(),
        crate::edge::edge_config(&args.edge),
    );
    state.health = follower.health.clone();
    spawn_gauges(follower.clone(), registry.clone());
    let usage = state.usage.clone();
    let health = Router::new()
        .route("/health/liveness", get(|| async { "ok" }))
        .route("/health/readiness", get(readiness))
        .with_state(Health { follower, registry });
    let metrics = flagstone_observe::metrics_router(handle, args.observe.access());
    let side = health.clone().merge(metrics);
    let app = match args.observe.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "metrics and health listening");
            let side = flagstone_observe::http::with_request_metrics(side);
            let http = args.http.clone();
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
fn spawn_gauges(follower: Arc<NatsFollower>, registry: Arc<Registry>) {
    use flagstone_edge::metrics as m;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics::gauge!("flagstone_edge_environments").set(registry.len() as f64);
            metrics::gauge!(m::SSE_SUBSCRIBERS).set(registry.subscribers() as f64);
            if let Some(s) = follower.health.staleness_seconds() {
                metrics::gauge!("flagstone_edge_staleness_seconds").set(s);
            }
        }
    });
}
