//! Feature owners as Flagsmith's dashboard sets them (`frontend/common/services`: `POST
//! …/features/{id}/add-owners/` with `{user_ids}`, `remove-owners/`, and the group variants
//! with `{group_ids}`), and `owners`/`group_owners` on the feature (`CreateFeatureSerializer`:
//! `UserListSerializer` and `UserPermissionGroupSummarySerializer` objects).

use axum::http::{Method, StatusCode};
use flagstone_store::accounts::members;
use flagstone_store::Actor;
use serde_json::{json, Value};

use super::shapes::{has_fields, World};
use crate::common::{As, TestApp};

async fn member(app: &TestApp, org: i64, email: &str, role: &str) -> i64 {
    let id = app.create_user(email).await;
    let mut ch = app.store().change(&Actor::system("test")).await.unwrap();
    members::add(&mut ch, org, id, email, role, flagstone_store::now_ms())
        .await
        .unwrap();
    ch.commit().await.unwrap();
    id
}

fn owner_ids(feature: &Value, field: &str) -> Vec<i64> {
    feature[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {feature}"))
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn owners_are_added_and_removed_as_flagsmiths_dashboard_does() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let org = w.org["id"].as_i64().unwrap();
    let ada = member(&app, org, "ada@example.com", "ADMIN").await;
    let bob = member(&app, org, "bob@example.com", "ADMIN").await;
    // A member without VIEW_PROJECT, and someone outside the organisation.
    let carl = member(&app, org, "carl@example.com", "USER").await;
    let stranger = app.create_user("eve@example.com").await;

    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "owned", "project": p}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    // Created with an organisation key: no person to own it.
    assert_eq!(f["owners"], json!([]));
    assert_eq!(f["group_owners"], json!([]));
    let base = format!("/api/v1/projects/{p}/features/{}", f["id"]);

    let (s, f) = app
        .post(
            &format!("{base}/add-owners/"),
            json!({"user_ids": [bob, ada, ada]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(owner_ids(&f, "owners"), vec![ada, bob]);
    let first = &f["owners"][0];
    has_fields(
        "owner",
        first,
        &["id", "email", "first_name", "last_name", "last_login"],
    );
    assert_eq!(first["email"], "ada@example.com");

    // Everyone must be a user who may view the project: nothing is written otherwise.
    for bad in [carl, stranger, 999_999] {
        let (s, e) = app
            .post(&format!("{base}/add-owners/"), json!({"user_ids": [bad]}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {e}");
        assert_eq!(e["field"], "user_ids", "{e}");
    }
    let (s, e) = app
        .post(&format!("{base}/add-owners/"), json!({"user_ids": "ada"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    let (_, read) = app.get(&format!("{base}/")).await;
    assert_eq!(owner_ids(&read, "owners"), vec![ada, bob]);
    let (_, listed) = app.get(&format!("/api/v1/projects/{p}/features/")).await;
    assert_eq!(owner_ids(&listed["results"][0], "owners"), vec![ada, bob]);

    // Removing someone who is not an owner is not an error (Flagsmith's `remove`).
    let (s, f) = app
        .post(
            &format!("{base}/remove-owners/"),
            json!({"user_ids": [ada, carl]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(owner_ids(&f, "owners"), vec![bob]);

    // Group owners: groups of the project's organisation only.
    let (s, g) = app
        .post(
            &format!("/api/v1/organisations/{org}/groups/"),
            json!({"name": "devs", "users": []}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let (s, f) = app
        .post(
            &format!("{base}/add-group-owners/"),
            json!({"group_ids": [g["id"]]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["group_owners"], json!([{"id": g["id"], "name": "devs"}]));
    let (_, other_org) = app
        .post("/api/v1/organisations/", json!({"name": "Other"}))
        .await;
    let (_, foreign) = app
        .post(
            &format!("/api/v1/organisations/{}/groups/", other_org["id"]),
            json!({"name": "theirs", "users": []}),
        )
        .await;
    let (s, e) = app
        .post(
            &format!("{base}/add-group-owners/"),
            json!({"group_ids": [foreign["id"]]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, f) = app
        .post(
            &format!("{base}/remove-group-owners/"),
            json!({"group_ids": [g["id"]]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["group_owners"], json!([]));

    // A PATCH/PUT sending owners back (as read) leaves them as they are.
    let (s, f) = app
        .patch(
            &format!("{base}/"),
            json!({"description": "d", "owners": read["owners"], "group_owners": []}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(owner_ids(&f, "owners"), vec![bob]);

    // Leaving the organisation ends the ownership.
    let mut ch = app.store().change(&Actor::system("test")).await.unwrap();
    members::remove(&mut ch, org, bob).await.unwrap();
    ch.commit().await.unwrap();
    let (_, f) = app.get(&format!("{base}/")).await;
    assert_eq!(f["owners"], json!([]));
}

#[tokio::test]
async fn a_person_creating_a_feature_owns_it_unless_owners_are_named() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let org = w.org["id"].as_i64().unwrap();
    let ada = member(&app, org, "ada@example.com", "ADMIN").await;
    let bob = member(&app, org, "bob@example.com", "ADMIN").await;
    let token = app.login("ada@example.com").await;

    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/projects/{p}/features/"),
            Some(json!({"name": "mine", "project": p})),
            As::Token(&token),
            "127.0.0.1",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(owner_ids(&r.body, "owners"), vec![ada]);

    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/projects/{p}/features/"),
            Some(json!({"name": "theirs", "project": p, "owners": [bob]})),
            As::Token(&token),
            "127.0.0.1",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(owner_ids(&r.body, "owners"), vec![bob]);

    // A named owner who may not view the project refuses the whole creation.
    let outsider = app.create_user("eve@example.com").await;
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/projects/{p}/features/"),
            Some(json!({"name": "nobodys", "project": p, "owners": [outsider]})),
            As::Token(&token),
            "127.0.0.1",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let (_, list) = app
        .get(&format!("/api/v1/projects/{p}/features/?search=nobodys"))
        .await;
    assert_eq!(list["count"], 0);
}
