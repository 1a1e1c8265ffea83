//! Connections that never finish, over real sockets against a real `flagstone serve` bound to
//! port 0: header-read, idle and body timeouts, the connection cap (and its log line), the SSE
//! caps, SSE's exemption from the idle timeout, and graceful shutdown with streams open. The
//! `--metrics-addr` listener (here the standalone worker's) has the same header timeout and cap.

use std::time::{Duration, Instant};

use flagstone_store::document::fixture;
use flagstone_store::testing::test_store;
use tokio::io::AsyncWriteExt;

mod common;
mod transport {
    pub mod server;
}
use common::child_url;
use transport::server::{closed_within, read_response, request, silent_for, Server};

const LIVENESS: &str = "GET /health/liveness HTTP/1.1\r\nHost: t\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let t = test_store().await;
    let server = Server::start(
        &child_url(&t),
        &[
            "--http-header-timeout-ms",
            "300",
            "--http-idle-timeout-ms",
            "60000",
        ],
    );
    // One sends nothing at all, one half a request line, one all but the final blank line.
    let mut silent = server.connect().await;
    let mut half = server.connect().await;
    half.write_all(b"GET /health/liven").await.unwrap();
    let mut headers = server.connect().await;
    headers
        .write_all(b"GET /health/liveness HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    for s in [&mut silent, &mut half, &mut headers] {
        assert!(closed_within(s, Duration::from_secs(5)).await);
    }
    // A client that does finish is served as usual.
    let mut ok = server.connect().await;
    let r = request(&mut ok, LIVENESS).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let t = test_store().await;
    let server = Server::start(
        &child_url(&t),
        &[
            "--http-header-timeout-ms",
            "60000",
            "--http-idle-timeout-ms",
            "300",
        ],
    );
    let mut s = server.connect().await;
    // Requests in a row on one connection are fine; then it stays idle and is closed, long
    // before the 60 s header timeout (which only governs a connection's first request).
    for _ in 0..3 {
        assert_eq!(request(&mut s, LIVENESS).await.status, 200);
    }
    let idle_since = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert!(idle_since.elapsed() >= Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_answered_408_naming_the_limit() {
    let t = test_store().await;
    let server = Server::start(&child_url(&t), &["--http-body-timeout-ms", "300"]);
    let mut s = server.connect().await;
    s.write_all(
        b"POST /api/v1/auth/login/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\": ",
    )
    .await
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), read_response(&mut s, false))
        .await
        .expect("an answer once the body deadline passes");
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.body.contains("--http-body-timeout-ms"), "{}", r.body);
    assert!(r.head.to_ascii_lowercase().contains("connection: close"));
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    // A body that arrives in time is handled as usual (here: refused credentials, not 408).
    let mut s = server.connect().await;
    let body = r#"{"email": "nobody@example.com", "password": "wrong"}"#;
    let r = request(
        &mut s,
        &format!(
            "POST /api/v1/auth/login/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_clients_wait_and_the_log_says_so() {
    let t = test_store().await;
    let server = Server::start(
        &child_url(&t),
        &[
            "--http-max-connections",
            "2",
            "--http-header-timeout-ms",
            "30000",
        ],
    );
    let mut first = server.connect().await;
    let _second = server.connect().await;
    server.wait_for_log("connection cap reached").await;
    let mut third = server.connect().await;
    third.write_all(LIVENESS.as_bytes()).await.unwrap();
    assert!(
        silent_for(&mut third, Duration::from_millis(300)).await,
        "a connection past the cap is not served"
    );
    // One closes: the waiting client is served.
    first.shutdown().await.unwrap();
    drop(first);
    let r = tokio::time::timeout(Duration::from_secs(5), read_response(&mut third, false))
        .await
        .expect("served once a connection closed");
    assert_eq!(r.status, 200);
    server.wait_for_log("below the connection cap again").await;
}

/// Three environments with published documents; their client keys.
async fn three_environments(t: &flagstone_store::testing::TestStore) -> Vec<String> {
    let mut keys = Vec::new();
    for _ in 0..3 {
        let fx = fixture::create(&t.store, fixture::Shape::INCIDENT.times(0))
            .await
            .unwrap();
        fixture::change_feature(&t.store, &fx, 0, "on")
            .await
            .unwrap();
        keys.push(fx.api_key);
    }
    keys
}

async fn subscribe(server: &Server, key: &str) -> (tokio::net::TcpStream, u16, String) {
    let mut s = server.connect().await;
    let req = format!("GET /sse/environments/{key}/stream HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let r = read_response(&mut s, true).await;
    (s, r.status, r.body)
}

async fn wait_until_served(server: &Server, key: &str) {
    let start = Instant::now();
    loop {
        let mut s = server.connect().await;
        let req =
            format!("GET /api/v1/flags/ HTTP/1.1\r\nHost: t\r\nX-Environment-Key: {key}\r\n\r\n");
        if request(&mut s, &req).await.status == 200 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{key} never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_is_exempt_from_the_idle_timeout_but_capped_per_environment_and_per_server() {
    let t = test_store().await;
    let keys = three_environments(&t).await;
    let server = Server::start(
        &child_url(&t),
        &[
            "--http-idle-timeout-ms",
            "200",
            "--http-header-timeout-ms",
            "200",
            "--edge-sse-max-per-environment",
            "1",
            "--edge-sse-max-connections",
            "2",
        ],
    );
    for key in &keys {
        wait_until_served(&server, key).await;
    }
    let (mut a, status, _) = subscribe(&server, &keys[0]).await;
    assert_eq!(status, 200);
    let (_, status, body) = subscribe(&server, &keys[0]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("--edge-sse-max-per-environment"), "{body}");
    let (mut b, status, _) = subscribe(&server, &keys[1]).await;
    assert_eq!(status, 200);
    let (_, status, body) = subscribe(&server, &keys[2]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("--edge-sse-max-connections"), "{body}");
    // Well past the idle and header timeouts (200 ms), the streams are still open.
    assert!(!closed_within(&mut a, Duration::from_millis(1000)).await);
    assert!(!closed_within(&mut b, Duration::from_millis(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_with_idle_connections_and_open_streams() {
    let t = test_store().await;
    let keys = three_environments(&t).await;
    let server = Server::start(&child_url(&t), &["--http-shutdown-grace-ms", "300"]);
    wait_until_served(&server, &keys[0]).await;
    let mut idle = server.connect().await;
    assert_eq!(request(&mut idle, LIVENESS).await.status, 200);
    let (mut stream, status, _) = subscribe(&server, &keys[0]).await;
    assert_eq!(status, 200);
    let mut proc = server.proc;
    let pid = proc.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await);
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    let start = Instant::now();
    loop {
        if let Some(status) = proc.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_has_the_header_timeout_and_the_connection_cap() {
    let t = test_store().await;
    let server = Server::start_worker_metrics(
        &child_url(&t),
        &[
            "--http-header-timeout-ms",
            "300",
            "--http-idle-timeout-ms",
            "60000",
            "--http-max-connections",
            "2",
        ],
    );
    let metrics = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    // A scraper that sends nothing is disconnected by the header timeout.
    let mut silent = server.connect().await;
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    // Two connections held open fill the cap: a third waits, unserved, until one closes.
    let mut first = server.connect().await;
    assert_eq!(request(&mut first, metrics).await.status, 200);
    let mut second = server.connect().await;
    assert_eq!(request(&mut second, LIVENESS).await.status, 200);
    let mut third = server.connect().await;
    third.write_all(metrics.as_bytes()).await.unwrap();
    server.wait_for_log("connection cap reached").await;
    assert!(
        silent_for(&mut third, Duration::from_millis(300)).await,
        "a connection past the cap is not served"
    );
    first.shutdown().await.unwrap();
    drop(first);
    let r = tokio::time::timeout(Duration::from_secs(5), read_response(&mut third, false))
        .await
        .expect("served once a connection closed");
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("flagstone_publish_queue_depth"),
        "{}",
        r.body
    );
    // Counted as this listener's episodes (each listener has its own cap).
    assert!(
        r.body
            .contains("flagstone_http_connection_cap_reached_total{listener=\"metrics\"} "),
        "{}",
        r.body
    );
}
