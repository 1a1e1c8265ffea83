//! Tags as Flagsmith serves them (`TagViewSet`, `TagSerializer`): what its dashboard's tag
//! service (`frontend/common/services/useTag.ts`: create, `PUT` of the tag it read, delete,
//! list read as a page) and the Terraform provider's client (features with `tags: [ids]` or
//! `tags: null`) send, and the feature list filtered by `?tags=1,2` (tag ids, all of them).

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::shapes::{has_fields, World};
use crate::common::TestApp;

const TAG_FIELDS: &[&str] = &[
    "id",
    "label",
    "color",
    "description",
    "project",
    "uuid",
    "is_permanent",
    "is_system_tag",
    "type",
];

async fn tag(app: &TestApp, project: i64, label: &str) -> Value {
    let (s, t) = app
        .post(
            &format!("/api/v1/projects/{project}/tags/"),
            json!({"label": label, "color": "#3d4db6", "description": null}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    has_fields("created tag", &t, TAG_FIELDS);
    t
}

fn names(list: &Value) -> Vec<&str> {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn tags_are_served_and_edited_as_flagsmiths_dashboard_does() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let beta = tag(&app, p, "beta").await;
    assert_eq!(beta["project"], p);
    assert_eq!(beta["is_system_tag"], false);
    assert!(beta["type"].is_null());

    // useTag.getTags reads `results` of a page.
    let (s, list) = app.get(&format!("/api/v1/projects/{p}/tags/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0], beta);

    // useTag.updateTag PUTs the tag it read, edited; read-only fields ride along.
    let mut edited = beta.clone();
    edited["label"] = json!("Beta testers");
    edited["color"] = json!("#FF0000");
    edited["is_permanent"] = json!(true);
    let url = format!("/api/v1/projects/{p}/tags/{}/", beta["id"]);
    let (s, put) = app.put(&url, edited).await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert_eq!(put["label"], "Beta testers");
    assert_eq!(put["color"], "#FF0000");
    assert_eq!(put["is_permanent"], true);
    assert_eq!(put["uuid"], beta["uuid"]);

    let (s, patched) = app
        .patch(&url, json!({"description": "people trying things"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], "people trying things");
    assert_eq!(patched["label"], "Beta testers");

    let (s, by_uuid) = app
        .get(&format!(
            "/api/v1/projects/{p}/tags/get-by-uuid/{}/",
            beta["uuid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{by_uuid}");
    assert_eq!(by_uuid, patched);

    // Mistakes are 400s naming the field, and write nothing.
    for (body, field) in [
        (
            json!({"label": "x", "color": "red; background: url(x)"}),
            "color",
        ),
        (json!({"label": " ", "color": "#fff"}), "label"),
        (
            json!({"label": "x", "color": "#fff", "description": "d".repeat(513)}),
            "description",
        ),
    ] {
        let (s, b) = app
            .post(&format!("/api/v1/projects/{p}/tags/"), body.clone())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {b}");
        assert_eq!(b["field"], field, "{body} -> {b}");
    }
    let (s, _) = app
        .post(
            &format!("/api/v1/projects/{p}/tags/"),
            json!({"label": "x"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "color is required, as in Flagsmith"
    );
    let (_, list) = app.get(&format!("/api/v1/projects/{p}/tags/")).await;
    assert_eq!(list["count"], 1);

    // useTag.deleteTag.
    let (s, _) = app.delete(&url).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&url).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn features_carry_tag_ids_and_are_filtered_by_them() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let (a, b) = (tag(&app, p, "a").await, tag(&app, p, "b").await);
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let features = format!("/api/v1/projects/{p}/features/");

    // The Terraform client's CreateFeature: `tags` always sent, ids or null.
    let (s, both) = app
        .post(
            &features,
            json!({"name": "both", "project": p, "tags": [b, a]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{both}");
    assert_eq!(both["tags"], json!([a, b]));
    let (s, none) = app
        .post(
            &features,
            json!({"name": "none", "project": p, "tags": null}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{none}");
    assert_eq!(none["tags"], json!([]));
    let (s, only_a) = app
        .post(&features, json!({"name": "only_a", "tags": [a]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{only_a}");

    // `?tags=` takes ids and keeps features carrying all of them (FeatureQuerySerializer).
    let list = |q: String| {
        let app = &app;
        let features = &features;
        async move {
            let (s, l) = app.get(&format!("{features}?{q}")).await;
            assert_eq!(s, StatusCode::OK, "{l}");
            l
        }
    };
    assert_eq!(names(&list(format!("tags={a}")).await), ["both", "only_a"]);
    assert_eq!(names(&list(format!("tags={a},{b}")).await), ["both"]);
    let (s, _) = app.get(&format!("{features}?tags=beta")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A PUT/PATCH replaces the tags; null removes them.
    let url = format!("{features}{}/", only_a["id"]);
    let (s, f) = app.patch(&url, json!({"tags": [b]})).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["tags"], json!([b]));
    let (s, f) = app.patch(&url, json!({"tags": null})).await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["tags"], json!([]));

    // Another project's tag is refused (Flagsmith: "Selected Tags must be from the same
    // Project"), nothing written.
    let (_, p2) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Other", "organisation": w.org["id"]}),
        )
        .await;
    let foreign = tag(&app, p2["id"].as_i64().unwrap(), "foreign").await;
    let (s, e) = app.patch(&url, json!({"tags": [foreign["id"]]})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["field"], "tags");
    let (_, f) = app.get(&url).await;
    assert_eq!(f["tags"], json!([]));

    // Deleting a tag takes it off its features.
    let (s, _) = app.delete(&format!("/api/v1/projects/{p}/tags/{a}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, f) = app.get(&format!("{features}{}/", both["id"])).await;
    assert_eq!(f["tags"], json!([b]));
}
