//! `flagstone edge --upstream <URL> --upstream-key <key>`: an edge without database access. It
//! follows another Flagstone (the core, or an edge following one) over HTTP, serves its last
//! good documents from the cache directory from the moment it starts, sends traits and flag
//! usage back over HTTP, and serves the edge-follower API itself, so edges chain
//! (docs/topologies.md). Its `/health/readiness` reports whether the upstream is reachable and
//! how stale it may be; `/metrics` the same as gauges.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flagstone_edge::upstream::{Client, UpstreamConfig, UpstreamFollower};
use flagstone_edge::{EdgeState, Registry, Source};
use serde::Serialize;

use crate::edge::EdgeArgs;

/// Following an upstream over HTTP.
#[derive(clap::Args, Debug, Clone)]
pub struct UpstreamOptions {
    /// Follow another Flagstone over HTTP instead of the database: its base URL
    /// (`https://flags.example.com`), the core or another edge. The database options are then
    /// unused: this edge never connects to a database.
    #[arg(long, env = "FLAGSTONE_UPSTREAM", value_parser = parse_upstream_url)]
    pub upstream: Option<String>,
    /// The organisation API key this edge presents to its upstream (`fsk_…`, created in the
    /// dashboard or with the admin API). It follows the environments where the key holds
    /// VIEW_ENVIRONMENT (an admin key: all of its organisation), read-only.
    #[arg(
        long,
        env = "FLAGSTONE_UPSTREAM_KEY",
        hide_env_values = true,
        requires = "upstream"
    )]
    pub upstream_key: Option<String>,
    /// Follow only these environments (comma-separated client keys); default: every one the
    /// key sees.
    #[arg(
        long,
        env = "FLAGSTONE_UPSTREAM_ENVIRONMENTS",
        value_delimiter = ',',
        requires = "upstream"
    )]
    pub upstream_environments: Vec<String>,
    /// Seconds without a heartbeat from the upstream (it sends one every 5 s) after which it
    /// is considered gone and reconnected to.
    #[arg(
        long,
        env = "FLAGSTONE_UPSTREAM_HEARTBEAT_TIMEOUT_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(6..=3600)
    )]
    pub upstream_heartbeat_timeout_secs: u64,
}

fn parse_upstream_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("must name a host".into());
    }
    if s.contains(['?', '#']) {
        return Err("must not have a query or fragment".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

#[derive(Clone)]
struct Health {
    follower: Arc<UpstreamFollower>,
    registry: Arc<Registry>,
}

/// What `/health/readiness` answers on an edge following an upstream.
#[derive(Serialize)]
struct Readiness {
    /// Ready while it has documents to serve (however stale) or is synchronised.
    ready: bool,
    upstream_reachable: bool,
    environments: usize,
    /// The upstream is not reachable: the documents are the last good copies.
    serving_from_cache: bool,
    /// Seconds since the upstream last confirmed what is served (`null`: never).
    staleness_seconds: Option<f64>,
    /// Environments whose revision announced by the upstream is not served yet.
    environments_behind: usize,
    /// The largest revision lag of one environment.
    max_revision_lag: i64,
}

async fn readiness(State(h): State<Health>) -> Response {
    let health = &h.follower.health;
    let lag = h.follower.lag();
    let environments = h.registry.len();
    let reachable = health.store_reachable();
    let body = Readiness {
        ready: environments > 0 || reachable,
        upstream_reachable: reachable,
        environments,
        serving_from_cache: health.serving_from_cache(),
        staleness_seconds: health.staleness_seconds(),
        environments_behind: lag.environments_behind,
        max_revision_lag: lag.max_revisions,
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
    let (Some(url), Some(key)) = (&args.upstream.upstream, &args.upstream.upstream_key) else {
        anyhow::bail!("--upstream needs --upstream-key (FLAGSTONE_UPSTREAM_KEY)");
    };
    let client = Arc::new(Client::new(url, key)?);
    let registry = crate::edge::registry(&args.edge);
    let wanted = &args.upstream.upstream_environments;
    let follower = UpstreamFollower::start(
        client.clone(),
        registry.clone(),
        UpstreamConfig {
            cache_dir: Some(args.edge.edge_cache_dir.clone()),
            environments: (!wanted.is_empty()).then(|| wanted.clone()),
            heartbeat_timeout: Duration::from_secs(args.upstream.upstream_heartbeat_timeout_secs),
            ..UpstreamConfig::default()
        },
    );
    tracing::info!(upstream = %url, cached = registry.len(), "edge following an upstream over HTTP");
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
    let side = health.clone().merge(metrics.clone());
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
fn spawn_gauges(follower: Arc<UpstreamFollower>, registry: Arc<Registry>) {
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
            let reachable = follower.health.store_reachable();
            metrics::gauge!(m::UPSTREAM_REACHABLE).set(if reachable { 1.0 } else { 0.0 });
            let lag = follower.lag();
            metrics::gauge!(m::UPSTREAM_ENVIRONMENTS_BEHIND).set(lag.environments_behind as f64);
            metrics::gauge!(m::UPSTREAM_REVISION_LAG_MAX).set(lag.max_revisions as f64);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::parse_upstream_url;

    #[test]
    fn upstream_urls_are_checked() {
        assert_eq!(
            parse_upstream_url("https://flags.example.com/").unwrap(),
            "https://flags.example.com"
        );
        assert!(parse_upstream_url("http://127.0.0.1:8000").is_ok());
        assert!(parse_upstream_url("flags.example.com").is_err());
        assert!(parse_upstream_url("https://").is_err());
        assert!(parse_upstream_url("https://x/?a=1").is_err());
    }
}
