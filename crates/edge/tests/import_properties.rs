//! Issue 15 §1, as properties: for a random Flagsmith environment document imported into a
//! Flagstone that already holds random other content (other documents with colliding ids, the
//! same document under another key, objects made through the admin API), every identity gets
//! the same flags from
//! * Flagstone's `POST /api/v1/identities/`,
//! * local evaluation of Flagstone's `GET /api/v1/environment-document/`, and
//! * the reference: the engine (which matches Flagsmith's on the conformance suite) on the
//!   original document;
//!
//! the import changes nothing another environment serves; export → import → export is stable
//! in everything evaluation reads; and objects created afterwards get hashing ids of their
//! own. Runs on SQLite, and on PostgreSQL with `FLAGSTONE_TEST_DATABASE_URL`.

mod common;

use std::collections::{BTreeMap, HashSet};

use axum::http::{Method, StatusCode};
use common::EdgeApp;
use flagstone_engine::{CompiledEnvironment, EnvironmentDocument, IdentityContext};
use flagstone_store::transfer::{self, ImportOptions, ImportReport, TargetChoice};
use flagstone_store::{Actor, Store};
use indexmap::IndexMap;
use proptest::prelude::*;
use serde_json::{json, Value};

// ---- random documents -------------------------------------------------------------------

fn flag_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        "[a-z]{0,5}".prop_map(Value::from),
        (-20i64..20).prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ]
}

fn uuid_text() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string())
}

/// A `django_id`: mostly an id (from a small range, so documents collide), sometimes none or 0
/// (Flagsmith then hashes the uuid).
fn django_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (1i64..60).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(json!(0)),
    ]
}

#[derive(Debug, Clone)]
struct FeatureSpec {
    id: i64,
    /// (option id, value, key) — values distinct within the feature.
    options: Vec<(i64, String, Option<String>)>,
}

fn features() -> impl Strategy<Value = Vec<FeatureSpec>> {
    (
        prop::collection::hash_set(1i64..40, 1..5),
        prop::collection::vec((0usize..4, prop::collection::hash_set(1i64..50, 3)), 5),
    )
        .prop_map(|(ids, shapes)| {
            ids.into_iter()
                .zip(shapes)
                .map(|(id, (n, option_ids))| FeatureSpec {
                    id,
                    options: option_ids
                        .into_iter()
                        .take(n.saturating_sub(1))
                        .enumerate()
                        .map(|(k, oid)| {
                            let key = (k % 2 == 0).then(|| format!("k{k}"));
                            (oid, format!("v{k}"), key)
                        })
                        .collect(),
                })
                .collect()
        })
}

/// A feature state of `f` (environment default or segment override).
fn state(f: &FeatureSpec, name: &str) -> impl Strategy<Value = Value> {
    let n = f.options.len();
    let feature = json!({"id": f.id, "name": name,
        "type": if n > 0 { "MULTIVARIATE" } else { "STANDARD" }});
    let options = f.options.clone();
    (
        any::<bool>(),
        flag_value(),
        django_id(),
        uuid_text(),
        prop::collection::vec(
            (
                prop::sample::select(vec![0.0, 10.0, 25.0, 30.0, 50.0]),
                prop_oneof![4 => (1i64..90).prop_map(Some), 1 => Just(None)],
                uuid_text(),
            ),
            n,
        ),
    )
        .prop_map(move |(enabled, value, django, uuid, mv)| {
            let mut total = 0.0;
            let values: Vec<Value> = options
                .iter()
                .zip(mv)
                .enumerate()
                .filter_map(|(i, ((oid, v, key), (pct, vid, vuuid)))| {
                    if total + pct > 100.0 {
                        return None;
                    }
                    total += pct;
                    // Distinct within the state, as Flagsmith's primary keys are (an import
                    // refuses equal ids: they would leave the variants' order to chance).
                    let vid = vid.map(|v| v * 100 + i as i64);
                    Some(json!({"id": vid, "mv_fs_value_uuid": vuuid,
                        "percentage_allocation": pct,
                        "multivariate_feature_option": {"id": oid, "value": v, "key": key}}))
                })
                .collect();
            json!({"feature": feature, "enabled": enabled, "django_id": django,
                   "featurestate_uuid": uuid, "feature_state_value": value,
                   "multivariate_feature_state_values": values})
        })
}

fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u32..=100).prop_map(
            |p| json!({"operator": "PERCENTAGE_SPLIT", "property_": null,
                                  "value": p.to_string()})
        ),
        prop::sample::select(vec!["a", "b"])
            .prop_map(|v| json!({"operator": "EQUAL", "property_": "plan", "value": v})),
        (0i64..10).prop_map(|v| json!({"operator": "GREATER_THAN", "property_": "n",
                                        "value": v.to_string()})),
        Just(json!({"operator": "IS_SET", "property_": "plan", "value": null})),
    ]
}

fn rules() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(condition(), 1..3),
        prop::sample::select(vec!["ALL", "ANY"]),
        prop::option::of(prop::collection::vec(condition(), 1..3)),
    )
        .prop_map(|(conditions, inner, nested)| {
            let nested: Vec<Value> = nested
                .map(|c| vec![json!({"type": inner, "rules": [], "conditions": c})])
                .unwrap_or_default();
            json!([{"type": "ALL", "rules": nested, "conditions": conditions}])
        })
}

fn names(fs: &[FeatureSpec]) -> Vec<String> {
    fs.iter().map(|f| format!("feature_{}", f.id)).collect()
}

prop_compose! {
    fn document()(fs in features())(
        env_states in fs.iter().zip(names(&fs)).map(|(f, n)| state(f, &n)).collect::<Vec<_>>(),
        segments in prop::collection::vec(
            (
                1i64..40,
                rules(),
                fs.iter()
                    .zip(names(&fs))
                    .map(|(f, n)| prop::option::weighted(0.5, (state(f, &n), 0i64..4)))
                    .collect::<Vec<_>>(),
            ),
            0..4,
        ),
        overrides_in_local_eval in any::<bool>(),
        identity_overrides in prop::collection::vec(
            prop::collection::vec((0usize..8, any::<bool>(), flag_value()), 1..3), 0..3),
        hide_disabled in any::<bool>(),
        key in "[A-Za-z0-9]{20}",
        project in 1i64..4,
        env_id in 1i64..6,
        fs in Just(fs),
    ) -> Value {
        let names = names(&fs);
        let mut seen = HashSet::new();
        let segments: Vec<Value> = segments.into_iter()
            .filter(|(id, ..)| seen.insert(*id))
            .map(|(id, rules, overrides)| {
                let states: Vec<Value> = overrides.into_iter().flatten().map(|(mut s, priority)| {
                    s["feature_segment"] = json!({"priority": priority});
                    s
                }).collect();
                json!({"id": id, "name": format!("segment_{id}"), "rules": rules,
                       "feature_states": states})
            })
            .collect();
        let identity_overrides: Vec<Value> = if overrides_in_local_eval {
            identity_overrides.into_iter().enumerate().map(|(k, os)| {
                let mut done = HashSet::new();
                let features: Vec<Value> = os.into_iter()
                    .filter(|(f, ..)| done.insert(f % fs.len()))
                    .map(|(f, enabled, value)| {
                        let f = f % fs.len();
                        json!({"feature": {"id": fs[f].id, "name": names[f], "type": "STANDARD"},
                               "enabled": enabled, "feature_state_value": value,
                               "featurestate_uuid": uuid::Uuid::new_v4().to_string(),
                               "multivariate_feature_state_values": []})
                    }).collect();
                json!({"identifier": format!("id_{k}"), "identity_features": features})
            }).collect()
        } else {
            vec![]
        };
        json!({
            "api_key": key, "id": env_id, "name": "Production",
            "project": {"id": project, "name": "Web", "hide_disabled_flags": false,
                "enable_realtime_updates": false, "server_key_only_feature_ids": [],
                "organisation": {"id": 1, "name": "Acme", "feature_analytics": false,
                    "stop_serving_flags": false, "persist_trait_data": true},
                "segments": segments},
            "feature_states": env_states,
            "identity_overrides": identity_overrides,
            "allow_client_traits": true,
            "hide_sensitive_data": false,
            "hide_disabled_flags": hide_disabled,
            "use_identity_composite_key_for_hashing": true,
            "use_identity_overrides_in_local_eval": overrides_in_local_eval,
            "updated_at": "2024-05-01T10:00:00.000000Z",
        })
    }
}

/// What else the installation holds before the import.
#[derive(Debug, Clone)]
struct Existing {
    /// Other documents, imported first (ids overlap the target's).
    others: Vec<Value>,
    /// Import the target document itself first, under another api_key.
    same_document_elsewhere: bool,
    /// Projects made through the admin API (each a split segment and an override).
    admin_projects: usize,
}

fn existing() -> impl Strategy<Value = Existing> {
    (
        prop::collection::vec(document(), 0..3),
        any::<bool>(),
        0usize..2,
    )
        .prop_map(
            |(others, same_document_elsewhere, admin_projects)| Existing {
                others,
                same_document_elsewhere,
                admin_projects,
            },
        )
}

fn identities() -> impl Strategy<Value = Vec<(String, IndexMap<String, Value>)>> {
    prop::collection::vec(
        (
            prop_oneof![
                1 => (0usize..3).prop_map(|k| format!("id_{k}")),
                4 => "[a-z0-9]{1,12}",
            ],
            prop::option::of(prop::sample::select(vec!["a", "b"])),
            0i64..12,
        ),
        12,
    )
    .prop_map(|ids| {
        ids.into_iter()
            .map(|(identifier, plan, n)| {
                let mut traits = IndexMap::new();
                if let Some(p) = plan {
                    traits.insert("plan".to_string(), json!(p));
                }
                traits.insert("n".to_string(), json!(n));
                (identifier, traits)
            })
            .collect()
    })
}

// ---- the checks -------------------------------------------------------------------------

fn parse(v: &Value) -> EnvironmentDocument {
    serde_json::from_value(v.clone()).expect("generated document parses")
}

async fn import(store: &Store, doc: &EnvironmentDocument) -> ImportReport {
    transfer::import(
        store,
        &Actor::system("property test"),
        doc,
        &ImportOptions::default(),
    )
    .await
    .expect("import")
}

async fn export(store: &Store, api_key: &str) -> Value {
    let (bytes, _) = transfer::export_to_vec(store, api_key).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Flags by feature name: (enabled, value).
type Flags = BTreeMap<String, (bool, Value)>;

fn reference(doc: &EnvironmentDocument, id: &(String, IndexMap<String, Value>)) -> Flags {
    let ctx = IdentityContext::new(id.0.clone(), id.1.clone());
    CompiledEnvironment::from_document(doc)
        .evaluate(Some(&ctx))
        .flags
        .into_values()
        .map(|f| (f.name, (f.enabled, f.value)))
        .collect()
}

/// A document reduced to what evaluation reads: features by name (their ids, and the
/// ids of the environment, project, organisation and options, are row ids no hash reads),
/// without `updated_at`.
fn evaluation_bytes(doc: &Value) -> String {
    let mut d = doc.clone();
    let strip_state = |s: &mut Value| {
        s["feature"]["id"] = Value::Null;
        for mv in s["multivariate_feature_state_values"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            mv["multivariate_feature_option"]["id"] = Value::Null;
        }
    };
    for s in d["feature_states"].as_array_mut().unwrap() {
        strip_state(s);
    }
    for seg in d["project"]["segments"].as_array_mut().unwrap() {
        for s in seg["feature_states"].as_array_mut().unwrap() {
            strip_state(s);
        }
    }
    // Identity overrides are never bucketed: their row ids and dates are not evaluation's.
    for io in d["identity_overrides"].as_array_mut().unwrap() {
        for k in ["identity_uuid", "django_id", "created_date"] {
            io.as_object_mut().unwrap().remove(k);
        }
        for s in io["identity_features"].as_array_mut().unwrap() {
            strip_state(s);
            s["django_id"] = Value::Null;
        }
    }
    for k in ["id", "updated_at"] {
        d.as_object_mut().unwrap().remove(k);
    }
    d["project"]["id"] = Value::Null;
    d["project"]["organisation"]["id"] = Value::Null;
    d.to_string()
}

async fn server_key(app: &EdgeApp, key: &str) -> String {
    let sk = app
        .post(
            &format!("/api/v1/environments/{key}/api-keys/"),
            json!({"name": "srv"}),
        )
        .await;
    sk["key"].as_str().unwrap().to_string()
}

/// A project made through the admin API: a feature, a segment split by percentage, and an
/// override of the feature for it.
async fn admin_project(app: &EdgeApp, k: usize) {
    let org = app
        .post("/api/v1/organisations/", json!({"name": "Acme"}))
        .await;
    let p = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Web", "organisation": org["id"]}),
        )
        .await;
    let project = p["id"].as_i64().unwrap();
    let e = app
        .post(
            "/api/v1/environments/",
            json!({"name": format!("admin-{k}"), "project": project}),
        )
        .await;
    let key = e["api_key"].as_str().unwrap();
    let f = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "feature_1", "initial_value": "x", "default_enabled": true}),
        )
        .await;
    let s = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "segment_1", "rules": [{"type": "ALL", "rules": [], "conditions": [
                {"operator": "PERCENTAGE_SPLIT", "property": "", "value": "50"}]}]}),
        )
        .await;
    app.post(
        &format!(
            "/api/v1/environments/{key}/features/{}/create-segment-override/",
            f["id"]
        ),
        json!({"segment": s["id"], "enabled": false, "feature_state_value": "y"}),
    )
    .await;
}

/// Every environment's export, for checking the import leaves them alone.
async fn exports(store: &Store) -> BTreeMap<String, String> {
    let keys: Vec<String> = {
        let mut tx = store.read().await.unwrap();
        flagstone_store::environments::list(
            &mut tx,
            None,
            flagstone_store::PageRequest::new(1, 1000),
        )
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|e| e.api_key)
        .collect()
    };
    let mut out = BTreeMap::new();
    for k in keys {
        out.insert(k.clone(), evaluation_bytes(&export(store, &k).await));
    }
    out
}

async fn run_case(
    target: Value,
    existing: Existing,
    ids: Vec<(String, IndexMap<String, Value>)>,
) -> Result<(), TestCaseError> {
    let original = parse(&target);
    let app = EdgeApp::new().await;
    let store = app.t.store.clone();

    // What the installation holds before.
    for (k, other) in existing.others.iter().enumerate() {
        let mut other = other.clone();
        other["api_key"] = json!(format!("otherDocumentKey{k:04}"));
        import(&store, &parse(&other)).await;
    }
    if existing.same_document_elsewhere {
        let mut copy = target.clone();
        copy["api_key"] = json!("sameDocumentOtherKey01");
        import(&store, &parse(&copy)).await;
    }
    for k in 0..existing.admin_projects {
        admin_project(&app, k).await;
    }
    let before = exports(&store).await;

    // The import: a project of its own, nothing else changes.
    let report = import(&store, &original).await;
    prop_assert_eq!(report.target, TargetChoice::NewProject);
    prop_assert!(report.changed_environments.is_empty());
    let mut after = exports(&store).await;
    after.remove(&original.api_key);
    prop_assert_eq!(&before, &after, "another environment's document changed");

    app.publish().await;
    let sk = server_key(&app, &original.api_key).await;
    let r = app
        .sdk(
            Method::GET,
            "/api/v1/environment-document/",
            Some(&sk),
            None,
            &[],
        )
        .await;
    prop_assert_eq!(r.status, StatusCode::OK);
    let served: EnvironmentDocument = serde_json::from_slice(&r.body).unwrap();
    let hide_disabled = original.hide_disabled_flags.unwrap_or(false);
    for id in &ids {
        let want = reference(&original, id);
        let local = reference(&served, id);
        prop_assert_eq!(&local, &want, "local evaluation of {:?}", id);

        let traits: Vec<Value> =
            id.1.iter()
                .map(|(k, v)| json!({"trait_key": k, "trait_value": v}))
                .collect();
        let r = app
            .sdk(
                Method::POST,
                "/api/v1/identities/",
                Some(&sk),
                Some(json!({"identifier": id.0, "traits": traits, "transient": true})),
                &[],
            )
            .await;
        prop_assert_eq!(r.status, StatusCode::OK);
        let got: Flags = r.json()["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["feature"]["name"].as_str().unwrap().to_string(),
                    (
                        f["enabled"].as_bool().unwrap(),
                        f["feature_state_value"].clone(),
                    ),
                )
            })
            .collect();
        let want: Flags = want
            .into_iter()
            .filter(|(_, (enabled, _))| *enabled || !hide_disabled)
            .collect();
        prop_assert_eq!(&got, &want, "/identities/ for {:?}", id);
    }

    // Export → import (into an installation holding the other documents) → export.
    let first = export(&store, &original.api_key).await;
    let t2 = flagstone_store::testing::test_store().await;
    for other in existing.others.iter().rev() {
        import(&t2.store, &parse(other)).await;
    }
    import(&t2.store, &parse(&first)).await;
    let second = export(&t2.store, &original.api_key).await;
    prop_assert_eq!(evaluation_bytes(&first), evaluation_bytes(&second));

    // Objects created now hash ids of their own.
    let project = report.project;
    let f = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "made_here"}),
        )
        .await;
    let s = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "made here", "rules": [{"type": "ALL", "rules": [], "conditions": [
                {"operator": "PERCENTAGE_SPLIT", "property": "", "value": "50"}]}]}),
        )
        .await;
    app.post(
        &format!(
            "/api/v1/environments/{}/features/{}/create-segment-override/",
            original.api_key, f["id"]
        ),
        json!({"segment": s["id"], "enabled": true, "feature_state_value": "z"}),
    )
    .await;
    let doc = export(&store, &original.api_key).await;
    let segment_ids: Vec<i64> = doc["project"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    let distinct: HashSet<_> = segment_ids.iter().collect();
    prop_assert_eq!(
        distinct.len(),
        segment_ids.len(),
        "segment ids {:?}",
        segment_ids
    );
    let mut django_ids: Vec<i64> = doc["feature_states"]
        .as_array()
        .unwrap()
        .iter()
        .chain(
            doc["project"]["segments"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["feature_states"].as_array().unwrap()),
        )
        .filter_map(|s| s["django_id"].as_i64())
        .collect();
    let made_here = doc["feature_states"]
        .as_array()
        .unwrap()
        .iter()
        .chain(
            doc["project"]["segments"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["feature_states"].as_array().unwrap()),
        )
        .filter(|s| s["feature"]["name"] == "made_here")
        .filter_map(|s| s["django_id"].as_i64())
        .collect::<Vec<_>>();
    django_ids.retain(|d| !made_here.contains(d));
    for d in &made_here {
        prop_assert!(!django_ids.contains(d), "django_id {} collides", d);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn an_import_never_changes_what_a_user_gets(
        target in document(),
        existing in existing(),
        ids in identities(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_case(target, existing, ids))?;
    }
}
