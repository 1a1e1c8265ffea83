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
