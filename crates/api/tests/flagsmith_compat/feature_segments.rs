//! Segment overrides the ways Flagsmith's clients make them: its dashboard's
//! `create-segment-override` with a `feature_segment` object, and the Terraform provider's
//! client (`CreateSegmentOverride`: `POST /features/feature-segments/`, then `POST
//! /features/featurestates/` with that `feature_segment`; `GetFeatureSegmentByID`;
//! `UpdateFeatureState`: `PUT /features/featurestates/{id}/`; `DeleteFeatureSegment`).

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::shapes::{has_fields, World};
use crate::common::TestApp;

async fn setup(app: &TestApp, w: &World) -> (Value, Value) {
    let p = w.project_id();
    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "checkout", "project": p, "initial_value": "old"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, seg) = app
        .post(
            &format!("/api/v1/projects/{p}/segments/"),
            json!({"name": "beta", "project": p, "rules": [{"type": "ALL", "rules": [], "conditions": []}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    (f, seg)
}

#[tokio::test]
async fn create_segment_override_takes_a_feature_segment_object() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let key = w.env_key();
    let (f, seg) = setup(&app, &w).await;
    let url = format!(
        "/api/v1/environments/{key}/features/{}/create-segment-override/",
        f["id"]
    );
    let (s, o) = app
        .post(
            &url,
            json!({"feature_segment": {"segment": seg["id"]}, "enabled": true,
                   "feature_state_value": {"type": "unicode", "string_value": "beta-flow"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["segment"], seg["id"]);
    assert_eq!(o["feature_state_value"], "beta-flow");
    assert_eq!(o["priority"], 0);
    let (s, e) = app
        .post(
            &url,
            json!({"segment": seg["id"], "feature_segment": {"segment": seg["id"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) = app.post(&url, json!({"enabled": true})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}

#[tokio::test]
async fn the_terraform_clients_segment_override_steps_work() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let key = w.env_key();
    let env = w.env_id();
    let (f, seg) = setup(&app, &w).await;

    // Step 1: the feature segment. Until its state is written it serves the default.
    let (s, fs) = app
        .post(
            "/api/v1/features/feature-segments/",
            json!({"feature": f["id"], "environment": env, "segment": seg["id"], "priority": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{fs}");
    has_fields(
        "feature segment",
        &fs,
        &[
            "id",
            "uuid",
            "feature",
            "segment",
            "environment",
            "priority",
        ],
    );
    let (_, o) = app
        .get(&format!(
            "/api/v1/environments/{key}/segment-overrides/{}/",
            fs["id"]
        ))
        .await;
    assert_eq!(
        (&o["enabled"], &o["feature_state_value"]),
        (&json!(false), &json!("old"))
    );

    // Step 2: its state, typed value as the client sends it.
    let (s, state) = app
        .post(
            "/api/v1/features/featurestates/",
            json!({"feature": f["id"], "environment": env, "feature_segment": fs["id"],
                   "enabled": true, "feature_state_value": {"type": "int", "integer_value": 3}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{state}");
    assert_eq!(state["feature_segment"], fs["id"]);
    assert_eq!(state["feature_state_value"], 3);
    assert_eq!(state["enabled"], true);

    // GetFeatureState: by uuid, the feature segment's state and a default state.
    let (s, by_uuid) = app
        .get(&format!(
            "/api/v1/features/featurestates/get-by-uuid/{}/",
            state["uuid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{by_uuid}");
    assert_eq!(by_uuid["feature_segment"], fs["id"]);
    assert_eq!(by_uuid["feature_state_value"], 3);
    let (_, defaults) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={}",
            f["id"]
        ))
        .await;
    let (s, default) = app
        .get(&format!(
            "/api/v1/features/featurestates/get-by-uuid/{}/",
            defaults["results"][0]["uuid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{default}");
    assert!(default["feature_segment"].is_null());
    assert_eq!(default["id"], defaults["results"][0]["id"]);
    let (s, _) = app
        .get("/api/v1/features/featurestates/get-by-uuid/00000000-0000-4000-8000-000000000000/")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // GetFeatureSegmentByID and the list by environment and feature.
    let (s, got) = app
        .get(&format!("/api/v1/features/feature-segments/{}/", fs["id"]))
        .await;
    assert_eq!(s, StatusCode::OK, "{got}");
    assert_eq!(got["segment"], seg["id"]);
    assert_eq!(got["segment_name"], "beta");
    let (s, list) = app
        .get(&format!(
            "/api/v1/features/feature-segments/?environment={env}&feature={}",
            f["id"]
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["count"], 1);

    // UpdateFeatureState: the override's state, and an environment default state.
    let (s, put) = app
        .put(
            &format!("/api/v1/features/featurestates/{}/", fs["id"]),
            json!({"id": fs["id"], "feature": f["id"], "environment": env,
                   "feature_segment": fs["id"], "enabled": false,
                   "feature_state_value": {"type": "unicode", "string_value": "x"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert_eq!(
        (&put["enabled"], &put["feature_state_value"]),
        (&json!(false), &json!("x"))
    );
    let (_, states) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={}",
            f["id"]
        ))
        .await;
    let default_id = &states["results"][0]["id"];
    let (s, put) = app
        .put(
            &format!("/api/v1/features/featurestates/{default_id}/"),
            json!({"id": default_id, "feature": f["id"], "environment": env,
                   "feature_segment": null, "enabled": true,
                   "feature_state_value": {"type": "bool", "boolean_value": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert_eq!(put["feature_state_value"], true);
    assert!(put["feature_segment"].is_null());

    // Mistakes: an identity, a state without its feature segment, the wrong environment.
    for body in [
        json!({"feature": f["id"], "environment": env, "identity": 1, "enabled": true}),
        json!({"feature": f["id"], "environment": env, "enabled": true}),
        json!({"feature": f["id"], "environment": env + 1, "feature_segment": fs["id"]}),
    ] {
        let (s, e) = app
            .post("/api/v1/features/featurestates/", body.clone())
            .await;
        assert!(s.is_client_error(), "{body} -> {s} {e}");
    }

    // DeleteFeatureSegment removes the override.
    let (s, _) = app
        .delete(&format!("/api/v1/features/feature-segments/{}/", fs["id"]))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .get(&format!("/api/v1/features/feature-segments/{}/", fs["id"]))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
