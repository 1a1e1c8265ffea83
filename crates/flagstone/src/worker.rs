//! The task processor's commands: `flagstone worker` (the processor alone, with webhook
//! delivery, scheduled changes and flag-usage retention; run any number
//! against PostgreSQL) and `flagstone reconcile`. [`spawn_in_process`] is how `flagstone serve`
//! runs the processor itself. Operators' views of the queue are in `operate`.

use std::time::Duration;

use flagstone_store::queue;
use flagstone_store::Store;
use flagstone_tasks::retention::{RetentionConfig, UsagePruner};
use flagstone_tasks::{Breakpoint, Breakpoints, Publications, Rules, Worker, WorkerConfig};

use crate::db_args::DbArgs;

/// Worker options shared by `worker` and `serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerOptions {
    /// Documents built at once by this process.
    #[arg(long, env = "FLAGSTONE_WORKER_CONCURRENCY", default_value_t = 2)]
    pub worker_concurrency: usize,
    /// Most environments one build slot takes at a time during a burst: built from one
    /// database snapshot and published in one transaction (1 to 32; 1 = one at a time).
    #[arg(
        long,
        env = "FLAGSTONE_WORKER_BATCH",
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=32)
    )]
    pub worker_batch: u16,
    /// How long a claimed job stays leased without a heartbeat, in milliseconds: the backstop
    /// for a worker that is alive but stalled. A worker that dies loses its jobs at once (its
    /// claim session ends with it).
    #[arg(long, env = "FLAGSTONE_WORKER_LEASE_MS", default_value_t = 30_000)]
    pub worker_lease_ms: i64,
    /// Failed or crashed attempts before a job is parked.
    #[arg(long, env = "FLAGSTONE_WORKER_MAX_ATTEMPTS", default_value_t = 5)]
    pub worker_max_attempts: i64,
    /// Seconds between reconciler runs.
    #[arg(long, env = "FLAGSTONE_WORKER_RECONCILE_SECS", default_value_t = 30)]
    pub worker_reconcile_secs: u64,
    /// Days of hourly flag-usage rows kept; older ones are deleted by the task processor in
    /// batches (each feature's latest row stays, so `last_evaluated_at` and staleness survive).
    /// `evaluation-data` cannot look further back than this.
    #[arg(
        long,
        env = "FLAGSTONE_USAGE_RETENTION_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(i64).range(1..=3650)
    )]
    pub usage_retention_days: i64,
    /// Test hook: stop every publish at this breakpoint (`claimed`, `built`) and never go on,
    /// so a test can kill the process there. Never use it in production.
    #[arg(long, hide = true)]
    pub test_pause_at: Option<Breakpoint>,
}

impl WorkerOptions {
    pub fn config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.worker_concurrency.max(1),
            batch: usize::from(self.worker_batch),
            reconcile_interval: Duration::from_secs(self.worker_reconcile_secs.max(1)),
            rules: Rules {
                lease_ms: self.worker_lease_ms.max(100),
                max_attempts: self.worker_max_attempts.max(1),
                // Sessions must keep lapsing for as long as a lease before a job is parked.
                session_lapse_window_ms: self.worker_lease_ms.max(100),
                ..Rules::default()
            },
            breakpoints: self.test_pause_at.map(Breakpoints::hold_at),
            ..WorkerConfig::default()
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub worker: WorkerOptions,
    #[command(flatten)]
    pub observe: crate::observability::ObserveOptions,
    // The transport limits of the `--metrics-addr` listener.
    #[command(flatten)]
    pub http: crate::transport::HttpOptions,
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookOptions,
    #[command(flatten)]
    pub nats: crate::documents_nats::DocumentsNatsOptions,
}

/// `flagstone worker`: processes publish jobs, applies scheduled changes and delivers webhooks until SIGTERM or Ctrl-C. With `--metrics-addr`
/// it serves `/metrics` and `/health/*` there.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    if args.observe.metrics_addr.is_some() {
        // Record from the first moment (publishes before the listener is up included).
        flagstone_observe::install(flagstone_observe::Role::Worker);
    }
    let store = args.db.open().await?;
    let publications = Publications::new();
    // On PostgreSQL every worker's publishes are heard; on SQLite only this one's.
    let nats_feed = match store.backend() {
        flagstone_store::Backend::Postgres => flagstone_edge::PublishFeed::Postgres,
        flagstone_store::Backend::Sqlite => {
            flagstone_edge::PublishFeed::InProcess(publications.subscribe())
        }
    };
    // Started first, so that the metrics listener's readiness reports it.
    let nats = args.nats.start(&store, nats_feed).await?;
    if args.observe.metrics_addr.is_some() {
        crate::observability::observe(
            flagstone_observe::Role::Worker,
            &store,
            &args.observe,
            &args.http,
            None,
            nats.as_ref().map(crate::documents_nats::probe),
            axum::Router::new(),
        )
        .await?;
    } else {
        tracing::info!("no --metrics-addr: this worker exports no metrics");
        // Health is still checked, so the QUEUE_HEALTH alert goes out from this worker too.
        let monitor = flagstone_observe::HealthMonitor::new(args.observe.health.thresholds());
        flagstone_observe::alerts::spawn(store.clone(), &monitor);
        flagstone_observe::gauges::spawn_exporter(store.clone(), monitor, None);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let deliverer = crate::webhooks::spawn(store.clone(), &args.webhooks, stopped.clone());
    let pruner = spawn_usage_pruner(store.clone(), &args.worker, stopped.clone());
    let scheduler = spawn_scheduler(store.clone(), stopped);
    let worker = Worker::new(store.clone(), args.worker.config(), publications);
    worker.run(crate::serve::shutdown_signal()).await;
    let _ = stop.send(true);
    let _ = deliverer.await;
    let _ = scheduler.await;
    let _ = pruner.await;
    store.close().await;
    Ok(())
}

/// Runs the processor inside this process until `stop` is set; publishes are announced on
/// `publications` (what an in-process edge follows on SQLite).
pub fn spawn_in_process(
    store: Store,
    opts: &WorkerOptions,
    publications: Publications,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let changes = store.change_notifier();
    let worker = Worker::new(store, opts.config(), publications);
    // A change committed in this process wakes the worker at once (its debounce still applies).
    let wake = worker.waker();
    tokio::spawn(async move {
        loop {
            changes.notified().await;
            wake.notify_one();
        }
    });
    tokio::spawn(worker.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }))
}

/// Runs the scheduler (scheduled changes applied at their `live_from`) until `stop` is set.
pub fn spawn_scheduler(
    store: Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let scheduler = flagstone_tasks::schedule::Scheduler::new(store, Default::default());
    tokio::spawn(scheduler.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }))
}

/// Runs flag-usage retention (`flagstone_tasks::retention`) until `stop` is set.
pub fn spawn_usage_pruner(
    store: Store,
    opts: &WorkerOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let pruner = UsagePruner::new(
        store,
        RetentionConfig {
            retention_days: opts.usage_retention_days,
            ..RetentionConfig::default()
        },
    );
    tokio::spawn(pruner.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }))
}

/// `flagstone reconcile`: queues every environment whose published document is behind.
pub async fn reconcile(db: DbArgs) -> anyhow::Result<()> {
    let store = db.open().await?;
    let n = queue::reconcile(&store).await?;
    println!("queued {n} environment(s) whose published document was behind");
    Ok(())
}
