//! Import and export of Flagsmith environment documents (issue 3), on SQLite and — with
//! FLAGSTONE_TEST_DATABASE_URL — PostgreSQL. The central property: a user evaluated against the
//! original Flagsmith document and against Flagstone's export lands in the same bucket.

use flagstone_engine::{
    document_to_context, CompiledEnvironment, EnvironmentDocument, EvaluationResult,
    IdentityContext,
};
use flagstone_store::document::fixture::{self, Shape};
use flagstone_store::projects::LimitLowering;
use flagstone_store::projects::{self, ProjectPatch};
use flagstone_store::testing::test_store;
use flagstone_store::transfer::{self, ImportOptions, ImportReport};
use flagstone_store::{sql, Actor, LimitName, Store, StoreError};
use serde_json::{json, Value};

const SDK_FIXTURE: &str = include_str!("data/flagsmith-sdk-fixture.json");
const MIGRATION: &str = include_str!("data/flagsmith-migration.json");

fn doc(text: &str) -> EnvironmentDocument {
    serde_json::from_str(text).expect("test document parses")
}

fn actor() -> Actor {
    Actor::system("import-test")
}

async fn import(store: &Store, d: &EnvironmentDocument) -> Result<ImportReport, StoreError> {
    transfer::import(store, &actor(), d, &ImportOptions::default()).await
}

async fn export(store: &Store, api_key: &str) -> EnvironmentDocument {
    let (bytes, _) = transfer::export_to_vec(store, api_key)
        .await
        .expect("export");
    serde_json::from_slice(&bytes).expect("exported document parses")
}

async fn count(store: &Store, table: &str) -> i64 {
    let mut tx = store.read().await.unwrap();
    let q = format!("SELECT COUNT(*) FROM {table}");
    sql!(&mut tx, |c| sqlx::query_scalar(&q)
        .fetch_one(c)
        .await
        .unwrap())
}

async fn revision(store: &Store, api_key: &str) -> i64 {
    let mut tx = store.read().await.unwrap();
    flagstone_store::environments::get_by_key(&mut tx, api_key)
        .await
        .unwrap()
        .revision
}

/// Identities whose traits reach every kind of condition in the test documents; the
/// identifiers spread them over the percentage splits and multivariate buckets.
fn identities(n: usize) -> Vec<IdentityContext> {
    (0..n)
        .map(|i| {
            let traits = json!({
                "foo": if i % 3 == 0 { "bar" } else { "baz" },
                "email_domain": if i % 4 == 0 { "example.com" } else { "other.org" },
                "blocked": i % 11 == 0,
                "app_version": format!("{}.{}.0", 1 + i % 3, i % 5),
                "user_no": i,
                "plan": if i % 2 == 0 { Value::from("gold") } else { Value::Null },
                // The incident fixture's conditions: trait_c == "value-<segment>-<c>".
                "trait_0": format!("value-{}-0", i % 400),
                "trait_1": format!("value-{}-1", i % 400),
                "trait_2": format!("value-{}-2", i % 400),
            });
            let identifier = match i {
                0 => "overridden-id".to_string(),
                1 => "vip-1".to_string(),
                2 => "vip-2".to_string(),
                _ if i % 7 == 0 => format!("beta-user-{i}"),
                _ => format!("user-{i}"),
            };
            serde_json::from_value(json!({"identifier": identifier, "traits": traits})).unwrap()
        })
        .collect()
}

fn evaluate_all(d: &EnvironmentDocument, ids: &[IdentityContext]) -> Vec<EvaluationResult> {
    let env = CompiledEnvironment::from_document(d);
    ids.iter().map(|i| env.evaluate(Some(i))).collect()
}

fn assert_same_evaluations(a: &EnvironmentDocument, b: &EnvironmentDocument, n: usize) {
    let ids = identities(n);
    // The matched-segments list of a result follows document order, and Flagstone writes
    // segments by id; compare it as a set.
    let sorted = |mut r: EvaluationResult| {
        r.segments.sort_by(|x, y| x.name.cmp(&y.name));
        r
    };
    let ra: Vec<_> = evaluate_all(a, &ids).into_iter().map(sorted).collect();
    let rb: Vec<_> = evaluate_all(b, &ids).into_iter().map(sorted).collect();
    for ((i, x), y) in ids.iter().zip(&ra).zip(&rb) {
        assert_eq!(x, y, "identity {:?} evaluates differently", i.identifier);
    }
    // And without an identity (environment flags).
    assert_eq!(
        sorted(CompiledEnvironment::from_document(a).evaluate(None)),
        sorted(CompiledEnvironment::from_document(b).evaluate(None))
    );
}

fn context_json(d: &EnvironmentDocument) -> Value {
    serde_json::to_value(document_to_context(d)).unwrap()
}

/// The first path where two JSON values differ, for a readable failure.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &format!("{path}.{k}")),
                (p, q) => Some(format!("{path}.{k}: {p:?} vs {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

fn assert_same_context(a: &EnvironmentDocument, b: &EnvironmentDocument) {
    if let Some(d) = first_difference(&context_json(a), &context_json(b), "$") {
        panic!("the engine reads the documents differently at {d}");
    }
}

#[tokio::test]
async fn python_sdk_fixture_imports_and_evaluates_alike() {
    let t = test_store().await;
    let original = doc(SDK_FIXTURE);
    let report = import(&t.store, &original).await.unwrap();
    assert!(report.created);
    assert_eq!(report.api_key, "B62qaMZNwfiqT76p38ggrQ");
    assert_eq!(
        (report.organisation, report.project, report.environment),
        (1, 1, 1)
    );
    assert_eq!(
        (
            report.features,
            report.segments,
            report.segment_overrides,
            report.identity_overrides
        ),
        (1, 1, 1, 1)
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let exported = export(&t.store, "B62qaMZNwfiqT76p38ggrQ").await;
    assert_eq!(exported.feature_states[0].django_id, Some(1));
    assert_eq!(exported.project.segments[0].id, 1);
    assert_eq!(exported.identity_overrides.len(), 1);
    assert_eq!(exported.identity_overrides[0].identifier, "overridden-id");
    assert_eq!(
        exported.identity_overrides[0].identity_features[0].feature_state_value,
        json!("some-overridden-value")
    );
    assert_same_evaluations(&original, &exported, 50);
}

#[tokio::test]
async fn import_export_import_export_is_lossless() {
    let t = test_store().await;
    let original = doc(MIGRATION);
    let report = import(&t.store, &original).await.unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        (report.organisation, report.project, report.environment),
        (55, 117, 4242)
    );
    assert_eq!(report.features, 6);
    assert_eq!(report.segments, 5);
    assert_eq!(report.segment_overrides, 7);
    assert_eq!(report.identity_overrides, 2);

    let first = export(&t.store, &original.api_key).await;
    // The ids that feed the hashes are the document's.
    let ids = |d: &EnvironmentDocument| -> Vec<(i64, Option<i64>, Vec<Option<i64>>)> {
        d.feature_states
            .iter()
            .chain(d.project.segments.iter().flat_map(|s| &s.feature_states))
            .map(|fs| {
                // Options a state does not list come back at 0 %.
                let mv = fs
                    .multivariate_feature_state_values
                    .iter()
                    .filter(|m| m.percentage_allocation.as_f64() != Some(0.0))
                    .map(|m| m.multivariate_feature_option.id)
                    .collect();
                (fs.feature.id, fs.django_id, mv)
            })
            .collect()
    };
    let mut want = ids(&original);
    let mut got = ids(&first);
    want.sort();
    got.sort();
    assert_eq!(want, got);
    let seg_ids: Vec<i64> = first.project.segments.iter().map(|s| s.id).collect();
    assert_eq!(seg_ids, vec![77, 300, 301, 412, 9001]);
    assert_eq!(first.project.server_key_only_feature_ids, vec![24]);
    assert_same_evaluations(&original, &first, 200);

    // Into a second, empty store, and out again.
    let t2 = test_store().await;
    let again = import(&t2.store, &first).await.unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    let second = export(&t2.store, &original.api_key).await;
    assert_same_context(&first, &second);
    assert_same_evaluations(&first, &second, 200);
    assert_same_evaluations(&original, &second, 200);
}

#[tokio::test]
async fn reimport_replaces_without_duplicates() {
    let t = test_store().await;
    let original = doc(MIGRATION);
    import(&t.store, &original).await.unwrap();
    let counts = |s: Store| async move {
        let mut v = Vec::new();
        for table in [
            "organisations",
            "projects",
            "environments",
            "features",
            "mv_options",
            "segments",
            "feature_states",
            "segment_overrides",
            "identities",
            "identity_overrides",
        ] {
            v.push(count(&s, table).await);
        }
        v
    };
    let before = counts(t.store.clone()).await;
    let rev = revision(&t.store, &original.api_key).await;
    let audits = count(&t.store, "audit_log").await;

    // The same document again: replaced in place.
    let report = import(&t.store, &original).await.unwrap();
    assert!(!report.created);
    assert_eq!(counts(t.store.clone()).await, before);
    assert_eq!(revision(&t.store, &original.api_key).await, rev + 1);
    assert_eq!(count(&t.store, "audit_log").await, audits + 1);
    let log: String = {
        let mut tx = t.store.read().await.unwrap();
        sql!(&mut tx, |c| sqlx::query_scalar(
            "SELECT log FROM audit_log ORDER BY id DESC LIMIT 1"
        )
        .fetch_one(c)
        .await
        .unwrap())
    };
    assert_eq!(log, transfer::AUDIT_LOG);

    // A changed document: a feature renamed, a segment and a feature gone, overrides changed.
    let mut changed: Value = serde_json::from_str(MIGRATION).unwrap();
    changed["feature_states"][0]["feature"]["name"] = json!("checkout_v2");
    changed["feature_states"][0]["enabled"] = json!(true);
    changed["feature_states"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["feature"]["id"] != json!(26));
    changed["project"]["segments"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["id"] != json!(301));
    for s in changed["project"]["segments"].as_array_mut().unwrap() {
        for f in s["feature_states"].as_array_mut().unwrap() {
            if f["feature"]["id"] == json!(21) {
                f["feature"]["name"] = json!("checkout_v2");
            }
        }
    }
    for io in changed["identity_overrides"].as_array_mut().unwrap() {
        for f in io["identity_features"].as_array_mut().unwrap() {
            if f["feature"]["id"] == json!(21) {
                f["feature"]["name"] = json!("checkout_v2");
            }
        }
    }
    let changed: EnvironmentDocument = serde_json::from_value(changed).unwrap();
    let report = import(&t.store, &changed).await.unwrap();
    assert_eq!((report.deleted_features, report.deleted_segments), (1, 1));
    assert_eq!((report.features, report.segments), (5, 4));
    let exported = export(&t.store, &original.api_key).await;
    let checkout = exported
        .feature_states
        .iter()
        .find(|f| f.feature.id == 21)
        .unwrap();
    assert_eq!(checkout.feature.name, "checkout_v2");
    assert!(checkout.enabled);
    assert_same_evaluations(&changed, &exported, 200);
}

#[tokio::test]
async fn invalid_documents_are_refused_and_write_nothing() {
    let t = test_store().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"feature_states": []}), "document"),
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                d["project"]["segments"][2]["rules"][0]["rules"][0]["conditions"][1]["value"] =
                    json!("(unclosed");
                d
            },
            "project.segments[2].rules[0].rules[0].conditions[1].value",
        ),
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                d["feature_states"][1]["multivariate_feature_state_values"][0]
                    ["percentage_allocation"] = json!(90.0);
                d
            },
            "feature_states[1].multivariate_feature_state_values",
        ),
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                let values = &mut d["feature_states"][1]["multivariate_feature_state_values"];
                values[1]["id"] = values[0]["id"].clone();
                d
            },
            "feature_states[1].multivariate_feature_state_values[1].id",
        ),
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                d["feature_states"][2]["feature_state_value"] = json!({"nested": true});
                d
            },
            "feature_states[2].feature_state_value",
        ),
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                d["api_key"] = json!("ser.secret-key-value");
                d
            },
            "api_key",
        ),
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                d["identity_overrides"][1]["identifier"] = json!("vip-1");
                d
            },
            "identity_overrides[1].identifier",
        ),
        // Text that can deceive (crate::text): the same rule as the admin and SDK APIs.
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                d["identity_overrides"][0]["identifier"] = json!("vip\u{202E}1");
                d
            },
            "identity_overrides[0].identifier",
        ),
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                d["feature_states"][0]["feature"]["name"] = json!("flag\u{7}");
                d
            },
            "feature_states[0].feature.name",
        ),
        (
            {
                let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
                d["project"]["segments"][0]["name"] = json!("\u{2066}segment");
                d
            },
            "project.segments[0].name",
        ),
    ];
    for (body, field) in cases {
        let err = match transfer::parse_document(body.to_string().as_bytes()) {
            Err(e) => e,
            Ok(d) => import(&t.store, &d).await.unwrap_err(),
        };
        match err {
            StoreError::Invalid { field: f, .. } => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    for table in [
        "organisations",
        "projects",
        "environments",
        "features",
        "segments",
        "audit_log",
        "publish_jobs",
    ] {
        assert_eq!(
            count(&t.store, table).await,
            0,
            "{table} written by a refused import"
        );
    }
}

#[tokio::test]
async fn exceeding_a_limit_is_refused_and_writes_nothing() {
    let t = test_store().await;
    let original = doc(MIGRATION);
    let report = import(&t.store, &original).await.unwrap();
    let mut ch = t.store.change(&actor()).await.unwrap();
    projects::update(
        &mut ch,
        report.project,
        &ProjectPatch {
            name: None,
            hide_disabled_flags: None,
            enable_realtime_updates: None,
            limits: Some(json!({"max_segments": 4})),
            ..Default::default()
        },
        LimitLowering::Force,
    )
    .await
    .unwrap();
    ch.commit().await.unwrap();
    let rev = revision(&t.store, &original.api_key).await;
    let audits = count(&t.store, "audit_log").await;
    let before = export(&t.store, &original.api_key).await;

    match import(&t.store, &original).await.unwrap_err() {
        StoreError::LimitExceeded { limit, max, .. } => {
            assert_eq!(limit, LimitName::MaxSegments);
            assert_eq!(max, 4);
        }
        other => panic!("expected limit_exceeded, got {other:?}"),
    }
    // The document would not fit the project's byte budget either.
    let mut ch = t.store.change(&actor()).await.unwrap();
    projects::update(
        &mut ch,
        report.project,
        &ProjectPatch {
            name: None,
            hide_disabled_flags: None,
            enable_realtime_updates: None,
            limits: Some(json!({"max_segments": 100, "max_document_bytes": 2000})),
            ..Default::default()
        },
        LimitLowering::Force,
    )
    .await
    .unwrap();
    ch.commit().await.unwrap();
    match import(&t.store, &original).await.unwrap_err() {
        StoreError::LimitExceeded { limit, .. } => assert_eq!(limit, LimitName::MaxDocumentBytes),
        other => panic!("expected limit_exceeded, got {other:?}"),
    }
    assert_eq!(
        revision(&t.store, &original.api_key).await,
        rev + 1,
        "only the limits change bumped it"
    );
    assert_eq!(count(&t.store, "audit_log").await, audits + 1);
    // Unchanged (the limits were lowered, so export with a larger budget is not needed:
    // compare what the engine reads).
    let mut ch = t.store.change(&actor()).await.unwrap();
    projects::update(
        &mut ch,
        report.project,
        &ProjectPatch {
            name: None,
            hide_disabled_flags: None,
            enable_realtime_updates: None,
            limits: Some(json!({"max_document_bytes": 1_000_000})),
            ..Default::default()
        },
        LimitLowering::Force,
    )
    .await
    .unwrap();
    ch.commit().await.unwrap();
    let after = export(&t.store, &original.api_key).await;
    assert_same_context(&before, &after);
}

/// Gives `doc`'s features the ids `like` has for the same names.
fn renumber_features_like(doc: &mut EnvironmentDocument, like: &EnvironmentDocument) {
    let ids: std::collections::HashMap<String, i64> = like
        .feature_states
        .iter()
        .map(|f| (f.feature.name.clone(), f.feature.id))
        .collect();
    let old: std::collections::HashMap<i64, i64> = doc
        .feature_states
        .iter()
        .map(|f| (f.feature.id, ids[&f.feature.name]))
        .collect();
    let states = doc
        .feature_states
        .iter_mut()
        .chain(
            doc.project
                .segments
                .iter_mut()
                .flat_map(|s| &mut s.feature_states),
        )
        .chain(
            doc.identity_overrides
                .iter_mut()
                .flat_map(|i| &mut i.identity_features),
        );
    for fs in states {
        fs.feature.id = ids[&fs.feature.name];
    }
    for id in &mut doc.project.server_key_only_feature_ids {
        *id = old[id];
    }
}

#[tokio::test]
async fn taken_ids_keep_every_user_in_their_bucket() {
    let t = test_store().await;
    // Another Flagsmith project whose ids are the migration document's.
    let mut other: Value = serde_json::from_str(MIGRATION).unwrap();
    other["api_key"] = json!("anotherEnvKey0123456789");
    other["id"] = json!(1);
    import(&t.store, &serde_json::from_value(other).unwrap())
        .await
        .unwrap();

    let original = doc(MIGRATION);
    let report = import(&t.store, &original).await.unwrap();
    assert!(report.created);
    // Same organisation and project ids and names, but not provably the same project.
    assert_eq!(report.target, transfer::TargetChoice::NewProject);
    assert!(report.changed_environments.is_empty());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // Every row id was taken, every hashing id is the document's: only the features' ids
    // (their row ids, which no hash reads) differ.
    let mut exported = export(&t.store, &original.api_key).await;
    let seg_ids: Vec<i64> = exported.project.segments.iter().map(|s| s.id).collect();
    assert_eq!(seg_ids, vec![77, 300, 301, 412, 9001]);
    assert_ne!(
        exported.feature_states[0].feature.id,
        original.feature_states[0].feature.id
    );
    renumber_features_like(&mut exported, &original);
    assert_same_evaluations(&original, &exported, 200);
}

#[tokio::test]
async fn incident_sized_document_round_trips() {
    let t = test_store().await;
    let fx = fixture::create(&t.store, Shape::INCIDENT).await.unwrap();
    let original = export(&t.store, &fx.api_key).await;
    assert_eq!(original.project.segments.len(), 400);

    let t2 = test_store().await;
    let started = std::time::Instant::now();
    let report = import(&t2.store, &original).await.unwrap();
    eprintln!(
        "imported 400 segments / 5,000 overrides in {:?}",
        started.elapsed()
    );
    assert!(
        report.warnings.is_empty(),
        "{:?}",
        &report.warnings[..report.warnings.len().min(3)]
    );
    assert_eq!(report.segments, 400);
    assert_eq!(report.segment_overrides, 5_000);
    let exported = export(&t2.store, &fx.api_key).await;
    // The fixture's override priorities are sparse (the segment's index); the import makes
    // them dense per feature, keeping their order, so users get the same flags.
    assert_same_evaluations(&original, &exported, 200);

    // A second round trip changes nothing the engine reads.
    let t3 = test_store().await;
    import(&t3.store, &exported).await.unwrap();
    let again = export(&t3.store, &fx.api_key).await;
    assert_same_context(&exported, &again);
    assert_same_evaluations(&original, &again, 200);

    // Re-importing the same document replaces it, no duplicates.
    import(&t2.store, &exported).await.unwrap();
    assert_eq!(count(&t2.store, "segment_overrides").await, 5_000);
    assert_eq!(count(&t2.store, "segments").await, 400);
}

#[tokio::test]
async fn rows_created_after_an_import_get_fresh_ids() {
    let t = test_store().await;
    let report = import(&t.store, &doc(MIGRATION)).await.unwrap();
    let mut ch = t.store.change(&actor()).await.unwrap();
    let f: flagstone_store::features::NewFeature =
        serde_json::from_value(json!({"name": "after_import"})).unwrap();
    let feature = flagstone_store::features::create(&mut ch, report.project, &f)
        .await
        .unwrap();
    let s: flagstone_store::segments::NewSegment = serde_json::from_value(json!({
        "name": "after import",
        "rules": [{"type": "ALL", "conditions": [{"operator": "EQUAL", "property": "a", "value": "b"}]}]
    }))
    .unwrap();
    let segment = flagstone_store::segments::create(&mut ch, report.project, &s)
        .await
        .unwrap();
    ch.commit().await.unwrap();
    // Past the largest imported ids (26 and 9001), on both backends.
    assert!(feature.id > 26, "{}", feature.id);
    assert!(segment.id > 9001, "{}", segment.id);
}

async fn import_with(
    store: &Store,
    d: &EnvironmentDocument,
    opts: ImportOptions,
) -> Result<ImportReport, StoreError> {
    transfer::import(store, &actor(), d, &opts).await
}

/// Another environment of the migration document's project (staging): same project,
/// segments and features, its own key, id and states.
fn staging() -> Value {
    let mut d: Value = serde_json::from_str(MIGRATION).unwrap();
    d["api_key"] = json!("stagingEnvKey0123456789");
    d["id"] = json!(4243);
    d["name"] = json!("Staging");
    for (i, fs) in d["feature_states"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        fs["django_id"] = json!(5000 + i);
        fs["enabled"] = json!(false);
    }
    d["identity_overrides"] = json!([]);
    d
}

#[tokio::test]
async fn environments_of_one_source_share_a_project_and_others_never_merge() {
    let t = test_store().await;
    let from = |s: &str| ImportOptions {
        source: Some(s.to_string()),
        ..ImportOptions::default()
    };
    let prod = import_with(
        &t.store,
        &doc(MIGRATION),
        from("https://flagsmith.acme.test"),
    )
    .await
    .unwrap();
    assert_eq!(prod.target, transfer::TargetChoice::NewProject);
    assert_eq!(prod.source, "https://flagsmith.acme.test");
    let before = export(&t.store, &prod.api_key).await;

    // The same installation's staging environment joins the project; prod serves as before.
    let stg: EnvironmentDocument = serde_json::from_value(staging()).unwrap();
    let report = import_with(&t.store, &stg, from("https://flagsmith.acme.test"))
        .await
        .unwrap();
    assert_eq!(report.target, transfer::TargetChoice::SameSourceProject);
    assert_eq!(report.project, prod.project);
    assert_eq!((report.deleted_features, report.deleted_segments), (0, 0));
    assert!(
        report.changed_environments.is_empty(),
        "{:?}",
        report.changed_environments
    );
    assert_same_context(&before, &export(&t.store, &prod.api_key).await);

    // The same document from another installation (or without a source): a project of its
    // own, though organisation and project ids and names are the same.
    let mut other = staging();
    other["api_key"] = json!("otherInstallKey0123456");
    let other: EnvironmentDocument = serde_json::from_value(other).unwrap();
    for opts in [
        from("https://flagsmith.other.test"),
        ImportOptions::default(),
    ] {
        let mut other = other.clone();
        other
            .api_key
            .push_str(if opts.source.is_some() { "a" } else { "b" });
        let report = import_with(&t.store, &other, opts).await.unwrap();
        assert_eq!(report.target, transfer::TargetChoice::NewProject);
        assert_ne!(report.project, prod.project);
        assert_ne!(report.organisation, prod.organisation);
        assert!(report.changed_environments.is_empty());
    }
    assert_same_context(&before, &export(&t.store, &prod.api_key).await);

    // A later staging document with a changed segment: prod's flags that read it change, and
    // the report names them (a dry run first, which writes nothing).
    let mut changed = staging();
    changed["project"]["segments"][0]["rules"][0]["rules"][0]["conditions"][0]["value"] =
        json!("20");
    let changed: EnvironmentDocument = serde_json::from_value(changed).unwrap();
    let rev = revision(&t.store, &prod.api_key).await;
    let audits = count(&t.store, "audit_log").await;
    let mut opts = from("https://flagsmith.acme.test");
    opts.dry_run = true;
    let dry = import_with(&t.store, &changed, opts).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(revision(&t.store, &prod.api_key).await, rev);
    assert_eq!(count(&t.store, "audit_log").await, audits);
    assert_same_context(&before, &export(&t.store, &prod.api_key).await);
    let split = changed.project.segments[0].name.clone();
    let names: Vec<(String, Vec<String>)> = dry
        .changed_environments
        .iter()
        .map(|e| (e.api_key.clone(), e.features.clone()))
        .collect();
    // Segment "ten percent" overrides checkout and banner; staging itself changes too.
    assert_eq!(split, "ten percent");
    assert_eq!(
        names,
        vec![
            (
                prod.api_key.clone(),
                vec!["banner".to_string(), "checkout".to_string()]
            ),
            (
                "stagingEnvKey0123456789".to_string(),
                vec!["banner".to_string(), "checkout".to_string()]
            ),
        ]
    );
    let wet = import_with(&t.store, &changed, from("https://flagsmith.acme.test"))
        .await
        .unwrap();
    assert_eq!(wet.changed_environments, dry.changed_environments);
    assert_eq!(revision(&t.store, &prod.api_key).await, rev + 1);
}

#[tokio::test]
async fn the_user_names_the_target_project() {
    let t = test_store().await;
    let prod = import(&t.store, &doc(MIGRATION)).await.unwrap();
    let stg: EnvironmentDocument = serde_json::from_value(staging()).unwrap();
    let named = ImportOptions {
        project: Some(prod.project),
        ..ImportOptions::default()
    };
    let report = import_with(&t.store, &stg, named.clone()).await.unwrap();
    assert_eq!(report.target, transfer::TargetChoice::NamedProject);
    assert_eq!(report.project, prod.project);
    assert!(
        report.changed_environments.is_empty(),
        "{:?}",
        report.changed_environments
    );

    // An environment's key belongs to its project: naming another one is refused.
    let elsewhere = ImportOptions {
        project: Some(prod.project + 1000),
        ..ImportOptions::default()
    };
    match import_with(&t.store, &doc(MIGRATION), elsewhere).await {
        Err(StoreError::Conflict { field, .. }) => assert_eq!(field, "api_key"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let missing = ImportOptions {
        project: Some(999_999),
        ..ImportOptions::default()
    };
    let mut other = staging();
    other["api_key"] = json!("yetAnotherKey0123456789");
    let other: EnvironmentDocument = serde_json::from_value(other).unwrap();
    assert!(matches!(
        import_with(&t.store, &other, missing).await,
        Err(StoreError::NotFound { .. })
    ));
    let bad_source = ImportOptions {
        source: Some(" ".into()),
        ..ImportOptions::default()
    };
    assert!(matches!(
        import_with(&t.store, &other, bad_source).await,
        Err(StoreError::Invalid { .. })
    ));
}
