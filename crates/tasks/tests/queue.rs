//! The publish queue's rules, stepped: each scenario drives claim → build → finish by hand
//! through `testing::Pipeline` (the production steps), injects a failure at a named point, moves
//! a manual clock instead of sleeping, and snapshots the queue and the publish log at each step
//! (`tests/snapshots/`). A change of behaviour shows up as a readable diff.

use flagstone_store::document::fixture::{self, Fixture};
use flagstone_store::queue::{self, JobState, ParkReason};
use flagstone_store::testing::test_store;
use flagstone_store::{sql, Actor, Store};
use flagstone_tasks::publish::BuildResult;
use flagstone_tasks::steps::Settled;
use flagstone_tasks::testing::{Fault, Pipeline, Ran, START_MS};
use flagstone_tasks::{Breakpoint, PublishOutcome};
use insta::assert_snapshot;

mod common;

use common::{rules, SMALL};

async fn setup() -> (flagstone_store::testing::TestStore, Pipeline, Fixture) {
    let t = test_store().await;
    let p = Pipeline::new(&t.store).with_rules(rules());
    let fx = fixture::create(p.store(), SMALL).await.unwrap();
    (t, p, fx)
}

fn published(ran: &Ran) -> Option<(i64, bool)> {
    match ran {
        Ran::Ended {
            outcome:
                PublishOutcome::Published {
                    revision,
                    follow_up,
                },
            ..
        } => Some((*revision, *follow_up)),
        _ => None,
    }
}

async fn job_state(store: &Store, env: i64) -> Option<JobState> {
    let mut tx = store.read().await.unwrap();
    queue::get_job(&mut tx, env).await.unwrap().map(|j| j.state)
}

#[tokio::test]
async fn a_burst_of_200_changes_is_one_job_and_one_build() {
    let (_t, p, fx) = setup().await;
    for n in 0..200 {
        fixture::change_feature(p.store(), &fx, n, &format!("v{n}"))
            .await
            .unwrap();
    }
    assert_snapshot!("burst_1_queued", p.snapshot().await);
    assert_eq!(p.run("w1").await, Ran::NothingDue, "debouncing");
    p.advance(50);
    let ran = p.run("w1").await;
    assert_eq!(published(&ran), Some((203, false)), "{ran:?}");
    assert_eq!(p.run("w1").await, Ran::NothingDue);
    assert_snapshot!("burst_2_published", p.snapshot().await);
}

#[tokio::test]
async fn changes_during_a_build_cause_exactly_one_follow_up() {
    let (_t, p, fx) = setup().await;
    p.advance(50);
    let lease = p.claim("w1").await.unwrap();
    let built = p.build(&lease).await;
    // 50 changes land while the document is being written.
    for n in 0..50 {
        fixture::change_feature(p.store(), &fx, n, "during")
            .await
            .unwrap();
    }
    assert_snapshot!("follow_up_1_changes_during_the_build", p.snapshot().await);
    let outcome = p.settle(&lease, built).await;
    assert_eq!(
        outcome,
        PublishOutcome::Published {
            revision: 3,
            follow_up: true
        }
    );
    assert_snapshot!("follow_up_2_one_follow_up_pending", p.snapshot().await);
    p.advance(50);
    assert_eq!(published(&p.run("w1").await), Some((53, false)));
    assert_snapshot!("follow_up_3_converged", p.snapshot().await);
}

#[tokio::test]
async fn a_worker_that_stalls_mid_build_loses_its_lease_and_another_publishes() {
    let (_t, p, _fx) = setup().await;
    p.advance(50);
    p.inject(Breakpoint::Built, Fault::WorkerDies);
    let Ran::Died(dead) = p.run("w-doomed").await else {
        panic!("the worker should have died");
    };
    assert_snapshot!("dies_1_lease_held_by_the_dead_worker", p.snapshot().await);
    // Nobody else gets the job while the lease holds…
    p.advance(1_000);
    assert_eq!(p.run("w-rescuer").await, Ran::NothingDue);
    // …and once it lapses, the rescuer reclaims it: the lapse counts as an attempt.
    p.advance(1);
    let lease = p.claim("w-rescuer").await.unwrap();
    assert_eq!(
        (lease.attempts, lease.reclaimed_from.as_deref()),
        (1, Some("w-doomed"))
    );
    assert_snapshot!("dies_2_reclaimed", p.snapshot().await);
    let built = p.build(&lease).await;
    assert!(matches!(
        p.settle(&lease, built).await,
        PublishOutcome::Published { .. }
    ));
    // The dead worker, should it wake up, has lost its lease and changes nothing.
    let late = p.build(&dead).await;
    assert_eq!(p.settle(&dead, late).await, PublishOutcome::LeaseLost);
    assert_snapshot!("dies_3_published_by_the_rescuer", p.snapshot().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_build_is_replaced_at_once_not_after_its_lease() {
    let (_t, p, _fx) = setup().await;
    p.advance(50);
    p.inject(Breakpoint::Built, Fault::WorkerKilled);
    let Ran::Died(dead) = p.run("w-killed").await else {
        panic!("the worker should have died");
    };
    // The clock stands still: the lease has 1 s to run, but the claim's session ended with its
    // process. (PostgreSQL releases the session's lock once it sees the connection close,
    // a moment later in real time.)
    let start = std::time::Instant::now();
    let lease = loop {
        if let Some(lease) = p.claim("w-rescuer").await {
            break lease;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "the killed worker's job was not reclaimed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        (lease.attempts, lease.reclaimed_from.as_deref()),
        (1, Some("w-killed"))
    );
    assert!(lease.claimed_at < dead.lease_until);
    let mut tx = p.store().read().await.unwrap();
    let job = queue::get_job(&mut tx, lease.environment_id)
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    assert_eq!(
        job.last_error.as_deref(),
        Some(
            "worker w-killed: its session ended mid-build (process died or lost its database \
             connection); reclaimed"
        )
    );
    let built = p.build(&lease).await;
    assert!(matches!(
        p.settle(&lease, built).await,
        PublishOutcome::Published { .. }
    ));
    // Whatever the dead claim would still try is refused.
    let late = p.build(&dead).await;
    assert_eq!(p.settle(&dead, late).await, PublishOutcome::LeaseLost);
}

#[tokio::test]
async fn workers_that_keep_dying_on_an_environment_get_it_parked() {
    let (_t, p, fx) = setup().await;
    p.advance(50);
    for i in 0..3 {
        p.inject(Breakpoint::Claimed, Fault::WorkerDies);
        match p.run(&format!("doomed-{i}")).await {
            Ran::Died(l) => assert_eq!(l.attempts, i),
            other => panic!("{other:?}"),
        }
        p.advance(1_001);
    }
    assert_eq!(p.run("w").await, Ran::NothingDue, "parked at claim");
    assert_eq!(
        job_state(p.store(), fx.environment_id).await,
        Some(JobState::Parked)
    );
    assert_snapshot!("workers_died_parked", p.snapshot().await);
}

#[tokio::test]
async fn transient_failures_back_off_then_park_and_a_new_change_unparks() {
    let (_t, p, fx) = setup().await;
    p.advance(50);
    p.inject(Breakpoint::Built, Fault::QueryFails);
    let ran = p.run("w").await;
    assert!(
        matches!(
            &ran,
            Ran::Ended {
                outcome: PublishOutcome::Retrying { attempts: 1, .. },
                ..
            }
        ),
        "{ran:?}"
    );
    assert_snapshot!("transient_1_backing_off", p.snapshot().await);
    p.advance(99);
    assert_eq!(p.run("w").await, Ran::NothingDue, "backoff of 100 ms");
    p.advance(1);
    p.inject(Breakpoint::Built, Fault::TimesOut);
    assert!(matches!(
        p.run("w").await,
        Ran::Ended {
            outcome: PublishOutcome::Retrying { attempts: 2, .. },
            ..
        }
    ));
    p.advance(200);
    p.inject(Breakpoint::Built, Fault::QueryFails);
    let ran = p.run("w").await;
    assert!(
        matches!(
            &ran,
            Ran::Ended {
                outcome: PublishOutcome::Parked {
                    reason: ParkReason::TooManyFailures,
                    ..
                },
                ..
            }
        ),
        "{ran:?}"
    );
    assert_snapshot!("transient_2_parked", p.snapshot().await);
    // The change may be the fix: it un-parks the job with fresh attempts.
    fixture::change_feature(p.store(), &fx, 0, "fix")
        .await
        .unwrap();
    assert_snapshot!("transient_3_unparked_by_a_change", p.snapshot().await);
    p.advance(50);
    assert!(published(&p.run("w").await).is_some());
}

#[tokio::test]
async fn an_unreachable_database_is_retried_uncounted_and_never_parks() {
    let (_t, p, _fx) = setup().await;
    p.advance(50);
    // More failures than `max_attempts` (3): a failover, not a poison environment.
    for _ in 0..5 {
        p.inject(Breakpoint::Built, Fault::DatabaseDown);
        let ran = p.run("w").await;
        assert!(
            matches!(
                &ran,
                Ran::Ended {
                    outcome: PublishOutcome::Retrying { attempts: 0, .. },
                    ..
                }
            ),
            "{ran:?}"
        );
        assert_eq!(
            p.run("w").await,
            Ran::NothingDue,
            "retried after the base backoff"
        );
        p.advance(100);
    }
    // Once the database answers, the environment publishes without waiting for a change.
    assert!(published(&p.run("w").await).is_some());
}

#[tokio::test]
async fn a_permanent_failure_parks_at_once_then_retry_and_discard_steer_it() {
    let (_t, p, fx) = setup().await;
    let operator = Actor::system("operator");
    p.advance(50);
    p.inject(Breakpoint::Built, Fault::TooLarge);
    let ran = p.run("w").await;
    assert!(
        matches!(
            &ran,
            Ran::Ended {
                outcome: PublishOutcome::Parked {
                    reason: ParkReason::DocumentTooLarge,
                    ..
                },
                ..
            }
        ),
        "{ran:?}"
    );
    assert_snapshot!("permanent_1_parked_at_once", p.snapshot().await);
    // Parked jobs are left alone by the reconciler.
    assert_eq!(queue::reconcile(p.store()).await.unwrap(), 0);
    let job = queue::retry(p.store(), &operator, fx.environment_id)
        .await
        .unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Pending, 0));
    let lease = p.claim("w").await.unwrap();
    assert!(
        queue::retry(p.store(), &operator, fx.environment_id)
            .await
            .is_err(),
        "a running job cannot be retried"
    );
    p.inject(Breakpoint::Built, Fault::Corrupt);
    let built = p.build(&lease).await;
    assert!(matches!(
        p.settle(&lease, built).await,
        PublishOutcome::Parked {
            reason: ParkReason::InvalidData,
            ..
        }
    ));
    let job = queue::discard(p.store(), &operator, fx.environment_id)
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Parked);
    assert_snapshot!("permanent_2_discarded", p.snapshot().await);
    // Discarded: the reconciler does not bring it back for the same revision…
    assert_eq!(queue::reconcile(p.store()).await.unwrap(), 0);
    assert!(queue::retry(p.store(), &operator, fx.environment_id)
        .await
        .is_err());
    // …but a new change does.
    fixture::change_feature(p.store(), &fx, 0, "next")
        .await
        .unwrap();
    assert_eq!(
        job_state(p.store(), fx.environment_id).await,
        Some(JobState::Pending)
    );
    // Operator actions are audited.
    let mut tx = p.store().read().await.unwrap();
    let n: i64 = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE resource_type = 'publish_job'"
    )
    .fetch_one(c)
    .await
    .unwrap());
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_permanent_failure_is_retried_when_newer_changes_may_fix_it() {
    let (_t, p, fx) = setup().await;
    p.advance(50);
    let lease = p.claim("w").await.unwrap();
    p.inject(Breakpoint::Built, Fault::TooLarge);
    let built = p.build(&lease).await;
    fixture::change_feature(p.store(), &fx, 0, "smaller")
        .await
        .unwrap();
    let outcome = p.settle(&lease, built).await;
    assert!(
        matches!(
            outcome,
            PublishOutcome::Retrying {
                attempts: 1,
                run_after,
                ..
            } if run_after == p.store().clock().now_ms() + 50
        ),
        "retried after the debounce: {outcome:?}"
    );
    p.advance(50);
    assert!(published(&p.run("w").await).is_some());
}

#[tokio::test]
async fn a_poison_environment_is_parked_while_another_keeps_publishing() {
    let t = test_store().await;
    let p = Pipeline::new(&t.store).with_rules(rules());
    let poison = fixture::create(p.store(), SMALL).await.unwrap();
    let healthy = fixture::create(p.store(), SMALL).await.unwrap();
    // The poison environment's document no longer fits its budget.
    let mut tx = p.store().write().await.unwrap();
    sql!(&mut tx, |c| sqlx::query(
        "UPDATE projects SET limits = '{\"max_document_bytes\": 1000}' WHERE id = $1"
    )
    .bind(poison.project_id)
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    tx.commit().await.unwrap();
    p.advance(50);
    let ran = p.drain("w", 10).await;
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert_snapshot!("poison_1_parked_beside_a_healthy_one", p.snapshot().await);
    // The healthy environment keeps publishing every change, one build each.
    let mut announced = p.publications().subscribe();
    for n in 0..3 {
        let rev = fixture::change_feature(p.store(), &healthy, n, "still fine")
            .await
            .unwrap();
        p.advance(50);
        assert_eq!(published(&p.run("w").await), Some((rev, false)));
        assert_eq!(
            announced.try_recv().unwrap(),
            (healthy.environment_id, rev),
            "announced in-process (what the edge follows on SQLite)"
        );
    }
    assert_snapshot!("poison_2_healthy_kept_publishing", p.snapshot().await);
    let mut tx = p.store().read().await.unwrap();
    let status = queue::status(&mut tx, p.store().clock().now_ms())
        .await
        .unwrap();
    assert_eq!((status.parked, status.stale_environments), (1, 1));
    assert_eq!(status.stale[0].environment_id, poison.environment_id);
    assert_eq!(
        status.stale[0].park_reason,
        Some(ParkReason::DocumentTooLarge)
    );
}

#[tokio::test]
async fn the_reconciler_requeues_an_environment_whose_job_was_lost() {
    let (_t, p, fx) = setup().await;
    p.advance(50);
    assert!(published(&p.run("w").await).is_some());
    assert_eq!(queue::reconcile(p.store()).await.unwrap(), 0, "converged");
    fixture::change_feature(p.store(), &fx, 0, "lost")
        .await
        .unwrap();
    // A lost job (a bug, a restored backup…).
    let mut tx = p.store().write().await.unwrap();
    sql!(&mut tx, |c| sqlx::query("DELETE FROM publish_jobs")
        .execute(c)
        .await
        .unwrap()
        .rows_affected());
    tx.commit().await.unwrap();
    assert_snapshot!("reconcile_1_job_lost", p.snapshot().await);
    assert_eq!(queue::reconcile(p.store()).await.unwrap(), 1);
    assert_eq!(queue::reconcile(p.store()).await.unwrap(), 0, "idempotent");
    assert!(published(&p.run("w").await).is_some());
    assert_snapshot!("reconcile_2_converged", p.snapshot().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimants_never_get_the_same_job() {
    let t = test_store().await;
    let p = std::sync::Arc::new(Pipeline::new(&t.store).with_rules(rules()));
    let mut envs = Vec::new();
    for _ in 0..3 {
        envs.push(
            fixture::create(p.store(), SMALL)
                .await
                .unwrap()
                .environment_id,
        );
    }
    p.advance(50);
    let claimants: Vec<_> = (0..8)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.claim(&format!("w{i}")).await })
        })
        .collect();
    let mut claimed = Vec::new();
    for c in claimants {
        if let Some(lease) = c.await.unwrap() {
            claimed.push(lease.environment_id);
        }
    }
    claimed.sort();
    assert_eq!(claimed, envs, "each job claimed exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_claim_fills_free_slots_oldest_first_and_each_job_is_decided_alone() {
    let t = test_store().await;
    let p = std::sync::Arc::new(Pipeline::new(&t.store).with_rules(rules()));
    let mut envs = Vec::new();
    for _ in 0..4 {
        envs.push(
            fixture::create(p.store(), SMALL)
                .await
                .unwrap()
                .environment_id,
        );
        // Requested in order: oldest first is creation order.
        p.advance(1);
    }
    // The first environment's claimants keep dying: its next claim parks it, in the batch.
    p.advance(50);
    for i in 0..3 {
        let lease = p.claim(&format!("doomed-{i}")).await.expect("due");
        assert_eq!(lease.environment_id, envs[0]);
        p.kill(&format!("doomed-{i}")).await;
        p.advance(1_001);
    }
    // Three slots free: the three oldest due are decided together; the poison job is parked
    // (no lease), the other two are taken. The next round takes the last one.
    let ids = |leases: Vec<flagstone_store::queue::Lease>| -> Vec<i64> {
        leases.iter().map(|l| l.environment_id).collect()
    };
    assert_eq!(ids(p.claim_batch("w", 3).await), envs[1..3].to_vec());
    assert_eq!(job_state(p.store(), envs[0]).await, Some(JobState::Parked));
    assert_eq!(ids(p.claim_batch("w", 3).await), envs[3..4].to_vec());
    // Concurrent batch claimants never share a job: nothing is left to claim.
    let others: Vec<_> = (0..4)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.claim_batch(&format!("o{i}"), 4).await.len() })
        })
        .collect();
    for o in others {
        assert_eq!(o.await.unwrap(), 0);
    }
}

#[tokio::test]
async fn builds_finished_together_share_a_transaction_and_are_each_decided_alone() {
    let t = test_store().await;
    let p = Pipeline::new(&t.store).with_rules(rules());
    let mut fxs = Vec::new();
    for _ in 0..3 {
        fxs.push(fixture::create(p.store(), SMALL).await.unwrap());
        p.advance(1);
    }
    let envs: Vec<i64> = fxs.iter().map(|f| f.environment_id).collect();
    p.advance(50);
    // A worker claims the first environment and dies; w1 reclaims it with the other two.
    let stale = p.claim("w-old").await.expect("due");
    assert_eq!(stale.environment_id, envs[0]);
    p.kill("w-old").await;
    p.advance(1_001);
    let leases = p.claim_batch("w1", 3).await;
    let claimed: Vec<i64> = leases.iter().map(|l| l.environment_id).collect();
    assert_eq!(claimed, envs);
    let doc = |r: BuildResult| match r {
        BuildResult::Built(d) => d,
        other => panic!("build failed: {other:?}"),
    };
    let stale_doc = doc(p.build(&stale).await);
    let mut docs = Vec::new();
    for l in &leases {
        docs.push(doc(p.build(l).await));
    }
    // A change to the second environment lands while its document is being written.
    fixture::change_feature(p.store(), &fxs[1], 0, "during")
        .await
        .unwrap();
    // The dead worker's late build goes in the same group as two of w1's: it records nothing,
    // the second gets its one follow-up, the third is done.
    let finished = p
        .finish_together(&[
            (&stale, &stale_doc),
            (&leases[1], &docs[1]),
            (&leases[2], &docs[2]),
        ])
        .await;
    let summary: Vec<(bool, String)> = finished
        .iter()
        .map(|f| {
            let settled = match &f.settled {
                Settled::LeaseLost => "lease lost".to_string(),
                Settled::Decided(d) => format!("{d:?}"),
            };
            (f.published, settled)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (false, "lease lost".to_string()),
            (
                true,
                format!(
                    "FollowUp {{ run_after: {} }}",
                    START_MS + 50 + 3 + 1_001 + 50
                )
            ),
            (true, "Done".to_string()),
        ]
    );
    assert_snapshot!("together_1_each_decided_alone", p.snapshot().await);
    // w1's own build of the first environment still finishes as usual.
    assert!(
        p.finish_together(&[(&leases[0], &docs[0])]).await[0].published,
        "published"
    );
}
