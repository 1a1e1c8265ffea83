//! The publish queue: one row per environment, leases that expire, follow-ups instead of
//! duplicates, backoff and parking, operator retry/discard, the reconciler and status.

use flagstone_store::document::{self, fixture, BuildOptions};
use flagstone_store::queue::{self, FailOutcome, FailureKind, ParkReason, QueueSettings};
use flagstone_store::testing::test_store;
use flagstone_store::{sql, Actor, PageRequest, Store};

const SMALL: fixture::Shape = fixture::Shape {
    features: 3,
    mv_features: 0,
    segments: 2,
    overrides: 2,
};

fn fast() -> QueueSettings {
    QueueSettings {
        lease_ms: 200,
        max_attempts: 3,
        backoff_base_ms: 10,
        backoff_cap_ms: 40,
        publish_log_cap: 50,
    }
}

async fn job_rows(store: &Store) -> i64 {
    let mut tx = store.read().await.unwrap();
    sql!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM publish_jobs"
    )
    .fetch_one(c)
    .await
    .unwrap())
}

/// Claims, waiting out the debounce.
async fn claim_due(store: &Store, owner: &str, s: &QueueSettings) -> queue::Lease {
    for _ in 0..200 {
        if let Some(l) = queue::claim(store, owner, s).await.unwrap() {
            return l;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("nothing became due");
}

async fn publish_once(store: &Store, owner: &str, s: &QueueSettings) -> queue::Finished {
    let lease = claim_due(store, owner, s).await;
    let doc = document::build(store, lease.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    queue::finish(store, &lease, &doc, s).await.unwrap()
}

async fn published_revision(store: &Store, env: i64) -> Option<i64> {
    let mut tx = store.read().await.unwrap();
    document::load(&mut tx, env)
        .await
        .unwrap()
        .map(|d| d.revision)
}

async fn current_revision(store: &Store, env: i64) -> i64 {
    let mut tx = store.read().await.unwrap();
    sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT revision FROM environments WHERE id = $1"
    )
    .bind(env)
    .fetch_one(c)
    .await
    .unwrap())
}

#[tokio::test]
async fn a_burst_of_changes_is_one_job_not_thousands() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    for n in 0..200 {
        fixture::change_feature(&t.store, &fx, n, &format!("v{n}"))
            .await
            .unwrap();
    }
    assert_eq!(job_rows(&t.store).await, 1);
    let s = fast();
    let done = publish_once(&t.store, "w1", &s).await;
    assert!(done.published && !done.follow_up);
    assert_eq!(job_rows(&t.store).await, 0);
    assert_eq!(
        published_revision(&t.store, fx.environment_id).await,
        Some(current_revision(&t.store, fx.environment_id).await)
    );
}

#[tokio::test]
async fn changes_during_a_build_cause_exactly_one_follow_up() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let s = fast();
    let lease = claim_due(&t.store, "w1", &s).await;
    let doc = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    // Changes land while the document is being written.
    for n in 0..50 {
        fixture::change_feature(&t.store, &fx, n, "during")
            .await
            .unwrap();
    }
    assert_eq!(job_rows(&t.store).await, 1, "still one row while running");
    let done = queue::finish(&t.store, &lease, &doc, &s).await.unwrap();
    assert!(done.published && done.follow_up);
    let mut tx = t.store.read().await.unwrap();
    let job = queue::get_job(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    assert_eq!(job.state, "pending");
    assert_eq!(job.published_revision, Some(doc.revision));
    let done = publish_once(&t.store, "w1", &s).await;
    assert!(done.published && !done.follow_up);
    assert_eq!(job_rows(&t.store).await, 0);
    assert_eq!(
        published_revision(&t.store, fx.environment_id).await,
        Some(current_revision(&t.store, fx.environment_id).await)
    );
}

#[tokio::test]
async fn a_dead_workers_lease_is_reclaimed_and_counts_as_an_attempt() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    // A lease long enough that "nobody else gets it while it holds" cannot race a loaded
    // machine (a 200 ms lease did, once, in CI).
    let s = QueueSettings {
        lease_ms: 2_000,
        ..fast()
    };
    let dead = claim_due(&t.store, "dead-worker", &s).await;
    assert_eq!(dead.attempts, 0);
    // Nobody else gets it while the lease holds.
    assert!(queue::claim(&t.store, "w2", &s).await.unwrap().is_none());
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let lease = queue::claim(&t.store, "w2", &s).await.unwrap().unwrap();
    assert_eq!(lease.environment_id, fx.environment_id);
    assert_eq!(lease.attempts, 1);
    assert_eq!(lease.reclaimed_from.as_deref(), Some("dead-worker"));
    // The dead worker, should it wake up, has lost its lease.
    assert!(!queue::heartbeat(&t.store, &dead, &s).await.unwrap());
    assert!(queue::heartbeat(&t.store, &lease, &s).await.unwrap());
    let doc = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    let late = queue::finish(&t.store, &dead, &doc, &s).await.unwrap();
    assert!(late.lease_lost);
    assert_eq!(
        job_rows(&t.store).await,
        1,
        "the new owner's job is untouched"
    );
    let done = queue::finish(&t.store, &lease, &doc, &s).await.unwrap();
    assert!(
        !done.lease_lost && !done.published,
        "same revision already stored"
    );
    assert_eq!(job_rows(&t.store).await, 0);
}

#[tokio::test]
async fn workers_that_keep_dying_on_an_environment_get_it_parked() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let s = fast();
    for i in 0..s.max_attempts {
        let l = claim_due(&t.store, &format!("doomed-{i}"), &s).await;
        assert_eq!(l.attempts, i);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(queue::claim(&t.store, "w", &s).await.unwrap().is_none());
    let mut tx = t.store.read().await.unwrap();
    let job = queue::get_job(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, "parked");
    assert_eq!(job.park_reason.as_deref(), Some("workers_died"));
    assert!(job.last_error.unwrap().contains("died or stalled"));
}

#[tokio::test]
async fn transient_failures_back_off_then_park_and_a_new_change_unparks() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let s = fast();
    for i in 1..s.max_attempts {
        let l = claim_due(&t.store, "w", &s).await;
        let out = queue::fail(&t.store, &l, FailureKind::Transient, "db timeout", &s)
            .await
            .unwrap();
        match out {
            FailOutcome::Retrying {
                attempts,
                run_after,
            } => {
                assert_eq!(attempts, i);
                assert!(run_after >= l.claimed_at + s.backoff_base_ms / 2);
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }
    let l = claim_due(&t.store, "w", &s).await;
    let out = queue::fail(&t.store, &l, FailureKind::Transient, "db timeout", &s)
        .await
        .unwrap();
    assert_eq!(out, FailOutcome::Parked(ParkReason::TooManyFailures));
    let mut tx = t.store.read().await.unwrap();
    let job = queue::get_job(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    assert_eq!(job.state, "parked");
    assert_eq!(
        job.last_error.as_deref(),
        Some("failed 3 times; last error: db timeout")
    );
    // The change may be the fix: it un-parks with fresh attempts.
    fixture::change_feature(&t.store, &fx, 0, "fix")
        .await
        .unwrap();
    let mut tx = t.store.read().await.unwrap();
    let job = queue::get_job(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("pending", 0));
}

#[tokio::test]
async fn a_permanent_failure_parks_at_once_then_retry_and_discard_steer_it() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let s = fast();
    let actor = Actor::system("operator");
    let l = claim_due(&t.store, "w", &s).await;
    let out = queue::fail(
        &t.store,
        &l,
        FailureKind::Permanent(ParkReason::DocumentTooLarge),
        "document would exceed 100001 bytes (budget 100000)",
        &s,
    )
    .await
    .unwrap();
    assert_eq!(out, FailOutcome::Parked(ParkReason::DocumentTooLarge));
    let mut tx = t.store.read().await.unwrap();
    let status = queue::status(&mut tx).await.unwrap();
    let parked = queue::jobs(&mut tx, Some("parked"), PageRequest::default())
        .await
        .unwrap();
    drop(tx);
    assert_eq!((status.parked, status.stale_environments), (1, 1));
    assert_eq!(
        status.stale[0].park_reason.as_deref(),
        Some("document_too_large")
    );
    assert_eq!(parked.count, 1);

    // Parked jobs are left alone by the reconciler.
    assert_eq!(queue::reconcile(&t.store).await.unwrap(), 0);
    let job = queue::retry(&t.store, &actor, fx.environment_id)
        .await
        .unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("pending", 0));
    let l = claim_due(&t.store, "w", &s).await;
    assert!(
        queue::retry(&t.store, &actor, fx.environment_id)
            .await
            .is_err(),
        "running"
    );
    queue::fail(
        &t.store,
        &l,
        FailureKind::Permanent(ParkReason::DocumentTooLarge),
        "big",
        &s,
    )
    .await
    .unwrap();
    let job = queue::discard(&t.store, &actor, fx.environment_id)
        .await
        .unwrap();
    assert_eq!(job.state, "parked");
    assert_eq!(job_rows(&t.store).await, 0);
    // Discarded: the reconciler does not bring it back for the same revision…
    assert_eq!(queue::reconcile(&t.store).await.unwrap(), 0);
    assert!(queue::retry(&t.store, &actor, fx.environment_id)
        .await
        .is_err());
    // …but a new change does.
    fixture::change_feature(&t.store, &fx, 0, "next")
        .await
        .unwrap();
    assert_eq!(job_rows(&t.store).await, 1);
    // Operator actions are audited.
    let mut tx = t.store.read().await.unwrap();
    let n: i64 = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE resource_type = 'publish_job'"
    )
    .fetch_one(c)
    .await
    .unwrap());
    assert_eq!(n, 2);
}

#[tokio::test]
async fn the_reconciler_requeues_environments_whose_job_was_lost() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let s = fast();
    publish_once(&t.store, "w", &s).await;
    assert_eq!(queue::reconcile(&t.store).await.unwrap(), 0, "converged");
    fixture::change_feature(&t.store, &fx, 0, "lost")
        .await
        .unwrap();
    // Simulate a lost job (a bug, a restored backup…).
    let mut tx = t.store.write().await.unwrap();
    sql!(&mut tx, |c| sqlx::query("DELETE FROM publish_jobs")
        .execute(c)
        .await
        .unwrap()
        .rows_affected());
    tx.commit().await.unwrap();
    let mut tx = t.store.read().await.unwrap();
    assert_eq!(queue::status(&mut tx).await.unwrap().stale_environments, 1);
    drop(tx);
    assert_eq!(queue::reconcile(&t.store).await.unwrap(), 1);
    assert_eq!(queue::reconcile(&t.store).await.unwrap(), 0, "idempotent");
    publish_once(&t.store, "w", &s).await;
    assert_eq!(
        published_revision(&t.store, fx.environment_id).await,
        Some(current_revision(&t.store, fx.environment_id).await)
    );
    let mut tx = t.store.read().await.unwrap();
    let log = queue::publish_log(&mut tx, Some(fx.environment_id), 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|e| e.outcome == "published" && e.bytes.unwrap() > 0));
}

#[tokio::test]
async fn the_publish_log_stays_capped() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let s = QueueSettings {
        publish_log_cap: 3,
        ..fast()
    };
    for n in 0..6 {
        fixture::change_feature(&t.store, &fx, n, "x")
            .await
            .unwrap();
        publish_once(&t.store, "w", &s).await;
    }
    let mut tx = t.store.read().await.unwrap();
    let n: i64 = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM publish_log"
    )
    .fetch_one(c)
    .await
    .unwrap());
    assert!(n <= 4, "{n} rows");
}

#[tokio::test]
async fn publishing_notifies_listeners_on_postgres() {
    let t = test_store().await;
    let Some(mut listener) = queue::listen(&t.store).await.unwrap() else {
        return; // SQLite: notifications are in-process (flagstone-tasks).
    };
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    publish_once(&t.store, "w", &fast()).await;
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(n.channel(), queue::PUBLISH_CHANNEL);
    let rev = current_revision(&t.store, fx.environment_id).await;
    assert_eq!(
        queue::parse_notification(n.payload()),
        Some((fx.environment_id, rev))
    );
}
