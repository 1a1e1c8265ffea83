//! History and rollback of a feature's configuration in an environment, end to end: changes by
//! two users through the admin API, the history with every step and its author, a diff, a
//! restore of an old version checked through the admin API and through the SDK endpoints
//! serving the published document, refusals that write nothing, and bad ids.

mod common;

use axum::http::{Method, StatusCode};
use common::people::{call, user};
use common::EdgeApp;
use flagstone_store::PageRequest;
use serde_json::{json, Value};

/// What a refused request must not have written: (revision, audit entries, versions).
async fn written(app: &EdgeApp, key: &str, env: i64) -> (i64, i64, i64) {
    let mut tx = app.t.store.read().await.unwrap();
    let e = flagstone_store::environments::get_by_key(&mut tx, key)
        .await
        .unwrap();
    let audit = flagstone_store::audit::list(&mut tx, None, PageRequest::new(1, 1))
        .await
        .unwrap()
        .count;
    let versions = flagstone_store::history::storage(&mut tx, env)
        .await
        .unwrap()
        .versions;
    (e.revision, audit, versions)
}

fn flag<'a>(flags: &'a Value, name: &str) -> &'a Value {
    flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == name)
        .unwrap_or_else(|| panic!("no flag {name} in {flags}"))
}

/// The flag `name` as the SDK sees it: environment flags, and for an identity with `plan`.
async fn sdk_flag(app: &EdgeApp, key: &str, name: &str, plan: &str) -> (Value, Value) {
    let env = app
        .sdk(Method::GET, "/api/v1/flags/", Some(key), None, &[])
        .await;
    assert_eq!(env.status, StatusCode::OK);
    let ident = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(key),
            Some(json!({"identifier": format!("user-{plan}"),
                        "traits": [{"trait_key": "plan", "trait_value": plan}]})),
            &[],
        )
        .await;
    assert_eq!(ident.status, StatusCode::OK);
    let e = flag(&env.json(), name).clone();
    let i = flag(&ident.json()["flags"], name).clone();
    (
        json!([e["enabled"], e["feature_state_value"]]),
        json!([i["enabled"], i["feature_state_value"]]),
    )
}

#[tokio::test]
async fn changes_by_two_users_are_versioned_and_an_old_version_is_restored_exactly() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    let organisation = app
        .admin_req(Method::GET, &format!("/api/v1/projects/{project}/"), None)
        .await["organisation"]
        .as_i64()
        .unwrap();
    let env_id = app
        .admin_req(Method::GET, &format!("/api/v1/environments/{key}/"), None)
        .await["id"]
        .as_i64()
        .unwrap();
    let feature = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "banner", "initial_value": "v0"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let segment = |name: &str, plan: &str| {
        json!({"name": name, "rules": [{"type": "ALL", "rules": [{"type": "ANY", "conditions": [
            {"operator": "EQUAL", "property": "plan", "value": plan}]}]}]})
    };
    let pro = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            segment("pro", "pro"),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let beta = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            segment("beta", "beta"),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let state = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/featurestates/?feature={feature}"),
            None,
        )
        .await["results"][0]["id"]
        .as_i64()
        .unwrap();

    // Two editors, a reader, and one who may change the default but not overrides.
    let grants = format!("/api/v1/environments/{key}/user-permissions/");
    let grant = |user: i64, permissions: Value| {
        app.post(&grants, json!({"user": user, "permissions": permissions}))
    };
    let edit = json!([
        "VIEW_ENVIRONMENT",
        "UPDATE_FEATURE_STATE",
        "MANAGE_SEGMENT_OVERRIDES"
    ]);
    let (ada_id, ada) = user(&app, organisation, "ada@example.com", "USER").await;
    let (bob_id, bob) = user(&app, organisation, "bob@example.com", "USER").await;
    let (carol_id, carol) = user(&app, organisation, "carol@example.com", "USER").await;
    let (dave_id, dave) = user(&app, organisation, "dave@example.com", "USER").await;
    grant(ada_id, edit.clone()).await;
    grant(bob_id, edit).await;
    grant(carol_id, json!(["VIEW_ENVIRONMENT"])).await;
    grant(dave_id, json!(["VIEW_ENVIRONMENT", "UPDATE_FEATURE_STATE"])).await;

    let fs = format!("/api/v1/environments/{key}/featurestates/{state}/");
    let create_override =
        format!("/api/v1/environments/{key}/features/{feature}/create-segment-override/");
    let ok = |(s, v): (StatusCode, Value)| {
        assert!(s.is_success(), "{s} {v}");
        v
    };
    // 1. ada turns it on with v1; 2. ada overrides it for pro.
    ok(call(
        &app,
        &ada,
        Method::PATCH,
        &fs,
        Some(json!({"enabled": true, "feature_state_value": "v1"})),
    )
    .await);
    let pro_override = ok(call(
        &app,
        &ada,
        Method::POST,
        &create_override,
        Some(json!({"segment": pro, "enabled": true, "feature_state_value": "pro-1"})),
    )
    .await)["id"]
        .as_i64()
        .unwrap();
    // 3. bob changes the default; 4. bob puts a beta override first.
    ok(call(
        &app,
        &bob,
        Method::PATCH,
        &fs,
        Some(json!({"feature_state_value": "v2"})),
    )
    .await);
    ok(call(&app, &bob, Method::POST, &create_override,
        Some(json!({"segment": beta, "enabled": false, "feature_state_value": "beta", "priority": 0}))).await);
    // 5. ada changes the pro override; 6. bob deletes it.
    let pro_url = format!("/api/v1/environments/{key}/segment-overrides/{pro_override}/");
    ok(call(
        &app,
        &ada,
        Method::PATCH,
        &pro_url,
        Some(json!({"feature_state_value": "pro-2"})),
    )
    .await);
    ok(call(&app, &bob, Method::DELETE, &pro_url, None).await);

    let versions = format!("/api/v1/environments/{key}/features/{feature}/versions/");
    let list = ok(call(&app, &carol, Method::GET, &versions, None).await);
    let authors: Vec<Value> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!([v["kind"], v["author"]]))
        .collect();
    assert_eq!(
        authors,
        vec![
            json!(["change", "bob@example.com"]),
            json!(["change", "ada@example.com"]),
            json!(["change", "bob@example.com"]),
            json!(["change", "bob@example.com"]),
            json!(["change", "ada@example.com"]),
            json!(["change", "ada@example.com"]),
            // The configuration as created, before the first versioned change.
            json!(["baseline", null]),
        ],
        "{list}"
    );
    assert_eq!(list["count"], 7);
    let ids: Vec<i64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    let revisions: Vec<i64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["revision"].as_i64().unwrap())
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] > w[1]), "{revisions:?}");
    // Times are ISO-8601 strings, as every admin timestamp; newest first.
    let times: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["created_at"].as_str().unwrap())
        .collect();
    assert!(times.iter().all(|t| t.ends_with('Z')), "{times:?}");
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // Paginated like the other lists.
    let page = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}?page=2&page_size=3"),
        None,
    )
    .await);
    assert_eq!(page["count"], 7);
    assert_eq!(page["results"][0]["id"], ids[3]);
    assert!(
        page["next"].is_string() && page["previous"].is_string(),
        "{page}"
    );

    // Step 5's diff: the pro override's value.
    let five = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}{}/", ids[1]),
        None,
    )
    .await);
    assert_eq!(five["previous_version"], ids[2]);
    assert_eq!(
        five["diff"],
        json!({"fields_changed": [], "overrides_added": [], "overrides_removed": [],
               "overrides_changed": [{"segment": pro, "fields_changed": [
                   {"field": "feature_state_value", "before": "pro-1", "after": "pro-2"}]}]}),
    );
    // Step 4's diff: beta added first, pro moved down.
    let four = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}{}/", ids[2]),
        None,
    )
    .await);
    assert_eq!(four["diff"]["overrides_added"][0]["segment"], beta);
    assert_eq!(
        four["diff"]["overrides_changed"][0]["fields_changed"][0]["field"],
        "priority"
    );
    let baseline = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}{}/", ids[6]),
        None,
    )
    .await);
    assert_eq!(baseline["diff"], Value::Null);
    assert_eq!(baseline["configuration"]["feature_state_value"], "v0");

    app.publish().await;
    assert_eq!(
        sdk_flag(&app, &key, "banner", "pro").await,
        (json!([true, "v2"]), json!([true, "v2"]))
    );
    assert_eq!(
        sdk_flag(&app, &key, "banner", "beta").await.1,
        json!([false, "beta"])
    );

    // Step 2's version (v1, only the pro override with pro-1), to restore.
    let two = ids[4];
    let target = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("{versions}{two}/"),
        None,
    )
    .await)["configuration"]
        .clone();
    assert_eq!(target["feature_state_value"], "v1");

    // A reader may not restore; dave may change the default but not overrides. Neither writes.
    let restore = format!("{versions}{two}/restore/");
    let before = written(&app, &key, env_id).await;
    let (s, body) = call(&app, &carol, Method::POST, &restore, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["missing_permission"], "UPDATE_FEATURE_STATE");
    let (s, body) = call(&app, &dave, Method::POST, &restore, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["missing_permission"], "MANAGE_SEGMENT_OVERRIDES");
    assert_eq!(written(&app, &key, env_id).await, before);

    // Bad ids are 404 and write nothing.
    for path in [
        format!("{versions}999999/"),
        format!("{versions}999999/restore/"),
        format!("/api/v1/environments/{key}/features/999999/versions/"),
        format!("/api/v1/environments/{key}/features/999999/versions/{two}/"),
        format!("/api/v1/environments/{key}/features/999999/versions/{two}/restore/"),
    ] {
        let method = if path.ends_with("restore/") {
            Method::POST
        } else {
            Method::GET
        };
        let (s, body) = call(&app, &ada, method, &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    assert_eq!(written(&app, &key, env_id).await, before);

    // ada restores step 2: a new change, recorded as a version, with exactly that configuration.
    let restored = ok(call(&app, &ada, Method::POST, &restore, None).await);
    assert_eq!(restored["kind"], "restore");
    assert_eq!(restored["author"], "ada@example.com");
    assert_eq!(restored["restored_from"], two);
    assert_eq!(restored["configuration"], target);
    let after = written(&app, &key, env_id).await;
    assert_eq!(after.0, before.0 + 1, "one new revision");
    assert!(after.1 > before.1, "audited");
    assert_eq!(after.2, before.2 + 1, "one new version");
    let list = ok(call(&app, &carol, Method::GET, &versions, None).await);
    assert_eq!(list["count"], 8);
    assert_eq!(list["results"][0]["id"], restored["id"]);

    // The admin API shows it…
    let s = ok(call(&app, &carol, Method::GET, &fs, None).await);
    assert_eq!(
        (s["enabled"].clone(), s["feature_state_value"].clone()),
        (json!(true), json!("v1"))
    );
    let overrides = ok(call(
        &app,
        &carol,
        Method::GET,
        &format!("/api/v1/environments/{key}/segment-overrides/?feature={feature}"),
        None,
    )
    .await);
    let shown: Vec<Value> = overrides["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            json!([
                o["segment"],
                o["priority"],
                o["enabled"],
                o["feature_state_value"]
            ])
        })
        .collect();
    assert_eq!(shown, vec![json!([pro, 0, true, "pro-1"])]);
    // …and so do the SDK endpoints once published.
    app.publish().await;
    assert_eq!(
        sdk_flag(&app, &key, "banner", "pro").await,
        (json!([true, "v1"]), json!([true, "pro-1"]))
    );
    assert_eq!(
        sdk_flag(&app, &key, "banner", "beta").await.1,
        json!([true, "v1"])
    );

    // Restoring what is already there is still a change (a new revision and version).
    let again = ok(call(
        &app,
        &bob,
        Method::POST,
        &format!("{versions}{}/restore/", restored["id"]),
        None,
    )
    .await);
    assert_eq!(again["diff"]["fields_changed"], json!([]));
    assert_eq!(again["author"], "bob@example.com");
}
