//! Timestamps are ISO-8601 strings under Flagsmith's names: `created_date` on organisations and
//! features (`OrganisationSerializerFull`, `CreateFeatureSerializer`), `created_at`/`updated_at`
//! on segments (`SegmentSerializer`) and feature states (`FeatureStateSerializerBasic`),
//! `created_at`/`expires_at` on server-side keys and `created_at`/`updated_at` on webhooks
//! (Flagsmith's environment API key and webhook serializers).

use axum::http::StatusCode;
use serde_json::json;

use super::shapes::{is_iso_datetime, World};
use crate::common::TestApp;

#[tokio::test]
async fn every_timestamp_is_an_iso_8601_string_under_flagsmiths_name() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let key = w.env_key();

    is_iso_datetime("organisation", &w.org, "created_date");
    let (_, orgs) = app.get("/api/v1/organisations/").await;
    is_iso_datetime("listed organisation", &orgs["results"][0], "created_date");
    is_iso_datetime("project", &w.project, "created_date");
    is_iso_datetime("environment", &w.env, "created_date");
    is_iso_datetime("environment", &w.env, "updated_at");

    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "checkout", "project": p}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    is_iso_datetime("feature", &f, "created_date");
    assert!(f.get("created_at").is_none(), "{f}");
    let (_, listed) = app.get(&format!("/api/v1/projects/{p}/features/")).await;
    is_iso_datetime("listed feature", &listed["results"][0], "created_date");

    let (s, seg) = app
        .post(
            &format!("/api/v1/projects/{p}/segments/"),
            json!({"name": "beta", "project": p, "rules": [{"type": "ALL", "rules": [
                {"type": "ANY", "conditions": [{"operator": "EQUAL", "property": "plan", "value": "beta"}]}
            ]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    is_iso_datetime("segment", &seg, "created_at");
    is_iso_datetime("segment", &seg, "updated_at");

    let (_, states) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={}",
            f["id"]
        ))
        .await;
    is_iso_datetime("feature state", &states["results"][0], "updated_at");

    let (s, o) = app
        .post(
            &format!(
                "/api/v1/environments/{key}/features/{}/create-segment-override/",
                f["id"]
            ),
            json!({"segment": seg["id"], "enabled": true, "feature_state_value": "on"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    is_iso_datetime("segment override", &o, "updated_at");

    let (s, i) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({"identifier": "ada"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{i}");
    is_iso_datetime("identity", &i, "created_date");

    let (_, audit) = app.get(&format!("/api/v1/audit/?project={p}")).await;
    is_iso_datetime("audit entry", &audit["results"][0], "created_date");

    // A server-side key: `created_at` as an ISO string, no expiry as null.
    let (s, k) = app
        .post(
            &format!("/api/v1/environments/{key}/api-keys/"),
            json!({"name": "backend"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    is_iso_datetime("created server-side key", &k, "created_at");
    let (_, keys) = app
        .get(&format!("/api/v1/environments/{key}/api-keys/"))
        .await;
    is_iso_datetime("server-side key", &keys[0], "created_at");
    assert!(keys[0]["expires_at"].is_null(), "{keys}");

    // A public (documentation-range) address: the default policy refuses private ones.
    let (s, hook) = app
        .post(
            &format!("/api/v1/environments/{key}/webhooks/"),
            json!({"url": "https://203.0.113.10/hook", "secret": "s"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hook}");
    is_iso_datetime("webhook", &hook, "created_at");
    is_iso_datetime("webhook", &hook, "updated_at");
    let (_, hooks) = app
        .get(&format!("/api/v1/environments/{key}/webhooks/"))
        .await;
    let listed = hooks
        .as_array()
        .or(hooks["results"].as_array())
        .unwrap()
        .clone();
    is_iso_datetime("listed webhook", &listed[0], "created_at");

    // Flagstone's own resources: ISO-8601 under `*_at` names too.
    let (s, delivery) = app
        .post(
            &format!("/api/v1/environments/{key}/webhooks/{}/test/", hook["id"]),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{delivery}");
    for field in ["created_at", "run_after", "updated_at"] {
        is_iso_datetime("webhook delivery", &delivery, field);
    }
    assert!(delivery["delivered_at"].is_null(), "{delivery}");
    let (_, deliveries) = app
        .get(&format!(
            "/api/v1/environments/{key}/webhooks/{}/deliveries/",
            hook["id"]
        ))
        .await;
    is_iso_datetime("listed delivery", &deliveries["results"][0], "created_at");

    // Nothing publishes in this harness, so the environment's publish job waits.
    let (_, jobs) = app.get("/api/v1/tasks/").await;
    let job = &jobs["results"][0];
    for field in ["run_after", "first_requested_at", "updated_at"] {
        is_iso_datetime("publish job", job, field);
    }
    let (_, status) = app.get("/api/v1/tasks/status/").await;
    is_iso_datetime("stale environment", &status["stale"][0], "waiting_since");
}
