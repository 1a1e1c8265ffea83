//! `flagstone bench upstream`: edges without database access, measured. Creates N environments
//! (20 features each) in one organisation, starts `flagstone serve` and waits until all are
//! published, then starts an edge following it over HTTP (`edge --upstream`) and a second
//! edge chained behind that one, each with an empty cache, and reports for each: time to its
//! first answered request and time until it serves every environment at the core's revision.
//! Then the chained edge is restarted on its warm cache. Last, single changes: the time from a
//! change's commit until the core's own SDK API, the first edge (one hop) and the chained edge
//! (two hops) serve it, as medians of several changes, side by side.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flagstone_store::document::fixture::{self, Fixture, Shape};
use flagstone_store::{Actor, Store};
use serde_json::Value;

use super::edges::{
    flags, follower_key, scope_len, start_core, start_edge, wait_for, FirstAnswer, StartedEdge,
};
use super::{free_port, open_target};

#[derive(clap::Args, Debug)]
pub struct UpstreamArgs {
    /// `postgres://…` to measure on PostgreSQL (a fresh schema is created); default: a fresh
    /// SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Environments followed through the upstream.
    #[arg(long, default_value_t = 1_000)]
    pub environments: usize,
    /// Single changes timed through one and two hops.
    #[arg(long, default_value_t = 20)]
    pub changes: usize,
}

pub async fn run(args: UpstreamArgs) -> anyhow::Result<()> {
    let target = open_target(args.database_url.as_deref()).await?;
    let store = target.store.clone();
    println!("backend: {:?}", store.backend());
    let fx = fixture::create(&store, TWENTY_FEATURES).await?;
    let created = Instant::now();
    add_environments(&store, &fx, args.environments.saturating_sub(1)).await?;
    println!(
        "created {} environments of 20 features in {:.1?}",
        args.environments,
        created.elapsed()
    );
    let key = follower_key(&store, &fx).await?;
    let http = reqwest::Client::new();

    let core: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let scratch = super::scratch_dir("flagstone-bench-upstream-")?;
    let tmp = scratch.path().to_path_buf();
    let _core = start_core(&target.child_url, core, &tmp.join("core"))?;
    let started = Instant::now();
    wait_for(
        Duration::from_secs(600),
        "the core to publish everything",
        || async { Ok(scope_len(&http, core, &key).await? == args.environments) },
    )
    .await?;
    println!(
        "core: every environment published and served after {:.1?}",
        started.elapsed()
    );

    let near: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let far: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let near_cache = tmp.join("near");
    let far_cache = tmp.join("far");
    let near_edge =
        start_upstream_edge(&http, core, near, &key, &near_cache, args.environments).await?;
    report("edge (1 hop, cold cache)", &near_edge);
    let far_cold =
        start_upstream_edge(&http, near, far, &key, &far_cache, args.environments).await?;
    report("edge (2 hops, cold cache)", &far_cold);
    drop(far_cold);
    let far_edge =
        start_upstream_edge(&http, near, far, &key, &far_cache, args.environments).await?;
    report("edge (2 hops, warm cache)", &far_edge);

    let mut latencies: [Vec<Duration>; 3] = Default::default();
    for i in 0..args.changes {
        let value = format!("bench-{i}");
        let changed = Instant::now();
        fixture::change_feature(&store, &fx, 0, &value).await?;
        let mut pending: Vec<(usize, SocketAddr)> = vec![(0, core), (1, near), (2, far)];
        while !pending.is_empty() {
            if changed.elapsed() > Duration::from_secs(60) {
                bail!("change {i} not served everywhere within 60 s");
            }
            let mut still = Vec::new();
            for (n, addr) in pending {
                if served_value(&http, addr, &fx.api_key).await.as_deref() == Some(&value) {
                    latencies[n].push(changed.elapsed());
                } else {
                    still.push((n, addr));
                }
            }
            pending = still;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let [core_l, one, two] = latencies.map(median);
    println!(
        "one change, commit to served (median of {}): core {core_l:.1?}, 1 hop {one:.1?}, 2 hops {two:.1?} (ratios {:.2} and {:.2})",
        args.changes,
        one.as_secs_f64() / core_l.as_secs_f64(),
        two.as_secs_f64() / core_l.as_secs_f64(),
    );
    store.close().await;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The environments of the many-environment benches (upstream, scale, burst): 20 plain
/// features, documents of a few kB.
pub(super) const TWENTY_FEATURES: Shape = Shape {
    features: 20,
    mv_features: 0,
    segments: 0,
    overrides: 0,
};

/// More environments in the fixture's project (each gets a state of every feature).
pub(super) async fn add_environments(store: &Store, fx: &Fixture, n: usize) -> anyhow::Result<()> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut ch = store.change(&Actor::system("bench")).await?;
        for i in chunk {
            let new = serde_json::from_value(serde_json::json!({
                "name": format!("env-{i}"),
                "project": fx.project_id,
            }))?;
            let env = flagstone_store::environments::create(&mut ch, &new).await?;
            ch.touch_environment(env.id);
        }
        ch.commit().await?;
    }
    Ok(())
}

async fn served_value(http: &reqwest::Client, at: SocketAddr, client_key: &str) -> Option<String> {
    let flags: Value = flags(http, at, client_key).await?.json().await.ok()?;
    flags
        .as_array()?
        .iter()
        .find(|f| f["feature"]["name"] == "feature_0000")
        .and_then(|f| f["feature_state_value"].as_str().map(str::to_string))
}

/// Starts an edge following `upstream` and times it: its first answered request, and until it
/// serves all `n` environments with nothing behind.
async fn start_upstream_edge(
    http: &reqwest::Client,
    upstream: SocketAddr,
    bind: SocketAddr,
    key: &str,
    cache: &std::path::Path,
    n: usize,
) -> anyhow::Result<StartedEdge> {
    let (upstream, bind_arg) = (format!("http://{upstream}"), bind.to_string());
    let args = [
        "edge",
        "--upstream",
        &upstream,
        "--bind",
        &bind_arg,
        "--edge-cache-dir",
        cache.to_str().context("path")?,
    ];
    start_edge(
        http,
        bind,
        (&args, &[("FLAGSTONE_UPSTREAM_KEY", key)]),
        (FirstAnswer::Readiness, Duration::from_secs(60)),
        (
            |r: &Value| {
                r["environments"] == n
                    && r["environments_behind"] == 0
                    && r["upstream_reachable"] == true
                    && r["serving_from_cache"] == false
            },
            Duration::from_secs(600),
        ),
    )
    .await
}

fn report(what: &str, edge: &StartedEdge) {
    println!(
        "{what}: first request after {:.1?}, fully current after {:.1?}",
        edge.first, edge.current
    );
}
