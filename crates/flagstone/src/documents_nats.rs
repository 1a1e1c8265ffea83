//! `--documents-nats <url>` on `serve` and `worker`: every published environment document is
//! also put in a NATS JetStream key-value bucket, for edges started with `--from-nats`
//! (`flagstone_nats::publish`, docs/topologies.md). Its state is in the role's
//! `/health/readiness` ([`probe`]) and `/metrics`.

use std::sync::Arc;

use flagstone_edge::PublishFeed;
use flagstone_nats::bucket::{parse_bucket_name, parse_nats_url};
use flagstone_nats::{Publisher, PublisherConfig, DEFAULT_BUCKET};
use flagstone_observe::health::PublisherState;
use flagstone_observe::probe::PublisherProbe;
use flagstone_store::Store;

#[derive(clap::Args, Debug, Clone)]
pub struct DocumentsNatsOptions {
    /// Also put every published environment document in a key-value bucket of this NATS
    /// JetStream server (`nats://host:4222`), for edges started with `--from-nats`. Publishing
    /// never holds up a build: NATS being unreachable leaves the bucket behind until it returns.
    #[arg(long, env = "FLAGSTONE_DOCUMENTS_NATS", value_parser = parse_nats_url)]
    pub documents_nats: Option<String>,
    /// The NATS key-value bucket of the documents (one key per environment, `env.<id>`).
    #[arg(
        long,
        env = "FLAGSTONE_NATS_BUCKET",
        default_value = DEFAULT_BUCKET,
        value_parser = parse_bucket_name
    )]
    pub nats_bucket: String,
}

impl DocumentsNatsOptions {
    /// Starts the publisher when `--documents-nats` is given.
    pub async fn start(
        &self,
        store: &Store,
        feed: PublishFeed,
    ) -> anyhow::Result<Option<Arc<Publisher>>> {
        let Some(url) = &self.documents_nats else {
            return Ok(None);
        };
        let config = PublisherConfig::new(url, &self.nats_bucket);
        Ok(Some(Publisher::start(store.clone(), feed, config).await?))
    }
}

/// What `/health/readiness` reports of the publisher (`documents_nats`).
pub fn probe(publisher: &Arc<Publisher>) -> PublisherProbe {
    let publisher = publisher.clone();
    Arc::new(move || {
        let s = publisher.status();
        PublisherState {
            connected: s.connected,
            in_step: s.in_step,
            last_put_at_ms: s.last_put_at_ms,
            last_in_step_at_ms: s.last_in_step_at_ms,
            documents_behind: s.documents_behind,
            documents_too_large: s.documents_too_large,
        }
    })
}
