//! `flagstone edge --from-nats <url> --upstream <core URL> --upstream-key <key>`: an edge
//! without database access whose documents come from the NATS key-value bucket the core
//! publishes to (`--documents-nats`), not from the core's HTTP revision stream. Identities are
//! read, and traits and flag usage sent back (batched, bounded, never on a request's path),
//! over HTTP to `--upstream`, as on an HTTP-upstream edge ([`crate::edge_upstream`]). It serves
//! its last good documents from the cache directory from the moment it starts (read behind the
//! listener), reports at `/health/readiness` whether NATS is reachable and how stale it may be,
//! and serves the edge-follower API itself, so HTTP edges can chain behind it
//! (docs/topologies.md). It starts as every database-less edge does ([`crate::edge_remote`]),
//! with the same memory budget (`--edge-memory-budget-mib`).

use std::sync::Arc;
use std::time::Duration;

use flagstone_edge::follow::EdgeHealth;
use flagstone_edge::upstream::Client;
use flagstone_nats::bucket::{parse_bucket_name, parse_nats_url};
use flagstone_nats::{NatsFollower, NatsFollowerConfig, DEFAULT_BUCKET};
use serde::Serialize;

use crate::edge::EdgeArgs;
use crate::edge_remote::Following;

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

/// What `/health/readiness` says of NATS (beside what every edge says).
#[derive(Serialize)]
pub(crate) struct NatsReadiness {
    nats_reachable: bool,
    /// Every entry of the bucket read since the last (re)connection.
    synchronised: bool,
    /// Entries of the bucket this edge could not use since it started.
    entries_rejected: u64,
}

impl Following for NatsFollower {
    type Status = NatsReadiness;

    fn health(&self) -> Arc<EdgeHealth> {
        self.health.clone()
    }

    fn in_step(&self) -> bool {
        self.status().synchronised
    }

    fn status(&self) -> NatsReadiness {
        let status = NatsFollower::status(self);
        NatsReadiness {
            nats_reachable: self.connected(),
            synchronised: status.synchronised,
            entries_rejected: status.entries_rejected,
        }
    }
}

pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    let (Some(nats), Some(url), Some(key)) = (
        &args.nats.from_nats,
        &args.upstream.upstream,
        &args.upstream.upstream_key,
    ) else {
        anyhow::bail!("--from-nats needs --upstream and --upstream-key (identities, traits and usage go over HTTP)");
    };
    let client = Arc::new(Client::new(url, key)?);
    let registry = crate::edge::registry(&args.edge);
    let follower = NatsFollower::start(
        registry.clone(),
        NatsFollowerConfig {
            cache_dir: Some(args.edge.edge_cache_dir.clone()),
            publisher_silence: Duration::from_secs(args.nats.nats_publisher_silence_secs),
            ..NatsFollowerConfig::new(nats, &args.nats.nats_bucket)
        },
    )
    .await?;
    tracing::info!(nats = %nats, bucket = %args.nats.nats_bucket, upstream = %url, "edge following a NATS bucket (reading its cache directory)");
    crate::edge_remote::serve(&args, client, registry, follower).await
}
