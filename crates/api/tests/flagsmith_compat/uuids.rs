//! `uuid` on organisations, projects, environments, features, segments and feature states, as
//! Flagsmith's serializers give it, and the `get-by-uuid` routes the Terraform provider's API
//! client reads objects back with (`GetProject`, `GetEnvironment`, `GetFeature`, `GetSegment`).

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::shapes::World;
use crate::common::{As, TestApp};

fn uuid_of(what: &str, v: &Value) -> String {
    let u = v["uuid"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no uuid in {v}"));
    uuid::Uuid::parse_str(u).unwrap_or_else(|e| panic!("{what}: {u:?} is not a uuid: {e}"));
    u.to_string()
}

#[tokio::test]
async fn objects_carry_uuids_and_are_read_back_by_them() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let key = w.env_key();

    uuid_of("organisation", &w.org);
    let project = uuid_of("project", &w.project);
    let env = uuid_of("environment", &w.env);
    // The go client's CreateFeature body: `tags` always present, ids.
    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "checkout", "project": p, "description": "new flow"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let feature = uuid_of("feature", &f);
    let (s, seg) = app
        .post(
            &format!("/api/v1/projects/{p}/segments/"),
            json!({"name": "beta", "project": p, "rules": [{"type": "ALL", "rules": [
                {"type": "ANY", "conditions": [{"operator": "EQUAL", "property": "plan", "value": "beta"}]}
            ]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    let segment = uuid_of("segment", &seg);
    let (_, states) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={}",
            f["id"]
        ))
        .await;
    uuid_of("feature state", &states["results"][0]);

    for (path, want) in [
        (
            format!("/api/v1/projects/get-by-uuid/{project}/"),
            &w.project,
        ),
        (format!("/api/v1/environments/get-by-uuid/{env}/"), &w.env),
        (format!("/api/v1/features/get-by-uuid/{feature}/"), &f),
        (format!("/api/v1/segments/get-by-uuid/{segment}/"), &seg),
    ] {
        let (s, got) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {got}");
        assert_eq!(got["id"], want["id"], "{path}");
        assert_eq!(got["uuid"], want["uuid"], "{path}");
    }
    // A uuid is stable: a rename keeps it.
    let (s, renamed) = app
        .patch(
            &format!("/api/v1/projects/{p}/features/{}/", f["id"]),
            json!({"name": "checkout_v2"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["uuid"], f["uuid"]);

    // Unknown (or malformed) uuids are 404; a uuid of one kind does not find another kind.
    for path in [
        format!("/api/v1/features/get-by-uuid/{}/", uuid::Uuid::new_v4()),
        "/api/v1/segments/get-by-uuid/not-a-uuid/".to_string(),
        format!("/api/v1/projects/get-by-uuid/{feature}/"),
    ] {
        let (s, body) = app.get(&path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
    }

    // The same permission as the id route: a member of another organisation sees nothing.
    app.create_user("eve@example.com").await;
    let eve = app.login("eve@example.com").await;
    let r = app
        .call(
            Method::GET,
            &format!("/api/v1/features/get-by-uuid/{feature}/"),
            None,
            As::Token(&eve),
            "127.0.0.1",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}
