//! `flagstone edge --upstream <URL> --upstream-key <key>`: an edge without database access. It
//! follows another Flagstone (the core, or an edge following one) over HTTP, serves its last
//! good documents from the cache directory from the moment it starts (read behind the
//! listener), sends traits and flag usage back over HTTP, and serves the edge-follower API
//! itself, so edges chain (docs/topologies.md). Its `/health/readiness` reports whether the
//! upstream is reachable and how stale it may be; `/metrics` the same as gauges. It starts as
//! every database-less edge does ([`crate::edge_remote`]).

use std::sync::Arc;
use std::time::Duration;

use flagstone_edge::follow::EdgeHealth;
use flagstone_edge::upstream::{Client, UpstreamConfig, UpstreamFollower};
use serde::Serialize;

use crate::edge::EdgeArgs;
use crate::edge_remote::Following;

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

/// What `/health/readiness` says of the upstream (beside what every edge says).
#[derive(Serialize)]
pub(crate) struct UpstreamStatus {
    upstream_reachable: bool,
    /// Environments whose revision announced by the upstream is not served yet.
    environments_behind: usize,
    /// The largest revision lag of one environment.
    max_revision_lag: i64,
}

impl Following for UpstreamFollower {
    type Status = UpstreamStatus;

    fn health(&self) -> Arc<EdgeHealth> {
        self.health.clone()
    }

    fn in_step(&self) -> bool {
        self.health.store_reachable()
    }

    fn status(&self) -> UpstreamStatus {
        let lag = self.lag();
        UpstreamStatus {
            upstream_reachable: self.health.store_reachable(),
            environments_behind: lag.environments_behind,
            max_revision_lag: lag.max_revisions,
        }
    }

    fn export_gauges(&self) {
        use flagstone_edge::metrics as m;
        let reachable = self.health.store_reachable();
        metrics::gauge!(m::UPSTREAM_REACHABLE).set(if reachable { 1.0 } else { 0.0 });
        let lag = self.lag();
        metrics::gauge!(m::UPSTREAM_ENVIRONMENTS_BEHIND).set(lag.environments_behind as f64);
        metrics::gauge!(m::UPSTREAM_REVISION_LAG_MAX).set(lag.max_revisions as f64);
    }
}

pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
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
    tracing::info!(upstream = %url, "edge following an upstream over HTTP (reading its cache directory)");
    crate::edge_remote::serve(&args, client, registry, follower).await
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
