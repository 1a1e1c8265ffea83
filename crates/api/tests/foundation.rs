//! Organisations, projects, environments, server-side keys, auth and malformed input.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn requests_without_a_valid_admin_key_are_refused() {
    let app = TestApp::new().await;
    for key in [None, Some("wrong-key-wrong-key")] {
        let (s, body) = app
            .req_with(Method::GET, "/api/v1/projects/", None, key)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "unauthenticated");
    }
    let (s, _) = app.get("/api/v1/projects/").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn organisation_project_environment_crud() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;

    let (s, p) = app.get(&format!("/api/v1/projects/{project}/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["name"], "Proj");
    let (s, p) = app
        .patch(
            &format!("/api/v1/projects/{project}/"),
            json!({"name": "Renamed", "hide_disabled_flags": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["hide_disabled_flags"], true);

    let (s, e) = app
        .patch(
            &format!("/api/v1/environments/{key}/"),
            json!({"hide_disabled_flags": null, "allow_client_traits": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["allow_client_traits"], false);
    assert!(e["hide_disabled_flags"].is_null());

    let (s, list) = app
        .get(&format!("/api/v1/environments/?project={project}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["count"], 1);

    let (s, _) = app.delete(&format!("/api/v1/environments/{key}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = app.get(&format!("/api/v1/environments/{key}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");

    let (s, _) = app.delete(&format!("/api/v1/projects/{project}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&format!("/api/v1/projects/{project}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lists_are_paginated() {
    let app = TestApp::new().await;
    let (_, org) = app
        .post("/api/v1/organisations/", json!({"name": "O"}))
        .await;
    for i in 0..5 {
        let (s, _) = app
            .post(
                "/api/v1/projects/",
                json!({"name": format!("p{i}"), "organisation": org["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, page1) = app.get("/api/v1/projects/?page_size=2").await;
    assert_eq!(page1["count"], 5);
    assert_eq!(page1["results"].as_array().unwrap().len(), 2);
    assert!(page1["previous"].is_null());
    let next = page1["next"].as_str().unwrap().to_string();
    let (_, page2) = app.get(&next).await;
    assert_eq!(page2["results"][0]["name"], "p2");
    let (_, page3) = app.get("/api/v1/projects/?page=3&page_size=2").await;
    assert_eq!(page3["results"].as_array().unwrap().len(), 1);
    assert!(page3["next"].is_null());
}

#[tokio::test]
async fn server_keys_are_shown_once_and_stored_hashed() {
    let app = TestApp::new().await;
    let (_, key) = app.project_with_env().await;
    let (s, created) = app
        .post(
            &format!("/api/v1/environments/{key}/api-keys/"),
            json!({"name": "backend"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let secret = created["key"].as_str().unwrap();
    assert!(secret.starts_with("ser."));
    let (_, list) = app
        .get(&format!("/api/v1/environments/{key}/api-keys/"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("key").is_none());
    assert!(!list.to_string().contains(&secret[4..]));

    let mut tx = app.store().read().await.unwrap();
    let owner = flagstone_store::keys::find_server_key(&mut tx, secret)
        .await
        .unwrap();
    assert_eq!(owner.unwrap().api_key, key);
    drop(tx);

    let id = created["id"].as_i64().unwrap();
    let (s, _) = app
        .delete(&format!("/api/v1/environments/{key}/api-keys/{id}/"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let mut tx = app.store().read().await.unwrap();
    assert!(flagstone_store::keys::find_server_key(&mut tx, secret)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn malformed_input_is_a_400_naming_the_problem_and_writes_nothing() {
    let app = TestApp::new().await;
    let (_, org) = app
        .post("/api/v1/organisations/", json!({"name": "O"}))
        .await;
    let before = app.audit_count().await;
    let cases = [
        ("{not json", "invalid_json"),
        (
            r#"{"name": "x", "organisation": 1, "bogus": true}"#,
            "invalid_json",
        ),
        (r#"{"name": 5, "organisation": 1}"#, "invalid_json"),
        (r#"{"organisation": 1}"#, "invalid_json"),
        (r#"[]"#, "invalid_json"),
    ];
    for (body, err) in cases {
        let (s, b) = app
            .req_with(
                Method::POST,
                "/api/v1/projects/",
                Some(body.into()),
                Some(common::ADMIN_KEY),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {b}");
        assert_eq!(b["error"], err, "{body} -> {b}");
    }
    let (s, b) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "  ", "organisation": org["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["field"], "name");
    let (s, b) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "x", "organisation": 999}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["field"], "organisation");
    let (s, b) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "x", "organisation": org["id"], "limits": {"max_features": -1}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["field"], "limits.max_features");
    let (s, _) = app.get("/api/v1/projects/abc/").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(app.audit_count().await, before);
}

#[tokio::test]
async fn huge_bodies_are_refused_with_413() {
    let app = TestApp::new().await;
    let big = format!(
        r#"{{"name": "{}", "organisation": 1}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let (s, b) = app
        .req_with(
            Method::POST,
            "/api/v1/projects/",
            Some(big),
            Some(common::ADMIN_KEY),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["limit"], "max_request_body_bytes");
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let app = TestApp::new().await;
    let (s, doc) = app
        .req_with(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/projects",
        "/api/v1/environments/{api_key}",
        "/api/v1/environments/{api_key}/api-keys",
        "/api/v1/projects/{project}/tags",
        "/api/v1/projects/{project}/tags/get-by-uuid/{uuid}",
        "/api/v1/features/feature-segments",
        "/api/v1/features/feature-segments/{id}",
        "/api/v1/features/featurestates",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    // PUT where Flagsmith's viewsets have it.
    for p in [
        "/api/v1/projects/{project}/tags/{tag}",
        "/api/v1/projects/{project}/features/{feature}",
        "/api/v1/projects/{project}/features/{feature}/mv-options/{option}",
        "/api/v1/environments/{api_key}/featurestates/{id}",
        "/api/v1/features/featurestates/{id}",
    ] {
        assert!(paths[p].get("put").is_some(), "no PUT on {p}");
    }
    // Bodies read through Flagsmith's shapes are documented by those shapes.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in ["Tag", "MvOptionBody", "SegmentOverrideBody"] {
        assert!(schemas.contains_key(s), "no schema {s}");
    }
}
