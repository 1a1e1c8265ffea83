//! Flagstone's SDK API (the edge): Flagsmith's SDK endpoints, served from compiled documents held
//! in memory that follow the store's publishes. SQL is never on a request's path except for
//! identity data (cached) and the identity overrides streamed with the environment document.
//!
//! - [`registry`]: the environments served: every published revision held compressed
//!   ([`published`]), compiled snapshots kept within a memory budget ([`resident`]).
//! - [`follow`]: loading and following published documents, with a local last-good cache
//!   ([`cache_writer`]).
//! - [`routes`]: `/api/v1/flags/`, `/identities/`, `/environment-document/`, `/analytics/flags/`,
//!   `/sse/environments/{key}/stream`, and OpenFeature's OFREP (`/ofrep/v1/evaluate/flags[/{key}]`);
//!   plus the edge-follower API (`/api/v1/edge/…`) that lets other edges follow this one.
//! - [`upstream`]: an edge without database access, following another Flagstone over HTTP.
//! - [`Source`]: where an edge reads identity data and writes traits and usage (the store, or
//!   its upstream).

pub mod auth;
pub mod cache_writer;
pub mod cors;
pub mod error;
pub mod follow;
pub mod follower_keys;
pub mod identity_cache;
pub mod metrics;
pub mod new_identities;
pub mod project_limits;
pub mod published;
pub mod query;
pub mod registry;
pub mod resident;
mod routes;
pub mod snapshot;
pub mod sse_slots;
pub mod traits_writer;
pub mod upstream;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use flagstone_store::Store;

pub use follow::{Follower, FollowerConfig, PublishFeed};
pub use registry::Registry;

/// Tunables of an edge node.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Identities cached per edge.
    pub identity_cache_capacity: usize,
    /// Estimated heap bytes the identity cache may hold (least recently used identities are
    /// evicted beyond it).
    pub identity_cache_max_bytes: usize,
    /// How long a cached identity is trusted (other edges may write its traits).
    pub identity_cache_ttl: Duration,
    /// Trait writes waiting to be persisted before new ones are dropped.
    pub trait_queue_capacity: usize,
    /// SSE keep-alive interval.
    pub sse_keep_alive: Duration,
    /// Open SSE subscriptions allowed, per environment and per edge.
    pub sse_caps: sse_slots::SseCaps,
    /// Origins browsers may call the SDK API from.
    pub cors_origins: cors::CorsOrigins,
    /// How often flag usage counted in memory is written to the store.
    pub usage_flush_interval: Duration,
    /// New identities this edge creates per environment and minute (0: no bound).
    pub max_new_identities_per_minute: u32,
    /// How often the revision stream of edges following this one carries a heartbeat.
    pub follower_heartbeat: Duration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            identity_cache_capacity: 100_000,
            identity_cache_max_bytes: 64 << 20,
            identity_cache_ttl: Duration::from_secs(10),
            trait_queue_capacity: 10_000,
            sse_keep_alive: Duration::from_secs(15),
            sse_caps: sse_slots::SseCaps::default(),
            cors_origins: cors::CorsOrigins::Any,
            usage_flush_interval: Duration::from_secs(10),
            max_new_identities_per_minute: 60_000,
            follower_heartbeat: Duration::from_secs(5),
        }
    }
}

/// Where an edge reads what is not in its documents (identities, server-side keys, project
/// limits) and writes what SDKs send (traits, flag usage).
#[derive(Clone)]
pub enum Source {
    /// The database, directly (`serve`, and `edge` with a database URL).
    Store(Store),
    /// Another Flagstone over HTTP (`edge --upstream`): no database access at all.
    Upstream(Arc<upstream::Client>),
}

impl Source {
    /// The store, when this edge has one.
    pub fn store(&self) -> Option<&Store> {
        match self {
            Source::Store(s) => Some(s),
            Source::Upstream(_) => None,
        }
    }
}

/// Everything the SDK handlers share.
#[derive(Clone)]
pub struct EdgeState {
    pub source: Source,
    pub registry: Arc<Registry>,
    pub server_keys: Arc<auth::ServerKeys>,
    /// Credentials of edges following this one ([`follower_keys`]).
    pub followers: Arc<follower_keys::FollowerKeys>,
    /// How current this node's documents are (told to edges following it in heartbeats); set
    /// by whoever starts the node's follower.
    pub health: Arc<follow::EdgeHealth>,
    pub identities: Arc<identity_cache::IdentityCache>,
    pub traits: traits_writer::TraitWriter,
    pub sse: Arc<sse_slots::SseSlots>,
    pub limits: Arc<project_limits::ProjectLimits>,
    /// Writes flag usage in batches ([`usage`]); `flush()` writes at once.
    pub usage: Arc<usage::UsageFlusher>,
    /// Bounds the identities created per environment and minute ([`new_identities`]).
    pub new_identities: Arc<new_identities::NewIdentityLimiter>,
    /// Held across an `increment-value` request's read and write, so that increments sent to
    /// one edge add up rather than overwrite each other.
    pub increments: Arc<tokio::sync::Mutex<()>>,
    pub config: EdgeConfig,
}

impl EdgeState {
    /// An edge on the store. Must be called inside a Tokio runtime (it starts the trait writer).
    pub fn new(store: Store, registry: Arc<Registry>, config: EdgeConfig) -> EdgeState {
        EdgeState::with_source(Source::Store(store), registry, config)
    }

    /// An edge reading and writing through `source`. Must be called inside a Tokio runtime.
    pub fn with_source(source: Source, registry: Arc<Registry>, config: EdgeConfig) -> EdgeState {
        let usage = usage::UsageFlusher::new(source.clone(), registry.clone());
        usage.spawn(config.usage_flush_interval);
        EdgeState {
            usage,
            new_identities: Arc::new(new_identities::NewIdentityLimiter::new(
                config.max_new_identities_per_minute,
            )),
            traits: traits_writer::TraitWriter::spawn(source.clone(), config.trait_queue_capacity),
            followers: Arc::default(),
            health: Arc::default(),
            identities: Arc::new(identity_cache::IdentityCache::new(
                config.identity_cache_capacity,
                config.identity_cache_max_bytes,
                config.identity_cache_ttl,
            )),
            server_keys: Arc::default(),
            increments: Arc::default(),
            sse: Arc::new(sse_slots::SseSlots::new(config.sse_caps)),
            limits: Arc::new(project_limits::ProjectLimits::new(
                config.identity_cache_ttl,
            )),
            registry,
            source,
            config,
        }
    }
}

/// The SDK API router.
pub fn router(state: EdgeState) -> Router {
    routes::router(state)
}
