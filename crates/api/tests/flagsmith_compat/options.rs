//! Multivariate options in Flagsmith's shape (`MultivariateFeatureOptionSerializer`: `type`
//! with `string_value`/`integer_value`/`boolean_value`), and `PUT` where Flagsmith's viewsets
//! have it — what the Terraform provider's client sends (`CreateFeatureMVOption`,
//! `UpdateFeatureMVOption`, `UpdateFeature`) and a state sent back after a read.

use axum::http::StatusCode;
use serde_json::json;

use super::shapes::{has_fields, World};
use crate::common::TestApp;

#[tokio::test]
async fn options_take_and_give_flagsmiths_typed_fields() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "colour", "project": p, "type": "MULTIVARIATE"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let options = format!("/api/v1/projects/{p}/features/{}/mv-options/", f["id"]);

    let (s, o) = app
        .post(
            &options,
            json!({"type": "unicode", "string_value": "blue", "feature": f["id"],
                   "default_percentage_allocation": 30.0}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    has_fields(
        "option",
        &o,
        &[
            "id",
            "uuid",
            "type",
            "integer_value",
            "string_value",
            "boolean_value",
            "default_percentage_allocation",
            "feature",
        ],
    );
    assert_eq!(
        (&o["type"], &o["string_value"], &o["value"]),
        (&json!("unicode"), &json!("blue"), &json!("blue"))
    );
    assert!(o["integer_value"].is_null() && o["boolean_value"].is_null());

    // UpdateFeatureMVOption: a PUT of the option, id and uuid included.
    let url = format!("{options}{}/", o["id"]);
    let (s, put) = app
        .put(
            &url,
            json!({"id": o["id"], "uuid": o["uuid"], "type": "int", "integer_value": 7,
                   "feature": f["id"], "default_percentage_allocation": 20.0}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert_eq!(
        (&put["type"], &put["integer_value"], &put["value"]),
        (&json!("int"), &json!(7), &json!(7))
    );
    assert!(put["string_value"].is_null());
    assert_eq!(put["default_percentage_allocation"], 20.0);
    let (s, patched) = app
        .patch(&url, json!({"type": "bool", "boolean_value": false}))
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["value"], false);
    assert_eq!(patched["boolean_value"], false);

    // The feature lists its options with the same fields.
    let (_, got) = app
        .get(&format!("/api/v1/projects/{p}/features/{}/", f["id"]))
        .await;
    assert_eq!(got["multivariate_options"][0]["type"], "bool");

    // Both shapes at once, a typed value without its type, a wrong kind: 400, nothing written.
    for body in [
        json!({"value": "x", "type": "unicode", "string_value": "x"}),
        json!({"string_value": "x"}),
        json!({"type": "int", "integer_value": "7"}),
        json!({"type": "float", "string_value": "1.5"}),
    ] {
        let (s, e) = app.post(&options, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {e}");
    }
    let (s, e) = app
        .put(
            &url,
            json!({"type": "int", "integer_value": 1, "feature": f["id"] .as_i64().unwrap() + 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (_, list) = app.get(&options).await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["value"], false);
}

#[tokio::test]
async fn features_and_states_take_a_put_of_what_was_read() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let key = w.env_key();
    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "checkout", "project": p, "description": "old", "tags": null}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let url = format!("/api/v1/projects/{p}/features/{}/", f["id"]);

    // The Terraform client's UpdateFeature: the feature it read, edited.
    let (s, put) = app
        .put(
            &url,
            json!({"name": "checkout", "uuid": f["uuid"], "id": f["id"], "type": "STANDARD",
                   "description": "new", "project": p, "tags": null, "is_archived": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert_eq!(put["description"], "new");
    assert_eq!(put["created_date"], f["created_date"]);
    let (s, e) = app.put(&url, json!({"description": "no name"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["field"], "name");
    let (s, e) = app
        .put(&url, json!({"name": "checkout", "project": p + 1}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    // A state read, edited and PUT back with its read-only fields.
    let (_, states) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={}",
            f["id"]
        ))
        .await;
    let mut state = states["results"][0].clone();
    state["enabled"] = json!(true);
    state["feature_state_value"] = json!({"type": "int", "integer_value": 5});
    let (s, put) = app
        .put(
            &format!("/api/v1/environments/{key}/featurestates/{}/", state["id"]),
            state,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert_eq!(put["enabled"], true);
    assert_eq!(put["feature_state_value"], 5);
}

/// The Terraform provider's `GetFeatureMVOption` reads an option back by its uuid
/// (`/api/v1/multivariate/options/get-by-uuid/{uuid}/`, `VIEW_PROJECT`).
#[tokio::test]
async fn options_are_read_back_by_uuid() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "colour", "project": p, "type": "MULTIVARIATE"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, o) = app
        .post(
            &format!("/api/v1/projects/{p}/features/{}/mv-options/", f["id"]),
            json!({"type": "unicode", "string_value": "blue", "default_percentage_allocation": 30,
                   "feature": f["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let uuid = o["uuid"].as_str().unwrap();
    let (s, read) = app
        .get(&format!("/api/v1/multivariate/options/get-by-uuid/{uuid}/"))
        .await;
    assert_eq!(s, StatusCode::OK, "{read}");
    assert_eq!(read, o);
    for unknown in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        let (s, e) = app
            .get(&format!(
                "/api/v1/multivariate/options/get-by-uuid/{unknown}/"
            ))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    }
}
