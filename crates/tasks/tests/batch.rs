//! Batches, stepped: a build slot's run of several claimed environments from one snapshot,
//! finished together (`flagstone_tasks::batch`). Each scenario claims a batch through
//! `testing::Pipeline` (the production claim), runs the production batch, and checks that each
//! environment is decided alone — a reclaimed lease, a deleted environment, an oversized
//! document, a shutdown or a lost session touches only what it must.

use std::collections::BTreeMap;

use flagstone_store::document::fixture::{self, Fixture};
use flagstone_store::document::{self, BuildOptions};
use flagstone_store::queue::{self, JobState, ParkReason};
use flagstone_store::testing::{test_store, TestStore};
use flagstone_store::{environments, sql, Actor};
use flagstone_tasks::testing::Pipeline;
use flagstone_tasks::{Breakpoint, Breakpoints, PublishOutcome};
use tokio::sync::watch;

mod common;

use common::{rules, SMALL};

/// `n` environments, each in a project of its own, requested in this order and due.
async fn setup(n: usize) -> (TestStore, Pipeline, Vec<Fixture>) {
    let t = test_store().await;
    let p = Pipeline::new(&t.store).with_rules(rules());
    let mut fxs = Vec::new();
    for _ in 0..n {
        fxs.push(fixture::create(p.store(), SMALL).await.unwrap());
        p.advance(1);
    }
    p.advance(1_000);
    (t, p, fxs)
}

fn ids(fxs: &[Fixture]) -> Vec<i64> {
    fxs.iter().map(|f| f.environment_id).collect()
}

/// The published document of `fx` is exactly a fresh build's.
async fn assert_published_as_built(p: &Pipeline, fx: &Fixture) {
    let mut tx = p.store().read().await.unwrap();
    let stored = document::load(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .expect("published");
    drop(tx);
    let fresh = document::build(p.store(), fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    assert_eq!(stored.revision, fresh.revision);
    assert_eq!(stored.json().unwrap(), fresh.json().unwrap());
}

async fn job_state(p: &Pipeline, env: i64) -> Option<(JobState, i64)> {
    let mut tx = p.store().read().await.unwrap();
    queue::get_job(&mut tx, env)
        .await
        .unwrap()
        .map(|j| (j.state, j.attempts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_environment_of_a_batch_is_decided_alone() {
    let (_t, p, fxs) = setup(5).await;
    let envs = ids(&fxs);
    let leases = p.claim_batch("w1", 5).await;
    assert_eq!(
        leases.iter().map(|l| l.environment_id).collect::<Vec<_>>(),
        envs
    );
    // The first lease lapses and another worker takes its job over.
    p.advance(1_001);
    let taken = p.claim("w2").await.expect("the lapsed lease is due");
    assert_eq!(taken.environment_id, envs[0]);
    // The second environment is deleted; the third's project allows only tiny documents.
    let mut ch = p.store().change(&Actor::system("test")).await.unwrap();
    environments::delete(&mut ch, &fxs[1].api_key)
        .await
        .unwrap();
    ch.commit().await.unwrap();
    let mut tx = p.store().write().await.unwrap();
    let limits: String = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT limits FROM projects WHERE id = $1"
    )
    .bind(fxs[2].project_id)
    .fetch_one(c)
    .await
    .unwrap());
    let mut limits: serde_json::Value = serde_json::from_str(&limits).unwrap();
    limits["max_document_bytes"] = 100.into();
    sql!(&mut tx, |c| sqlx::query(
        "UPDATE projects SET limits = $1 WHERE id = $2"
    )
    .bind(limits.to_string())
    .bind(fxs[2].project_id)
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    tx.commit().await.unwrap();

    let (_stop, shutdown) = watch::channel(false);
    let ended: BTreeMap<i64, PublishOutcome> = p
        .publish_batch("w1", leases, None, shutdown)
        .await
        .into_iter()
        .collect();
    let kinds: Vec<&str> = envs.iter().map(|e| ended[e].label()).collect();
    assert_eq!(
        kinds,
        [
            "lease_lost",
            "environment_gone",
            "parked",
            "published",
            "published"
        ]
    );
    assert!(matches!(
        ended[&envs[2]],
        PublishOutcome::Parked {
            reason: ParkReason::DocumentTooLarge,
            ..
        }
    ));
    // The builds after the failed one came from a new snapshot, and each is exactly its own.
    assert_published_as_built(&p, &fxs[3]).await;
    assert_published_as_built(&p, &fxs[4]).await;
    // The reclaimed job is still w2's, untouched; nothing of w1's build of it was recorded.
    assert_eq!(job_state(&p, envs[0]).await, Some((JobState::Running, 1)));
    let mut tx = p.store().read().await.unwrap();
    assert!(document::load(&mut tx, envs[0]).await.unwrap().is_none());
    let log = queue::publish_log(&mut tx, None, 100).await.unwrap();
    drop(tx);
    assert!(log.iter().all(|l| l.environment_id != envs[0]), "{log:?}");
    assert_eq!(
        job_state(&p, envs[1]).await,
        None,
        "gone with its environment"
    );
    assert_eq!(
        job_state(&p, envs[2]).await.map(|j| j.0),
        Some(JobState::Parked)
    );
    assert_eq!(job_state(&p, envs[3]).await, None, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_shutting_down_mid_batch_publishes_what_it_built_and_hands_back_the_rest() {
    let (_t, p, fxs) = setup(3).await;
    let envs = ids(&fxs);
    let leases = p.claim_batch("w1", 3).await;
    assert_eq!(leases.len(), 3);
    let (breakpoints, mut paused) = Breakpoints::stepped();
    let (stop, shutdown) = watch::channel(false);
    let driver = async {
        let mut steps = Vec::new();
        loop {
            let at = paused
                .recv()
                .await
                .expect("the batch stops at each breakpoint");
            steps.push((at.at, at.environment_id));
            if (at.at, at.environment_id) == (Breakpoint::Claimed, envs[1]) {
                // Shut down while the second build waits to start.
                stop.send(true).unwrap();
                return (steps, at);
            }
            at.resume();
        }
    };
    let (ended, (steps, _held)) = tokio::join!(
        p.publish_batch("w1", leases, Some(breakpoints), shutdown),
        driver
    );
    assert_eq!(
        steps,
        [
            (Breakpoint::Claimed, envs[0]),
            (Breakpoint::Built, envs[0]),
            (Breakpoint::Claimed, envs[1])
        ]
    );
    let ended: BTreeMap<i64, &str> = ended.iter().map(|(e, o)| (*e, o.label())).collect();
    assert_eq!(ended[&envs[0]], "published");
    assert_eq!(ended[&envs[1]], "released");
    assert_eq!(ended[&envs[2]], "released");
    assert_published_as_built(&p, &fxs[0]).await;
    // Handed back without an attempt counted: due again for any worker.
    assert_eq!(job_state(&p, envs[1]).await, Some((JobState::Pending, 0)));
    assert_eq!(job_state(&p, envs[2]).await, Some((JobState::Pending, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_claim_session_ends_stops_and_another_worker_takes_over_at_once() {
    let (_t, p, fxs) = setup(3).await;
    let envs = ids(&fxs);
    let leases = p.claim_batch("w1", 3).await;
    let (breakpoints, mut paused) = Breakpoints::stepped();
    let (_stop, shutdown) = watch::channel(false);
    let driver = async {
        loop {
            let at = paused.recv().await.expect("a breakpoint");
            if (at.at, at.environment_id) == (Breakpoint::Claimed, envs[1]) {
                // w1's process loses its database session here.
                p.kill("w1").await;
                return at;
            }
            at.resume();
        }
    };
    let (ended, _held) = tokio::join!(
        p.publish_batch("w1", leases, Some(breakpoints), shutdown),
        driver
    );
    let ended: BTreeMap<i64, &str> = ended.iter().map(|(e, o)| (*e, o.label())).collect();
    assert_eq!(ended[&envs[1]], "lease_lost");
    assert_eq!(ended[&envs[2]], "lease_lost");
    // Their jobs are due at once (the session ended), with no lease to wait out.
    let retaken: Vec<i64> = p
        .claim_batch("w2", 3)
        .await
        .iter()
        .map(|l| l.environment_id)
        .collect();
    assert!(
        retaken.contains(&envs[1]) && retaken.contains(&envs[2]),
        "{retaken:?}"
    );
}
