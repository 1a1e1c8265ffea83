//! Identity overrides through the admin API: CRUD, revision bumps, audit, rejections.

use axum::http::StatusCode;
use serde_json::json;

use super::{create_feature, create_identity, environment_id, marks, set_limits};
use crate::common::TestApp;

#[tokio::test]
async fn identity_overrides_crud_bumps_revision_and_audits() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let feature = create_feature(&app, project, "banner").await;
    let other_feature = create_feature(&app, project, "theme").await;
    let id = create_identity(&app, &key, "alice").await;
    let env_id = environment_id(&app, &key).await;
    let base = format!("/api/v1/environments/{key}/identities/{id}/featurestates");

    let (rev, audit) = marks(&app, &key).await;
    let (s, o) = app
        .post(
            &format!("{base}/"),
            json!({"feature": feature, "enabled": true, "feature_state_value": "blue"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let oid = o["id"].as_i64().unwrap();
    assert_eq!(o["feature"], feature);
    assert_eq!(o["identity"], id);
    assert_eq!(o["environment"], env_id);
    assert_eq!(o["enabled"], true);
    assert_eq!(o["feature_state_value"], "blue");
    assert!(o["updated_at"].is_string());
    assert_eq!(marks(&app, &key).await, (rev + 1, audit + 1));

    // Defaults: disabled, null value.
    let (s, o2) = app
        .post(&format!("{base}/"), json!({"feature": other_feature}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o2}");
    assert_eq!(o2["enabled"], false);
    assert!(o2["feature_state_value"].is_null());

    let (s, list) = app.get(&format!("{base}/?page_size=1")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["count"], 2);
    assert_eq!(list["results"][0]["id"], oid);
    assert!(list["next"].is_string());
    let (s, got) = app.get(&format!("{base}/{oid}/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, o);

    let (rev, audit) = marks(&app, &key).await;
    let (s, u) = app
        .patch(
            &format!("{base}/{oid}/"),
            json!({"feature_state_value": 42}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["feature_state_value"], 42);
    assert_eq!(u["enabled"], true, "absent fields keep their value");
    let (s, u) = app
        .patch(
            &format!("{base}/{oid}/"),
            json!({"feature": feature, "enabled": false, "feature_state_value": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["enabled"], false);
    assert!(u["feature_state_value"].is_null());
    assert_eq!(marks(&app, &key).await, (rev + 2, audit + 2));

    let (s, _) = app.delete(&format!("{base}/{oid}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(marks(&app, &key).await, (rev + 3, audit + 3));
    let (s, _) = app.get(&format!("{base}/{oid}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete(&format!("{base}/{oid}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The audit log records the override with its state.
    let (_, log) = app.get("/api/v1/audit/?page_size=1").await;
    assert_eq!(log["results"][0]["resource_type"], "identity_override");
    assert_eq!(log["results"][0]["action"], "deleted");

    // Deleting an identity that still has an override changes what SDKs receive.
    let (rev, audit) = marks(&app, &key).await;
    let (s, _) = app
        .delete(&format!("/api/v1/environments/{key}/identities/{id}/"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(marks(&app, &key).await, (rev + 1, audit + 1));
}

#[tokio::test]
async fn rejected_identity_override_changes_write_nothing() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let feature = create_feature(&app, project, "banner").await;
    let second = create_feature(&app, project, "theme").await;
    let (_, org) = app
        .post("/api/v1/organisations/", json!({"name": "O2"}))
        .await;
    let (_, foreign_project) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Other", "organisation": org["id"]}),
        )
        .await;
    let foreign = create_feature(&app, foreign_project["id"].as_i64().unwrap(), "x").await;
    set_limits(
        &app,
        project,
        json!({"max_identity_overrides": 1, "max_feature_value_bytes": 10}),
    )
    .await;
    let alice = create_identity(&app, &key, "alice").await;
    let bob = create_identity(&app, &key, "bob").await;
    let base = format!("/api/v1/environments/{key}/identities/{alice}/featurestates/");
    let (s, o) = app
        .post(&base, json!({"feature": feature, "enabled": true}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let before = marks(&app, &key).await;

    let (s, body) = app.post(&base, json!({"feature": feature})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "conflict", "{body}");
    assert_eq!(body["field"], "feature");

    for f in [foreign, 999_999] {
        let (s, body) = app.post(&base, json!({"feature": f})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid");
        assert_eq!(body["field"], "feature");
    }

    let (s, body) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/{bob}/featurestates/"),
            json!({"feature": feature}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "limit_exceeded");
    assert_eq!(body["limit"], "max_identity_overrides");
    assert_eq!(body["max"], 1);

    let oid = o["id"].as_i64().unwrap();
    let (s, body) = app
        .patch(
            &format!("{base}{oid}/"),
            json!({"feature_state_value": "far too long a value"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["limit"], "max_feature_value_bytes");
    let (s, body) = app
        .patch(
            &format!("{base}{oid}/"),
            json!({"feature_state_value": {"a": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "feature_state_value");
    let (s, body) = app
        .patch(&format!("{base}{oid}/"), json!({"feature": second}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "feature");
    for bad in [
        json!({"feature": "banner"}),
        json!({"enabled": true}),
        json!({"feature": feature, "colour": 1}),
    ] {
        let (s, body) = app.post(&base, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_json");
    }
    let (s, body) = app
        .patch(&format!("{base}{oid}/"), json!({"enabled": "yes"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_json");

    assert_eq!(marks(&app, &key).await, before);
    let (_, got) = app.get(&format!("{base}{oid}/")).await;
    assert_eq!(got, o);
}
