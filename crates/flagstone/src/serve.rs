//! `flagstone serve`: everything in one process on one database (by default `./flagstone.db`):
//! the admin API, the task processor and the SDK API (edge), on one port.

use std::net::SocketAddr;

use axum::Router;
use flagstone_edge::PublishFeed;
use flagstone_store::keys::{ensure_admin_key, AdminKeySetup};
use flagstone_store::Backend;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::db_args::DbArgs;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FLAGSTONE_BIND", default_value = "0.0.0.0:8000")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    /// The admin key (at least 16 characters). Without it, a key is generated on first start and
    /// printed once.
    #[arg(long, env = "FLAGSTONE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    #[command(flatten)]
    pub auth: crate::auth_args::AuthArgs,
    #[command(flatten)]
    pub invites: crate::invite_args::InviteArgs,
    #[command(flatten)]
    pub worker: crate::worker::WorkerOptions,
    #[command(flatten)]
    pub edge: crate::edge::EdgeOptions,
    #[command(flatten)]
    pub http: crate::transport::HttpOptions,
    #[command(flatten)]
    pub observe: crate::observability::ObserveOptions,
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookOptions,
    #[command(flatten)]
    pub nats: crate::documents_nats::DocumentsNatsOptions,
    /// Days a feature may be served to nobody before it is reported stale, where its project
    /// does not say (`stale_flags_limit_days`).
    #[arg(
        long,
        env = "FLAGSTONE_STALE_UNUSED_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(i64).range(1..=3650)
    )]
    pub stale_unused_days: i64,
    /// Days a feature may serve one fixed value everywhere before it is reported stale, where
    /// its project does not say (`stale_fixed_value_days`).
    #[arg(
        long,
        env = "FLAGSTONE_STALE_FIXED_VALUE_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(i64).range(1..=3650)
    )]
    pub stale_fixed_value_days: i64,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Bad mail settings stop the start, before anything is opened.
    let invitations = args.invites.invitations()?;
    // Record from the first moment (the initial load and first publishes included).
    flagstone_observe::install(flagstone_observe::Role::Serve);
    let store = args.db.open().await?;
    match ensure_admin_key(&store, args.admin_key.as_deref()).await? {
        AdminKeySetup::Generated(key) => {
            println!("Created the admin key (shown once; store it safely): {key}");
            println!("Use it as: Authorization: Api-Key {key}");
        }
        AdminKeySetup::Configured => {
            tracing::info!("admin key from FLAGSTONE_ADMIN_KEY registered")
        }
        AdminKeySetup::Existing => tracing::info!("using the existing admin key(s)"),
    }
    // The task processor runs in-process; it announces publishes on `publications`, which the
    // in-process edge follows (on PostgreSQL the edge LISTENs, so other workers' publishes
    // reach it too).
    let publications = flagstone_tasks::Publications::new();
    let feed = match store.backend() {
        Backend::Postgres => PublishFeed::Postgres,
        Backend::Sqlite => PublishFeed::InProcess(publications.subscribe()),
    };
    let nats_feed = match store.backend() {
        Backend::Postgres => PublishFeed::Postgres,
        Backend::Sqlite => PublishFeed::InProcess(publications.subscribe()),
    };
    let nats = args.nats.start(&store, nats_feed).await?;
    let (stop_worker, worker_stop) = tokio::sync::watch::channel(false);
    let worker = crate::worker::spawn_in_process(
        store.clone(),
        &args.worker,
        publications,
        worker_stop.clone(),
    );
    let deliverer = crate::webhooks::spawn(store.clone(), &args.webhooks, worker_stop.clone());
    let pruner =
        crate::worker::spawn_usage_pruner(store.clone(), &args.worker, worker_stop.clone());
    let scheduler = crate::worker::spawn_scheduler(store.clone(), worker_stop);
    let edge = crate::edge::start(store.clone(), feed, &args.edge).await;
    let usage = edge.usage.clone();
    let admin = flagstone_api::router_with_openapi(
        args.auth
            .app_state(store.clone())
            .with_webhook_policy(args.webhooks.policy())
            .with_invitations(invitations)
            .with_staleness(flagstone_store::evaluations::StaleSettings {
                unused_days: args.stale_unused_days,
                fixed_value_days: args.stale_fixed_value_days,
            }),
        flagstone_observe::health_api::openapi(),
    );
    let observed = crate::observability::observe(
        flagstone_observe::Role::Serve,
        &store,
        &args.observe,
        &args.http,
        Some(edge.documents),
        nats.as_ref().map(crate::documents_nats::probe),
        admin.merge(edge.router),
    )
    .await?;
    // The dashboard answers what no API route does (its pages are routed in the browser).
    let app = with_common_routes(flagstone_dashboard::mount(observed.app));
    tracing::info!(backend = ?store.backend(), "admin API, task processor and SDK API in one process");
    serve_http(args.bind, app, &args.http).await?;
    // The counts made since the last flush.
    usage.flush().await;
    let _ = stop_worker.send(true);
    let _ = worker.await;
    let _ = deliverer.await;
    let _ = scheduler.await;
    let _ = pruner.await;
    store.close().await;
    tracing::info!("flagstone stopped");
    Ok(())
}

/// Adds what every Flagstone HTTP server has: request metrics and tracing spans by route
/// template. Apply it to the complete router.
pub fn with_common_routes(app: Router) -> Router {
    flagstone_observe::http::with_request_tracing(flagstone_observe::http::with_request_metrics(
        app,
    ))
}

/// Serves `app` until SIGTERM/Ctrl-C, accepting Flagsmith's trailing-slash paths and ours, with
/// the transport limits of `http` (timeouts, connection cap: see `transport`).
pub async fn serve_http(
    bind: SocketAddr,
    app: Router,
    http: &crate::transport::HttpOptions,
) -> anyhow::Result<()> {
    let app = NormalizePathLayer::trim_trailing_slash().layer(app);
    let listener = tokio::net::TcpListener::bind(bind).await?;
    // The bound address, not the requested one: with port 0 this is how to find the port.
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "flagstone listening on {addr}");
    crate::transport::serve(
        listener,
        crate::transport::Listener::Main,
        app,
        http,
        shutdown_signal(),
    )
    .await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight requests finish before exit.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
