//! Identities through the admin API; traits, identity overrides and the SDK edge's store
//! functions are in the submodules under `tests/identities/`.

mod common;
#[path = "identities/overrides.rs"]
mod overrides;
#[path = "identities/sdk.rs"]
mod sdk;
#[path = "identities/traits.rs"]
mod traits;

use axum::http::StatusCode;
use common::TestApp;
use serde_json::{json, Value};

async fn create_identity(app: &TestApp, key: &str, identifier: &str) -> i64 {
    let (s, i) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({ "identifier": identifier }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{i}");
    i["id"].as_i64().unwrap()
}

async fn create_feature(app: &TestApp, project: i64, name: &str) -> i64 {
    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({ "name": name }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    f["id"].as_i64().unwrap()
}

async fn environment_id(app: &TestApp, key: &str) -> i64 {
    let (_, e) = app.get(&format!("/api/v1/environments/{key}/")).await;
    e["id"].as_i64().unwrap()
}

async fn set_limits(app: &TestApp, project: i64, limits: Value) {
    let (s, p) = app
        .patch(
            &format!("/api/v1/projects/{project}/"),
            json!({ "limits": limits }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
}

/// Revision and audit count, to check a change did (or did not) touch them.
async fn marks(app: &TestApp, key: &str) -> (i64, i64) {
    (app.revision(key).await, app.audit_count().await)
}

#[tokio::test]
async fn identity_crud_pagination_and_prefix_search() {
    let app = TestApp::new().await;
    let (_, key) = app.project_with_env().await;
    let base = format!("/api/v1/environments/{key}/identities");
    let (rev, audit) = marks(&app, &key).await;

    let mut ids = Vec::new();
    for name in ["user-1", "user-2", "user-3", "admin-1", "admin-2"] {
        ids.push(create_identity(&app, &key, name).await);
    }
    // Identities are not published: audited, no revision bump.
    assert_eq!(marks(&app, &key).await, (rev, audit + 5));

    let (s, list) = app.get(&format!("{base}/?page_size=2")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["count"], 5);
    assert_eq!(list["results"].as_array().unwrap().len(), 2);
    assert_eq!(list["results"][0]["identifier"], "user-1");
    assert!(list["next"].as_str().unwrap().contains("page=2"));
    let (_, last) = app.get(&format!("{base}/?page_size=2&page=3")).await;
    assert_eq!(last["results"][0]["identifier"], "admin-2");
    assert!(last["next"].is_null());

    let (_, users) = app.get(&format!("{base}/?q=user")).await;
    assert_eq!(users["count"], 3);
    let (_, none) = app.get(&format!("{base}/?q=User")).await;
    assert_eq!(none["count"], 0, "prefix search is case-sensitive");
    let (_, one) = app.get(&format!("{base}/?q=admin-2")).await;
    assert_eq!(one["count"], 1);

    let (s, i) = app.get(&format!("{base}/{}/", ids[0])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(i["identifier"], "user-1");
    assert_eq!(i["environment"], environment_id(&app, &key).await);

    let (rev, audit) = marks(&app, &key).await;
    let (s, _) = app.delete(&format!("{base}/{}/", ids[0])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(marks(&app, &key).await, (rev, audit + 1));
    let (s, body) = app.get(&format!("{base}/{}/", ids[0])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (s, _) = app.delete(&format!("{base}/{}/", ids[0])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_identities_are_refused_and_write_nothing() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let base = format!("/api/v1/environments/{key}/identities/");
    create_identity(&app, &key, "alice").await;
    let before = marks(&app, &key).await;

    let (s, body) = app.post(&base, json!({"identifier": "alice"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "conflict");
    assert_eq!(body["field"], "identifier");

    for bad in [json!(""), json!("x".repeat(2001))] {
        let (s, body) = app.post(&base, json!({ "identifier": bad })).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid");
        assert_eq!(body["field"], "identifier");
    }
    for bad in [
        json!({"identifier": 5}),
        json!({"identifier": "b", "x": 1}),
        json!({}),
    ] {
        let (s, body) = app.post(&base, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_json");
    }
    let (s, body) = app.get(&format!("{base}not-a-number/")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _) = app
        .post(
            "/api/v1/environments/no-such-env-key/identities/",
            json!({"identifier": "a"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(marks(&app, &key).await, before);

    // 2000 characters is fine; the same identifier in another environment too.
    create_identity(&app, &key, &"é".repeat(2000)).await;
    let (_, other) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "staging", "project": project}),
        )
        .await;
    create_identity(&app, other["api_key"].as_str().unwrap(), "alice").await;
}

#[tokio::test]
async fn an_identity_of_another_environment_is_not_found() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let (_, other) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "staging", "project": project}),
        )
        .await;
    let other = other["api_key"].as_str().unwrap();
    let id = create_identity(&app, &key, "alice").await;
    let feature = create_feature(&app, project, "banner").await;
    let (s, o) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/{id}/featurestates/"),
            json!({"feature": feature, "enabled": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let before = marks(&app, other).await;

    let there = format!("/api/v1/environments/{other}/identities/{id}");
    for path in [
        format!("{there}/"),
        format!("{there}/traits/"),
        format!("{there}/featurestates/"),
        format!("{there}/featurestates/{}/", o["id"]),
    ] {
        let (s, _) = app.get(&path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _) = app
        .post(
            &format!("{there}/traits/"),
            json!({"trait_key": "a", "trait_value": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .post(
            &format!("{there}/featurestates/"),
            json!({"feature": feature}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete(&format!("{there}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(marks(&app, other).await, before);
}

#[tokio::test]
async fn openapi_documents_the_identity_routes() {
    let app = TestApp::new().await;
    let (s, doc) = app
        .req_with(axum::http::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let base = "/api/v1/environments/{api_key}/identities";
    for (path, methods) in [
        (base.to_string(), &["get", "post"][..]),
        (format!("{base}/{{id}}"), &["get", "delete"][..]),
        (format!("{base}/{{id}}/traits"), &["get", "post", "put"][..]),
        (
            format!("{base}/{{id}}/traits/{{trait_key}}"),
            &["get", "patch", "delete"][..],
        ),
        (format!("{base}/{{id}}/featurestates"), &["get", "post"][..]),
        (
            format!("{base}/{{id}}/featurestates/{{override_id}}"),
            &["get", "patch", "delete"][..],
        ),
    ] {
        for m in methods {
            assert!(doc["paths"][&path][m].is_object(), "{m} {path}");
        }
    }
}
