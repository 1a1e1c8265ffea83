//! `flagstone status` and `flagstone tasks list|retry` on a queue with a parked poison
//! environment (parked by stepping the pipeline, no sleeping): piped output is a plain table
//! (no ANSI codes) naming the environment and its reason; `--json` is machine-readable; after a
//! retry and a publish, status is ok.

use std::process::Command;

use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::now_ms;
use flagstone_store::testing::test_store;
use flagstone_tasks::testing::{Fault, Pipeline, Ran};
use flagstone_tasks::{Breakpoint, PublishOutcome};
use serde_json::Value;

mod common;
use common::child_url;

const SMALL: Shape = Shape {
    features: 2,
    mv_features: 0,
    segments: 1,
    overrides: 1,
};

fn flagstone(args: &[&str], url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_flagstone"))
        .args(args)
        .args(["--database-url", url])
        .env("RUST_LOG", "warn")
        .env_remove("NO_COLOR")
        .output()
        .expect("run flagstone");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "flagstone {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains('\u{1b}'),
        "ANSI codes when piped: {stdout:?}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_tasks_show_a_parked_environment_until_it_is_retried() {
    let t = test_store().await;
    let url = child_url(&t);
    let p = Pipeline::starting_at(&t.store, now_ms());
    let poison = fixture::create(p.store(), SMALL).await.unwrap();
    p.advance(1_000);
    p.inject(Breakpoint::Built, Fault::Corrupt);
    let ran = p.run("w1").await;
    assert!(
        matches!(
            ran,
            Ran::Ended {
                outcome: PublishOutcome::Parked { .. },
                ..
            }
        ),
        "{ran:?}"
    );
    let id = poison.environment_id.to_string();

    let text = flagstone(&["status"], &url);
    assert!(text.starts_with("health: degraded\n"), "{text}");
    let check = text
        .lines()
        .find(|l| l.starts_with("parked_tasks"))
        .expect("the parked check");
    assert!(check.contains("degraded"), "{check}");
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("no row for environment {id}:\n{text}"));
    assert!(
        row.contains("parked") && row.contains("invalid_data"),
        "{row}"
    );

    let v: Value = serde_json::from_str(&flagstone(&["status", "--json"], &url)).unwrap();
    assert_eq!(v["parked"], 1);
    assert_eq!(v["health"]["status"], "degraded");

    let list = flagstone(&["tasks", "list"], &url);
    let header = list.lines().next().unwrap();
    assert!(
        header.starts_with("TASK") && header.contains("REASON"),
        "{list}"
    );
    assert!(list.lines().nth(1).unwrap().starts_with(&id), "{list}");
    let v: Value = serde_json::from_str(&flagstone(&["tasks", "list", "--json"], &url)).unwrap();
    assert_eq!(v["count"], 1);
    assert_eq!(v["results"][0]["state"], "parked");
    assert_eq!(v["results"][0]["park_reason"], "invalid_data");
    let pending = flagstone(&["tasks", "list", "--state", "pending"], &url);
    assert!(pending.starts_with("no publish jobs"), "{pending}");

    let retried = flagstone(&["tasks", "retry", &id, "--json"], &url);
    let v: Value = serde_json::from_str(&retried).unwrap();
    assert_eq!(v["state"], "pending");
    // The fixed environment publishes; status is ok again. (The CLI's retry made the job due
    // by the system clock; move the pipeline's past it whatever the commands took.)
    p.advance(120_000);
    let ran = p.drain("w1", 5).await;
    assert!(ran.iter().any(|r| matches!(
        r,
        Ran::Ended {
            outcome: PublishOutcome::Published { .. },
            ..
        }
    )));
    let text = flagstone(&["status"], &url);
    assert!(text.starts_with("health: ok\n"), "{text}");
    assert!(
        text.contains("every environment is published at its current revision"),
        "{text}"
    );
}
