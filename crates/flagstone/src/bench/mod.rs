//! `flagstone bench incident`: replays the July 2023 incident against the publishing pipeline.
//! It starts `flagstone serve` (admin API, task processor and SDK API in one process) as a child
//! on a free loopback port, creates the incident's environment through the admin API (100
//! features, 400 segments of 3-5 mixed conditions, 5,000 segment overrides), fires 5,000
//! changes (PATCHes of feature state and segment override values) from a few concurrent
//! connections as fast as the API takes them, and reports the time from the last change's
//! response to the published document at the final revision, the number of builds and the
//! serving process's peak RSS. Then an environment ten times larger is created in the store and
//! published by a fresh `flagstone worker`: build time and peak RSS. `--store-level` runs the
//! earlier variant that writes the seed and the changes as store `Change`s with a separate
//! worker process.
//!
//! `flagstone bench permissions` ([`permissions`]) measures what checking permissions costs an
//! admin request; `flagstone bench identify` ([`identify`]) what an SDK identify costs next to
//! a flags read; `flagstone bench soak` ([`soak`]) runs steady traffic for minutes and samples
//! the server's RSS, open descriptors and errors; `flagstone bench upstream` ([`upstream`])
//! edges following the core over HTTP; `flagstone bench import` ([`import`]) the peak RSS and
//! time of importing documents with many identity overrides; `flagstone bench scale`
//! ([`scale`]) an installation of 10,000 environments: edge memory and start-up, admin reads;
//! `flagstone bench burst` ([`burst`]) a burst of changes touching 1,000 environments.

mod api;
mod burst;
mod edges;
mod history;
mod http;
mod identify;
mod import;
mod loadgen;
mod permissions;
mod scale;
mod soak;
mod upstream;
mod usage;
mod webhooks;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flagstone_store::document::{self, fixture};
use flagstone_store::{queue, ConnectOptions, Store};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Replay the incident: a huge environment and a burst of changes.
    Incident(IncidentArgs),
    /// What checking permissions costs an admin request (installation key vs a user).
    Permissions(permissions::PermissionsArgs),
    /// What webhooks cost: admin write latency with and without webhooks, delivery rate.
    Webhooks(webhooks::WebhooksArgs),
    /// What versions of features' configurations cost (bytes per version, time per change).
    History(history::HistoryArgs),
    /// What flag-usage counting costs an SDK request (counting on vs off, in-process).
    Usage(usage::UsageArgs),
    /// What an identify costs next to a flags read: req/s and server CPU per request.
    Identify(identify::IdentifyArgs),
    /// Minutes of steady SDK reads, admin writes and SSE subscribers: RSS, fds and errors.
    Soak(soak::SoakArgs),
    /// Edges following the core over HTTP (one and two hops): start-up, catch-up, convergence.
    Upstream(upstream::UpstreamArgs),
    /// Importing documents with many identity overrides: peak RSS and time per size and store.
    Import(import::ImportBenchArgs),
    /// 10,000 environments: edge RSS, start-up (cold and from its cache), memory budget and
    /// hit rate, admin read latency small vs large, the same for an HTTP-upstream edge.
    Scale(scale::ScaleArgs),
    /// A burst touching 1,000 environments (one project-wide change, and one change each):
    /// time until every one is served, builds, claim-to-finish time.
    Burst(burst::BurstArgs),
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
    /// Write the seed and the changes as store `Change`s (with a separate `flagstone worker`)
    /// instead of through the admin API of a `flagstone serve`.
    #[arg(long)]
    pub store_level: bool,
}

/// Where the bench's data lives, and how a child process reaches it. Dropping it removes what
/// the bench created: its PostgreSQL schema (thousands of environments for `burst` and
/// `scale`) or its SQLite temporary directory, also when the bench ends with an error.
struct Target {
    store: Store,
    child_url: String,
    /// The schema this bench created (PostgreSQL), and the URL of its database.
    schema: Option<(String, String)>,
    /// The temporary directory holding this bench's SQLite file (removed when dropped).
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some((schema, url)) = self.schema.take() {
            // Drop is synchronous; the bench runs on the multi-threaded runtime (main.rs),
            // where a blocking section may wait for the statement. A connection of its own:
            // benches close their store when they are done with it.
            let dropped = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let mut opts = ConnectOptions::new(url);
                    opts.max_connections = 1;
                    Store::connect(&opts).await?.drop_schema(&schema).await
                })
            });
            if let Err(e) = dropped {
                eprintln!("bench: could not drop schema {schema}: {e}");
            }
        }
    }
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
                schema: Some((schema, url.to_string())),
                _dir: None,
            })
        }
        Some(url) => Ok(Target {
            store: Store::open(&ConnectOptions::new(url)).await?,
            child_url: url.to_string(),
            schema: None,
            _dir: None,
        }),
        None => {
            let dir = scratch_dir("flagstone-bench-")?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            Ok(Target {
                store: Store::open(&ConnectOptions::new(url.clone())).await?,
                child_url: url,
                schema: None,
                _dir: Some(dir),
            })
        }
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped (also when
/// a bench ends with an error).
fn scratch_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix(prefix).tempdir()?)
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

/// A `flagstone worker` or `flagstone serve` child process, killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(url: &str) -> anyhow::Result<WorkerProcess> {
        Self::spawn(&["worker", "--database-url", url], &[])
    }

    /// `flagstone serve` on `bind` with `admin_key`.
    fn serve(url: &str, bind: SocketAddr, admin_key: &str) -> anyhow::Result<WorkerProcess> {
        Self::spawn(
            &["serve", "--database-url", url, "--bind", &bind.to_string()],
            &[("FLAGSTONE_ADMIN_KEY", admin_key)],
        )
    }

    fn spawn(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<WorkerProcess> {
        Self::spawn_exe(&std::env::current_exe()?, args, env)
    }

    /// [`Self::spawn`] from another build of flagstone (before/after comparisons).
    fn spawn_exe(
        exe: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<WorkerProcess> {
        let child = Command::new(exe)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start flagstone {}", args[0]))?;
        Ok(WorkerProcess(child))
    }

    /// Resident set size of the process now, in MiB.
    fn rss_mib(&self) -> Option<f64> {
        Some(proc_status_kib(self.0.id(), "VmRSS")? as f64 / 1024.0)
    }

    /// Peak resident set size of the process so far, in MiB.
    fn peak_rss_mib(&self) -> Option<f64> {
        Some(proc_status_kib(self.0.id(), "VmHWM")? as f64 / 1024.0)
    }
}

/// A KiB figure of a running process from `/proc/<pid>/status`: `VmRSS` (resident now),
/// `VmHWM` (peak resident so far).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
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
    let args = match cmd {
        BenchCommand::Incident(args) => args,
        BenchCommand::Permissions(args) => return permissions::run(args).await,
        BenchCommand::Webhooks(args) => return webhooks::run(args).await,
        BenchCommand::History(args) => return history::run(args).await,
        BenchCommand::Usage(args) => return usage::run(args).await,
        BenchCommand::Identify(args) => return identify::run(args).await,
        BenchCommand::Soak(args) => return soak::run(args).await,
        BenchCommand::Upstream(args) => return upstream::run(args).await,
        BenchCommand::Import(args) => return import::run(args).await,
        BenchCommand::Scale(args) => return scale::run(args).await,
        BenchCommand::Burst(args) => return burst::run(args).await,
    };
    let target = open_target(args.database_url.as_deref()).await?;
    let store = target.store.clone();
    println!("backend: {:?}", store.backend());
    if args.store_level {
        store_level(&store, &target, &args).await?;
    } else {
        through_the_api(&store, &target, &args).await?;
    }
    scaled(&store, &target, &args).await?;
    store.close().await;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until the server answers its liveness probe.
async fn wait_up(addr: SocketAddr, server: &mut WorkerProcess) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let mut c = http::Client::new(addr, "-");
        if let Ok((200, _)) = c.send("GET", "/health/liveness", None).await {
            return Ok(());
        }
        if let Some(status) = server.0.try_wait()? {
            bail!("flagstone serve exited: {status}");
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("flagstone serve did not come up on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The incident through the admin API of a `flagstone serve` child.
async fn through_the_api(
    store: &Store,
    target: &Target,
    args: &IncidentArgs,
) -> anyhow::Result<()> {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let admin_key = format!("bench-admin-{}", uuid_simple());
    let mut server = WorkerProcess::serve(&target.child_url, addr, &admin_key)?;
    wait_up(addr, &mut server).await?;
    println!("flagstone serve on {addr} (admin API, task processor, SDK API)");

    let t = Instant::now();
    let seeded = api::seed(addr, &admin_key, api::INCIDENT, args.clients).await?;
    let seed_time = t.elapsed();
    println!(
        "created the incident environment through the admin API ({} features, {} segments, {} overrides; {} requests, {} retried after a 5xx) in {seed_time:.2?} ({:.0} requests/s)",
        seeded.state_ids.len(),
        api::INCIDENT.segments,
        seeded.override_ids.len(),
        seeded.requests,
        seeded.retries,
        seeded.requests as f64 / seed_time.as_secs_f64()
    );
    let first = wait_converged(store, seeded.environment_id, Duration::from_secs(60)).await?;
    let initial = log_len(store, seeded.environment_id).await?;
    let doc_bytes = initial.last().and_then(|e| e.bytes).unwrap_or(0);
    println!(
        "published {first:.1?} after the last seed request: {doc_bytes} bytes, build {} ms; {} builds while seeding; serve peak RSS so far {:.1} MiB",
        initial.last().map(|e| e.duration_ms).unwrap_or(0),
        initial.len(),
        server.peak_rss_mib().unwrap_or(f64::NAN)
    );

    let burst = Instant::now();
    let (last, burst_retries) =
        api::burst(addr, &admin_key, &seeded, args.changes, args.clients).await?;
    let burst = last - burst;
    wait_converged(store, seeded.environment_id, Duration::from_secs(60)).await?;
    let converged = last.elapsed();
    let log = log_len(store, seeded.environment_id).await?;
    let builds = log.len() - initial.len();
    let rss = server.peak_rss_mib();
    // The published document is the final state's.
    let fresh = document::build(store, seeded.environment_id, &Default::default()).await?;
    let mut tx = store.read().await?;
    let stored = document::load(&mut tx, seeded.environment_id)
        .await?
        .context("no document")?;
    drop(tx);
    drop(server);
    println!(
        "burst: {} PATCHes in {burst:.2?} ({:.0}/s) from {} connections; {burst_retries} retried after a 5xx",
        args.changes,
        args.changes as f64 / burst.as_secs_f64(),
        args.clients
    );
    println!(
        "converged {converged:.2?} after the last change's response (revision {}); {builds} builds; serve peak RSS {:.1} MiB (admin API + worker + edge in one process); published = fresh build: {}",
        stored.revision,
        rss.unwrap_or(f64::NAN),
        stored.etag == fresh.etag
    );
    Ok(())
}

/// The earlier variant: seed and changes as store `Change`s, a separate worker process.
async fn store_level(store: &Store, target: &Target, args: &IncidentArgs) -> anyhow::Result<()> {
    let store = store.clone();
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

    Ok(())
}

/// The 10x environment, created in the store and published by a fresh worker.
async fn scaled(store: &Store, target: &Target, args: &IncidentArgs) -> anyhow::Result<()> {
    if args.scale > 1 {
        let t = Instant::now();
        let big = fixture::create(store, fixture::Shape::INCIDENT.times(args.scale)).await?;
        println!(
            "created the {}x environment ({} segments, {} overrides) in {:.1?}",
            args.scale,
            400 * args.scale,
            5_000 * args.scale,
            t.elapsed()
        );
        let worker = WorkerProcess::start(&target.child_url)?;
        wait_converged(store, big.environment_id, Duration::from_secs(120)).await?;
        let rss = worker.peak_rss_mib();
        drop(worker);
        let log = log_len(store, big.environment_id).await?;
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
    Ok(())
}
