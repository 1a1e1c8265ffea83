//! Every role, as a real process on one database: a fresh `serve`, `edge` and `worker`
//! (`--metrics-addr`) each list every series of their role at `/metrics` before anything
//! happened; after a write and a publish the counters move; no label holds a raw path or key;
//! `--metrics-token` protects `/metrics`.

use std::time::{Duration, Instant};

use flagstone_store::testing::test_store;
use serde_json::{json, Value};

mod common;
use common::{child_url, free_port, http, wait_live, Children};

const ADMIN_KEY: &str = "observability-admin-key-0123456789";
const METRICS_TOKEN: &str = "scrape-token-for-tests";

/// Series every role lists from the start.
const COMMON: &[&str] = &[
    "flagstone_publish_queue_depth{state=\"pending\"}",
    "flagstone_publish_queue_depth{state=\"running\"}",
    "flagstone_publish_queue_depth{state=\"parked\"}",
    "flagstone_publish_oldest_pending_seconds",
    "flagstone_webhook_queue_depth{state=\"pending\"}",
    "flagstone_webhook_queue_depth{state=\"running\"}",
    "flagstone_webhook_queue_depth{state=\"parked\"}",
    "flagstone_webhook_oldest_pending_seconds",
    "flagstone_environment_revision_lag{environment=\"_other\"}",
    "flagstone_environment_staleness_seconds{environment=\"_other\"}",
    "flagstone_stale_environments",
    "flagstone_health_degraded",
    "flagstone_store_pool_connections",
    "flagstone_store_pool_in_use",
    "flagstone_store_pool_max",
    "flagstone_store_pool_waits_total",
    "flagstone_http_requests_total{",
    "flagstone_http_request_seconds_bucket{",
];
/// Series of roles that run the task processor.
const WORKER: &[&str] = &[
    "flagstone_publish_builds_total{outcome=\"published\"}",
    "flagstone_publish_builds_total{outcome=\"parked\"}",
    "flagstone_publish_builds_total{outcome=\"retrying\"}",
    "flagstone_publish_build_seconds_bucket{",
    "flagstone_document_bytes_bucket{",
    "flagstone_webhook_deliveries_total{outcome=\"delivered\"}",
    "flagstone_webhook_deliveries_total{outcome=\"retrying\"}",
    "flagstone_webhook_deliveries_total{outcome=\"parked\"}",
    "flagstone_webhook_delivery_seconds_bucket{",
    "flagstone_scheduled_changes_total{outcome=\"applied\"}",
    "flagstone_scheduled_changes_total{outcome=\"parked\"}",
    "flagstone_scheduled_change_delay_seconds_bucket{",
    "flagstone_scheduled_changes_pending",
    "flagstone_scheduled_changes_overdue_seconds",
    "flagstone_usage_rows_pruned_total",
];
/// Series of roles that serve the SDK API.
const EDGE: &[&str] = &[
    "flagstone_sse_subscribers",
    "flagstone_analytics_reports_total",
    "flagstone_analytics_evaluations_total",
    "flagstone_edge_memory_budget_bytes",
    "flagstone_edge_resident_bytes",
    "flagstone_edge_documents_bytes",
    "flagstone_edge_snapshot_hits_total",
    "flagstone_edge_snapshot_misses_total",
    "flagstone_edge_snapshot_evictions_total",
];

const CHILDREN: Children = Children::logging("warn");

async fn metrics(port: u16) -> String {
    let auth = format!("Bearer {METRICS_TOKEN}");
    let (status, body) = http(port, "GET", "/metrics", &[("Authorization", &auth)], None)
        .await
        .expect("metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the first series starting with `prefix`, summed over matching lines.
fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn admin(port: u16, method: &str, path: &str, body: Value) -> Value {
    let key = format!("Api-Key {ADMIN_KEY}");
    let (status, text) = http(port, method, path, &[("Authorization", &key)], Some(&body))
        .await
        .expect("admin API");
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

fn assert_lists(role: &str, text: &str, names: &[&str]) {
    for n in names {
        assert!(
            text.lines().any(|l| l.starts_with(n)),
            "{role}'s fresh /metrics lacks {n}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_exports_every_series_from_the_start_and_counts_a_publish() {
    let t = test_store().await;
    let url = child_url(&t);
    let caches = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (serve_port, edge_port, worker_port) = (free_port(), free_port(), free_port());
    let token = ["--metrics-token", METRICS_TOKEN];
    let serve_bind = format!("127.0.0.1:{serve_port}");
    let edge_bind = format!("127.0.0.1:{edge_port}");
    let worker_bind = format!("127.0.0.1:{worker_port}");
    let common = |role: &'static str, bind: &'static str, addr: &str, cache: &str| {
        let mut a = vec![role.to_string(), "--database-url".into(), url.clone()];
        a.extend([bind.to_string(), addr.to_string()]);
        if !cache.is_empty() {
            a.extend(["--edge-cache-dir".to_string(), cache.to_string()]);
        }
        a.extend(token.iter().map(|s| s.to_string()));
        a
    };
    let mut serve_args = common(
        "serve",
        "--bind",
        &serve_bind,
        caches[0].path().to_str().unwrap(),
    );
    serve_args.extend(["--admin-key".into(), ADMIN_KEY.into()]);
    let edge_args = common(
        "edge",
        "--bind",
        &edge_bind,
        caches[1].path().to_str().unwrap(),
    );
    let worker_args = common("worker", "--metrics-addr", &worker_bind, "");
    let _serve = CHILDREN.spawn(&serve_args);
    let _edge = CHILDREN.spawn(&edge_args);
    let _worker = CHILDREN.spawn(&worker_args);
    for (name, port) in [
        ("serve", serve_port),
        ("edge", edge_port),
        ("worker", worker_port),
    ] {
        wait_live(name, port, Duration::from_secs(30)).await;
    }

    // Fresh: every series of each role is there, before anything happened.
    let fresh_serve = metrics(serve_port).await;
    assert_lists("serve", &fresh_serve, COMMON);
    assert_lists("serve", &fresh_serve, WORKER);
    assert_lists("serve", &fresh_serve, EDGE);
    let fresh_edge = metrics(edge_port).await;
    assert_lists("edge", &fresh_edge, COMMON);
    assert_lists("edge", &fresh_edge, EDGE);
    let fresh_worker = metrics(worker_port).await;
    assert_lists("worker", &fresh_worker, COMMON);
    assert_lists("worker", &fresh_worker, WORKER);
    for text in [&fresh_serve, &fresh_worker] {
        assert_eq!(value(text, "flagstone_publish_builds_total{"), 0.0);
    }

    // serve's OpenAPI document describes the health endpoints every role answers.
    let (status, doc) = http(serve_port, "GET", "/api/v1/openapi.json", &[], None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    for path in ["/health/liveness", "/health/readiness", "/health/status"] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "{path} not in the document"
        );
    }
    for port in [serve_port, edge_port, worker_port] {
        let (status, body) = http(port, "GET", "/health/status", &[], None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["status"], "ok", "{body}");
        assert!(report["checks"].is_array(), "{body}");
        let (status, body) = http(port, "GET", "/health/readiness", &[], None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let ready: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (&ready["ready"], &ready["store_reachable"]),
            (&json!(true), &json!(true))
        );
        // Only roles with an SDK API report documents.
        assert_eq!(
            ready["documents_loaded"].is_boolean(),
            port != worker_port,
            "{body}"
        );
    }

    // Without the token, no metrics.
    let (status, _) = http(edge_port, "GET", "/metrics", &[], None).await.unwrap();
    assert_eq!(status, 401);
    let wrong = [("Authorization", "Bearer nope")];
    let (status, _) = http(edge_port, "GET", "/metrics", &wrong, None)
        .await
        .unwrap();
    assert_eq!(status, 401);

    // A write and a publish.
    let org = admin(
        serve_port,
        "POST",
        "/api/v1/organisations/",
        json!({"name": "Acme"}),
    )
    .await;
    let project = admin(
        serve_port,
        "POST",
        "/api/v1/projects/",
        json!({"name": "Web", "organisation": org["id"]}),
    )
    .await;
    let env = admin(
        serve_port,
        "POST",
        "/api/v1/environments/",
        json!({"name": "Production", "project": project["id"]}),
    )
    .await;
    let key = env["api_key"].as_str().unwrap().to_string();
    let sdk = [("X-Environment-Key", key.as_str())];
    let start = Instant::now();
    loop {
        if let Some((200, _)) = http(serve_port, "GET", "/api/v1/flags/", &sdk, None).await {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = http(
        serve_port,
        "POST",
        "/api/v1/analytics/flags/",
        &sdk,
        Some(&json!({})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    // The key also appears in a path: its label must be the route's template.
    let (status, _) = http(
        serve_port,
        "GET",
        &format!("/api/v1/environments/{key}/"),
        &[("Authorization", &format!("Api-Key {ADMIN_KEY}"))],
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);

    // The first SDK request compiled the environment: a miss, held within the budget (the
    // memory series are refreshed every second).
    let start = Instant::now();
    loop {
        let text = metrics(serve_port).await;
        if value(&text, "flagstone_edge_snapshot_misses_total") >= 1.0 {
            let budget = value(&text, "flagstone_edge_memory_budget_bytes");
            assert_eq!(budget, (128u64 << 20) as f64, "the default budget");
            assert!(value(&text, "flagstone_edge_resident_environments") >= 1.0);
            assert!(value(&text, "flagstone_edge_resident_bytes") <= budget);
            assert!(value(&text, "flagstone_edge_documents_bytes") > 0.0);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the compilation was not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let after_serve = metrics(serve_port).await;
    let after_worker = metrics(worker_port).await;
    // Either processor (serve's or the standalone worker) may have built it.
    let published: f64 = [&after_serve, &after_worker]
        .iter()
        .map(|t| value(t, "flagstone_publish_builds_total{outcome=\"published\"}"))
        .sum();
    assert!(published >= 1.0, "no publish counted");
    let documents: f64 = [&after_serve, &after_worker]
        .iter()
        .map(|t| value(t, "flagstone_document_bytes_count"))
        .sum();
    assert!(documents >= 1.0, "no document size recorded");
    let created = "flagstone_http_requests_total{route=\"/api/v1/environments\",method=\"POST\",status=\"201\"}";
    assert_eq!(value(&after_serve, created), 1.0, "{after_serve}");
    assert_eq!(
        value(&after_serve, "flagstone_analytics_reports_total"),
        1.0
    );
    assert!(
        after_serve.contains("route=\"/api/v1/environments/{api_key}\""),
        "{after_serve}"
    );
    for (role, text) in [
        ("serve", &after_serve),
        ("worker", &after_worker),
        ("edge", &metrics(edge_port).await),
    ] {
        assert!(
            !text.contains(&key),
            "{role}'s metrics hold an environment key"
        );
        assert!(
            !text.contains(ADMIN_KEY),
            "{role}'s metrics hold the admin key"
        );
        assert!(!text.contains(METRICS_TOKEN));
    }
}
