//! `flagstone bench incident`: replays the July 2023 incident against the publishing pipeline.
//! It creates the incident's environment (100 features, 400 segments of 3-5 conditions, 5,000
//! segment overrides), starts `flagstone worker` as a child process, fires 5,000 admin changes
//! as fast as the store takes them, and reports the time from the last change to the published
//! document at the final revision, the number of builds and the worker's peak RSS. Then the
//! same for an environment ten times larger: build time and peak RSS.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flagstone_store::document::{self, fixture};
use flagstone_store::{queue, ConnectOptions, Store};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Replay the incident: a huge environment and a burst of changes.
    Incident(IncidentArgs),
}

#[derive(clap::Args, Debug)]
pub struct IncidentArgs {
    /// `postgres://…` to measure on PostgreSQL (a fresh schema is created); default: a fresh
    /// SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Changes in the burst.
    #[arg(long, default_value_t = 5_000)]
    pub changes: usize,
    /// Concurrent clients firing them.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Size of the second environment, in multiples of the incident's.
    #[arg(long, default_value_t = 10)]
    pub scale: usize,
}

/// Where the bench's data lives, and how a child process reaches it.
struct Target {
    store: Store,
    child_url: String,
    _dir: Option<std::path::PathBuf>,
}

async fn open_target(url: Option<&str>) -> anyhow::Result<Target> {
    match url {
        Some(url) if url.starts_with("postgres") => {
            let schema = format!("bench_{}", &uuid_simple()[..12]);
            let mut opts = ConnectOptions::new(url);
            opts.pg_schema = Some(schema.clone());
            let store = Store::open(&opts).await?;
            let sep = if url.contains('?') { '&' } else { '?' };
            Ok(Target {
                store,
                child_url: format!("{url}{sep}options=-c%20search_path%3D{schema}"),
                _dir: None,
            })
        }
        Some(url) => Ok(Target {
            store: Store::open(&ConnectOptions::new(url)).await?,
            child_url: url.to_string(),
            _dir: None,
        }),
        None => {
            let dir = std::env::temp_dir().join(format!("flagstone-bench-{}", &uuid_simple()[..8]));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}", dir.join("bench.db").display());
            Ok(Target {
                store: Store::open(&ConnectOptions::new(url.clone())).await?,
                child_url: url,
                _dir: Some(dir),
            })
        }
    }
}

fn uuid_simple() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// A `flagstone worker` child process, killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(url: &str) -> anyhow::Result<WorkerProcess> {
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .args(["worker", "--database-url", url])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start flagstone worker")?;
        Ok(WorkerProcess(child))
    }

    /// Peak resident set size of the worker so far, in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).ok()?;
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn revisions(store: &Store, env: i64) -> anyhow::Result<(i64, Option<i64>)> {
    let mut tx = store.read().await?;
    let current = flagstone_store::environments::get(&mut tx, env)
        .await?
        .revision;
    let published = document::stored::published_revision(&mut tx, env).await?;
    Ok((current, published))
}

async fn wait_converged(store: &Store, env: i64, within: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let (current, published) = revisions(store, env).await?;
        if published == Some(current) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            bail!("environment {env} not published after {within:?} (revision {current}, published {published:?})");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn log_len(store: &Store, env: i64) -> anyhow::Result<Vec<queue::PublishLogEntry>> {
    let mut tx = store.read().await?;
    Ok(queue::publish_log(&mut tx, Some(env), 100_000).await?)
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Incident(args) = cmd;
    let target = open_target(args.database_url.as_deref()).await?;
    let store = target.store.clone();
    println!("backend: {:?}", store.backend());

    let t = Instant::now();
    let fx = fixture::create(&store, fixture::Shape::INCIDENT).await?;
    println!(
        "created the incident environment (100 features, 400 segments, 5,000 overrides) in {:.1?}",
        t.elapsed()
    );
    let worker = WorkerProcess::start(&target.child_url)?;
    let first = wait_converged(&store, fx.environment_id, Duration::from_secs(60)).await?;
    let initial = log_len(&store, fx.environment_id).await?;
    let doc_bytes = initial.last().and_then(|e| e.bytes).unwrap_or(0);
    println!(
        "first publish after {first:.1?}: {doc_bytes} bytes, build {} ms",
        initial.last().map(|e| e.duration_ms).unwrap_or(0)
    );

    let burst = Instant::now();
    let mut clients = Vec::new();
    for client in 0..args.clients.max(1) {
        let store = store.clone();
        let fx = fx.clone();
        let (changes, step) = (args.changes, args.clients.max(1));
        clients.push(tokio::spawn(async move {
            for n in (client..changes).step_by(step) {
                fixture::change_feature(&store, &fx, n, &format!("burst-{n}")).await?;
            }
            anyhow::Ok(())
        }));
    }
    for c in clients {
        c.await??;
    }
    let burst = burst.elapsed();
    let converged = wait_converged(&store, fx.environment_id, Duration::from_secs(60)).await?;
    let builds = log_len(&store, fx.environment_id).await?.len() - initial.len();
    let rss = worker.peak_rss_mib();
    drop(worker);
    println!(
        "burst: {} changes in {burst:.2?} ({:.0}/s) from {} clients",
        args.changes,
        args.changes as f64 / burst.as_secs_f64(),
        args.clients
    );
    println!("converged {converged:.2?} after the last change; {builds} builds; worker peak RSS {:.1} MiB",
        rss.unwrap_or(f64::NAN));

    if args.scale > 1 {
        let t = Instant::now();
        let big = fixture::create(&store, fixture::Shape::INCIDENT.times(args.scale)).await?;
        println!(
            "created the {}x environment ({} segments, {} overrides) in {:.1?}",
            args.scale,
            400 * args.scale,
            5_000 * args.scale,
            t.elapsed()
        );
        let worker = WorkerProcess::start(&target.child_url)?;
        wait_converged(&store, big.environment_id, Duration::from_secs(120)).await?;
        let rss = worker.peak_rss_mib();
        drop(worker);
        let log = log_len(&store, big.environment_id).await?;
        let last = log.last().context("no build logged")?;
        let mut tx = store.read().await?;
        let stored = document::load(&mut tx, big.environment_id)
            .await?
            .context("no document")?;
        println!(
            "{}x: build + publish {} ms, {} bytes ({} compressed), builder {} ms; worker peak RSS {:.1} MiB",
            args.scale,
            last.duration_ms,
            stored.bytes,
            stored.compressed_bytes,
            stored.build_ms,
            rss.unwrap_or(f64::NAN)
        );
    }
    store.close().await;
    Ok(())
}
