//! The document builder: Flagsmith's document shape, streamed within a byte budget, rebuilt
//! identically from unchanged data, published only forward, identity overrides kept outside.

use flagstone_engine::EnvironmentDocument;
use flagstone_store::document::{self, fixture, BuildError, BuildOptions};
use flagstone_store::testing::test_store;
use flagstone_store::{now_ms, sql, Store};
use serde_json::Value;

const SMALL: fixture::Shape = fixture::Shape {
    features: 4,
    mv_features: 1,
    segments: 3,
    overrides: 5,
};

async fn build_json(store: &Store, env: i64) -> Value {
    let doc = document::build(store, env, &BuildOptions::default())
        .await
        .unwrap();
    serde_json::from_slice(&doc.json().unwrap()).unwrap()
}

#[tokio::test]
async fn the_document_has_flagsmiths_shape_and_parses_as_an_engine_document() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let built = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    let json = built.json().unwrap();
    assert_eq!(built.bytes as usize, json.len());
    assert!(json.ends_with(document::IDENTITY_OVERRIDES_TAIL));
    let v: Value = serde_json::from_slice(&json).unwrap();

    assert_eq!(v["api_key"], fx.api_key.as_str());
    assert_eq!(v["id"], fx.environment_id);
    let project = &v["project"];
    assert_eq!(project["id"], fx.project_id);
    assert_eq!(project["organisation"]["id"], fx.organisation_id);
    assert_eq!(
        project["server_key_only_feature_ids"],
        serde_json::json!([])
    );
    let segments = project["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3);
    let ids: Vec<i64> = segments.iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "segments ordered by id"
    );
    let cond = &segments[0]["rules"][0]["rules"][0]["conditions"][0];
    assert_eq!(cond["property_"], "trait_0");
    assert_eq!(cond["operator"], "EQUAL");
    assert!(cond.get("property").is_none());
    let overrides: usize = segments
        .iter()
        .map(|s| s["feature_states"].as_array().unwrap().len())
        .sum();
    assert_eq!(overrides, 5);
    for s in segments {
        for fs in s["feature_states"].as_array().unwrap() {
            assert!(fs["feature_segment"]["priority"].is_i64());
        }
    }

    let states = v["feature_states"].as_array().unwrap();
    assert_eq!(states.len(), 4);
    assert!(states.iter().all(|s| s["feature_segment"].is_null()));
    assert!(states.iter().all(|s| s["django_id"].is_i64()));
    let mv = &states[0];
    assert_eq!(mv["feature"]["type"], "MULTIVARIATE");
    let values = mv["multivariate_feature_state_values"].as_array().unwrap();
    assert_eq!(values.len(), 2);
    // One option has an explicit allocation (40), the other falls back to its default (20).
    assert_eq!(values[0]["percentage_allocation"], 40.0);
    assert_eq!(values[1]["percentage_allocation"], 20.0);
    assert_eq!(values[0]["multivariate_feature_option"]["key"], "a");
    assert_eq!(
        values[0]["id"],
        values[0]["multivariate_feature_option"]["id"]
    );
    assert_eq!(v["identity_overrides"], serde_json::json!([]));
    assert!(v["updated_at"].as_str().unwrap().ends_with('Z'));

    let parsed: EnvironmentDocument = serde_json::from_slice(&json).unwrap();
    assert!(
        parsed.extra.is_empty(),
        "unexpected fields: {:?}",
        parsed.extra
    );
    assert_eq!(parsed.project.segments.len(), 3);
    assert_eq!(parsed.feature_states.len(), 4);
}

#[tokio::test]
async fn an_unchanged_environment_rebuilds_to_the_same_bytes() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let a = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    let b = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    assert_eq!(a.etag, b.etag);
    assert_eq!(a.revision, b.revision);
    fixture::change_feature(&t.store, &fx, 1, "new")
        .await
        .unwrap();
    let c = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    assert_eq!(c.revision, a.revision + 1);
    assert_ne!(c.etag, a.etag);
    let v = build_json(&t.store, fx.environment_id).await;
    assert_eq!(v["feature_states"][1]["feature_state_value"], "new");
}

#[tokio::test]
async fn a_document_over_its_budget_stops_early_with_a_clear_error() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, fixture::Shape::INCIDENT)
        .await
        .unwrap();
    let opts = BuildOptions {
        max_document_bytes: Some(100_000),
        ..Default::default()
    };
    let err = document::build(&t.store, fx.environment_id, &opts)
        .await
        .unwrap_err();
    match &err {
        BuildError::TooLarge { attempted, budget } => {
            assert_eq!(*budget, 100_000);
            // It stopped at the first write past the budget, not at the end of the document.
            assert!(*attempted > 100_000 && *attempted < 101_000, "{attempted}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(err.is_permanent());
    assert!(err.to_string().starts_with("document would exceed 10"));
    assert!(err.to_string().ends_with("bytes (budget 100000)"));
}

#[tokio::test]
async fn the_project_limit_sets_the_budget() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let mut tx = t.store.write().await.unwrap();
    sql!(&mut tx, |c| sqlx::query(
        "UPDATE projects SET limits = '{\"max_document_bytes\": 500}' WHERE id = $1"
    )
    .bind(fx.project_id)
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    tx.commit().await.unwrap();
    let err = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::TooLarge { budget: 500, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_published_document_is_only_ever_replaced_by_a_newer_one() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let old = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    fixture::change_feature(&t.store, &fx, 0, "x")
        .await
        .unwrap();
    let new = document::build(&t.store, fx.environment_id, &BuildOptions::default())
        .await
        .unwrap();
    let mut tx = t.store.write().await.unwrap();
    assert!(document::store_if_newer(&mut tx, &new).await.unwrap());
    // A slow worker finishing an older build must not roll the environment back.
    assert!(!document::store_if_newer(&mut tx, &old).await.unwrap());
    assert!(!document::store_if_newer(&mut tx, &new).await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = t.store.read().await.unwrap();
    let stored = document::load(&mut tx, fx.environment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision, new.revision);
    assert_eq!(stored.etag, new.etag);
    assert_eq!(stored.encoding, "gzip");
    assert_eq!(stored.json().unwrap(), new.json().unwrap());
    assert_eq!(
        document::published_revisions(&mut tx).await.unwrap(),
        vec![(fx.environment_id, new.revision)]
    );
}

#[tokio::test]
async fn identity_overrides_stream_one_identity_at_a_time_outside_the_document() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, SMALL).await.unwrap();
    let mut tx = t.store.write().await.unwrap();
    let features: Vec<i64> = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT feature_id FROM feature_states WHERE environment_id = $1 ORDER BY feature_id"
    )
    .bind(fx.environment_id)
    .fetch_all(c)
    .await
    .unwrap());
    for (n, who) in ["alice", "bob"].iter().enumerate() {
        let id: i64 = sql!(&mut tx, |c| sqlx::query_scalar(
            "INSERT INTO identities (environment_id, identifier, created_at) \
             VALUES ($1, $2, $3) RETURNING id"
        )
        .bind(fx.environment_id)
        .bind(*who)
        .bind(now_ms())
        .fetch_one(c)
        .await
        .unwrap());
        for f in &features[..=n] {
            sql!(&mut tx, |c| sqlx::query(
                "INSERT INTO identity_overrides (identity_id, feature_id, environment_id, \
                 enabled, value, uuid, updated_at) VALUES ($1, $2, $3, TRUE, '\"mine\"', $4, $5)"
            )
            .bind(id)
            .bind(*f)
            .bind(fx.environment_id)
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(now_ms())
            .execute(c)
            .await
            .unwrap()
            .rows_affected());
        }
    }
    tx.commit().await.unwrap();

    let mut tx = t.store.read().await.unwrap();
    let mut seen: Vec<Value> = Vec::new();
    let n = document::identity_overrides::stream(&mut tx, fx.environment_id, |chunk| {
        seen.push(serde_json::from_slice(&chunk).unwrap());
        async { true }
    })
    .await
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(seen[0]["identifier"], "alice");
    assert_eq!(seen[0]["identity_features"].as_array().unwrap().len(), 1);
    assert_eq!(seen[1]["identity_features"].as_array().unwrap().len(), 2);
    assert_eq!(
        seen[1]["composite_key"],
        format!("{}_bob", fx.api_key).as_str()
    );
    assert_eq!(
        seen[1]["identity_features"][0]["feature_state_value"],
        "mine"
    );
    assert!(seen[1]["identity_features"][0]["feature_segment"].is_null());
    // Each entry parses as the engine's IdentityOverride.
    let _: flagstone_engine::IdentityOverride = serde_json::from_value(seen[0].clone()).unwrap();

    // A consumer that goes away stops the stream.
    let mut calls = 0;
    document::identity_overrides::stream(&mut tx, fx.environment_id, |_| {
        calls += 1;
        async { false }
    })
    .await
    .unwrap();
    assert_eq!(calls, 1);

    // The published document itself carries none of them.
    let v = build_json(&t.store, fx.environment_id).await;
    assert_eq!(v["identity_overrides"], serde_json::json!([]));
}

/// Reading each segment's overrides through `segment_overrides_build` (one aggregated row per
/// segment) must write exactly the bytes the earlier single sorted UNION query wrote: equal
/// priorities, segments without overrides, overrides of another environment, multivariate
/// overrides with explicit and default allocations, awkward floats, escapes and NULL keys.
#[tokio::test]
async fn per_segment_reads_write_the_same_bytes_as_the_sorted_union() {
    let t = test_store().await;
    let fx = fixture::create(
        &t.store,
        fixture::Shape {
            features: 6,
            mv_features: 2,
            segments: 5,
            overrides: 12,
        },
    )
    .await
    .unwrap();
    let other = fixture::create(&t.store, SMALL).await.unwrap();
    let mut tx = t.store.write().await.unwrap();
    let features: Vec<i64> = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT id FROM features WHERE project_id = $1 ORDER BY id"
    )
    .bind(fx.project_id)
    .fetch_all(c)
    .await
    .unwrap());
    let options: Vec<i64> = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT id FROM mv_options WHERE feature_id = $1 ORDER BY id"
    )
    .bind(features[0])
    .fetch_all(c)
    .await
    .unwrap());
    // Defaults that only survive an exact round trip, and an option without a key.
    for (n, pct) in [(0usize, 100.0f64 / 3.0), (1, 0.1 + 0.2)] {
        sql!(&mut tx, |c| sqlx::query(
            "UPDATE mv_options SET default_percentage_allocation = $2 WHERE id = $1"
        )
        .bind(options[n])
        .bind(pct)
        .execute(c)
        .await
        .unwrap()
        .rows_affected());
    }
    sql!(&mut tx, |c| sqlx::query(
        "INSERT INTO mv_options (feature_id, value, default_percentage_allocation, key, uuid) \
         VALUES ($1, '12.5', 1e-7, NULL, 'u-3')"
    )
    .bind(features[0])
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    let segments: Vec<i64> = sql!(&mut tx, |c| sqlx::query_scalar(
        "SELECT id FROM segments WHERE project_id = $1 ORDER BY id"
    )
    .bind(fx.project_id)
    .fetch_all(c)
    .await
    .unwrap());
    // A segment with no overrides, and one whose overrides share a priority.
    sql!(&mut tx, |c| sqlx::query(
        "INSERT INTO segments (project_id, name, rules, created_at, updated_at) \
         VALUES ($1, 'empty \"quoted\" ☃', '[]', 0, 0)"
    )
    .bind(fx.project_id)
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    for (f, value, allocations) in [
        (
            features[0],
            "{\"nested\":[1,2.5,\"\\u00e9\\n\"]}",
            format!(
                "[{{\"multivariate_feature_option\":{},\"percentage_allocation\":12.25}}]",
                options[1]
            ),
        ),
        (features[5], "null", "[]".to_string()),
        (features[4], "-0.5", "[]".to_string()),
    ] {
        sql!(&mut tx, |c| sqlx::query(
            "INSERT INTO segment_overrides (feature_id, segment_id, environment_id, priority, \
             enabled, value, mv_allocations, uuid, updated_at) \
             VALUES ($1, $2, $3, 7, TRUE, $4, $5, $6, 0) \
             ON CONFLICT (environment_id, feature_id, segment_id) DO UPDATE \
             SET priority = 7, value = excluded.value, mv_allocations = excluded.mv_allocations"
        )
        .bind(f)
        .bind(segments[4])
        .bind(fx.environment_id)
        .bind(value)
        .bind(allocations)
        .bind(uuid::Uuid::new_v4().to_string())
        .execute(c)
        .await
        .unwrap()
        .rows_affected());
    }
    // An override of another environment on this project's segment: not in this document.
    sql!(&mut tx, |c| sqlx::query(
        "INSERT INTO segment_overrides (feature_id, segment_id, environment_id, priority, \
         enabled, value, mv_allocations, uuid, updated_at) \
         VALUES ($1, $2, $3, 0, TRUE, '\"elsewhere\"', '[]', 'u-x', 0)"
    )
    .bind(features[1])
    .bind(segments[0])
    .bind(other.environment_id)
    .execute(c)
    .await
    .unwrap()
    .rows_affected());
    tx.commit().await.unwrap();

    let opts = BuildOptions::default();
    for env in [fx.environment_id, other.environment_id] {
        let new = document::build(&t.store, env, &opts).await.unwrap();
        let reference = document::build_with_union_query(&t.store, env, &opts)
            .await
            .unwrap();
        let (new_json, ref_json) = (new.json().unwrap(), reference.json().unwrap());
        assert_eq!(
            String::from_utf8_lossy(&new_json),
            String::from_utf8_lossy(&ref_json)
        );
        assert_eq!(new.etag, reference.etag);
        assert_eq!(new.bytes, reference.bytes);
    }
    // The fixture exercised what it meant to.
    let v = build_json(&t.store, fx.environment_id).await;
    let segs = v["project"]["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 6);
    assert_eq!(segs[5]["feature_states"], serde_json::json!([]));
    let shared: Vec<&Value> = segs[4]["feature_states"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["feature_segment"]["priority"] == 7)
        .collect();
    assert_eq!(shared.len(), 3);
    let mv = shared
        .iter()
        .find(|s| s["feature"]["id"] == features[0])
        .unwrap();
    let pcts: Vec<f64> = mv["multivariate_feature_state_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["percentage_allocation"].as_f64().unwrap())
        .collect();
    assert_eq!(pcts, vec![100.0 / 3.0, 12.25, 1e-7]);
}

/// A run of builds from one snapshot (`document::Builder`, what a worker's batch uses) makes
/// exactly the documents that building each alone makes — environments of one project sharing
/// the project's features read once, and of another project — and sees the store as it was when
/// the snapshot was taken.
#[tokio::test]
async fn builds_from_one_snapshot_equal_builds_alone() {
    let t = test_store().await;
    let a = fixture::create(&t.store, SMALL).await.unwrap();
    let b = fixture::create(&t.store, SMALL).await.unwrap();
    let mut ch = t
        .store
        .change(&flagstone_store::Actor::system("test"))
        .await
        .unwrap();
    let new =
        serde_json::from_value(serde_json::json!({"name": "second", "project": a.project_id}))
            .unwrap();
    let a2 = flagstone_store::environments::create(&mut ch, &new)
        .await
        .unwrap()
        .id;
    ch.commit().await.unwrap();
    let opts = BuildOptions::default();
    let order = [a.environment_id, b.environment_id, a2];
    let mut alone = Vec::new();
    for env in order {
        alone.push(document::build(&t.store, env, &opts).await.unwrap());
    }
    let mut builder = document::Builder::open(&t.store).await.unwrap();
    for (env, alone) in order.iter().zip(&alone) {
        let built = builder.build(*env, &opts).await.unwrap();
        assert_eq!(built.revision, alone.revision, "environment {env}");
        assert_eq!(
            built.json().unwrap(),
            alone.json().unwrap(),
            "environment {env}"
        );
        assert_eq!(built.etag, alone.etag);
        assert_eq!(built.sdk_features, alone.sdk_features);
    }
    // The two environments of one project carry the same project features.
    assert_eq!(alone[0].sdk_features, alone[2].sdk_features);
    assert_ne!(alone[0].sdk_features, "{}");
    // A change after the snapshot was taken is not in it; a new builder sees it.
    fixture::change_feature(&t.store, &a, 0, "later")
        .await
        .unwrap();
    let stale = builder.build(a.environment_id, &opts).await.unwrap();
    assert_eq!(stale.json().unwrap(), alone[0].json().unwrap());
    drop(builder);
    let mut builder = document::Builder::open(&t.store).await.unwrap();
    let fresh = builder.build(a.environment_id, &opts).await.unwrap();
    assert!(fresh.revision > alone[0].revision);
    assert_ne!(fresh.json().unwrap(), alone[0].json().unwrap());
}
