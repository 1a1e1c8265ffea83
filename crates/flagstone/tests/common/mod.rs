//! The harness of the tests that run `flagstone` as child processes: starting its subcommands
//! (`serve`, `worker`, an edge on the database or following an upstream) on free loopback
//! ports, killed when dropped; a minimal HTTP/1.1 client to reach them; and the waits the tests
//! need — until a node serves a value, reports a readiness, or traits reach the store. The
//! processes are separate, so a wait is a poll with a deadline ([`eventually`]).
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use flagstone_store::document::{self, fixture, fixture::Fixture};
use flagstone_store::queue;
use flagstone_store::testing::TestStore;
use flagstone_store::Store;

/// A child process, killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a test starts its `flagstone` children: stdout discarded, stderr inherited, and the
/// children's `RUST_LOG`.
#[derive(Clone, Copy, Debug)]
pub struct Children {
    log: &'static str,
    log_var: Option<&'static str>,
}

impl Children {
    /// Children whose `RUST_LOG` is `log`.
    pub const fn logging(log: &'static str) -> Children {
        Children { log, log_var: None }
    }

    /// The same children, but when the test's own environment sets `var`, that is their
    /// `RUST_LOG`: a failing run can be repeated with what the children did shown.
    pub const fn overridden_by(self, var: &'static str) -> Children {
        Children {
            log: self.log,
            log_var: Some(var),
        }
    }

    /// `flagstone <args>`.
    pub fn spawn<S: AsRef<OsStr>>(self, args: &[S]) -> Proc {
        let log = self
            .log_var
            .and_then(|v| std::env::var(v).ok())
            .unwrap_or_else(|| self.log.to_string());
        Proc(
            Command::new(env!("CARGO_BIN_EXE_flagstone"))
                .args(args)
                .env("RUST_LOG", log)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start flagstone"),
        )
    }

    /// `flagstone worker` on `url`, then `extra` flags.
    pub fn worker(self, url: &str, extra: &[&str]) -> Proc {
        self.spawn(&[&["worker", "--database-url", url], extra].concat())
    }

    /// `flagstone serve` on `url` and `port`, its edge cache in `cache`, then `extra` flags.
    pub fn serve(self, url: &str, port: u16, cache: &Path, extra: &[&str]) -> Proc {
        let bind = format!("127.0.0.1:{port}");
        let cache = cache.to_str().unwrap();
        let args = ["serve", "--database-url", url, "--bind", &bind];
        self.spawn(&[&args[..], &["--edge-cache-dir", cache], extra].concat())
    }

    /// `flagstone edge` reading the database at `url`, on `port`, its cache in `cache`, then
    /// `extra` flags.
    pub fn db_edge(self, url: &str, port: u16, cache: &Path, extra: &[&str]) -> Proc {
        let bind = format!("127.0.0.1:{port}");
        let cache = cache.to_str().unwrap();
        let args = ["edge", "--database-url", url, "--bind", &bind];
        self.spawn(&[&args[..], &["--edge-cache-dir", cache], extra].concat())
    }

    /// `flagstone edge` without database access following the node on port `upstream` with
    /// the organisation key `key`, on `port`, its cache in `cache`, flushing usage every
    /// second; then `extra` flags.
    pub fn upstream_edge(
        self,
        upstream: u16,
        key: &str,
        port: u16,
        cache: &Path,
        extra: &[&str],
    ) -> Proc {
        let upstream = format!("http://127.0.0.1:{upstream}");
        let bind = format!("127.0.0.1:{port}");
        let cache = cache.to_str().unwrap();
        let args = [
            "edge",
            "--upstream",
            &upstream,
            "--upstream-key",
            key,
            "--bind",
            &bind,
            "--edge-cache-dir",
            cache,
            "--edge-usage-flush-seconds",
            "1",
        ];
        self.spawn(&[&args[..], extra].concat())
    }
}

/// The test store's URL as a child process must use it (on PostgreSQL, with the test's
/// schema on the search path).
#[allow(dead_code)]
pub fn child_url(t: &TestStore) -> String {
    match &t.pg_schema {
        Some(schema) => format!("{}?options=-c%20search_path%3D{schema}", t.url),
        None => t.url.clone(),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 request; `None` if nothing listens yet.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A request that must succeed (status below 300); its JSON body, or `Null` if it has none.
pub async fn call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Value {
    let (status, text) = http(port, method, path, headers, Some(&body))
        .await
        .expect("an answer");
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// `GET /api/v1/flags/` with the client key `key`: status and body.
pub async fn flags(port: u16, key: &str) -> Option<(u16, String)> {
    http(
        port,
        "GET",
        "/api/v1/flags/",
        &[("X-Environment-Key", key)],
        None,
    )
    .await
}

/// Feature 0's value served to `fx`'s client key with 200, or another status and its body.
pub async fn served(port: u16, fx: &Fixture) -> Option<(u16, String)> {
    let (status, body) = flags(port, &fx.api_key).await?;
    if status != 200 {
        return Some((status, body));
    }
    let flags: Value = serde_json::from_str(&body).ok()?;
    let value = flags
        .as_array()?
        .iter()
        .find(|f| f["feature"]["name"] == "feature_0000")
        .map(|f| f["feature_state_value"].as_str().unwrap_or("").to_string())?;
    Some((200, value))
}

/// `/health/readiness` of the node on `port`.
pub async fn readiness(port: u16) -> Option<Value> {
    let (_, body) = http(port, "GET", "/health/readiness", &[], None).await?;
    serde_json::from_str(&body).ok()
}

/// Calls `attempt` every `every` until it gives `Ok`; once `within` has passed, fails the
/// test saying that `what` did not happen and what the last attempt saw (its `Err`).
pub async fn eventually<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut attempt: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(seen) => assert!(
                start.elapsed() < within,
                "{what}: not within {within:?}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until the node `name` on `port` serves `value` as feature 0 of `fx`.
pub async fn wait_served(name: &str, port: u16, fx: &Fixture, value: &str, within: Duration) {
    let what = format!(
        "{name} serves {value:?} for environment {}",
        fx.environment_id
    );
    eventually(&what, within, Duration::from_millis(10), || async move {
        match served(port, fx).await {
            Some((200, v)) if v == value => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Waits until the readiness of the node `name` on `port` satisfies `pred` (described by
/// `what`); returns that readiness.
pub async fn wait_readiness(
    name: &str,
    port: u16,
    what: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let pred = &pred;
    eventually(
        &format!("{name}: {what}"),
        within,
        Duration::from_millis(50),
        || async move {
            match readiness(port).await {
                Some(r) if pred(&r) => Ok(r),
                other => Err(format!("readiness {other:?}")),
            }
        },
    )
    .await
}

/// Waits until the node `name` on `port` answers its liveness probe with 200: it is "up".
/// Polled every 5 ms, so that a restart's time from up can be measured.
pub async fn wait_live(name: &str, port: u16, within: Duration) {
    eventually(
        &format!("{name} comes up"),
        within,
        Duration::from_millis(5),
        || async move {
            match http(port, "GET", "/health/liveness", &[], None).await {
                Some((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// An admin organisation API key of the fixture's organisation, as an operator would create
/// for edges that follow an upstream.
pub async fn follower_key(store: &Store, fx: &Fixture) -> String {
    let prefix = flagstone_edge::follower_keys::ORG_KEY_PREFIX;
    fixture::organisation_admin_key(store, fx, prefix, "edges")
        .await
        .unwrap()
}

/// Identifies `identifier` of `fx` with the trait `plan = "gold"` at the edge `name` on
/// `port` (answered 200), then waits until the trait reaches the store: the edge has no
/// database access and writes it through its upstream.
pub async fn identify_reaches_store(
    name: &str,
    port: u16,
    store: &Store,
    fx: &Fixture,
    identifier: &str,
) {
    let body = json!({
        "identifier": identifier,
        "traits": [{"trait_key": "plan", "trait_value": "gold"}],
    });
    let (status, text) = http(
        port,
        "POST",
        "/api/v1/identities/",
        &[("X-Environment-Key", &fx.api_key)],
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{name}: {text}");
    let what = format!("the trait {name} was sent for {identifier:?} reaches the store");
    eventually(
        &what,
        Duration::from_secs(20),
        Duration::from_millis(50),
        || async move {
            let mut tx = store.read().await.unwrap();
            let stored =
                flagstone_store::identities::load_identity(&mut tx, fx.environment_id, identifier)
                    .await
                    .unwrap();
            let traits = stored.map(|(_, traits, _)| traits).unwrap_or_default();
            if traits
                .iter()
                .any(|t| t.trait_key == "plan" && t.trait_value == json!("gold"))
            {
                Ok(())
            } else {
                Err(format!("stored traits {traits:?}"))
            }
        },
    )
    .await
}

/// An environment's current revision and the revision it has published, if any.
pub async fn revisions(store: &Store, env: i64) -> (i64, Option<i64>) {
    let mut tx = store.read().await.unwrap();
    let current = flagstone_store::environments::get(&mut tx, env)
        .await
        .unwrap()
        .revision;
    let published = document::stored::published_revision(&mut tx, env)
        .await
        .unwrap();
    (current, published)
}

/// No two builds of environment `env` in its publish `log` overlap in time: no environment
/// is built by two workers at once.
pub fn assert_builds_never_overlap(env: i64, log: &[queue::PublishLogEntry]) {
    let mut spans: Vec<_> = log
        .iter()
        .map(|e| (e.started_at, e.finished_at, &e.worker))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "environment {env} built by {} and {} at once: {:?} overlaps {:?}",
            w[0].2,
            w[1].2,
            (w[0].0, w[0].1),
            (w[1].0, w[1].1)
        );
    }
}
