//! `flagstone bench identify`: what an identify (`POST /api/v1/identities/`) costs next to a
//! flags read (`GET /api/v1/flags/`), side by side in one run, on a `flagstone serve` child.
//!
//! Two environments are created in a fresh store: a small one of 10 features and the incident's
//! (100 features, 400 segments, 5,000 segment overrides). Every request is prepared before the
//! run: identify bodies carry 5 traits (`trait_0..trait_4`, values that match one incident
//! segment, so every segment is evaluated and one matches), for one identifier or for 10,000
//! distinct ones. All identities are sent once before the timed rounds, so they exist and
//! their traits are stored (re-sent traits write nothing). Before each timed run of a load of
//! many identities, each of them is sent once more, untimed, so the edge's identity cache holds
//! them all during the run (the cache trusts an entry for 10 s; the other loads of a round take
//! longer than that). That pass is reported on its own (`…-reread` rows): what an identify costs
//! when the identity must be read from the store again. Each round runs every load once,
//! interleaved, with a closed-loop generator ([`super::loadgen`]); the figures are medians of
//! rounds. Server CPU per request is the serving process's utime + stime over the run divided
//! by the requests answered, so it does not depend on what the generator costs on the same
//! cores.
//!
//! Beside them, OFREP bulk evaluation (`POST /ofrep/v1/evaluate/flags`) of the same 10,000
//! identities with the same traits as evaluation context.
//!
//! Last, a flood of new identities (each request a new identifier): how many requests were
//! answered, and how long after the flood the store held every one of them (trait writes are
//! batched behind the requests, never dropped).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::{PageRequest, Store};

use super::loadgen::{self, Outcome, Requests};
use super::{free_port, open_target, wait_up, WorkerProcess};

#[derive(clap::Args, Debug)]
pub struct IdentifyArgs {
    /// `postgres://…` to measure on PostgreSQL (a fresh schema is created); default: a fresh
    /// SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Seconds per load.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Rounds (each runs every load once; medians are reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Distinct identities in the "many identities" loads.
    #[arg(long, default_value_t = 10_000)]
    pub identities: usize,
    /// New identities prepared for the flood at the end (0: no flood).
    #[arg(long, default_value_t = 60_000)]
    pub flood: usize,
    /// Only these loads (names as printed, comma-separated), e.g. for profiling one of them.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The `flagstone` binary that serves (default: this one), e.g. an earlier build, to compare
    /// two builds under the same loads.
    #[arg(long)]
    pub server_binary: Option<std::path::PathBuf>,
}

/// The small environment: 10 features, no segments.
const SMALL: Shape = Shape {
    features: 10,
    mv_features: 0,
    segments: 0,
    overrides: 0,
};

/// An OFREP bulk-evaluation body: the same identity and traits as [`body`], as an evaluation
/// context (`targetingKey` and the traits as context fields, which OFREP treats as transient).
fn ofrep_body(identifier: &str) -> String {
    let traits: Vec<String> = (0..5)
        .map(|c| format!(r#""trait_{c}":"value-5-{c}""#))
        .collect();
    format!(
        r#"{{"context":{{"targetingKey":"{identifier}",{}}}}}"#,
        traits.join(",")
    )
}

/// An identify body: `identifier` with 5 traits matching incident segment 5.
fn body(identifier: &str) -> String {
    let traits: Vec<String> = (0..5)
        .map(|c| format!(r#"{{"trait_key":"trait_{c}","trait_value":"value-5-{c}"}}"#))
        .collect();
    format!(
        r#"{{"identifier":"{identifier}","traits":[{}]}}"#,
        traits.join(",")
    )
}

struct Load {
    name: String,
    /// Which flags load this one is compared with.
    baseline: Option<usize>,
    requests: Arc<Requests>,
    outcomes: Vec<Outcome>,
    /// The untimed passes that put every identity back in the cache before each run (loads of
    /// many identities only).
    rereads: Vec<Outcome>,
}

pub async fn run(args: IdentifyArgs) -> anyhow::Result<()> {
    let target = open_target(args.database_url.as_deref()).await?;
    let store = target.store.clone();
    let small = fixture::create(&store, SMALL).await?;
    let incident = fixture::create(&store, Shape::INCIDENT).await?;

    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let cache_dir = std::env::temp_dir().join(format!("flagstone-bench-identify-{}", addr.port()));
    let serve_args: [&str; 7] = [
        "serve",
        "--database-url",
        &target.child_url,
        "--bind",
        &addr.to_string(),
        "--edge-cache-dir",
        &cache_dir.to_string_lossy(),
    ];
    let admin_key = [("FLAGSTONE_ADMIN_KEY", "bench-identify-admin-key-0123456789")];
    let mut server = match &args.server_binary {
        None => WorkerProcess::spawn(&serve_args, &admin_key)?,
        Some(bin) => WorkerProcess::spawn_exe(bin, &serve_args, &admin_key)?,
    };
    wait_up(addr, &mut server).await?;
    let pid = server.0.id();
    for (key, features) in [(&small.api_key, 10), (&incident.api_key, 100)] {
        wait_served(addr, key, features).await?;
    }
    println!(
        "backend: {:?}; {} serve (pid {pid}) on {addr}; {} connections, {} s per load, {} rounds",
        store.backend(),
        args.server_binary
            .as_deref()
            .map_or("flagstone".into(), |b| b.display().to_string()),
        args.connections,
        args.seconds,
        args.rounds
    );

    let tag = format!("{:x}", std::process::id());
    let many = |env: &str| -> Vec<String> {
        (0..args.identities)
            .map(|i| body(&format!("bench-{tag}-{env}-{i}")))
            .collect()
    };
    let path = "/api/v1/identities/";
    const OFREP_BULK: &str = "/ofrep/v1/evaluate/flags";
    let mut loads: Vec<Load> = Vec::new();
    for (env, key) in [("small", &small.api_key), ("incident", &incident.api_key)] {
        let flags = loads.len();
        let mut add = |name: String, baseline, requests| {
            loads.push(Load {
                name,
                baseline,
                requests: Arc::new(requests),
                outcomes: Vec::new(),
                rereads: Vec::new(),
            })
        };
        add(
            format!("flags-{env}"),
            None,
            Requests::get("/api/v1/flags/", key),
        );
        add(
            format!("identify-{env}-1"),
            Some(flags),
            Requests::post(path, key, [body(&format!("bench-{tag}-{env}-one"))]),
        );
        add(
            format!("identify-{env}-{}", args.identities),
            Some(flags),
            Requests::post(path, key, many(env)),
        );
        // OFREP bulk evaluation of the same identities and traits: the same compiled document
        // and engine, no trait persistence, a different answer shape.
        add(
            format!("ofrep-bulk-{env}-{}", args.identities),
            Some(flags),
            Requests::post(
                OFREP_BULK,
                key,
                (0..args.identities).map(|i| ofrep_body(&format!("bench-{tag}-{env}-{i}"))),
            ),
        );
    }
    if !args.only.is_empty() {
        loads.retain(|l| args.only.contains(&l.name));
    }

    // Every identity once, so each exists with its traits stored before the timed rounds.
    let warm = Instant::now();
    for load in loads.iter().filter(|l| l.name.starts_with("identify")) {
        let once = Arc::new(Requests {
            raw: load.requests.raw.clone(),
            once: true,
        });
        loadgen::run(addr, pid, once, args.connections, Duration::from_secs(600)).await?;
    }
    for (env, id) in [
        ("small", small.environment_id),
        ("incident", incident.environment_id),
    ] {
        let expected = loads
            .iter()
            .filter(|l| l.name.starts_with(&format!("identify-{env}")))
            .map(|l| l.requests.raw.len())
            .sum();
        wait_identities(&store, id, &format!("bench-{tag}-{env}-"), expected).await?;
    }
    println!(
        "warm-up: every identity sent once and stored in {:.1?}",
        warm.elapsed()
    );

    let load_before = loadgen::load_average();
    let duration = Duration::from_secs_f64(args.seconds);
    for round in 0..args.rounds {
        for load in &mut loads {
            if load.requests.raw.len() > 1 {
                let once = Arc::new(Requests {
                    raw: load.requests.raw.clone(),
                    once: true,
                });
                let o = loadgen::run(addr, pid, once, args.connections, Duration::from_secs(600))
                    .await?;
                if o.errors > 0 {
                    bail!(
                        "{} re-read pass: {} of {} requests failed",
                        load.name,
                        o.errors,
                        o.requests
                    );
                }
                load.rereads.push(o);
            }
            let o =
                loadgen::run(addr, pid, load.requests.clone(), args.connections, duration).await?;
            if o.errors > 0 {
                bail!(
                    "{}: {} of {} requests failed",
                    load.name,
                    o.errors,
                    o.requests
                );
            }
            println!(
                "round {} {:<24} {:>9.0} req/s {:>7.1} µs CPU/request  p99 {:.2} ms",
                round + 1,
                load.name,
                o.rps(),
                o.cpu_us(),
                o.latency_ms(0.99)
            );
            load.outcomes.push(o);
        }
    }
    let load_after = loadgen::load_average();

    println!();
    println!(
        "| load ({} connections, {} s, median of {} rounds) | req/s | server CPU per request | x flags GET (CPU) | p50 | p99 |",
        args.connections, args.seconds, args.rounds
    );
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, outcomes: &[Outcome], baseline: Option<&Load>| {
        let cpu = median(outcomes.iter().map(Outcome::cpu_us));
        let ratio = baseline
            .filter(|b| b.name.starts_with("flags"))
            .map(|b| {
                format!(
                    "{:.2}x",
                    cpu / median(b.outcomes.iter().map(Outcome::cpu_us))
                )
            })
            .unwrap_or_else(|| "—".into());
        println!(
            "| `{name}` | {:.0} | {cpu:.1} µs | {ratio} | {:.2} ms | {:.2} ms |",
            median(outcomes.iter().map(Outcome::rps)),
            median(outcomes.iter().map(|o| o.latency_ms(0.5))),
            median(outcomes.iter().map(|o| o.latency_ms(0.99))),
        );
    };
    for load in &loads {
        let baseline = load.baseline.and_then(|b| loads.get(b));
        row(&load.name, &load.outcomes, baseline);
    }
    for load in loads.iter().filter(|l| !l.rereads.is_empty()) {
        let baseline = load.baseline.and_then(|b| loads.get(b));
        row(&format!("{}-reread", load.name), &load.rereads, baseline);
    }
    println!("load average (1 min) before the rounds {load_before}, after {load_after}");

    if args.flood > 0 && args.only.is_empty() {
        flood(&args, &store, addr, pid, &incident, &tag).await?;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&cache_dir);
    store.close().await;
    Ok(())
}

/// New identities as fast as the server answers, then how long until all are stored.
async fn flood(
    args: &IdentifyArgs,
    store: &Store,
    addr: SocketAddr,
    pid: u32,
    incident: &fixture::Fixture,
    tag: &str,
) -> anyhow::Result<()> {
    let prefix = format!("bench-{tag}-flood-");
    let requests = Arc::new(Requests {
        once: true,
        ..Requests::post(
            "/api/v1/identities/",
            &incident.api_key,
            (0..args.flood).map(|i| body(&format!("{prefix}{i}"))),
        )
    });
    let o = loadgen::run(
        addr,
        pid,
        requests,
        args.connections,
        Duration::from_secs_f64(args.seconds * 2.0),
    )
    .await?;
    let answered = Instant::now();
    wait_identities(store, incident.environment_id, &prefix, o.requests).await?;
    println!(
        "flood of new identities (incident environment, {} connections): {} requests in {:.1?} ({:.0} req/s, {:.1} µs CPU/request, p99 {:.2} ms, {} errors); all {} stored {:.1?} after the last answer",
        args.connections,
        o.requests,
        o.elapsed,
        o.rps(),
        o.cpu_us(),
        o.latency_ms(0.99),
        o.errors,
        o.requests,
        answered.elapsed()
    );
    Ok(())
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Waits until the edge serves the environment with all its features.
async fn wait_served(addr: SocketAddr, key: &str, features: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let requests = Arc::new(Requests::get("/api/v1/flags/", key));
    loop {
        if let Ok((200, body)) = loadgen::fetch(addr, &requests.raw[0]).await {
            let items: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
            if items.len() == features {
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("environment {key} not served with {features} features after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the environment holds `expected` identities whose identifier starts with
/// `prefix` (trait writes are behind the requests).
async fn wait_identities(
    store: &Store,
    environment_id: i64,
    prefix: &str,
    expected: usize,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let mut tx = store.read().await?;
        let page = flagstone_store::identities::list(
            &mut tx,
            environment_id,
            Some(prefix),
            PageRequest::new(1, 1),
        )
        .await
        .context("count identities")?;
        drop(tx);
        if page.count as usize >= expected {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {} of {expected} identities {prefix}* stored after 300 s",
                page.count
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
