//! The publish queue as stored: one row per environment, decisions written and read back as
//! typed values, the capped publish log, notifications. The rules that choose the decisions are
//! tested in `flagstone-tasks` (`policy` unit tests, stepped scenarios in `tests/queue.rs`).

use flagstone_store::document::fixture;
use flagstone_store::queue::{
    self, BuildOutcome, ClaimDecision, ClaimSession, Claimant, Decision, DueJob, JobState, Lapse,
    LogLine, ParkReason,
};
use flagstone_store::testing::test_store;
use flagstone_store::{sql, Clock, PageRequest, Store, StoreError};

const SMALL: fixture::Shape = fixture::Shape {
    features: 3,
    mv_features: 0,
    segments: 2,
    overrides: 2,
};

async fn job_rows(store: &Store) -> i64 {
    let mut tx = store.read().await.unwrap();
    sql!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM publish_jobs"
    )
    .fetch_one(c)
    .await
    .unwrap())
}

async fn job(store: &Store, env: i64) -> Option<queue::PublishJob> {
    let mut tx = store.read().await.unwrap();
    queue::get_job(&mut tx, env).await.unwrap()
}

#[tokio::test]
async fn a_burst_of_changes_is_one_job_not_thousands() {
    let t = test_store().await;
    let store = t.store.clone().with_clock(Clock::manual(1_000_000));
    let fx = fixture::create(&store, SMALL).await.unwrap();
    for n in 0..200 {
        fixture::change_feature(&store, &fx, n, &format!("v{n}"))
            .await
            .unwrap();
    }
    assert_eq!(job_rows(&store).await, 1);
    let j = job(&store, fx.environment_id).await.unwrap();
    assert_eq!(j.state, JobState::Pending);
    assert_eq!(j.run_after, 1_000_050, "debounced on the store's clock");
}

#[tokio::test]
async fn decisions_are_written_and_read_back_as_typed_values() {
    let t = test_store().await;
    let store = t.store.clone().with_clock(Clock::manual(1_000_000));
    let fx = fixture::create(&store, SMALL).await.unwrap();
    let env = fx.environment_id;
    let now = 1_000_100;

    let session = ClaimSession::open(&store, "w1").await.unwrap();
    let mut tx = queue::begin(&store).await.unwrap();
    let due = queue::next_due(&store, &mut tx, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        due,
        DueJob {
            environment_id: env,
            wanted_revision: due.wanted_revision,
            attempts: 0,
            claimant: Claimant::Unclaimed
        }
    );
    let take = ClaimDecision::Take {
        attempts: 0,
        lease_until: now + 500,
        note: None,
    };
    let lease = queue::take(&mut tx, &due, &session, &take, now)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(job(&store, env).await.unwrap().state, JobState::Running);

    // A lease that lapsed (its session still open: the worker stalled) is reported with its
    // owner.
    let mut tx = queue::begin(&store).await.unwrap();
    assert!(queue::next_due(&store, &mut tx, now + 500)
        .await
        .unwrap()
        .is_none());
    let lapsed = queue::next_due(&store, &mut tx, now + 501)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lapsed.claimant,
        Claimant::Lapsed {
            owner: "w1".into(),
            cause: Lapse::LeaseExpired
        }
    );
    let owned = queue::owned(&mut tx, &lease).await.unwrap().unwrap();
    assert_eq!(owned.attempts, 0);
    let retry = Decision::Retry {
        attempts: 1,
        run_after: now + 900,
        error: "db timeout".into(),
    };
    queue::apply(&mut tx, env, &retry, now).await.unwrap();
    tx.commit().await.unwrap();
    let j = job(&store, env).await.unwrap();
    assert_eq!(
        (j.state, j.attempts, j.run_after, j.last_error.as_deref()),
        (JobState::Pending, 1, now + 900, Some("db timeout"))
    );
    assert!(j.lease_owner.is_none());

    let mut tx = queue::begin(&store).await.unwrap();
    assert!(
        queue::owned(&mut tx, &lease).await.unwrap().is_none(),
        "no longer held"
    );
    let park = Decision::Park {
        reason: ParkReason::TooManyFailures,
        attempts: 3,
        message: "failed 3 times; last error: db timeout".into(),
    };
    queue::apply(&mut tx, env, &park, now).await.unwrap();
    tx.commit().await.unwrap();
    let j = job(&store, env).await.unwrap();
    assert_eq!(
        (j.state, j.park_reason, j.attempts),
        (JobState::Parked, Some(ParkReason::TooManyFailures), 3)
    );
    let mut tx = store.read().await.unwrap();
    let parked = queue::jobs(&mut tx, Some(JobState::Parked), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(parked.count, 1);
    let status = queue::status(&mut tx, now).await.unwrap();
    assert_eq!(status.stale[0].job_state, Some(JobState::Parked));
    drop(tx);

    let mut tx = queue::begin(&store).await.unwrap();
    queue::apply(&mut tx, env, &Decision::Done, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(job_rows(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_session_ended_is_due_at_once_not_after_its_lease() {
    let t = test_store().await;
    let store = t.store.clone().with_clock(Clock::manual(1_000_000));
    let fx = fixture::create(&store, SMALL).await.unwrap();
    let now = 1_000_100;
    let a = ClaimSession::open(&store, "w-a").await.unwrap();
    let b = ClaimSession::open(&store, "w-b").await.unwrap();
    assert_ne!(a.key(), b.key());

    let mut tx = queue::begin(&store).await.unwrap();
    let due = queue::next_due(&store, &mut tx, now)
        .await
        .unwrap()
        .unwrap();
    let take = ClaimDecision::Take {
        attempts: 0,
        lease_until: now + 30_000,
        note: None,
    };
    let lease = queue::take(&mut tx, &due, &a, &take, now)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(lease.session, a.key());
    let j = job(&store, fx.environment_id).await.unwrap();
    assert_eq!(j.state, JobState::Running);

    // While A's session lives, nobody else may take the job (B asks in its own transaction).
    let mut tx = queue::begin(&store).await.unwrap();
    assert_eq!(
        queue::next_due(&store, &mut tx, now + 10).await.unwrap(),
        None
    );
    drop(tx);

    // A's process dies: its session ends. The job is due at once, 29 s before its lease ends.
    drop(a);
    let start = std::time::Instant::now();
    let due = loop {
        let mut tx = queue::begin(&store).await.unwrap();
        let found = queue::next_due(&store, &mut tx, now + 20).await.unwrap();
        // Ended explicitly (it wrote nothing): a dropped transaction's ROLLBACK waits for its
        // connection's next use, and until then it keeps the advisory lock the check took, so
        // the claim below (on another pooled connection) would see the dead session as alive.
        tx.commit().await.unwrap();
        if let Some(due) = found {
            break due;
        }
        // PostgreSQL releases the lock when it notices the connection closed: shortly after.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "the ended session's claim never became due"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        due.claimant,
        Claimant::Lapsed {
            owner: "w-a".into(),
            cause: Lapse::SessionEnded {
                waiting_since: j.first_requested_at
            }
        }
    );
    let mut tx = queue::begin(&store).await.unwrap();
    let due = queue::next_due(&store, &mut tx, now + 20)
        .await
        .unwrap()
        .unwrap();
    let lease_b = queue::take(&mut tx, &due, &b, &take, now + 20)
        .await
        .unwrap()
        .unwrap();
    // The dead claimant's lease no longer owns the job; B's does.
    assert!(queue::owned(&mut tx, &lease).await.unwrap().is_none());
    assert!(queue::owned(&mut tx, &lease_b).await.unwrap().is_some());
    tx.commit().await.unwrap();
    assert!(!queue::heartbeat(&store, &lease, now + 40_000, now + 30)
        .await
        .unwrap());
    assert!(queue::heartbeat(&store, &lease_b, now + 40_000, now + 30)
        .await
        .unwrap());
}

#[tokio::test]
async fn an_unknown_stored_state_is_an_error_not_a_panic() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let mut tx = t.store.write().await.unwrap();
    sql!(&mut tx, |c| sqlx::query(
        "UPDATE publish_jobs SET state = 'stuck'"
    )
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    tx.commit().await.unwrap();
    let mut tx = t.store.read().await.unwrap();
    let err = queue::get_job(&mut tx, fx.environment_id)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert!(
        err.to_string().contains("unknown job state \"stuck\""),
        "{err}"
    );
}

#[tokio::test]
async fn the_publish_log_stays_capped() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    // Trimmed every `TRIM_EVERY` lines: twice that many lines must leave at most cap + that.
    let lines = 2 * queue::TRIM_EVERY;
    for n in 0..lines {
        let mut tx = queue::begin(&t.store).await.unwrap();
        let line = LogLine {
            environment_id: fx.environment_id,
            revision: n,
            worker: "w",
            started_at: 10,
            finished_at: 15,
            bytes: Some(100),
            outcome: BuildOutcome::Published,
            detail: None,
        };
        queue::log(&mut tx, &line, 3).await.unwrap();
        tx.commit().await.unwrap();
    }
    let mut tx = t.store.read().await.unwrap();
    let log = queue::publish_log(&mut tx, None, 100).await.unwrap();
    assert!(
        log.len() as i64 <= 3 + queue::TRIM_EVERY,
        "{} rows of {lines}",
        log.len()
    );
    assert_eq!(log.last().unwrap().outcome, BuildOutcome::Published);
    assert_eq!(log.last().unwrap().duration_ms, 5);
}

#[tokio::test]
async fn publishing_notifies_listeners_on_postgres() {
    let t = test_store().await;
    let Some(mut listener) = queue::listen(&t.store).await.unwrap() else {
        return; // SQLite: notifications are in-process (flagstone-tasks).
    };
    let mut tx = queue::begin(&t.store).await.unwrap();
    queue::notify_published(&mut tx, 12, 345).await.unwrap();
    tx.commit().await.unwrap();
    // The channel is the database's, not the schema's: tests running beside this one (in other
    // schemas) publish on it too, so wait for this notice among theirs.
    let ours = Some(queue::Notice::Published {
        environment_id: 12,
        revision: 345,
    });
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let n = listener.recv().await.unwrap();
            assert_eq!(n.channel(), queue::PUBLISH_CHANNEL);
            if queue::parse_notification(n.payload()) == ours {
                break;
            }
        }
    })
    .await
    .expect("a notification");
}
