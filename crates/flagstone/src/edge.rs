//! `flagstone edge`: an SDK API node alone. It serves Flagsmith's SDK endpoints from documents
//! it holds in memory, follows publishes (PostgreSQL `LISTEN/NOTIFY` plus a periodic check),
//! keeps its last good documents in a cache directory so a restart can serve while the store
//! is unreachable, and reports how stale it is at `/health/readiness` (ready while it has
//! documents to serve, even with the store unreachable). It listens at once: the cache
//! directory is read behind it, and readiness says so (`loading_cache`). Any number can run.
//! [`start`] is also what `flagstone serve` uses to run the edge in-process. With `--upstream`
//! it follows another Flagstone over HTTP instead of the database ([`crate::edge_upstream`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use flagstone_edge::follow::EdgeHealth;
use flagstone_edge::identity_cache::IdentityCache;
use flagstone_edge::{EdgeConfig, EdgeState, Follower, FollowerConfig, PublishFeed, Registry};
use flagstone_observe::health::DocumentsLoaded;
use flagstone_observe::probe::DocumentsProbe;
use flagstone_store::{Backend, Store};

use crate::db_args::DbArgs;

#[derive(clap::Args, Debug)]
pub struct EdgeArgs {
    /// Address to listen on.
    #[arg(long, env = "FLAGSTONE_BIND", default_value = "0.0.0.0:8000")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub edge: EdgeOptions,
    #[command(flatten)]
    pub upstream: crate::edge_upstream::UpstreamOptions,
    #[command(flatten)]
    pub nats: crate::edge_nats::NatsEdgeOptions,
    #[command(flatten)]
    pub http: crate::transport::HttpOptions,
    #[command(flatten)]
    pub observe: crate::observability::ObserveOptions,
}

/// Edge options shared by `edge` and `serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct EdgeOptions {
    /// Where the last good documents are kept, to serve from after a restart while the store is
    /// unreachable.
    #[arg(
        long,
        env = "FLAGSTONE_EDGE_CACHE_DIR",
        default_value = "./flagstone-cache"
    )]
    pub edge_cache_dir: PathBuf,
    /// How often every environment's published revision is checked, in milliseconds (the safety
    /// net behind publish notifications).
    #[arg(long, env = "FLAGSTONE_EDGE_POLL_MS", default_value_t = 2000)]
    pub edge_poll_ms: u64,
    /// Identities (traits and identity overrides) cached per edge, at most.
    #[arg(
        long,
        env = "FLAGSTONE_EDGE_IDENTITY_CACHE_ENTRIES",
        default_value_t = 100_000
    )]
    pub edge_identity_cache_entries: usize,
    /// Estimated memory the identity cache may hold, in MiB (least recently used identities are
    /// evicted beyond it).
    #[arg(long, env = "FLAGSTONE_EDGE_IDENTITY_CACHE_MIB", default_value_t = 64)]
    pub edge_identity_cache_mib: usize,
    /// Open real-time (SSE) subscriptions per edge, at most; past it subscribers get 503.
    #[arg(
        long,
        env = "FLAGSTONE_EDGE_SSE_MAX_CONNECTIONS",
        default_value_t = 2_000
    )]
    pub edge_sse_max_connections: usize,
    /// Open real-time (SSE) subscriptions per environment on one edge, at most; past it that
    /// environment's new subscribers get 503.
    #[arg(
        long,
        env = "FLAGSTONE_EDGE_SSE_MAX_PER_ENVIRONMENT",
        default_value_t = 1_000
    )]
    pub edge_sse_max_per_environment: usize,
    /// Origins browsers may call the SDK API from: `*` (any) or a comma-separated list of
    /// `scheme://host[:port]`. The admin API never answers cross-origin requests.
    #[arg(long, env = "FLAGSTONE_EDGE_CORS_ALLOWED_ORIGINS", default_value = "*")]
    pub edge_cors_allowed_origins: flagstone_edge::cors::CorsOrigins,
    /// How often flag usage counted in memory is written to the store, in seconds (the
    /// resolution of `last_evaluated_at`; counts not yet written are lost if the process dies).
    #[arg(
        long,
        env = "FLAGSTONE_EDGE_USAGE_FLUSH_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub edge_usage_flush_seconds: u64,
    /// New identities one edge creates per environment and minute, at most (a burst of this
    /// many, then this rate); past it identify answers 429 naming the limit. 0: no bound.
    #[arg(
        long,
        env = "FLAGSTONE_EDGE_MAX_NEW_IDENTITIES_PER_MINUTE",
        default_value_t = 60_000
    )]
    pub edge_max_new_identities_per_minute: u32,
    /// Memory for compiled environments, in MiB (estimated). Every environment served keeps
    /// its compressed document; its compiled form (what SDK requests are answered from) is
    /// built on its first request and kept while it fits, the least recently used evicted
    /// first. Beyond it an evicted environment's next request compiles it again.
    #[arg(
        long,
        env = "FLAGSTONE_EDGE_MEMORY_BUDGET_MIB",
        default_value_t = 128,
        value_parser = clap::value_parser!(u64).range(1..=1_048_576)
    )]
    pub edge_memory_budget_mib: u64,
}

/// An empty registry with the options' memory budget (for every kind of edge).
pub fn registry(opts: &EdgeOptions) -> Arc<Registry> {
    let bytes =
        usize::try_from(opts.edge_memory_budget_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let registry = Arc::new(Registry::with_memory_budget(bytes));
    spawn_memory_gauges(registry.clone());
    registry
}

/// Exports the registry's memory use and hit rate every second (weakly held: it ends with
/// the registry).
fn spawn_memory_gauges(registry: Arc<Registry>) {
    let weak = Arc::downgrade(&registry);
    flagstone_edge::metrics::export_memory(&registry);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(registry) = weak.upgrade() else {
                return;
            };
            flagstone_edge::metrics::export_memory(&registry);
        }
    });
}

/// A running edge: its SDK router, what its readiness looks at, and its usage flusher (to
/// write the last counts at shutdown).
pub struct Edge {
    pub router: Router,
    pub documents: DocumentsProbe,
    pub usage: Arc<flagstone_edge::usage::UsageFlusher>,
}

/// Starts loading the published documents (the cache directory, then the store) and following,
/// in the background: the edge can listen at once. Call inside the runtime.
pub async fn start(store: Store, feed: PublishFeed, opts: &EdgeOptions) -> Edge {
    let registry = registry(opts);
    let follower = Follower::start(
        store.clone(),
        registry.clone(),
        FollowerConfig {
            poll_interval: Duration::from_millis(opts.edge_poll_ms.max(100)),
            cache_dir: Some(opts.edge_cache_dir.clone()),
        },
        feed,
    )
    .await;
    log_when_loaded(registry.clone());
    let config = edge_config(opts);
    let mut state = EdgeState::new(store, registry.clone(), config);
    state.health = follower.health.clone();
    spawn_gauges(follower.clone(), registry.clone(), state.identities.clone());
    let health = follower.health.clone();
    let documents: DocumentsProbe = Arc::new(move || documents_loaded(&registry, &health));
    Edge {
        usage: state.usage.clone(),
        router: flagstone_edge::router(state),
        documents,
    }
}

/// What readiness reports of an edge's documents.
pub(crate) fn documents_loaded(registry: &Registry, health: &EdgeHealth) -> DocumentsLoaded {
    let initial = registry.initial_load();
    DocumentsLoaded {
        loaded: !initial.loading,
        environments: registry.len(),
        serving_from_cache: health.serving_from_cache(),
        staleness_seconds: health.staleness_seconds(),
        loading_cache: initial.reading_cache,
        cache_loaded: initial.from_cache,
    }
}

/// Logs when the initial load (begun before the edge listens) has finished.
fn log_when_loaded(registry: Arc<Registry>) {
    let started = std::time::Instant::now();
    tokio::spawn(async move {
        registry.initial_load_finished().await;
        let initial = registry.initial_load();
        tracing::info!(
            environments = registry.len(),
            from_cache = initial.from_cache,
            seconds = started.elapsed().as_secs_f64(),
            "edge loaded its documents"
        );
    });
}

/// The SDK API's tunables from the options.
pub(crate) fn edge_config(opts: &EdgeOptions) -> EdgeConfig {
    EdgeConfig {
        identity_cache_capacity: opts.edge_identity_cache_entries,
        identity_cache_max_bytes: opts.edge_identity_cache_mib.saturating_mul(1 << 20),
        sse_caps: flagstone_edge::sse_slots::SseCaps {
            per_environment: opts.edge_sse_max_per_environment,
            per_server: opts.edge_sse_max_connections,
        },
        cors_origins: opts.edge_cors_allowed_origins.clone(),
        usage_flush_interval: Duration::from_secs(opts.edge_usage_flush_seconds),
        max_new_identities_per_minute: opts.edge_max_new_identities_per_minute,
        ..EdgeConfig::default()
    }
}

/// Exports how many environments this edge serves, how stale it may be and what its identity
/// cache holds.
fn spawn_gauges(follower: Arc<Follower>, registry: Arc<Registry>, identities: Arc<IdentityCache>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics::gauge!("flagstone_edge_environments").set(registry.len() as f64);
            metrics::gauge!(flagstone_edge::metrics::SSE_SUBSCRIBERS)
                .set(registry.subscribers() as f64);
            if let Some(s) = follower.health.staleness_seconds() {
                metrics::gauge!("flagstone_edge_staleness_seconds").set(s);
            }
            let reachable = if follower.health.store_reachable() {
                1.0
            } else {
                0.0
            };
            metrics::gauge!("flagstone_edge_store_reachable").set(reachable);
            let (entries, bytes) = identities.usage();
            metrics::gauge!("flagstone_edge_identity_cache_entries").set(entries as f64);
            metrics::gauge!("flagstone_edge_identity_cache_bytes").set(bytes as f64);
        }
    });
}

pub async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    // Record from the first moment (the initial load and first publishes included).
    flagstone_observe::install(flagstone_observe::Role::Edge);
    if args.nats.from_nats.is_some() {
        return crate::edge_nats::run(args).await;
    }
    if args.upstream.upstream.is_some() {
        return crate::edge_upstream::run(args).await;
    }
    let store = args.db.open_or_lazy().await?;
    let feed = match store.backend() {
        Backend::Postgres => PublishFeed::Postgres,
        // A separate edge on SQLite has no notification channel: the periodic check follows.
        Backend::Sqlite => PublishFeed::PollOnly,
    };
    let edge = start(store.clone(), feed, &args.edge).await;
    let observed = crate::observability::observe(
        flagstone_observe::Role::Edge,
        &store,
        &args.observe,
        &args.http,
        Some(edge.documents),
        None,
        edge.router,
    )
    .await?;
    let app = crate::serve::with_common_routes(observed.app);
    crate::serve::serve_http(args.bind, app, &args.http).await?;
    edge.usage.flush().await;
    store.close().await;
    Ok(())
}
