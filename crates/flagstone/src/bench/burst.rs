//! `flagstone bench burst`: how fast a burst touching many environments is published. Creates
//! N environments (default 1,000, 20 features each) in one project on PostgreSQL, starts
//! `flagstone serve` and `workers - 1` more `flagstone worker` processes, waits until all are
//! published, then, for each round:
//!
//! - **project**: one admin change that touches every environment of the project (a feature's
//!   description, part of every environment's SDK fields — as editing a feature or a segment
//!   does);
//! - **separate**: one small change per environment, committed from 16 concurrent clients.
//!
//! and reports the time from the (last) commit until the core's SDK API serves every
//! environment at its new revision — read from the core's revision stream
//! (`/api/v1/edge/revisions`, the stream edges follow), so "served" means installed where SDK
//! requests are answered — with the builds the burst cost and how long a job took from claim to
//! finish (from `publish_log`). `--server-binary` runs the processes from another build, for a
//! before/after comparison in one run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flagstone_edge::upstream::protocol::{self, Revision, Snapshot};
use flagstone_store::document::fixture::{self, Fixture};
use flagstone_store::{queue, Store};
use tokio::task::JoinSet;

use super::edges::{follower_key, scope_len, wait_for};
use super::upstream::{add_environments, TWENTY_FEATURES};
use super::{free_port, open_target, WorkerProcess};

#[derive(clap::Args, Debug)]
pub struct BurstArgs {
    /// PostgreSQL to measure on (a fresh schema is created).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub database_url: String,
    /// Environments the burst touches.
    #[arg(long, default_value_t = 1_000)]
    pub environments: usize,
    /// Worker processes: `serve`'s own and `workers - 1` separate `flagstone worker`s.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// `--worker-concurrency` of every worker (default: the binary's default).
    #[arg(long)]
    pub worker_concurrency: Option<usize>,
    /// Rounds of each kind of burst.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Run `serve` and the workers from this binary instead of this one (before/after).
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
}

pub async fn run(args: BurstArgs) -> anyhow::Result<()> {
    let n = args.environments.max(1);
    let target = open_target(Some(&args.database_url)).await?;
    let store = target.store.clone();
    println!(
        "backend: {:?}; load average {}",
        store.backend(),
        super::loadgen::load_average()
    );
    let fx = fixture::create(&store, TWENTY_FEATURES).await?;
    add_environments(&store, &fx, n - 1).await?;
    let follower = follower_key(&store, &fx).await?;
    let http = reqwest::Client::new();
    let scratch = super::scratch_dir("flagstone-bench-burst-")?;
    let tmp = scratch.path().to_path_buf();
    let exe = match &args.server_binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?,
    };
    let concurrency = args.worker_concurrency.map(|c| c.to_string());
    let with_concurrency = |mut a: Vec<String>| {
        if let Some(c) = &concurrency {
            a.extend(["--worker-concurrency".to_string(), c.clone()]);
        }
        a
    };

    let core: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let serve_args = with_concurrency(vec![
        "serve".into(),
        "--database-url".into(),
        target.child_url.clone(),
        "--bind".into(),
        core.to_string(),
        "--edge-cache-dir".into(),
        tmp.join("core").display().to_string(),
    ]);
    let mut processes = vec![WorkerProcess::spawn_exe(&exe, &strs(&serve_args), &[])?];
    for _ in 1..args.workers.max(1) {
        let a = with_concurrency(vec![
            "worker".into(),
            "--database-url".into(),
            target.child_url.clone(),
        ]);
        processes.push(WorkerProcess::spawn_exe(&exe, &strs(&a), &[])?);
    }
    let started = Instant::now();
    wait_for(
        Duration::from_secs(1800),
        "the core to publish everything",
        || async { Ok(scope_len(&http, core, &follower).await? == n) },
    )
    .await?;
    println!(
        "{n} environments of 20 features, {} worker process(es){}: all published after {:.1?}",
        args.workers.max(1),
        concurrency
            .as_deref()
            .map(|c| format!(" at concurrency {c}"))
            .unwrap_or_default(),
        started.elapsed()
    );

    let mut stream = RevisionStream::open(&http, core, &follower).await?;
    let ids: Vec<i64> = stream.served.keys().copied().collect();
    let mut results: Vec<(&str, Duration, Duration)> = Vec::new();
    for round in 0..args.rounds.max(1) {
        for kind in ["project", "separate"] {
            // Let the previous round's follow-ups settle before timing the next.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let log_before = last_log_id(&store).await?;
            let value = format!("burst-{round}-{kind}");
            let began = Instant::now();
            let wanted: Vec<(i64, i64)> = match kind {
                "project" => fixture::change_project(&store, &fx, &value).await?,
                _ => change_each(&store, &fx, &ids, &value).await?,
            };
            let committed_at = Instant::now();
            let committed_ms = flagstone_store::now_ms();
            let committed = committed_at - began;
            let served_at = stream
                .wait_until(&wanted, Duration::from_secs(120))
                .await
                .with_context(|| format!("round {round} ({kind})"))?;
            let after_commit = served_at - committed_at;
            let b = builds_since(&store, log_before).await?;
            println!(
                "round {round} {kind:>8}: {} environments changed in {committed:.1?}; all served \
                 {after_commit:.1?} after the last commit (last build finished {} ms after it); \
                 {} builds in about {} finishing transactions, claim to finish p50 {:.1?} \
                 p99 {:.1?}",
                wanted.len(),
                b.last_finished_ms - committed_ms,
                b.builds,
                b.finishes,
                b.p50,
                b.p99,
            );
            results.push((kind, committed, after_commit));
        }
    }
    for kind in ["project", "separate"] {
        let mut times: Vec<Duration> = results
            .iter()
            .filter(|r| r.0 == kind)
            .map(|r| r.2)
            .collect();
        times.sort();
        println!(
            "{kind}: {n} environments served after the last commit, median of {}: {:.1?} (best {:.1?})",
            times.len(),
            times[times.len() / 2],
            times[0]
        );
    }
    drop(processes);
    store.close().await;
    Ok(())
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// One change per environment, from 16 concurrent clients.
async fn change_each(
    store: &Store,
    fx: &Fixture,
    ids: &[i64],
    value: &str,
) -> anyhow::Result<Vec<(i64, i64)>> {
    let mut set = JoinSet::new();
    for part in ids.chunks(ids.len().div_ceil(16).max(1)) {
        let (store, fx, part, value) =
            (store.clone(), fx.clone(), part.to_vec(), value.to_string());
        set.spawn(async move {
            let mut out = Vec::with_capacity(part.len());
            for env in part {
                out.push((
                    env,
                    fixture::change_environment(&store, &fx, env, &value).await?,
                ));
            }
            anyhow::Ok(out)
        });
    }
    let mut wanted = Vec::with_capacity(ids.len());
    while let Some(part) = set.join_next().await {
        wanted.extend(part??);
    }
    Ok(wanted)
}

async fn last_log_id(store: &Store) -> anyhow::Result<i64> {
    let mut tx = store.read().await?;
    Ok(queue::publish_log(&mut tx, None, 1)
        .await?
        .last()
        .map_or(0, |e| e.id))
}

/// What the builds logged after a point cost.
struct Builds {
    builds: usize,
    /// Claim to finish, per build.
    p50: Duration,
    p99: Duration,
    /// When the last one finished (wall clock, ms).
    last_finished_ms: i64,
    /// Distinct (worker, finish time) pairs: the finishing transactions, as the builds one
    /// group commit finishes share both.
    finishes: usize,
}

/// The builds logged after `since`.
async fn builds_since(store: &Store, since: i64) -> anyhow::Result<Builds> {
    let mut tx = store.read().await?;
    let log = queue::publish_log(&mut tx, None, 100_000).await?;
    let recent: Vec<_> = log.iter().filter(|e| e.id > since).collect();
    let mut took: Vec<i64> = recent.iter().map(|e| e.duration_ms).collect();
    took.sort_unstable();
    let at = |q: f64| {
        took.get(((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1)))
            .map_or(Duration::ZERO, |ms| Duration::from_millis(*ms as u64))
    };
    Ok(Builds {
        builds: took.len(),
        p50: at(0.5),
        p99: at(0.99),
        last_finished_ms: recent.iter().map(|e| e.finished_at).max().unwrap_or(0),
        finishes: recent
            .iter()
            .map(|e| (e.worker.as_str(), e.finished_at))
            .collect::<std::collections::HashSet<_>>()
            .len(),
    })
}

/// The core's revision stream, as a follower edge reads it: what it serves, per environment.
struct RevisionStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    served: HashMap<i64, i64>,
}

impl RevisionStream {
    async fn open(http: &reqwest::Client, at: SocketAddr, key: &str) -> anyhow::Result<Self> {
        let resp = http
            .get(format!("http://{at}/api/v1/edge/revisions"))
            .header("authorization", format!("Api-Key {key}"))
            .header("accept", "text/event-stream")
            .send()
            .await?
            .error_for_status()?;
        let mut s = RevisionStream {
            resp,
            buf: Vec::new(),
            served: HashMap::new(),
        };
        while s.served.is_empty() {
            s.read().await?;
        }
        Ok(s)
    }

    async fn read(&mut self) -> anyhow::Result<()> {
        let Some(chunk) = self.resp.chunk().await? else {
            bail!("the revision stream ended");
        };
        self.buf.extend_from_slice(&chunk);
        for ev in protocol::take_events(&mut self.buf) {
            match ev.event.as_str() {
                protocol::EVENT_SNAPSHOT => {
                    let snap: Snapshot = serde_json::from_str(&ev.data)?;
                    for r in snap.environments {
                        self.served.insert(r.environment_id, r.revision);
                    }
                }
                protocol::EVENT_REVISION => {
                    let r: Revision = serde_json::from_str(&ev.data)?;
                    let held = self.served.entry(r.environment_id).or_default();
                    *held = (*held).max(r.revision);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads until every `(environment, revision)` is served; returns when that was seen.
    async fn wait_until(
        &mut self,
        wanted: &[(i64, i64)],
        within: Duration,
    ) -> anyhow::Result<Instant> {
        let start = Instant::now();
        let behind = |s: &Self| {
            wanted
                .iter()
                .filter(|(env, rev)| s.served.get(env).is_none_or(|held| held < rev))
                .count()
        };
        while behind(self) > 0 {
            let left = within.saturating_sub(start.elapsed());
            if tokio::time::timeout(left, self.read()).await.is_err() {
                bail!("{} environments not served within {within:?}", behind(self));
            }
        }
        Ok(Instant::now())
    }
}
