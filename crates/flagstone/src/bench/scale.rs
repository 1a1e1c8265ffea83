//! `flagstone bench scale`: an installation of N environments (default 10,000, 20 features
//! each) on PostgreSQL, measured where size used to cost:
//!
//! - the core (`flagstone serve`) publishing and serving all of them;
//! - an edge on the database (`flagstone edge`): time to its first answered SDK request and to
//!   fully current (every environment held, confirmed by the store), from an empty cache
//!   directory and from a warm one; its RSS once everything is loaded (nothing compiled yet),
//!   after one request to every environment, and under a memory budget smaller than the set
//!   with a skewed load (req/s, server CPU per request, the compiled-snapshot hit rate);
//! - admin read latency (listing one environment's feature states, p50/p99) on this
//!   installation against a small one;
//! - the same edge figures for an edge following the core over HTTP (`edge --upstream`).
//!
//! Environments are created in the store directly (100 per transaction), not through 10,000
//! admin requests; the core's worker publishes them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flagstone_store::document::fixture;
use flagstone_store::{PageRequest, Store};
use serde_json::Value;

use super::edges::{
    flags_status, follower_key, scope_len, start_core, start_edge, wait_for, FirstAnswer,
};
use super::loadgen::{self, Requests};
use super::upstream::{add_environments, TWENTY_FEATURES};
use super::{free_port, open_target, WorkerProcess};

#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// PostgreSQL to measure on (a fresh schema is created).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub database_url: String,
    /// Environments of the installation.
    #[arg(long, default_value_t = 10_000)]
    pub environments: usize,
    /// The memory budget of the constrained edge, in MiB (`--edge-memory-budget-mib`); about
    /// a fifth of what every environment compiled takes at 10,000.
    #[arg(long, default_value_t = 16)]
    pub small_budget_mib: u64,
    /// Seconds of skewed SDK load on the constrained edge.
    #[arg(long, default_value_t = 10)]
    pub load_seconds: u64,
    /// Admin reads timed per installation.
    #[arg(long, default_value_t = 300)]
    pub admin_reads: usize,
}

pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    let n = args.environments.max(1);
    let target = open_target(Some(&args.database_url)).await?;
    let store = target.store.clone();
    println!(
        "backend: {:?}; load average {}",
        store.backend(),
        loadgen::load_average()
    );
    let fx = fixture::create(&store, TWENTY_FEATURES).await?;
    let created = Instant::now();
    add_environments(&store, &fx, n - 1).await?;
    println!(
        "created {n} environments of 20 features in {:.1?} (100 per transaction)",
        created.elapsed()
    );
    let keys = client_keys(&store, fx.project_id).await?;
    let follower = follower_key(&store, &fx).await?;
    let http = reqwest::Client::new();
    let scratch = super::scratch_dir("flagstone-bench-scale-")?;
    let tmp = scratch.path().to_path_buf();

    // The core publishes everything.
    let core: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let started = Instant::now();
    let core_proc = start_core(&target.child_url, core, &tmp.join("core"))?;
    wait_for(
        Duration::from_secs(1800),
        "the core to publish everything",
        || async { Ok(scope_len(&http, core, &follower).await? == n) },
    )
    .await?;
    println!(
        "core (serve): all {n} published and served after {:.1?}; RSS {:.1} MiB",
        started.elapsed(),
        core_proc.rss_mib().unwrap_or(f64::NAN)
    );

    admin_latency(&store, &args, &keys).await?;

    // An edge on the database.
    let edge_args = |bind: SocketAddr, cache: &Path, budget: Option<u64>| -> Vec<String> {
        let mut a = vec![
            "edge".to_string(),
            "--database-url".into(),
            target.child_url.clone(),
            "--bind".into(),
            bind.to_string(),
            "--edge-cache-dir".into(),
            cache.display().to_string(),
        ];
        if let Some(mib) = budget {
            a.extend(["--edge-memory-budget-mib".into(), mib.to_string()]);
        }
        a
    };
    let watch = Watch {
        http: &http,
        keys: &keys,
        n,
    };
    let db_cache = tmp.join("edge-db");
    let bind: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let edge = watch
        .start_edge(
            "edge on the database, cold cache",
            bind,
            &edge_args(bind, &db_cache, None),
            &[],
        )
        .await?;
    watch.touch_all(bind, &edge).await?;
    drop(edge);
    let edge = watch
        .start_edge(
            "edge on the database, warm cache",
            bind,
            &edge_args(bind, &db_cache, None),
            &[],
        )
        .await?;
    drop(edge);
    let edge = watch
        .start_edge(
            &format!(
                "edge on the database, warm cache, budget {} MiB",
                args.small_budget_mib
            ),
            bind,
            &edge_args(bind, &db_cache, Some(args.small_budget_mib)),
            &[],
        )
        .await?;
    skewed_load(&http, bind, &edge, &keys, &args).await?;
    drop(edge);

    // An edge following the core over HTTP.
    let up_cache = tmp.join("edge-up");
    let up_args = |bind: SocketAddr, cache: &Path| -> Vec<String> {
        vec![
            "edge".to_string(),
            "--upstream".into(),
            format!("http://{core}"),
            "--bind".into(),
            bind.to_string(),
            "--edge-cache-dir".into(),
            cache.display().to_string(),
        ]
    };
    let env = [("FLAGSTONE_UPSTREAM_KEY", follower.as_str())];
    let edge = watch
        .start_edge(
            "edge over HTTP (--upstream), cold cache",
            bind,
            &up_args(bind, &up_cache),
            &env,
        )
        .await?;
    drop(edge);
    let edge = watch
        .start_edge(
            "edge over HTTP (--upstream), warm cache",
            bind,
            &up_args(bind, &up_cache),
            &env,
        )
        .await?;
    watch.touch_all(bind, &edge).await?;
    drop(edge);
    drop(core_proc);
    store.close().await;
    Ok(())
}

/// Every environment's client key, in id order.
async fn client_keys(store: &Store, project: i64) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut tx = store.read().await?;
    for page in 1.. {
        let got = flagstone_store::environments::list(
            &mut tx,
            Some(project),
            PageRequest::new(page, PageRequest::MAX_PAGE_SIZE),
        )
        .await?;
        let done = got.results.len() < PageRequest::MAX_PAGE_SIZE as usize;
        keys.extend(got.results.into_iter().map(|e| e.api_key));
        if done {
            break;
        }
    }
    Ok(keys)
}

/// What the bench watches its edges with: an HTTP client, every environment's client key (in
/// id order) and how many there are.
struct Watch<'a> {
    http: &'a reqwest::Client,
    keys: &'a [String],
    n: usize,
}

impl Watch<'_> {
    /// Starts an edge on `bind` with `args` (and `env`) and reports, as `what`, the time until
    /// an SDK request for the last environment is answered (200), the time until it holds all
    /// `n` confirmed by its source, and its RSS then.
    async fn start_edge(
        &self,
        what: &str,
        bind: SocketAddr,
        args: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<WorkerProcess> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let last = self.keys.last().context("no environments")?;
        let n = self.n;
        let edge = start_edge(
            self.http,
            bind,
            (&args, env),
            (FirstAnswer::Flags(last), Duration::from_secs(600)),
            (
                // Both kinds of edge report these two; an upstream edge also what it lacks.
                |r: &Value| {
                    r["environments"] == n
                        && r["serving_from_cache"] == false
                        && r.get("environments_behind").is_none_or(|b| b == 0)
                },
                Duration::from_secs(1800),
            ),
        )
        .await?;
        println!(
            "{what}: listening after {:.2?}, first SDK request answered after {:.2?}, fully current after {:.2?}; RSS {:.1} MiB",
            edge.listening,
            edge.first,
            edge.current,
            edge.process.rss_mib().unwrap_or(f64::NAN)
        );
        Ok(edge.process)
    }

    /// One `/flags/` request to every environment (compiling each), from 8 tasks; then the
    /// edge's RSS and memory figures.
    async fn touch_all(&self, at: SocketAddr, edge: &WorkerProcess) -> anyhow::Result<()> {
        let started = Instant::now();
        let keys: Arc<Vec<String>> = Arc::new(self.keys.to_vec());
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..8 {
            let (http, keys) = (self.http.clone(), keys.clone());
            tasks.spawn(async move {
                let mut failed = 0;
                for k in keys.iter().skip(t).step_by(8) {
                    if flags_status(&http, at, k).await != Some(200) {
                        failed += 1;
                    }
                }
                failed
            });
        }
        let mut failed = 0;
        while let Some(f) = tasks.join_next().await {
            failed += f?;
        }
        if failed > 0 {
            bail!("{failed} environments did not answer 200");
        }
        println!(
            "  one /flags/ request to each of the {} environments: {:.2?}",
            keys.len(),
            started.elapsed()
        );
        println!(
            "  after one /flags/ request to each of the {}: RSS {:.1} MiB; {}",
            self.n,
            edge.rss_mib().unwrap_or(f64::NAN),
            memory_line(self.http, at).await
        );
        Ok(())
    }
}

/// The edge's memory series from `/metrics`, after their next refresh (every second).
async fn memory(http: &reqwest::Client, at: SocketAddr) -> Option<MemoryFigures> {
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let text = http
        .get(format!("http://{at}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    use flagstone_edge::metrics as m;
    Some(MemoryFigures {
        budget: value(m::MEMORY_BUDGET_BYTES),
        resident: value(m::RESIDENT_BYTES),
        resident_environments: value(m::RESIDENT_ENVIRONMENTS),
        documents: value(m::DOCUMENTS_BYTES),
        hits: value(m::SNAPSHOT_HITS_TOTAL),
        misses: value(m::SNAPSHOT_MISSES_TOTAL),
        evictions: value(m::SNAPSHOT_EVICTIONS_TOTAL),
    })
}

#[derive(Debug, Clone, Copy)]
struct MemoryFigures {
    budget: f64,
    resident: f64,
    resident_environments: f64,
    documents: f64,
    hits: f64,
    misses: f64,
    evictions: f64,
}

const MIB: f64 = (1 << 20) as f64;

async fn memory_line(http: &reqwest::Client, at: SocketAddr) -> String {
    match memory(http, at).await {
        Some(m) => format!(
            "compiled {:.0} environments, {:.1} MiB of a {:.0} MiB budget; compressed documents {:.1} MiB; {:.0} evictions",
            m.resident_environments,
            m.resident / MIB,
            m.budget / MIB,
            m.documents / MIB,
            m.evictions
        ),
        None => "no /metrics".into(),
    }
}

/// A skewed SDK load (environment `k` asked with probability ~ 1/k, Zipf's law with s = 1)
/// on an edge whose budget holds only part of the set: throughput, CPU per request, hit rate.
async fn skewed_load(
    http: &reqwest::Client,
    at: SocketAddr,
    edge: &WorkerProcess,
    keys: &[String],
    args: &ScaleArgs,
) -> anyhow::Result<()> {
    let before = memory(http, at).await.context("no /metrics")?;
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let n = keys.len() as f64;
    let raw = (0..100_000)
        .map(|_| {
            // xorshift64*: uniform u in [0, 1); n^u is log-uniform over [1, n], which is
            // Zipf's law with s = 1 in the continuous limit.
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let u = (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            let i = (n.powf(u) as usize).clamp(1, keys.len()) - 1;
            format!(
                "GET /api/v1/flags/ HTTP/1.1\r\nHost: bench\r\nX-Environment-Key: {}\r\n\r\n",
                keys[i]
            )
            .into_bytes()
        })
        .collect();
    let requests = Arc::new(Requests { raw, once: false });
    let out = loadgen::run(
        at,
        edge.0.id(),
        requests,
        4,
        Duration::from_secs(args.load_seconds),
    )
    .await?;
    let after = memory(http, at).await.context("no /metrics")?;
    let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
    println!(
        "  skewed load (Zipf s=1 over {} environments, 4 connections, {} s): {:.0} req/s, {:.1} µs server CPU per request, p50 {:.2} ms, p99 {:.2} ms, {} errors; hit rate {:.1} % ({:.0} compilations, {:.0} evictions); RSS {:.1} MiB; compiled {:.0} environments, {:.1} MiB of the {:.0} MiB budget",
        keys.len(),
        args.load_seconds,
        out.rps(),
        out.cpu_us(),
        out.latency_ms(0.5),
        out.latency_ms(0.99),
        out.errors,
        100.0 * hits / (hits + misses).max(1.0),
        misses,
        after.evictions - before.evictions,
        edge.rss_mib().unwrap_or(f64::NAN),
        after.resident_environments,
        after.resident / MIB,
        after.budget / MIB,
    );
    Ok(())
}

/// Listing one environment's feature states through the store (what the admin route runs),
/// on this installation and on a fresh one with a single environment, side by side.
async fn admin_latency(store: &Store, args: &ScaleArgs, keys: &[String]) -> anyhow::Result<()> {
    let small = open_target(Some(&args.database_url)).await?;
    let small_fx = fixture::create(&small.store, TWENTY_FEATURES).await?;
    let large_env = {
        let mut tx = store.read().await?;
        let key = &keys[keys.len() / 2];
        flagstone_store::environments::get_by_key(&mut tx, key)
            .await?
            .id
    };
    let mut lines = Vec::new();
    for (name, s, env) in [
        (
            "small (1 environment)",
            &small.store,
            small_fx.environment_id,
        ),
        ("large", store, large_env),
    ] {
        // Warm the pool's prepared statements and the plan cache first.
        for _ in 0..20 {
            list_states(s, env).await?;
        }
        let mut took = Vec::with_capacity(args.admin_reads);
        for _ in 0..args.admin_reads {
            let t = Instant::now();
            let states = list_states(s, env).await?;
            took.push(t.elapsed());
            if states != 20 {
                bail!("listed {states} feature states, expected 20");
            }
        }
        took.sort();
        let q = |p: f64| took[((took.len() - 1) as f64 * p) as usize];
        lines.push((name, q(0.5), q(0.99)));
    }
    small.store.close().await;
    let [(sn, s50, s99), (ln, l50, l99)] = [lines[0], lines[1]];
    println!(
        "admin read (one environment's 20 feature states, {} reads): {sn} p50 {s50:.2?} p99 {s99:.2?}; {ln} ({} environments) p50 {l50:.2?} p99 {l99:.2?} (ratio {:.2})",
        args.admin_reads,
        keys.len(),
        l50.as_secs_f64() / s50.as_secs_f64()
    );
    Ok(())
}

async fn list_states(store: &Store, env: i64) -> anyhow::Result<usize> {
    let mut tx = store.read().await?;
    let page = flagstone_store::features::environment_states::list(
        &mut tx,
        env,
        Default::default(),
        PageRequest::new(1, 100),
    )
    .await?;
    Ok(page.results.len())
}
