//! A real `flagstone serve` killed with SIGKILL after committing changes and before delivering
//! their webhook events: the events were queued in the changes' own transactions, so the
//! restarted server delivers every one of them (SQLite, or PostgreSQL with
//! FLAGSTONE_TEST_DATABASE_URL).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::testing::{test_store, TestStore};
use flagstone_store::webhooks::{deliveries, DeliveryState};
use flagstone_store::PageRequest;
use serde_json::{json, Value};

mod common;
use common::{child_url, free_port, wait_live, Children, Proc};

const ADMIN_KEY: &str = "webhook-crash-admin-key-0123456789";

/// Requests the receiver saw: (event id, event type, status it answered).
type Seen = Arc<Mutex<Vec<(String, String, u16)>>>;

/// A receiver on 127.0.0.1 answering 503 until `accept` is set, then 200.
async fn receiver(accept: Arc<AtomicBool>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let (s, accept) = (s.clone(), accept.clone());
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let status = if accept.load(Ordering::SeqCst) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                s.lock().unwrap().push((
                    h("x-flagstone-event-id"),
                    h("x-flagstone-event"),
                    status.as_u16(),
                ));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn start_serve(t: &TestStore, port: u16, cache: &std::path::Path) -> Proc {
    let extra = [
        "--admin-key",
        ADMIN_KEY,
        "--webhooks-allow-private",
        "--webhooks-backoff-ms",
        "100",
        "--webhooks-max-attempts",
        "1000",
    ];
    Children::logging("warn").serve(&child_url(t), port, cache, &extra)
}

async fn call(port: u16, method: &str, path: &str, body: Value) -> Value {
    let auth = format!("Api-Key {ADMIN_KEY}");
    common::call(port, method, path, &[("Authorization", &auth)], body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_between_commit_and_delivery_delivers_after_restart() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, Shape::INCIDENT.times(0))
        .await
        .unwrap();
    let accept = Arc::new(AtomicBool::new(false));
    let (url, seen) = receiver(accept.clone()).await;
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start_serve(&t, port, cache.path());
    wait_live("serve", port, Duration::from_secs(30)).await;

    let key = &fx.api_key;
    let hook = call(
        port,
        "POST",
        &format!("/api/v1/environments/{key}/webhooks/"),
        json!({"url": url, "secret": "crash-secret"}),
    )
    .await;
    let hook = hook["id"].as_i64().unwrap();
    let state = fx.feature_state_ids[0];
    for n in 0..5 {
        call(
            port,
            "PATCH",
            &format!("/api/v1/environments/{key}/featurestates/{state}/"),
            json!({"feature_state_value": format!("v{n}")}),
        )
        .await;
    }
    // Every change has committed. The receiver refuses for now, so nothing is delivered: wait
    // until the server has tried (its deliverer runs), then kill it.
    let start = Instant::now();
    while seen.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "no attempt made");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server); // SIGKILL
    assert!(
        seen.lock().unwrap().iter().all(|(_, _, s)| *s == 503),
        "nothing was delivered before the kill"
    );
    let mut tx = t.store.read().await.unwrap();
    let queued = deliveries::list(&mut tx, hook, PageRequest::new(1, 100))
        .await
        .unwrap()
        .results;
    drop(tx);
    let expected: BTreeSet<String> = queued.iter().map(|d| d.event_id.clone()).collect();
    assert_eq!(expected.len(), 5, "one FLAG_UPDATED per change: {queued:?}");
    assert!(queued.iter().all(|d| d.state != DeliveryState::Delivered));

    // The receiver recovers; a new server process delivers what the dead one left.
    accept.store(true, Ordering::SeqCst);
    let _restarted = start_serve(&t, port, cache.path());
    let start = Instant::now();
    loop {
        let delivered: BTreeSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, s)| *s == 200)
            .map(|(id, _, _)| id.clone())
            .collect();
        if delivered == expected {
            break;
        }
        // A kill during an attempt leaves that delivery leased to the dead process until its
        // lease (60 s) runs out; usually the kill falls between attempts and this is quick.
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "delivered {delivered:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Exactly once each after the restart (the refused attempts before it carried the same ids).
    let accepted: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, s)| *s == 200)
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(accepted.len(), 5, "{accepted:?}");
    // The server records the last answer just after the receiver sent it.
    let start = Instant::now();
    loop {
        let mut tx = t.store.read().await.unwrap();
        let log = deliveries::list(&mut tx, hook, PageRequest::new(1, 100))
            .await
            .unwrap()
            .results;
        if log.iter().all(|d| d.state == DeliveryState::Delivered) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{log:?}");
        drop(tx);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
