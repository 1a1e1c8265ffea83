//! `flagstone bench soak`: a long run of steady traffic against one `flagstone serve` child, to
//! show that nothing accumulates. For `--seconds` (10 minutes by default) it sends SDK reads at
//! a fixed rate (flags, and identities of 1,000 identifiers in turn) over keep-alive
//! connections, a stream of admin writes (one feature's value, a counter), and holds real-time
//! (SSE) subscribers open. Every `--sample-seconds` it prints the server's RSS, open file
//! descriptors and CPU, with the requests answered and the errors of each kind since the last
//! sample. At the end it checks that the last acknowledged write is what SDKs get, and
//! summarises: errors, RSS and descriptors after warm-up (min and max), and SSE events seen.
//!
//! A bench, not a test: its figures go in RELIABILITY.md with the command.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::api::Shape;
use super::http::Client;
use super::{api, free_port, loadgen, open_target, proc_status_kib, wait_up, WorkerProcess};

const ADMIN_KEY: &str = "bench-soak-admin-key-0123456789";

#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// `postgres://…` to run on PostgreSQL (a fresh schema is created); default: a fresh SQLite
    /// file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// How long the load runs.
    #[arg(long, default_value_t = 600.0)]
    pub seconds: f64,
    /// SDK reads per second, spread over `--connections`.
    #[arg(long, default_value_t = 2_000)]
    pub reads_per_second: u32,
    /// Keep-alive connections the reads are sent on.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Admin writes per second (PATCHes of one feature's value).
    #[arg(long, default_value_t = 2.0)]
    pub writes_per_second: f64,
    /// Real-time (SSE) subscribers held open.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    pub sample_seconds: f64,
    /// Samples before this many seconds are left out of the RSS and descriptor summary.
    #[arg(long, default_value_t = 60.0)]
    pub warm_up_seconds: f64,
}

/// Counters shared by the load tasks.
#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    read_errors: AtomicU64,
    writes: AtomicU64,
    write_errors: AtomicU64,
    /// The counter value of the last write the API acknowledged.
    last_acked: AtomicI64,
    sse_events: AtomicU64,
    sse_errors: AtomicU64,
}

/// One sample of the server process.
struct Sample {
    at: f64,
    rss_kib: u64,
    fds: usize,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let target = open_target(args.database_url.as_deref()).await?;
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let mut server = WorkerProcess::serve(&target.child_url, addr, ADMIN_KEY)?;
    wait_up(addr, &mut server).await?;
    let pid = server.0.id();
    let shape = Shape {
        features: 20,
        mv_features: 2,
        segments: 10,
        overrides: 20,
    };
    let seeded = api::seed(addr, ADMIN_KEY, shape, 4).await?;
    let key = seeded.api_key.clone();
    let state = *seeded.state_ids.first().context("no feature state")?;
    let mut admin = Client::new(addr, ADMIN_KEY);
    let write_path = format!("/api/v1/environments/{key}/featurestates/{state}/");
    let first = admin
        .json(
            "PATCH",
            &write_path,
            Some(&json!({"feature_state_value": "0"})),
        )
        .await?;
    let feature = first["feature"]
        .as_i64()
        .context("no feature in the state")?;
    wait_value(addr, &key, feature, "0", Duration::from_secs(60)).await?;
    println!(
        "backend: {:?}; flagstone serve (pid {pid}) on {addr}; {} s: {} reads/s on {} connections, {} writes/s, {} SSE subscribers",
        target.store.backend(),
        args.seconds,
        args.reads_per_second,
        args.connections,
        args.writes_per_second,
        args.subscribers
    );

    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let per_connection = f64::from(args.reads_per_second) / args.connections.max(1) as f64;
    for c in 0..args.connections {
        let requests: Vec<Vec<u8>> = (0..1_000)
            .map(|i| {
                let path = if i % 2 == 0 {
                    "/api/v1/flags/".to_string()
                } else {
                    format!("/api/v1/identities/?identifier=soak-{c}-{i}")
                };
                format!("GET {path} HTTP/1.1\r\nHost: soak\r\nX-Environment-Key: {key}\r\n\r\n")
                    .into_bytes()
            })
            .collect();
        tasks.push(tokio::spawn(reads(
            addr,
            requests,
            per_connection,
            counters.clone(),
            stop.clone(),
        )));
    }
    for _ in 0..args.subscribers {
        let request = format!("GET /sse/environments/{key}/stream HTTP/1.1\r\nHost: soak\r\n\r\n");
        tasks.push(tokio::spawn(subscriber(
            addr,
            request,
            counters.clone(),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(writes(
        addr,
        write_path,
        args.writes_per_second,
        counters.clone(),
        stop.clone(),
    )));

    println!();
    println!("| t (s) | reads/s | read errors | writes | write errors | SSE events | SSE errors | RSS (MiB) | open fds | server CPU |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let start = Instant::now();
    let every = Duration::from_secs_f64(args.sample_seconds);
    let mut samples = Vec::new();
    let (mut last_reads, mut last_cpu, mut last_at) = (0, loadgen::process_cpu(pid)?, 0.0);
    while start.elapsed().as_secs_f64() < args.seconds {
        tokio::time::sleep(every).await;
        let at = start.elapsed().as_secs_f64();
        let s = Sample {
            at,
            rss_kib: proc_status_kib(pid, "VmRSS").context("no VmRSS")?,
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        };
        let reads = counters.reads.load(Ordering::Relaxed);
        let cpu = loadgen::process_cpu(pid)?;
        let cpu_share = (cpu - last_cpu).as_secs_f64() / (at - last_at);
        println!(
            "| {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {} | {:.0} % |",
            at,
            (reads - last_reads) as f64 / (at - last_at),
            counters.read_errors.load(Ordering::Relaxed),
            counters.writes.load(Ordering::Relaxed),
            counters.write_errors.load(Ordering::Relaxed),
            counters.sse_events.load(Ordering::Relaxed),
            counters.sse_errors.load(Ordering::Relaxed),
            s.rss_kib as f64 / 1024.0,
            s.fds,
            cpu_share * 100.0
        );
        (last_reads, last_cpu, last_at) = (reads, cpu, at);
        samples.push(s);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }

    let last = counters.last_acked.load(Ordering::Relaxed);
    let stopped = Instant::now();
    wait_value(
        addr,
        &key,
        feature,
        &last.to_string(),
        Duration::from_secs(30),
    )
    .await?;
    let steady: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= args.warm_up_seconds)
        .collect();
    let span = |f: fn(&Sample) -> f64| -> (f64, f64) {
        steady.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| {
            (lo.min(f(s)), hi.max(f(s)))
        })
    };
    let (rss_lo, rss_hi) = span(|s| s.rss_kib as f64 / 1024.0);
    let (fd_lo, fd_hi) = span(|s| s.fds as f64);
    println!();
    println!(
        "reads answered: {}; errors: {} reads, {} writes, {} SSE",
        counters.reads.load(Ordering::Relaxed),
        counters.read_errors.load(Ordering::Relaxed),
        counters.write_errors.load(Ordering::Relaxed),
        counters.sse_errors.load(Ordering::Relaxed),
    );
    println!(
        "writes acknowledged: {}; the last ({last}) served to SDKs {:.0?} after the load stopped",
        counters.writes.load(Ordering::Relaxed),
        stopped.elapsed()
    );
    println!(
        "SSE events received by {} subscribers: {}",
        args.subscribers,
        counters.sse_events.load(Ordering::Relaxed)
    );
    if !steady.is_empty() {
        println!(
            "after {:.0} s of warm-up: RSS {rss_lo:.1}–{rss_hi:.1} MiB, open fds {fd_lo:.0}–{fd_hi:.0}",
            args.warm_up_seconds
        );
    }
    drop(server);
    target.store.close().await;
    Ok(())
}

/// Reads at `per_second` on one keep-alive connection (reconnecting after an error).
async fn reads(
    addr: SocketAddr,
    requests: Vec<Vec<u8>>,
    per_second: f64,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second.max(0.001)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::new();
    for request in requests.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        tick.tick().await;
        if conn.is_none() {
            conn = TcpStream::connect(addr).await.ok();
        }
        let Some(stream) = conn.as_mut() else {
            counters.read_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let answered = async {
            stream.write_all(request).await?;
            loadgen::read_response(stream, &mut buf).await
        }
        .await;
        match answered {
            Ok((200, _)) => {
                counters.reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) | Err(_) => {
                counters.read_errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
}

/// One admin write every `1 / per_second` s: the feature's value is the write's number.
async fn writes(
    addr: SocketAddr,
    path: String,
    per_second: f64,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second.max(0.001)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut admin = Client::new(addr, ADMIN_KEY);
    for n in 1i64.. {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let body = json!({"feature_state_value": n.to_string()});
        match admin.send("PATCH", &path, Some(&body)).await {
            Ok((200, _)) => {
                counters.writes.fetch_add(1, Ordering::Relaxed);
                counters.last_acked.store(n, Ordering::Relaxed);
            }
            _ => {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                admin = Client::new(addr, ADMIN_KEY);
            }
        }
    }
}

/// Holds an SSE subscription open, counting `environment_updated` events; a stream that ends
/// or fails is counted as an error and opened again.
async fn subscriber(
    addr: SocketAddr,
    request: String,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let needle = b"event: environment_updated";
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            counters.sse_errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        if stream.write_all(request.as_bytes()).await.is_err() {
            counters.sse_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut buf = vec![0u8; 16 << 10];
        // Bytes kept from the previous read, so an event name split across reads is found.
        let mut carry: Vec<u8> = Vec::new();
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    carry.extend_from_slice(&buf[..n]);
                    let found = carry.windows(needle.len()).filter(|w| w == needle).count();
                    counters
                        .sse_events
                        .fetch_add(found as u64, Ordering::Relaxed);
                    let keep = carry.len().min(needle.len() - 1);
                    if found > 0 {
                        carry.clear();
                    } else {
                        carry.drain(..carry.len() - keep);
                    }
                }
            }
        }
        if !stop.load(Ordering::Relaxed) {
            counters.sse_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Waits until SDKs get `value` for `feature`.
async fn wait_value(
    addr: SocketAddr,
    key: &str,
    feature: i64,
    value: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let request =
        format!("GET /api/v1/flags/ HTTP/1.1\r\nHost: soak\r\nX-Environment-Key: {key}\r\n\r\n");
    let start = Instant::now();
    loop {
        if let Ok((200, body)) = loadgen::fetch(addr, request.as_bytes()).await {
            let flags: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
            let served = flags
                .iter()
                .find(|f| f["feature"]["id"].as_i64() == Some(feature))
                .map(|f| f["feature_state_value"].clone());
            if served == Some(json!(value)) {
                return Ok(());
            }
        }
        if start.elapsed() > within {
            bail!("SDKs did not get value {value} of feature {feature} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
