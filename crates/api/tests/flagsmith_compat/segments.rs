//! Segment bodies as Flagsmith's clients send them back after a GET (`SegmentSerializer`):
//! the segment's own read-only fields (`id`, `uuid`, `created_at`, …), rules and conditions
//! with their `id`, `delete` flags, and condition `description`s. The Terraform provider's
//! `UpdateSegment` PUTs the segment it read; Flagsmith's dashboard marks a removed condition
//! `delete: true` instead of leaving it out.

use axum::http::StatusCode;
use serde_json::json;

use super::shapes::World;
use crate::common::TestApp;

#[tokio::test]
async fn a_segment_read_back_and_edited_as_flagsmiths_clients_do_is_accepted() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let (s, seg) = app
        .post(
            &format!("/api/v1/projects/{p}/segments/"),
            json!({"name": "beta", "project": p, "rules": [{"type": "ALL", "rules": [
                {"type": "ANY", "conditions": [
                    {"operator": "EQUAL", "property": "plan", "value": "beta",
                     "description": "Beta plan customers"},
                    {"operator": "EQUAL", "property": "plan", "value": "trial"}
                ]}
            ]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    let conditions = &seg["rules"][0]["rules"][0]["conditions"];
    assert_eq!(conditions[0]["description"], "Beta plan customers");

    // The whole segment as read, with Flagsmith's `id`s on rules and conditions, the second
    // condition marked `delete`, and a new condition without an id.
    let mut body = seg.clone();
    body["rules"][0]["id"] = json!(11);
    body["rules"][0]["delete"] = json!(false);
    body["rules"][0]["rules"][0]["id"] = json!(12);
    body["rules"][0]["rules"][0]["conditions"] = json!([
        {"id": 21, "operator": "EQUAL", "property": "plan", "value": "beta",
         "description": "Beta plan customers", "delete": false},
        {"id": 22, "operator": "EQUAL", "property": "plan", "value": "trial", "delete": true},
        {"operator": "EQUAL", "property": "plan", "value": "enterprise", "description": null}
    ]);
    let path = format!("/api/v1/projects/{p}/segments/{}/", seg["id"]);
    let (s, put) = app.put(&path, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{put}");
    let values: Vec<&str> = put["rules"][0]["rules"][0]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["beta", "enterprise"]);
    assert_eq!(put["uuid"], seg["uuid"]);

    // PATCH with the same body, and a rule marked `delete`, removes the rule.
    body["rules"][0]["rules"][0]["delete"] = json!(true);
    let (s, patched) = app.patch(&path, body).await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["rules"][0]["rules"], json!([]));

    // Mistakes are still 400s naming the field, and write nothing.
    for (bad, field) in [
        (json!({"id": "x"}), "rules[0].id"),
        (json!({"delete": "yes"}), "rules[0].delete"),
    ] {
        let mut rule = json!({"type": "ALL", "conditions": []});
        for (k, v) in bad.as_object().unwrap() {
            rule[k] = v.clone();
        }
        let (s, e) = app
            .put(&path, json!({"name": "beta", "rules": [rule]}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    let (s, e) = app
        .put(&path, json!({"name": "beta", "feature": 5, "rules": []}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}
