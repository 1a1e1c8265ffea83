//! Real processes: one `flagstone worker` and two `flagstone edge` nodes on one database. A change
//! written to the store reaches both edges. On PostgreSQL the edges' periodic check is set to a
//! minute, so only `NOTIFY` can deliver the change in time; on SQLite they follow by polling.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flagstone_store::document::fixture;
use flagstone_store::testing::test_store;

mod common;
use common::{child_url, Proc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_flagstone"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start flagstone"),
    )
}

/// A minimal HTTP/1.1 GET; returns the body, or None if the server is not up.
async fn get(port: u16, path: &str, key: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Environment-Key: {key}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

async fn wait_for(port: u16, key: &str, needle: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Some(body) = get(port, "/api/v1/flags/", key).await {
            if body.contains(needle) {
                return start.elapsed();
            }
        }
        assert!(
            start.elapsed() < within,
            "edge on port {port} did not serve {needle:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_both_edges() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
        .await
        .unwrap();
    fixture::change_feature(&t.store, &fx, 0, "first")
        .await
        .unwrap();
    let url = child_url(&t);
    let poll_ms = if t.pg_schema.is_some() {
        "60000"
    } else {
        "100"
    };
    let _worker = spawn(&["worker", "--database-url", &url]);
    let caches = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ports = [free_port(), free_port()];
    let _edges: Vec<Proc> = ports
        .iter()
        .zip(&caches)
        .map(|(port, cache)| {
            spawn(&[
                "edge",
                "--database-url",
                &url,
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--edge-cache-dir",
                cache.path().to_str().unwrap(),
                "--edge-poll-ms",
                poll_ms,
            ])
        })
        .collect();
    for port in ports {
        wait_for(port, &fx.api_key, "first", Duration::from_secs(20)).await;
    }

    fixture::change_feature(&t.store, &fx, 0, "second")
        .await
        .unwrap();
    for port in ports {
        let took = wait_for(port, &fx.api_key, "second", Duration::from_secs(5)).await;
        eprintln!("edge on port {port} served the change after {took:?}");
    }
}
