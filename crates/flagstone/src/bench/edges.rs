//! Edges as the benches start and watch them (`bench upstream`, `bench scale`): the HTTP probes
//! of a node (readiness, the follower scope, an SDK flags request), polling with a deadline
//! ([`wait_for`]), the core they follow ([`start_core`]), and [`start_edge`], which starts an edge process and times its first answer
//! and its catch-up to fully current.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use flagstone_store::document::fixture::{self, Fixture};
use flagstone_store::Store;
use serde_json::Value;

use super::WorkerProcess;

/// The core the edges follow: `flagstone serve` over `url` on `bind`, its edge cache in
/// `cache`.
pub(super) fn start_core(
    url: &str,
    bind: SocketAddr,
    cache: &Path,
) -> anyhow::Result<WorkerProcess> {
    let cache = cache.to_str().context("temporary path is not UTF-8")?;
    let bind = bind.to_string();
    let args = ["serve", "--database-url", url, "--bind", &bind];
    WorkerProcess::spawn(&[&args[..], &["--edge-cache-dir", cache]].concat(), &[])
}

/// An admin organisation key of the fixture's organisation, for edges following an upstream.
pub(super) async fn follower_key(store: &Store, fx: &Fixture) -> anyhow::Result<String> {
    let prefix = flagstone_edge::follower_keys::ORG_KEY_PREFIX;
    Ok(fixture::organisation_admin_key(store, fx, prefix, "bench edges").await?)
}

/// How many environments the node at `at` offers followers holding `key`.
pub(super) async fn scope_len(
    http: &reqwest::Client,
    at: SocketAddr,
    key: &str,
) -> anyhow::Result<usize> {
    let r = http
        .get(format!("http://{at}/api/v1/edge/scope"))
        .header("authorization", format!("Api-Key {key}"))
        .send()
        .await?;
    let body: Value = r.json().await?;
    Ok(body["environments"].as_array().map_or(0, Vec::len))
}

/// The node's `/health/readiness`, if it answers.
pub(super) async fn readiness(http: &reqwest::Client, at: SocketAddr) -> Option<Value> {
    let r = http
        .get(format!("http://{at}/health/readiness"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// An SDK flags request with the client key `key`, if the node answers.
pub(super) async fn flags(
    http: &reqwest::Client,
    at: SocketAddr,
    key: &str,
) -> Option<reqwest::Response> {
    http.get(format!("http://{at}/api/v1/flags/"))
        .header("x-environment-key", key)
        .send()
        .await
        .ok()
}

/// The status of an SDK flags request with the client key `key`, if the node answers.
pub(super) async fn flags_status(http: &reqwest::Client, at: SocketAddr, key: &str) -> Option<u16> {
    Some(flags(http, at, key).await?.status().as_u16())
}

/// Polls `check` every 5 ms until it says yes (an error counts as no); fails naming `what`
/// after `within`.
pub(super) async fn wait_for<F, Fut>(
    within: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    loop {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        if start.elapsed() > within {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What counts as a starting edge's first answer.
#[derive(Clone, Copy, Debug)]
pub(super) enum FirstAnswer<'a> {
    /// Its readiness probe answers, whatever it says.
    Readiness,
    /// An SDK flags request with this client key is answered 200.
    Flags(&'a str),
}

/// An edge process started by [`start_edge`], with how long it took.
pub(super) struct StartedEdge {
    pub process: WorkerProcess,
    /// From the start until its readiness answered (whatever it said): it listens.
    pub listening: Duration,
    /// From the start until its first answer.
    pub first: Duration,
    /// From the start until it was fully current.
    pub current: Duration,
}

/// Starts `flagstone <args>` (an edge listening on `bind`, `env` added to its environment) and
/// waits for its `first` answer, then until its readiness satisfies `current`; each wait
/// fails after its own limit.
pub(super) async fn start_edge(
    http: &reqwest::Client,
    bind: SocketAddr,
    (args, env): (&[&str], &[(&str, &str)]),
    (first, first_within): (FirstAnswer<'_>, Duration),
    (current, current_within): (impl Fn(&Value) -> bool, Duration),
) -> anyhow::Result<StartedEdge> {
    let started = Instant::now();
    let process = WorkerProcess::spawn(args, env)?;
    wait_for(first_within, "the edge to listen", || async {
        Ok(readiness(http, bind).await.is_some())
    })
    .await?;
    let listening = started.elapsed();
    wait_for(first_within, "the edge's first answer", || async {
        Ok(match first {
            FirstAnswer::Readiness => readiness(http, bind).await.is_some(),
            FirstAnswer::Flags(key) => flags_status(http, bind, key).await == Some(200),
        })
    })
    .await?;
    let first = started.elapsed();
    wait_for(current_within, "the edge to be current", || async {
        Ok(readiness(http, bind).await.is_some_and(|r| current(&r)))
    })
    .await?;
    Ok(StartedEdge {
        process,
        listening,
        first,
        current: started.elapsed(),
    })
}
