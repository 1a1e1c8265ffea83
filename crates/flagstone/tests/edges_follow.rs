//! Real processes: one `flagstone worker` and two `flagstone edge` nodes on one database. A change
//! written to the store reaches both edges. On PostgreSQL the edges' periodic check is set to a
//! minute, so only `NOTIFY` can deliver the change in time; on SQLite they follow by polling.

use std::time::{Duration, Instant};

use flagstone_store::document::fixture;
use flagstone_store::testing::test_store;

mod common;
use common::{child_url, eventually, flags, free_port, Children, Proc};

const CHILDREN: Children = Children::logging("warn");

/// Waits until the edge on `port` serves a body containing `needle` to the client key `key`;
/// returns how long that took.
async fn wait_for(port: u16, key: &str, needle: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let what = format!("edge on port {port} serves {needle:?}");
    eventually(&what, within, Duration::from_millis(10), || async move {
        match flags(port, key).await {
            Some((_, body)) if body.contains(needle) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    start.elapsed()
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
    let _worker = CHILDREN.worker(&url, &[]);
    let caches = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ports = [free_port(), free_port()];
    let _edges: Vec<Proc> = ports
        .iter()
        .zip(&caches)
        .map(|(port, cache)| {
            CHILDREN.db_edge(&url, *port, cache.path(), &["--edge-poll-ms", poll_ms])
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
