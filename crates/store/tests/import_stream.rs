//! `transfer::import_file`: a document's identity overrides streamed from its file, in
//! batches, on SQLite and — with FLAGSTONE_TEST_DATABASE_URL — PostgreSQL. What it must keep
//! from the in-memory import: everything lands (as the export shows), a bad override near the
//! end names itself and leaves the store as it was (all-or-nothing, also when replacing an
//! environment), and the project's limits still apply.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use flagstone_store::projects::{self, LimitLowering, ProjectPatch};
use flagstone_store::testing::test_store;
use flagstone_store::transfer::{self, ImportOptions, ImportReport};
use flagstone_store::{sql, Actor, LimitName, Store, StoreError};
use serde_json::{json, Value};

/// More than a few of the importer's batches (1,000 overrides each).
const MANY: usize = 4_321;
const API_KEY: &str = "streamEnvKey1";

/// A document file removed when dropped.
struct DocFile(PathBuf);

impl Drop for DocFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn feature(f: usize) -> Value {
    json!({"id": 10 + f, "name": format!("feature_{f}"), "type": "STANDARD"})
}

/// Identity override `i` of the generated documents: one or two features, various values.
fn identity_override(i: usize) -> Value {
    let mut features = vec![json!({
        "feature": feature(i % 3), "enabled": i.is_multiple_of(2), "django_id": null,
        "featurestate_uuid": format!("00000000-0000-4000-8000-{i:012x}"),
        "feature_state_value": format!("v{i}"), "multivariate_feature_state_values": []})];
    if i.is_multiple_of(5) {
        features.push(json!({"feature": feature(3), "enabled": true,
                             "feature_state_value": i, "multivariate_feature_state_values": []}));
    }
    json!({"identifier": format!("user-{i}"), "identity_features": features})
}

/// Writes a document with `n` identity overrides, override `i` replaced by `bad(i)` when it
/// returns a text (raw JSON, so it can be anything, even ill-typed).
fn write_doc(n: usize, bad: impl Fn(usize) -> Option<String>) -> DocFile {
    let states: Vec<Value> = (0..4)
        .map(|f| {
            json!({"feature": feature(f), "enabled": true, "django_id": 500 + f,
                        "feature_state_value": "default", "multivariate_feature_state_values": []})
        })
        .collect();
    let header = json!({
        "id": 7, "api_key": API_KEY, "name": "Streamed",
        "project": {"id": 3, "name": "Streams", "segments": [],
                    "organisation": {"id": 2, "name": "Org"}},
        "feature_states": states,
    });
    let path = std::env::temp_dir().join(format!(
        "flagstone-import-stream-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    let file = DocFile(path);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file.0).unwrap());
    let mut text = header.to_string();
    text.pop();
    write!(out, "{text},\"identity_overrides\":[").unwrap();
    for i in 0..n {
        if i > 0 {
            out.write_all(b",").unwrap();
        }
        match bad(i) {
            Some(raw) => out.write_all(raw.as_bytes()).unwrap(),
            None => serde_json::to_writer(&mut out, &identity_override(i)).unwrap(),
        }
    }
    out.write_all(b"]}").unwrap();
    out.flush().unwrap();
    file
}

async fn import_file(store: &Store, path: &Path) -> Result<ImportReport, StoreError> {
    transfer::import_file(
        store,
        &Actor::system("stream-test"),
        path,
        &ImportOptions::default(),
    )
    .await
}

/// Row counts of every table an import writes.
async fn counts(store: &Store) -> Vec<(&'static str, i64)> {
    let mut tx = store.read().await.unwrap();
    let mut out = Vec::new();
    for table in [
        "organisations",
        "projects",
        "environments",
        "features",
        "feature_states",
        "identities",
        "identity_overrides",
        "audit_log",
    ] {
        let q = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = sql!(&mut tx, |c| sqlx::query_scalar(&q)
            .fetch_one(c)
            .await
            .unwrap());
        out.push((table, n));
    }
    out
}

/// The environment's identity overrides as the export shows them: identifier → (feature
/// name, enabled, value) sorted by feature.
async fn exported_overrides(store: &Store) -> BTreeMap<String, Vec<(String, bool, Value)>> {
    let (bytes, _) = transfer::export_to_vec(store, API_KEY).await.unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    overrides_of(&doc["identity_overrides"])
}

fn overrides_of(list: &Value) -> BTreeMap<String, Vec<(String, bool, Value)>> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|io| {
            let mut fs: Vec<(String, bool, Value)> = io["identity_features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["feature"]["name"].as_str().unwrap().to_string(),
                        f["enabled"].as_bool().unwrap(),
                        f["feature_state_value"].clone(),
                    )
                })
                .collect();
            fs.sort_by(|a, b| a.0.cmp(&b.0));
            (io["identifier"].as_str().unwrap().to_string(), fs)
        })
        .collect()
}

fn expected_overrides(n: usize) -> BTreeMap<String, Vec<(String, bool, Value)>> {
    let list: Vec<Value> = (0..n).map(identity_override).collect();
    overrides_of(&Value::Array(list))
}

fn invalid_field(e: StoreError) -> (String, String) {
    match e {
        StoreError::Invalid { field, detail } => (field, detail),
        other => panic!("expected an invalid-input refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_with_many_overrides_is_imported_in_batches_and_exports_back() {
    let t = test_store().await;
    let file = write_doc(MANY, |_| None);
    let report = import_file(&t.store, &file.0).await.unwrap();
    assert_eq!(report.identity_overrides, MANY);
    assert_eq!(report.features, 4);
    let c: BTreeMap<_, _> = counts(&t.store).await.into_iter().collect();
    assert_eq!(c["identities"], MANY as i64);
    assert_eq!(c["identity_overrides"], (MANY + MANY.div_ceil(5)) as i64);
    assert_eq!(exported_overrides(&t.store).await, expected_overrides(MANY));

    // The same file through the in-memory import gives the same environment.
    let t2 = test_store().await;
    let text = std::fs::read(&file.0).unwrap();
    let doc = transfer::parse_document(&text).unwrap();
    let again = transfer::import(
        &t2.store,
        &Actor::system("t"),
        &doc,
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.identity_overrides, MANY);
    assert_eq!(
        exported_overrides(&t2.store).await,
        exported_overrides(&t.store).await
    );
}

#[tokio::test]
async fn a_bad_override_near_the_end_is_named_and_nothing_is_written() {
    let t = test_store().await;
    let before = counts(&t.store).await;
    let last = MANY - 3;

    // Refused by the import's checks: a value of an unsupported type.
    let file = write_doc(MANY, |i| {
        (i == last).then(|| {
            json!({"identifier": format!("user-{i}"), "identity_features": [{
                "feature": feature(1), "enabled": true, "feature_state_value": {"an": "object"}}]})
            .to_string()
        })
    });
    let (field, _) = invalid_field(import_file(&t.store, &file.0).await.unwrap_err());
    assert_eq!(
        field,
        format!("identity_overrides[{last}].identity_features[0].feature_state_value")
    );
    assert_eq!(counts(&t.store).await, before);

    // Refused by the parser: `enabled` is not a boolean.
    let file = write_doc(MANY, |i| {
        (i == last).then(|| {
            format!(
                r#"{{"identifier":"user-{i}","identity_features":[{{"feature":{},"enabled":"yes"}}]}}"#,
                feature(0)
            )
        })
    });
    let (field, detail) = invalid_field(import_file(&t.store, &file.0).await.unwrap_err());
    assert_eq!(field, "document");
    assert!(
        detail.starts_with(&format!("identity_overrides[{last}]: invalid type")),
        "{detail}"
    );
    assert_eq!(counts(&t.store).await, before);

    // A duplicate identifier, batches apart from the first.
    let file = write_doc(MANY, |i| {
        (i == last).then(|| identity_override(7).to_string())
    });
    let (field, detail) = invalid_field(import_file(&t.store, &file.0).await.unwrap_err());
    assert_eq!(field, format!("identity_overrides[{last}].identifier"));
    assert!(detail.contains("\"user-7\" appears twice"), "{detail}");
    assert_eq!(counts(&t.store).await, before);

    // A feature no other state names, and a bad identifier: the paths say where.
    let file = write_doc(MANY, |i| {
        (i == last)
            .then(|| json!({"identifier": "bad\u{202e}id", "identity_features": []}).to_string())
    });
    let (field, _) = invalid_field(import_file(&t.store, &file.0).await.unwrap_err());
    assert_eq!(field, format!("identity_overrides[{last}].identifier"));
    assert_eq!(counts(&t.store).await, before);
}

#[tokio::test]
async fn a_refused_replacement_leaves_the_environment_as_it_was() {
    let t = test_store().await;
    let first = write_doc(MANY, |_| None);
    import_file(&t.store, &first.0).await.unwrap();
    let before = counts(&t.store).await;
    let overrides = exported_overrides(&t.store).await;

    // Same environment, fewer and different overrides, the last one broken: the replacement
    // deletes and rewrites overrides in batches before it reaches it, and all of that is undone.
    let second = write_doc(MANY - 1000, |i| {
        (i == MANY - 1001).then(|| "{\"identifier\": \"\"}".to_string())
    });
    let (field, _) = invalid_field(import_file(&t.store, &second.0).await.unwrap_err());
    assert_eq!(
        field,
        format!("identity_overrides[{}].identifier", MANY - 1001)
    );
    assert_eq!(counts(&t.store).await, before);
    assert_eq!(exported_overrides(&t.store).await, overrides);

    // A dry run of a good file reports and writes nothing either.
    let third = write_doc(10, |_| None);
    let report = transfer::import_file(
        &t.store,
        &Actor::system("t"),
        &third.0,
        &ImportOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.identity_overrides, 10);
    assert_eq!(counts(&t.store).await, before);
}

#[tokio::test]
async fn the_project_limit_on_identity_overrides_applies_to_streamed_files() {
    let t = test_store().await;
    let small = write_doc(10, |_| None);
    let report = import_file(&t.store, &small.0).await.unwrap();
    let mut ch = t.store.change(&Actor::system("t")).await.unwrap();
    projects::update(
        &mut ch,
        report.project,
        &ProjectPatch {
            limits: Some(json!({"max_identity_overrides": 2_000})),
            ..Default::default()
        },
        LimitLowering::Force,
    )
    .await
    .unwrap();
    ch.commit().await.unwrap();
    let before = counts(&t.store).await;

    let big = write_doc(MANY, |_| None);
    match import_file(&t.store, &big.0).await.unwrap_err() {
        StoreError::LimitExceeded { limit, max, .. } => {
            assert_eq!(limit, LimitName::MaxIdentityOverrides);
            assert_eq!(max, 2_000);
        }
        other => panic!("expected the limit, got {other:?}"),
    }
    assert_eq!(counts(&t.store).await, before);
}

#[tokio::test]
async fn a_file_that_is_not_a_document_is_refused() {
    let t = test_store().await;
    let before = counts(&t.store).await;
    for text in ["[1, 2]", "{\"api_key\": ", "{} trailing", ""] {
        let path = std::env::temp_dir().join(format!(
            "flagstone-import-stream-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        let file = DocFile(path);
        std::fs::write(&file.0, text).unwrap();
        let (field, _) = invalid_field(import_file(&t.store, &file.0).await.unwrap_err());
        assert_eq!(field, "document", "{text:?}");
    }
    let missing = std::env::temp_dir().join("flagstone-import-stream-no-such-file.json");
    let (field, detail) = invalid_field(import_file(&t.store, &missing).await.unwrap_err());
    assert_eq!(field, "document");
    assert!(detail.contains("cannot read"), "{detail}");
    assert_eq!(counts(&t.store).await, before);
}
