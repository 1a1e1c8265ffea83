//! The task processor's commands: `flagstone worker` (the processor alone; run any number
//! against PostgreSQL), `flagstone reconcile`, `flagstone status` and `flagstone tasks
//! retry|discard`. [`spawn_in_process`] is how `flagstone serve` runs the processor itself.

use std::time::Duration;

use flagstone_store::queue;
use flagstone_store::{Actor, Store};
use flagstone_tasks::{Breakpoint, Breakpoints, Publications, Rules, Worker, WorkerConfig};

use crate::db_args::DbArgs;

/// Worker options shared by `worker` and `serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerOptions {
    /// Documents built at once by this process.
    #[arg(long, env = "FLAGSTONE_WORKER_CONCURRENCY", default_value_t = 2)]
    pub worker_concurrency: usize,
    /// How long a claimed job stays leased without a heartbeat, in milliseconds. A worker that
    /// dies loses its jobs to others after this long.
    #[arg(long, env = "FLAGSTONE_WORKER_LEASE_MS", default_value_t = 30_000)]
    pub worker_lease_ms: i64,
    /// Failed or crashed attempts before a job is parked.
    #[arg(long, env = "FLAGSTONE_WORKER_MAX_ATTEMPTS", default_value_t = 5)]
    pub worker_max_attempts: i64,
    /// Seconds between reconciler runs.
    #[arg(long, env = "FLAGSTONE_WORKER_RECONCILE_SECS", default_value_t = 30)]
    pub worker_reconcile_secs: u64,
    /// Test hook: stop every publish at this breakpoint (`claimed`, `built`) and never go on,
    /// so a test can kill the process there. Never use it in production.
    #[arg(long, hide = true)]
    pub test_pause_at: Option<Breakpoint>,
}

impl WorkerOptions {
    pub fn config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.worker_concurrency.max(1),
            reconcile_interval: Duration::from_secs(self.worker_reconcile_secs.max(1)),
            rules: Rules {
                lease_ms: self.worker_lease_ms.max(100),
                max_attempts: self.worker_max_attempts.max(1),
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
}

/// `flagstone worker`: processes publish jobs until SIGTERM or Ctrl-C. With `--metrics-addr`
/// it serves `/metrics` and `/health/*` there.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    if args.observe.metrics_addr.is_some() {
        crate::observability::observe(
            flagstone_observe::Role::Worker,
            &store,
            &args.observe,
            None,
            axum::Router::new(),
        )
        .await?;
    } else {
        tracing::info!("no --metrics-addr: this worker exports no metrics");
    }
    let worker = Worker::new(store.clone(), args.worker.config(), Publications::new());
    worker.run(crate::serve::shutdown_signal()).await;
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

/// `flagstone reconcile`: queues every environment whose published document is behind.
pub async fn reconcile(db: DbArgs) -> anyhow::Result<()> {
    let store = db.open().await?;
    let n = queue::reconcile(&store).await?;
    println!("queued {n} environment(s) whose published document was behind");
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `flagstone status`: queue depth, oldest request, parked jobs and stale environments.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    let mut tx = store.read().await?;
    let s = queue::status(&mut tx, store.clock().now_ms()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!(
        "publish queue: {} pending, {} running, {} parked; oldest pending request {}",
        s.pending,
        s.running,
        s.parked,
        s.oldest_pending_age_ms
            .map(|ms| format!("{ms} ms old"))
            .unwrap_or_else(|| "none".into())
    );
    if s.stale_environments == 0 {
        println!("every environment is published at its current revision");
    } else {
        println!(
            "environments behind their revision: {}",
            s.stale_environments
        );
        for e in &s.stale {
            let published = e
                .published_revision
                .map(|r| r.to_string())
                .unwrap_or_else(|| "nothing".into());
            let job = match (&e.job_state, &e.park_reason) {
                (Some(state), Some(reason)) => format!("{state}: {reason}"),
                (Some(state), None) => state.to_string(),
                (None, _) => "no job (run `flagstone reconcile`)".into(),
            };
            println!(
                "  environment {} {:?}: revision {}, published {published} [{job}]{}",
                e.environment_id,
                e.name,
                e.revision,
                e.last_error
                    .as_deref()
                    .map(|m| format!(" — {m}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

#[derive(clap::Subcommand, Debug)]
pub enum TasksCommand {
    /// Make a parked job due now, with fresh attempts.
    Retry {
        /// The environment id (the job's id).
        environment_id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Drop a parked job; the environment keeps its last published document until it changes.
    Discard {
        environment_id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `flagstone tasks retry|discard <environment id>`.
pub async fn tasks(cmd: TasksCommand) -> anyhow::Result<()> {
    let actor = Actor::system("flagstone tasks (CLI)");
    match cmd {
        TasksCommand::Retry { environment_id, db } => {
            let store = db.open().await?;
            let job = queue::retry(&store, &actor, environment_id).await?;
            println!(
                "environment {environment_id}: job {} (wanted revision {})",
                job.state, job.wanted_revision
            );
        }
        TasksCommand::Discard { environment_id, db } => {
            let store = db.open().await?;
            let job = queue::discard(&store, &actor, environment_id).await?;
            println!(
                "environment {environment_id}: job discarded at revision {}; it keeps serving revision {}",
                job.wanted_revision,
                job.published_revision
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "none".into())
            );
        }
    }
    Ok(())
}
