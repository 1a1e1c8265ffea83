//! `flagstone bench usage`: what flag-usage counting (and the request metrics around it) costs
//! an SDK request. The edge router runs in-process with the request metrics and tracing layers
//! every role has (no sockets: only the server's work is measured) over a fresh store holding
//! one environment of 50 features, its document published and loaded. `GET /api/v1/flags/`
//! and `GET /api/v1/identities/?identifier=…` (1,000 identities, cached after their first
//! load) are sent in interleaved rounds with counting on and off (the usage flusher running
//! on its default 10 s interval); each round reports requests per second and the process's CPU
//! time (utime + stime from /proc/self/stat) per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use flagstone_edge::{EdgeConfig, EdgeState, Follower, FollowerConfig, PublishFeed, Registry};
use flagstone_store::document::{build, store_if_newer, BuildOptions};
use flagstone_store::keys;
use serde_json::json;
use tower::Service;

use super::open_target;
use super::permissions::ok;

const ADMIN_KEY: &str = "bench-usage-admin-key-012345";

#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// Requests per round.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Rounds per variant (interleaved: on, off, on, off…).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
}

/// CPU time of this process so far (user + system), from /proc/self/stat (clock ticks of 10 ms).
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which ends with the last ')').
    let rest = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).context("utime")?.parse()?;
    let stime: u64 = f.get(12).context("stime")?.parse()?;
    Ok(Duration::from_millis((utime + stime) * 10))
}

async fn get(app: &Router, path: &str, key: &str) -> anyhow::Result<()> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("x-environment-key", key)
        .body(Body::empty())?;
    let mut svc = app.clone();
    let resp = <Router as Service<Request<Body>>>::call(&mut svc, req).await?;
    if !resp.status().is_success() {
        bail!("{path}: {}", resp.status());
    }
    axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
    Ok(())
}

pub async fn run(args: UsageArgs) -> anyhow::Result<()> {
    let _metrics = flagstone_observe::install(flagstone_observe::Role::Edge);
    let target = open_target(None).await?;
    let store = target.store.clone();
    keys::ensure_admin_key(&store, Some(ADMIN_KEY)).await?;
    let admin = flagstone_api::router(flagstone_api::AppState::new(store.clone()));
    let auth = format!("Api-Key {ADMIN_KEY}");
    let org = ok(
        &admin,
        Method::POST,
        "/api/v1/organisations",
        &auth,
        Some(json!({"name": "B"})),
    )
    .await?;
    let project = ok(
        &admin,
        Method::POST,
        "/api/v1/projects",
        &auth,
        Some(json!({"name": "P", "organisation": org["id"]})),
    )
    .await?;
    let env = ok(
        &admin,
        Method::POST,
        "/api/v1/environments",
        &auth,
        Some(json!({"name": "prod", "project": project["id"]})),
    )
    .await?;
    let key = env["api_key"].as_str().context("api_key")?.to_string();
    let env_id = env["id"].as_i64().context("environment id")?;
    for i in 0..50 {
        ok(
            &admin,
            Method::POST,
            &format!("/api/v1/projects/{}/features", project["id"]),
            &auth,
            Some(json!({"name": format!("feature_{i}"), "default_enabled": i % 2 == 0, "initial_value": i})),
        )
        .await?;
    }
    let doc = build(&store, env_id, &BuildOptions::default()).await?;
    let mut tx = store.write().await?;
    store_if_newer(&mut tx, &doc).await?;
    tx.commit().await?;
    let registry = Arc::new(Registry::default());
    let cache =
        std::env::temp_dir().join(format!("flagstone-bench-usage-{}", super::uuid_simple()));
    let _follower = Follower::start(
        store.clone(),
        registry.clone(),
        FollowerConfig {
            poll_interval: Duration::from_secs(3600),
            cache_dir: Some(cache.clone()),
        },
        PublishFeed::PollOnly,
    )
    .await;
    registry.initial_load_finished().await;
    let state = EdgeState::new(store.clone(), registry, EdgeConfig::default());
    let app = crate::serve::with_common_routes(flagstone_edge::router(state.clone()));
    println!(
        "backend: {:?}; 50 features; {} requests per round, {} rounds per variant",
        store.backend(),
        args.requests,
        args.rounds
    );
    // Warm up: every identity loaded once.
    for i in 0..1000 {
        get(
            &app,
            &format!("/api/v1/identities?identifier=user-{i}"),
            &key,
        )
        .await?;
    }
    println!("| request | counting | req/s (median round) | CPU per request (median round) |");
    println!("|---|---|---|---|");
    for (label, path) in [
        ("GET /api/v1/flags/", None),
        (
            "GET /api/v1/identities/",
            Some("/api/v1/identities?identifier=user-"),
        ),
    ] {
        let mut results: [(Vec<f64>, Vec<f64>); 2] = Default::default();
        for round in 0..args.rounds * 2 {
            let on = round % 2 == 0;
            flagstone_edge::usage::set_counting(on);
            let (t0, c0) = (Instant::now(), cpu_time()?);
            for i in 0..args.requests {
                match path {
                    None => get(&app, "/api/v1/flags", &key).await?,
                    Some(p) => get(&app, &format!("{p}{}", i % 1000), &key).await?,
                }
            }
            let (wall, cpu) = (t0.elapsed(), cpu_time()? - c0);
            let n = args.requests as f64;
            let slot = &mut results[usize::from(!on)];
            slot.0.push(n / wall.as_secs_f64());
            slot.1.push(cpu.as_secs_f64() * 1e6 / n);
        }
        for (i, name) in ["on", "off"].iter().enumerate() {
            let (rps, cpu) = &mut results[i];
            println!(
                "| {label} | {name} | {:.0} | {:.2} µs |",
                median(rps),
                median(cpu)
            );
        }
    }
    flagstone_edge::usage::set_counting(true);
    println!("usage flush: {:?}", state.usage.flush().await);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
