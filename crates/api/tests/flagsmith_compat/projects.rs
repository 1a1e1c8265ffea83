//! `GET /api/v1/projects/` is a plain list, as Flagsmith's `ProjectViewSet` (`pagination_class
//! = None`) returns it: its admin client's `get_projects` and the Terraform provider iterate
//! the answer as an array. Each item has `ProjectListSerializer`'s fields that Flagstone has.

use axum::http::StatusCode;
use serde_json::json;

use super::shapes::{has_fields, World};
use crate::common::TestApp;

#[tokio::test]
async fn the_projects_list_is_a_plain_array() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let (s, p2) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Mobile", "organisation": w.org["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p2}");

    let (s, list) = app.get("/api/v1/projects/").await;
    assert_eq!(s, StatusCode::OK);
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"));
    assert_eq!(items.len(), 2);
    for p in items {
        has_fields(
            "listed project",
            p,
            &[
                "id",
                "uuid",
                "name",
                "organisation",
                "hide_disabled_flags",
                "enable_realtime_updates",
            ],
        );
    }
    assert_eq!(items[0]["id"], w.project["id"]);
    // The dashboard's filter by organisation (`?organisation=`) keeps the shape.
    let (_, mine) = app
        .get(&format!("/api/v1/projects/?organisation={}", w.org["id"]))
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let (_, none) = app.get("/api/v1/projects/?organisation=999999").await;
    assert_eq!(none, json!([]));
    // Flagstone's pages stay available on request.
    let (_, page) = app.get("/api/v1/projects/?page_size=1").await;
    assert_eq!(page["count"], 2);
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert!(page["next"].as_str().is_some(), "{page}");
}
