//! `POST /api/v1/environment-document/import/` and `GET /api/v1/environments/{key}/document/`:
//! moving an environment from Flagsmith and back out, over HTTP, on both backends.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use flagstone_engine::{CompiledEnvironment, EnvironmentDocument, IdentityContext};
use serde_json::{json, Value};

const MIGRATION: &str = include_str!("../../store/tests/data/flagsmith-migration.json");
const KEY: &str = "mIgRaTeMeKey0123456789";

fn migration() -> Value {
    serde_json::from_str(MIGRATION).unwrap()
}

#[tokio::test]
async fn import_creates_then_replaces_and_export_evaluates_alike() {
    let app = TestApp::new().await;
    let audits = app.audit_count().await;
    let (s, report) = app
        .post("/api/v1/environment-document/import/", migration())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{report}");
    assert_eq!(report["organisation"], 55);
    assert_eq!(report["project"], 117);
    assert_eq!(report["environment"], 4242);
    assert_eq!(report["api_key"], KEY);
    assert_eq!(report["created"], true);
    assert_eq!(report["features"], 6);
    assert_eq!(report["segments"], 5);
    assert_eq!(report["segment_overrides"], 7);
    assert_eq!(report["identity_overrides"], 2);
    assert_eq!(report["warnings"], json!([]));
    assert_eq!(app.audit_count().await, audits + 1);
    let rev = app.revision(KEY).await;

    // The environment is an ordinary Flagstone environment now.
    let (s, env) = app.get(&format!("/api/v1/environments/{KEY}/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(env["name"], "Production");
    let (s, features) = app.get("/api/v1/projects/117/features/").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(features["count"], 6);

    let (s, exported) = app
        .get(&format!("/api/v1/environments/{KEY}/document/"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let exported: EnvironmentDocument = serde_json::from_value(exported).unwrap();
    let original: EnvironmentDocument = serde_json::from_str(MIGRATION).unwrap();
    assert_eq!(exported.identity_overrides.len(), 2);
    let (a, b) = (
        CompiledEnvironment::from_document(&original),
        CompiledEnvironment::from_document(&exported),
    );
    for i in 0..100 {
        let id: IdentityContext = serde_json::from_value(json!({
            "identifier": if i == 0 { "vip-1".to_string() } else { format!("user-{i}") },
            "traits": {"email_domain": "example.com", "app_version": "1.0.0", "user_no": i}
        }))
        .unwrap();
        assert_eq!(a.evaluate(Some(&id)).flags, b.evaluate(Some(&id)).flags);
    }

    // Importing it again replaces the environment: same counts, one more revision and audit.
    let (s, again) = app
        .post("/api/v1/environment-document/import/", migration())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["environment"], 4242);
    assert_eq!(app.revision(KEY).await, rev + 1);
    assert_eq!(app.audit_count().await, audits + 2);
    let (_, features) = app.get("/api/v1/projects/117/features/").await;
    assert_eq!(features["count"], 6);
}

#[tokio::test]
async fn bad_documents_are_400_and_write_nothing() {
    let app = TestApp::new().await;
    let audits = app.audit_count().await;

    let (s, e) = app
        .req_with(
            Method::POST,
            "/api/v1/environment-document/import/",
            Some("{not json".into()),
            Some(common::ADMIN_KEY),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    let (s, e) = app
        .post(
            "/api/v1/environment-document/import/",
            json!({"name": "no key"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(e.to_string().contains("api_key"), "{e}");

    let mut d = migration();
    d["project"]["segments"][0]["rules"][0]["rules"][0]["conditions"][0]["value"] = json!("150");
    let (s, e) = app.post("/api/v1/environment-document/import/", d).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"], "invalid");
    assert_eq!(
        e["field"],
        "project.segments[0].rules[0].rules[0].conditions[0].value"
    );

    let mut d = migration();
    let long = "x".repeat(1_001);
    d["project"]["segments"][1]["rules"][0]["rules"][0]["conditions"][0]["operator"] =
        json!("EQUAL");
    d["project"]["segments"][1]["rules"][0]["rules"][0]["conditions"][0]["property_"] = json!("p");
    d["project"]["segments"][1]["rules"][0]["rules"][0]["conditions"][0]["value"] = json!(long);
    let (s, e) = app.post("/api/v1/environment-document/import/", d).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"], "limit_exceeded");
    assert_eq!(e["limit"], "max_condition_value_bytes");

    let (s, _) = app.get("/api/v1/environments/").await;
    assert_eq!(s, StatusCode::OK);
    let (_, envs) = app.get("/api/v1/environments/").await;
    assert_eq!(envs["count"], 0);
    assert_eq!(app.audit_count().await, audits);

    let (s, e) = app
        .get("/api/v1/environments/nope-nope-nope/document/")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
}

#[tokio::test]
async fn import_and_export_need_the_admin_key() {
    let app = TestApp::new().await;
    let (s, _) = app
        .req_with(
            Method::POST,
            "/api/v1/environment-document/import/",
            Some(MIGRATION.into()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .req_with(
            Method::GET,
            &format!("/api/v1/environments/{KEY}/document/"),
            None,
            Some("wrong-key"),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn documents_over_the_request_limit_are_refused() {
    let app = TestApp::new().await;
    let mut d = migration();
    // 2 MiB of padding in an ignored field.
    d["padding"] = json!("x".repeat(2 * 1024 * 1024));
    let (s, e) = app.post("/api/v1/environment-document/import/", d).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    assert_eq!(e["error"], "limit_exceeded");
}

#[tokio::test]
async fn import_options_are_query_parameters() {
    let app = TestApp::new().await;
    let (s, prod) = app
        .post(
            "/api/v1/environment-document/import/?source=acme",
            migration(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{prod}");
    assert_eq!(prod["target"], "new_project");
    assert_eq!(prod["source"], "acme");
    assert_eq!(prod["dry_run"], false);
    assert_eq!(prod["changed_environments"], json!([]));

    // A dry run into the named project: 200, a report, nothing written.
    let mut staging = migration();
    staging["api_key"] = json!("stagingKey0123456789");
    staging["feature_states"][0]["enabled"] = json!(true);
    let audits = app.audit_count().await;
    let (s, dry) = app
        .post(
            &format!(
                "/api/v1/environment-document/import/?project={}&dry_run=true",
                prod["project"]
            ),
            staging.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{dry}");
    assert_eq!(dry["target"], "named_project");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(app.audit_count().await, audits);
    let (s, _) = app.get("/api/v1/environments/stagingKey0123456789/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Same source and project id: merged without naming the project.
    let (s, stg) = app
        .post("/api/v1/environment-document/import/?source=acme", staging)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{stg}");
    assert_eq!(stg["target"], "same_source_project");
    assert_eq!(stg["project"], prod["project"]);

    let (s, e) = app
        .post(
            "/api/v1/environment-document/import/?project=abc",
            migration(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}

/// An import rewrites segments outside the segment endpoints: each one it creates, changes or
/// deletes gets a version by the importer, with the diff (docs/history.md, segment versions).
#[tokio::test]
async fn import_versions_the_segments_it_creates_changes_and_deletes() {
    let app = TestApp::new().await;
    let (s, report) = app
        .post("/api/v1/environment-document/import/", migration())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{report}");
    let project = report["project"].as_i64().unwrap();
    let (_, segments) = app
        .get(&format!("/api/v1/projects/{project}/segments/"))
        .await;
    let id_of = |name: &str| {
        segments["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (ten, gone) = (id_of("ten percent"), id_of("no overrides"));
    let versions = |id: i64| format!("/api/v1/projects/{project}/segments/{id}/versions/");
    let (_, list) = app.get(&versions(ten)).await;
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["results"][0]["kind"], "created");
    assert!(list["results"][0]["author"]
        .as_str()
        .unwrap()
        .starts_with("admin-key:"));

    // Again, with the split widened and one segment left out.
    let mut doc = migration();
    let segs = doc["project"]["segments"].as_array_mut().unwrap();
    segs.retain(|s| s["name"] != "no overrides");
    let ten_doc = segs
        .iter_mut()
        .find(|s| s["name"] == "ten percent")
        .unwrap();
    ten_doc["rules"][0]["rules"][0]["conditions"][0]["value"] = json!("20");
    let (s, again) = app.post("/api/v1/environment-document/import/", doc).await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    let (_, list) = app.get(&versions(ten)).await;
    assert_eq!(list["count"], 2, "{list}");
    assert_eq!(list["results"][0]["kind"], "change");
    let newest = list["results"][0]["id"].as_i64().unwrap();
    let (_, detail) = app.get(&format!("{}{newest}/", versions(ten))).await;
    let changed = &detail["diff"]["conditions_changed"][0];
    assert_eq!(changed["rule"], "0.0", "{detail}");
    assert_eq!(changed["before"]["value"], "10");
    assert_eq!(changed["after"]["value"], "20");
    let (_, list) = app.get(&versions(gone)).await;
    assert_eq!(list["count"], 2, "{list}");
    assert_eq!(list["results"][0]["kind"], "deleted");
    // Segments the import left as they were get no version.
    let (_, list) = app.get(&versions(id_of("half"))).await;
    assert_eq!(list["count"], 1, "{list}");
}
