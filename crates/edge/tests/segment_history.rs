//! History and rollback of a segment's definition, end to end: edits by two users through the
//! admin API, the history with every step, its author and a readable diff, a restore of an old
//! version checked through the admin API and through the SDK (identities evaluated against the
//! segment), refusals that write nothing, a deleted segment's history, and rows written outside
//! the versioned paths (a baseline).

mod common;

use axum::http::{Method, StatusCode};
use common::people::{call, user};
use common::EdgeApp;
use serde_json::{json, Value};

/// Whether the identity with these traits gets the `banner` flag (only the segment's override
/// turns it on), as the SDK serves the published document.
async fn sdk_enabled(app: &EdgeApp, key: &str, id: &str, plan: &str, country: &str) -> bool {
    let r = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(key),
            Some(json!({"identifier": id, "traits": [
                {"trait_key": "plan", "trait_value": plan},
                {"trait_key": "country", "trait_value": country}]})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let flags = r.json()["flags"].clone();
    let f = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "banner")
        .unwrap_or_else(|| panic!("no banner in {flags}"))
        .clone();
    f["enabled"].as_bool().unwrap()
}

/// What a refused request must not have written: (the segment, its versions, audit entries).
async fn written(app: &EdgeApp, segment_url: &str, versions_url: &str) -> (Value, Value, Value) {
    (
        app.admin_raw(Method::GET, segment_url, None).await.json(),
        app.admin_req(Method::GET, versions_url, None).await["count"].clone(),
        app.admin_req(Method::GET, "/api/v1/audit/?page_size=1", None)
            .await["count"]
            .clone(),
    )
}

fn ok((s, v): (StatusCode, Value)) -> Value {
    assert!(s.is_success(), "{s} {v}");
    v
}

fn cond(property: &str, operator: &str, value: &str) -> Value {
    json!({"operator": operator, "property": property, "value": value})
}

#[tokio::test]
async fn segment_edits_by_two_users_are_versioned_and_an_old_version_is_restored_exactly() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    let organisation = app
        .admin_req(Method::GET, &format!("/api/v1/projects/{project}/"), None)
        .await["organisation"]
        .as_i64()
        .unwrap();
    let feature = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "banner", "default_enabled": false}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let original = json!([{"type": "ALL", "rules": [{"type": "ANY", "rules": [],
        "conditions": [cond("plan", "EQUAL", "beta")]}], "conditions": []}]);
    let created = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "beta", "rules": original}),
        )
        .await;
    let segment = created["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/environments/{key}/features/{feature}/create-segment-override/"),
        json!({"segment": segment, "enabled": true}),
    )
    .await;

    let grants = format!("/api/v1/projects/{project}/user-permissions/");
    let (ada_id, ada) = user(&app, organisation, "ada@example.com", "USER").await;
    let (bob_id, bob) = user(&app, organisation, "bob@example.com", "USER").await;
    let (carol_id, carol) = user(&app, organisation, "carol@example.com", "USER").await;
    for (u, permissions) in [
        (ada_id, json!(["VIEW_PROJECT", "MANAGE_SEGMENTS"])),
        (bob_id, json!(["VIEW_PROJECT", "MANAGE_SEGMENTS"])),
        (carol_id, json!(["VIEW_PROJECT"])),
    ] {
        app.post(&grants, json!({"user": u, "permissions": permissions}))
            .await;
    }

    let url = format!("/api/v1/projects/{project}/segments/{segment}/");
    // 1. ada lets pro in too; 2. bob renames it and requires Germany; 3. ada describes it
    // (PUT, the whole definition).
    let widened = json!([{"type": "ALL", "rules": [{"type": "ANY", "rules": [],
        "conditions": [cond("plan", "IN", "beta,pro")]}], "conditions": []}]);
    ok(call(
        &app,
        &ada,
        Method::PATCH,
        &url,
        Some(json!({"rules": widened})),
    )
    .await);
    let german = json!([{"type": "ALL", "rules": [{"type": "ANY", "rules": [],
        "conditions": [cond("plan", "IN", "beta,pro")]}],
        "conditions": [cond("country", "EQUAL", "DE")]}]);
    ok(call(
        &app,
        &bob,
        Method::PATCH,
        &url,
        Some(json!({"name": "beta-testers", "rules": german})),
    )
    .await);
    ok(call(
        &app,
        &ada,
        Method::PUT,
        &url,
        Some(json!({"name": "beta-testers",
        "description": "early access", "rules": german})),
    )
    .await);
    app.publish().await;
    assert!(sdk_enabled(&app, &key, "p-de", "pro", "DE").await);
    assert!(!sdk_enabled(&app, &key, "b-fr", "beta", "FR").await);

    // The history, newest first, each step with its author; readable by a viewer.
    let versions = format!("{url}versions/");
    let list = ok(call(&app, &carol, Method::GET, &versions, None).await);
    let steps: Vec<Value> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!([v["revision"], v["kind"], v["author"]]))
        .collect();
    assert_eq!(
        steps[..3],
        [
            json!([4, "change", "ada@example.com"]),
            json!([3, "change", "bob@example.com"]),
            json!([2, "change", "ada@example.com"]),
        ],
        "{list}"
    );
    assert_eq!(steps[3][0], 1);
    assert_eq!(steps[3][1], "created");
    assert!(
        steps[3][2].as_str().unwrap().starts_with("admin-key:"),
        "{list}"
    );
    assert_eq!(list["count"], 4);
    let ids: Vec<i64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    let page = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}?page=2&page_size=3"),
        None,
    )
    .await);
    assert_eq!(page["results"][0]["id"], ids[3], "{page}");

    // Diffs: ada's first edit changed a condition; bob's renamed and added one.
    let first = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}{}/", ids[2]),
        None,
    )
    .await);
    assert_eq!(first["previous_version"], ids[3]);
    assert_eq!(first["definition"]["rules"], widened, "{first}");
    let d = &first["diff"];
    assert_eq!(d["fields_changed"], json!([]));
    assert_eq!(
        d["conditions_changed"],
        json!([{"rule": "0.0", "before": cond("plan", "EQUAL", "beta"),
                "after": cond("plan", "IN", "beta,pro")}]),
        "{first}"
    );
    let bobs = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}{}/", ids[1]),
        None,
    )
    .await);
    assert_eq!(
        bobs["diff"]["fields_changed"],
        json!([{"field": "name", "before": "beta", "after": "beta-testers"}])
    );
    assert_eq!(
        bobs["diff"]["conditions_added"],
        json!([{"rule": "0", "condition": cond("country", "EQUAL", "DE")}])
    );
    assert_eq!(bobs["diff"]["conditions_removed"], json!([]));
    let oldest = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}{}/", ids[3]),
        None,
    )
    .await);
    assert_eq!(oldest["previous_version"], Value::Null);
    assert_eq!(oldest["diff"], Value::Null);

    // A viewer cannot restore: 403, nothing written.
    let restore = |id: i64| format!("{versions}{id}/restore/");
    let before = written(&app, &url, &versions).await;
    let (s, _) = call(&app, &carol, Method::POST, &restore(ids[3]), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(written(&app, &url, &versions).await, before);

    // bob restores the definition as created: exactly it comes back, as a new version.
    let restored = ok(call(&app, &bob, Method::POST, &restore(ids[3]), None).await);
    assert_eq!(restored["kind"], "restore");
    assert_eq!(restored["author"], "bob@example.com");
    assert_eq!(restored["restored_from"], ids[3]);
    assert_eq!(restored["revision"], 5);
    assert_eq!(restored["previous_version"], ids[0]);
    assert_eq!(
        restored["diff"]["fields_changed"],
        json!([{"field": "name", "before": "beta-testers", "after": "beta"},
               {"field": "description", "before": "early access", "after": null}])
    );
    let now = app.admin_req(Method::GET, &url, None).await;
    assert_eq!(now["name"], "beta");
    assert_eq!(now["description"], Value::Null);
    assert_eq!(now["rules"], original);
    assert_eq!(now["rules"], created["rules"]);
    let audit = app
        .admin_req(Method::GET, "/api/v1/audit/?page_size=1", None)
        .await;
    assert!(
        audit["results"][0]["log"]
            .as_str()
            .unwrap()
            .contains("restored to version"),
        "{audit}"
    );
    // The SDK sees it: pro in Germany is out again, beta anywhere is in.
    app.publish().await;
    assert!(!sdk_enabled(&app, &key, "p-de", "pro", "DE").await);
    assert!(sdk_enabled(&app, &key, "b-fr", "beta", "FR").await);

    // A restore validated like a direct edit: a name taken since is refused, nothing written.
    app.post(
        &format!("/api/v1/projects/{project}/segments/"),
        json!({"name": "beta-testers", "rules": []}),
    )
    .await;
    let before = written(&app, &url, &versions).await;
    let (s, body) = call(&app, &bob, Method::POST, &restore(ids[0]), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(written(&app, &url, &versions).await, before);

    // Unknown ids and versions of another segment are 404.
    let other = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "other", "rules": []}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let other_versions = format!("/api/v1/projects/{project}/segments/{other}/versions/");
    for path in [
        format!("{other_versions}{}/", ids[0]),
        format!("{other_versions}{}/restore/", ids[0]),
        format!("/api/v1/projects/{project}/segments/999999/versions/"),
    ] {
        let m = if path.ends_with("restore/") {
            Method::POST
        } else {
            Method::GET
        };
        let r = app.admin_raw(m, &path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }

    // Deleting the segment ends its history with who deleted it; it stays readable, and its
    // versions cannot be restored.
    ok(call(&app, &ada, Method::DELETE, &url, None).await);
    let list = ok(call(&app, &carol, Method::GET, &versions, None).await);
    assert_eq!(list["count"], 6);
    assert_eq!(list["results"][0]["kind"], "deleted");
    assert_eq!(list["results"][0]["author"], "ada@example.com");
    let (s, body) = call(&app, &bob, Method::POST, &restore(ids[3]), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("deleted"), "{body}");
}

#[tokio::test]
async fn a_definition_written_outside_the_versioned_paths_is_kept_as_a_baseline() {
    let app = EdgeApp::new().await;
    let (project, _, _) = app.setup().await;
    let segment = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "vip", "rules": []}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    // As an import (or a version of Flagstone before history) would leave it.
    {
        let mut tx = app.t.store.write().await.unwrap();
        match &mut tx {
            flagstone_store::Tx::Postgres(t) => {
                sqlx::query("UPDATE segments SET name = 'vip-imported' WHERE id = $1")
                    .bind(segment)
                    .execute(&mut **t)
                    .await
                    .unwrap();
            }
            flagstone_store::Tx::Sqlite(t, _) => {
                sqlx::query("UPDATE segments SET name = 'vip-imported' WHERE id = $1")
                    .bind(segment)
                    .execute(&mut **t)
                    .await
                    .unwrap();
            }
        }
        tx.commit().await.unwrap();
    }
    let url = format!("/api/v1/projects/{project}/segments/{segment}/");
    app.admin_req(
        Method::PATCH,
        &url,
        Some(json!({"description": "top customers"})),
    )
    .await;
    let list = app
        .admin_req(Method::GET, &format!("{url}versions/"), None)
        .await;
    let kinds: Vec<Value> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!([v["kind"], v["author"].is_null()]))
        .collect();
    assert_eq!(
        kinds,
        vec![
            json!(["change", false]),
            json!(["baseline", true]),
            json!(["created", false])
        ]
    );
    let baseline = list["results"][1]["id"].as_i64().unwrap();
    let d = app
        .admin_req(Method::GET, &format!("{url}versions/{baseline}/"), None)
        .await;
    assert_eq!(
        d["diff"]["fields_changed"],
        json!([{"field": "name", "before": "vip", "after": "vip-imported"}])
    );
}
