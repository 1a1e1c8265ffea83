//! Flag-usage retention, stepped with a manual clock on the configured store (SQLite, or
//! PostgreSQL with FLAGSTONE_TEST_DATABASE_URL): a pass deletes the hourly rows past the
//! retention in batches of the configured size, stops after `max_batches` with the rest left
//! for the next pass, keeps every row inside the retention and the latest row of each feature
//! however old (its `last_evaluated_at` survives), and a second pass finds nothing to do.

use flagstone_store::clock::Clock;
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::evaluations::{self, UsageDelta, DAY_MS, HOUR_MS};
use flagstone_store::features::states;
use flagstone_store::testing::test_store;
use flagstone_store::{sql, Store};
use flagstone_tasks::retention::{prune_once, Pruned, RetentionConfig};

const NOW: i64 = 1_780_000_000_000 - 1_780_000_000_000 % HOUR_MS;

async fn rows(store: &Store) -> Vec<(i64, i64)> {
    let mut tx = store.read().await.unwrap();
    sql!(&mut tx, |c| {
        sqlx::query_as("SELECT feature_id, hour FROM feature_evaluations ORDER BY feature_id, hour")
            .fetch_all(c)
            .await
            .unwrap()
    })
}

#[tokio::test]
async fn old_usage_rows_are_pruned_in_bounded_batches_keeping_each_features_latest() {
    let t = test_store().await;
    let store = t.store.clone().with_clock(Clock::manual(NOW));
    let shape = Shape {
        features: 2,
        mv_features: 0,
        segments: 0,
        overrides: 0,
    };
    let fx = fixture::create(&store, shape).await.unwrap();
    let mut features = Vec::new();
    let mut tx = store.read().await.unwrap();
    for id in &fx.feature_state_ids {
        features.push(
            states::get(&mut tx, fx.environment_id, *id)
                .await
                .unwrap()
                .feature,
        );
    }
    drop(tx);
    let (a, b) = (features[0], features[1]);
    // a: evaluated hourly 100 to 95 days ago (6 rows) and 1 day ago. b: only 120 days ago.
    let mut batch = Vec::new();
    let mut add = |feature_id: i64, hour: i64| {
        batch.push(UsageDelta {
            environment_id: fx.environment_id,
            feature_id,
            hour,
            reported: 1,
            served: 2,
            at: hour + 60_000,
        })
    };
    for d in 95..=100 {
        add(a, NOW - d * DAY_MS);
    }
    add(a, NOW - DAY_MS);
    add(b, NOW - 120 * DAY_MS);
    let mut tx = store.write().await.unwrap();
    assert_eq!(evaluations::record(&mut tx, &batch).await.unwrap(), 8);
    tx.commit().await.unwrap();

    let cfg = RetentionConfig {
        retention_days: 90,
        batch: 2,
        max_batches: 2,
        ..RetentionConfig::default()
    };
    // Six of a's rows are past the retention: two batches of two, then the pass stops.
    let first = prune_once(&store, &cfg).await.unwrap();
    assert_eq!(
        first,
        Pruned {
            rows: 4,
            batches: 2,
            more: true
        }
    );
    // Oldest first: the 100- to 97-day-old rows went.
    let left = rows(&store).await;
    assert_eq!(
        left,
        vec![
            (a, NOW - 96 * DAY_MS),
            (a, NOW - 95 * DAY_MS),
            (a, NOW - DAY_MS),
            (b, NOW - 120 * DAY_MS),
        ]
    );
    // The last two go in a full batch; the next batch comes back empty and ends the pass.
    let second = prune_once(&store, &cfg).await.unwrap();
    assert_eq!(
        second,
        Pruned {
            rows: 2,
            batches: 2,
            more: false
        }
    );
    let third = prune_once(&store, &cfg).await.unwrap();
    assert_eq!(
        third,
        Pruned {
            rows: 0,
            batches: 1,
            more: false
        }
    );
    // Inside the retention: kept. b's only row, 120 days old: kept, and with it its
    // last_evaluated_at.
    assert_eq!(
        rows(&store).await,
        vec![(a, NOW - DAY_MS), (b, NOW - 120 * DAY_MS)]
    );
    let mut tx = store.read().await.unwrap();
    let last = evaluations::last_evaluated_by_feature(&mut tx, fx.project_id)
        .await
        .unwrap();
    assert_eq!(last.get(&b), Some(&(NOW - 120 * DAY_MS + 60_000)));
    drop(tx);

    // Time passes: a's last row falls out of a shorter retention too, but it is a's latest.
    store.clock().advance(10 * DAY_MS);
    let short = RetentionConfig {
        retention_days: 1,
        ..cfg
    };
    assert_eq!(prune_once(&store, &short).await.unwrap().rows, 0);
    assert_eq!(rows(&store).await.len(), 2);
}
