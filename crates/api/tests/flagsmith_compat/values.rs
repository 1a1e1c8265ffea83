//! Feature-state values sent as Flagsmith's typed objects (`FeatureStateValueSerializer`:
//! `{"type": "unicode"|"int"|"bool", "string_value"|"integer_value"|"boolean_value": …}`),
//! as the Terraform provider's API client sends them (`FeatureStateValue`), are stored as the
//! plain values they stand for, on default states, segment overrides and identity overrides.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::shapes::World;
use crate::common::TestApp;

#[tokio::test]
async fn typed_feature_state_values_are_accepted_everywhere_a_value_is() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let key = w.env_key();
    let (_, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "banner", "project": p}),
        )
        .await;
    let (_, states) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={}",
            f["id"]
        ))
        .await;
    let state = format!(
        "/api/v1/environments/{key}/featurestates/{}/",
        states["results"][0]["id"]
    );
    for (sent, stored) in [
        (
            json!({"type": "unicode", "string_value": "hello"}),
            json!("hello"),
        ),
        (json!({"type": "int", "integer_value": 42}), json!(42)),
        (json!({"type": "bool", "boolean_value": true}), json!(true)),
        (
            json!({"type": "unicode", "string_value": null}),
            Value::Null,
        ),
        (json!("plain"), json!("plain")),
    ] {
        let (s, got) = app
            .patch(
                &state,
                json!({"enabled": true, "feature_state_value": sent}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{sent}: {got}");
        assert_eq!(got["feature_state_value"], stored, "{sent}");
    }
    for bad in [
        json!({"type": "int", "integer_value": "42"}),
        json!({"type": "float", "float_value": 1.5}),
        json!({"string_value": "no type"}),
    ] {
        let (s, e) = app.patch(&state, json!({"feature_state_value": bad})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }

    let (_, seg) = app
        .post(
            &format!("/api/v1/projects/{p}/segments/"),
            json!({"name": "beta", "rules": [{"type": "ALL", "rules": [
                {"type": "ANY", "conditions": [{"operator": "EQUAL", "property": "plan", "value": "beta"}]}
            ]}]}),
        )
        .await;
    let (s, o) = app
        .post(
            &format!(
                "/api/v1/environments/{key}/features/{}/create-segment-override/",
                f["id"]
            ),
            json!({"segment": seg["id"], "enabled": true,
                   "feature_state_value": {"type": "int", "integer_value": 7}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["feature_state_value"], 7);

    let (_, ident) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({"identifier": "ada"}),
        )
        .await;
    let (s, io) = app
        .post(
            &format!(
                "/api/v1/environments/{key}/identities/{}/featurestates/",
                ident["id"]
            ),
            json!({"feature": f["id"], "enabled": true,
                   "feature_state_value": {"type": "bool", "boolean_value": false}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{io}");
    assert_eq!(io["feature_state_value"], false);
}
