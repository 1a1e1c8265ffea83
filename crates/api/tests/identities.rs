//! Identities, traits and identity overrides through the admin API, and the store functions the
//! SDK edge uses (`persist_sdk_traits`, `load_identity`).

mod common;

use axum::http::StatusCode;
use common::TestApp;
use flagstone_store::identities;
use serde_json::{json, Value};

async fn create_identity(app: &TestApp, key: &str, identifier: &str) -> i64 {
    let (s, i) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({ "identifier": identifier }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{i}");
    i["id"].as_i64().unwrap()
}

async fn create_feature(app: &TestApp, project: i64, name: &str) -> i64 {
    let (s, f) = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({ "name": name }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    f["id"].as_i64().unwrap()
}

async fn environment_id(app: &TestApp, key: &str) -> i64 {
    let (_, e) = app.get(&format!("/api/v1/environments/{key}/")).await;
    e["id"].as_i64().unwrap()
}

async fn set_limits(app: &TestApp, project: i64, limits: Value) {
    let (s, p) = app
        .patch(
            &format!("/api/v1/projects/{project}/"),
            json!({ "limits": limits }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
}

/// Revision and audit count, to check a change did (or did not) touch them.
async fn marks(app: &TestApp, key: &str) -> (i64, i64) {
    (app.revision(key).await, app.audit_count().await)
}

#[tokio::test]
async fn identity_crud_pagination_and_prefix_search() {
    let app = TestApp::new().await;
    let (_, key) = app.project_with_env().await;
    let base = format!("/api/v1/environments/{key}/identities");
    let (rev, audit) = marks(&app, &key).await;

    let mut ids = Vec::new();
    for name in ["user-1", "user-2", "user-3", "admin-1", "admin-2"] {
        ids.push(create_identity(&app, &key, name).await);
    }
    // Identities are not published: audited, no revision bump.
    assert_eq!(marks(&app, &key).await, (rev, audit + 5));

    let (s, list) = app.get(&format!("{base}/?page_size=2")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["count"], 5);
    assert_eq!(list["results"].as_array().unwrap().len(), 2);
    assert_eq!(list["results"][0]["identifier"], "user-1");
    assert!(list["next"].as_str().unwrap().contains("page=2"));
    let (_, last) = app.get(&format!("{base}/?page_size=2&page=3")).await;
    assert_eq!(last["results"][0]["identifier"], "admin-2");
    assert!(last["next"].is_null());

    let (_, users) = app.get(&format!("{base}/?q=user")).await;
    assert_eq!(users["count"], 3);
    let (_, none) = app.get(&format!("{base}/?q=User")).await;
    assert_eq!(none["count"], 0, "prefix search is case-sensitive");
    let (_, one) = app.get(&format!("{base}/?q=admin-2")).await;
    assert_eq!(one["count"], 1);

    let (s, i) = app.get(&format!("{base}/{}/", ids[0])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(i["identifier"], "user-1");
    assert_eq!(i["environment"], environment_id(&app, &key).await);

    let (rev, audit) = marks(&app, &key).await;
    let (s, _) = app.delete(&format!("{base}/{}/", ids[0])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(marks(&app, &key).await, (rev, audit + 1));
    let (s, body) = app.get(&format!("{base}/{}/", ids[0])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (s, _) = app.delete(&format!("{base}/{}/", ids[0])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_identities_are_refused_and_write_nothing() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let base = format!("/api/v1/environments/{key}/identities/");
    create_identity(&app, &key, "alice").await;
    let before = marks(&app, &key).await;

    let (s, body) = app.post(&base, json!({"identifier": "alice"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "conflict");
    assert_eq!(body["field"], "identifier");

    for bad in [json!(""), json!("x".repeat(2001))] {
        let (s, body) = app.post(&base, json!({ "identifier": bad })).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid");
        assert_eq!(body["field"], "identifier");
    }
    for bad in [
        json!({"identifier": 5}),
        json!({"identifier": "b", "x": 1}),
        json!({}),
    ] {
        let (s, body) = app.post(&base, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_json");
    }
    let (s, body) = app.get(&format!("{base}not-a-number/")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, _) = app
        .post(
            "/api/v1/environments/no-such-env-key/identities/",
            json!({"identifier": "a"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(marks(&app, &key).await, before);

    // 2000 characters is fine; the same identifier in another environment too.
    create_identity(&app, &key, &"é".repeat(2000)).await;
    let (_, other) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "staging", "project": project}),
        )
        .await;
    create_identity(&app, other["api_key"].as_str().unwrap(), "alice").await;
}

#[tokio::test]
async fn an_identity_of_another_environment_is_not_found() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let (_, other) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "staging", "project": project}),
        )
        .await;
    let other = other["api_key"].as_str().unwrap();
    let id = create_identity(&app, &key, "alice").await;
    let feature = create_feature(&app, project, "banner").await;
    let (s, o) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/{id}/featurestates/"),
            json!({"feature": feature, "enabled": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let before = marks(&app, other).await;

    let there = format!("/api/v1/environments/{other}/identities/{id}");
    for path in [
        format!("{there}/"),
        format!("{there}/traits/"),
        format!("{there}/featurestates/"),
        format!("{there}/featurestates/{}/", o["id"]),
    ] {
        let (s, _) = app.get(&path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _) = app
        .post(
            &format!("{there}/traits/"),
            json!({"trait_key": "a", "trait_value": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .post(
            &format!("{there}/featurestates/"),
            json!({"feature": feature}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete(&format!("{there}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(marks(&app, other).await, before);
}

#[tokio::test]
async fn traits_keep_their_types_and_null_deletes() {
    let app = TestApp::new().await;
    let (_, key) = app.project_with_env().await;
    let id = create_identity(&app, &key, "alice").await;
    let base = format!("/api/v1/environments/{key}/identities/{id}/traits");
    let (rev, audit) = marks(&app, &key).await;

    for (k, v) in [
        ("plan", json!("premium")),
        ("age", json!(42)),
        ("ratio", json!(0.25)),
        ("whole", json!(2.0)),
        ("beta", json!(true)),
        ("numeric_string", json!("7")),
    ] {
        let (s, t) = app
            .post(
                &format!("{base}/"),
                json!({"trait_key": k, "trait_value": v}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        assert_eq!(t["trait_key"], k);
        assert_eq!(t["trait_value"], v);
    }
    // Traits are not published: audited, no revision bump.
    assert_eq!(marks(&app, &key).await, (rev, audit + 6));

    let (s, list) = app.get(&format!("{base}/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["count"], 6);
    let by_key = |k: &str| {
        list["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["trait_key"] == k)
            .unwrap()["trait_value"]
            .clone()
    };
    assert!(by_key("age").is_i64());
    assert!(by_key("ratio").is_f64());
    assert!(by_key("whole").is_f64(), "2.0 stays a float");
    assert_eq!(by_key("beta"), json!(true));
    assert_eq!(by_key("numeric_string"), json!("7"));
    let (_, page) = app.get(&format!("{base}/?page_size=2&page=1")).await;
    assert_eq!(page["results"][0]["trait_key"], "age", "ordered by key");
    assert!(page["next"].is_string());

    // Replace a value, changing its type.
    let (s, t) = app
        .post(
            &format!("{base}/"),
            json!({"trait_key": "age", "trait_value": "old"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(t["trait_value"], "old");
    let (s, t) = app
        .patch(&format!("{base}/age/"), json!({"trait_value": 43}))
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["trait_value"], 43);
    let (s, t) = app.get(&format!("{base}/age/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["trait_value"], 43);

    // null deletes, through POST and PATCH.
    let (s, body) = app
        .post(
            &format!("{base}/"),
            json!({"trait_key": "plan", "trait_value": null}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let (s, _) = app.get(&format!("{base}/plan/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .patch(&format!("{base}/age/"), json!({"trait_value": null}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.delete(&format!("{base}/beta/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.delete(&format!("{base}/beta/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .patch(&format!("{base}/beta/"), json!({"trait_value": 1}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "PATCH does not create");

    // Many at once: sets and deletes in one change, one audit entry.
    let (_, audit) = marks(&app, &key).await;
    let (s, set) = app
        .put(
            &format!("{base}/"),
            json!([
                {"trait_key": "ratio", "trait_value": null},
                {"trait_key": "country", "trait_value": "fr"},
                {"trait_key": "whole", "trait_value": false}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{set}");
    assert_eq!(set.as_array().unwrap().len(), 2);
    assert_eq!(set[0]["trait_key"], "country");
    assert_eq!(marks(&app, &key).await, (rev, audit + 1));
    let (_, list) = app.get(&format!("{base}/")).await;
    let keys: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trait_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["country", "numeric_string", "whole"]);

    // A trait key with a slash is addressed percent-encoded.
    let (s, _) = app
        .post(
            &format!("{base}/"),
            json!({"trait_key": "a/b", "trait_value": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, t) = app.get(&format!("{base}/a%2Fb/")).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["trait_key"], "a/b");

    // Deleting the identity deletes its traits; no revision bump without overrides.
    let (rev, _) = marks(&app, &key).await;
    let (s, _) = app
        .delete(&format!("/api/v1/environments/{key}/identities/{id}/"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.revision(&key).await, rev);
}

#[tokio::test]
async fn bad_traits_are_refused_and_write_nothing() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    set_limits(&app, project, json!({"max_trait_value_chars": 5})).await;
    let id = create_identity(&app, &key, "alice").await;
    let base = format!("/api/v1/environments/{key}/identities/{id}/traits/");
    let (s, _) = app
        .post(&base, json!({"trait_key": "keep", "trait_value": "v"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let before = marks(&app, &key).await;

    let (s, body) = app
        .post(
            &base,
            json!({"trait_key": "name", "trait_value": "toolong"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "limit_exceeded");
    assert_eq!(body["limit"], "max_trait_value_chars");
    assert_eq!(body["max"], 5);

    for (k, v) in [
        (json!("obj"), json!({"a": 1})),
        (json!("arr"), json!([1, 2])),
        (json!(""), json!("v")),
        (json!("k".repeat(201)), json!("v")),
    ] {
        let (s, body) = app
            .post(&base, json!({"trait_key": k, "trait_value": v}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{k}: {body}");
        assert_eq!(body["error"], "invalid", "{body}");
    }
    for bad in [
        json!({"trait_key": "a"}),
        json!({"trait_key": 1, "trait_value": 1}),
        json!({"trait_key": "a", "trait_value": 1, "extra": true}),
    ] {
        let (s, body) = app.post(&base, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_json");
    }
    // A batch with one bad entry writes none of them; so does a key listed twice.
    let (s, body) = app
        .put(
            &base,
            json!([
                {"trait_key": "keep", "trait_value": null},
                {"trait_key": "fine", "trait_value": 1},
                {"trait_key": "bad", "trait_value": "toolong"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "limit_exceeded");
    let (s, body) = app
        .put(
            &base,
            json!([{"trait_key": "x", "trait_value": 1}, {"trait_key": "x", "trait_value": 2}]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "trait_key");
    let (s, _) = app.put(&base, json!([])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .patch(&format!("{base}keep/"), json!({"trait_value": "toolong"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    assert_eq!(marks(&app, &key).await, before);
    let (_, list) = app.get(&base).await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["trait_value"], "v");

    // The limit counts characters, not bytes.
    let (s, t) = app
        .post(
            &base,
            json!({"trait_key": "accents", "trait_value": "ééééé"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
}

#[tokio::test]
async fn identity_overrides_crud_bumps_revision_and_audits() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let feature = create_feature(&app, project, "banner").await;
    let other_feature = create_feature(&app, project, "theme").await;
    let id = create_identity(&app, &key, "alice").await;
    let env_id = environment_id(&app, &key).await;
    let base = format!("/api/v1/environments/{key}/identities/{id}/featurestates");

    let (rev, audit) = marks(&app, &key).await;
    let (s, o) = app
        .post(
            &format!("{base}/"),
            json!({"feature": feature, "enabled": true, "feature_state_value": "blue"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let oid = o["id"].as_i64().unwrap();
    assert_eq!(o["feature"], feature);
    assert_eq!(o["identity"], id);
    assert_eq!(o["environment"], env_id);
    assert_eq!(o["enabled"], true);
    assert_eq!(o["feature_state_value"], "blue");
    assert!(o["updated_at"].is_i64());
    assert_eq!(marks(&app, &key).await, (rev + 1, audit + 1));

    // Defaults: disabled, null value.
    let (s, o2) = app
        .post(&format!("{base}/"), json!({"feature": other_feature}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o2}");
    assert_eq!(o2["enabled"], false);
    assert!(o2["feature_state_value"].is_null());

    let (s, list) = app.get(&format!("{base}/?page_size=1")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["count"], 2);
    assert_eq!(list["results"][0]["id"], oid);
    assert!(list["next"].is_string());
    let (s, got) = app.get(&format!("{base}/{oid}/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, o);

    let (rev, audit) = marks(&app, &key).await;
    let (s, u) = app
        .patch(
            &format!("{base}/{oid}/"),
            json!({"feature_state_value": 42}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["feature_state_value"], 42);
    assert_eq!(u["enabled"], true, "absent fields keep their value");
    let (s, u) = app
        .patch(
            &format!("{base}/{oid}/"),
            json!({"feature": feature, "enabled": false, "feature_state_value": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["enabled"], false);
    assert!(u["feature_state_value"].is_null());
    assert_eq!(marks(&app, &key).await, (rev + 2, audit + 2));

    let (s, _) = app.delete(&format!("{base}/{oid}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(marks(&app, &key).await, (rev + 3, audit + 3));
    let (s, _) = app.get(&format!("{base}/{oid}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete(&format!("{base}/{oid}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The audit log records the override with its state.
    let (_, log) = app.get("/api/v1/audit/?page_size=1").await;
    assert_eq!(log["results"][0]["resource_type"], "identity_override");
    assert_eq!(log["results"][0]["action"], "deleted");

    // Deleting an identity that still has an override changes what SDKs receive.
    let (rev, audit) = marks(&app, &key).await;
    let (s, _) = app
        .delete(&format!("/api/v1/environments/{key}/identities/{id}/"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(marks(&app, &key).await, (rev + 1, audit + 1));
}

#[tokio::test]
async fn rejected_identity_override_changes_write_nothing() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let feature = create_feature(&app, project, "banner").await;
    let second = create_feature(&app, project, "theme").await;
    let (_, org) = app
        .post("/api/v1/organisations/", json!({"name": "O2"}))
        .await;
    let (_, foreign_project) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Other", "organisation": org["id"]}),
        )
        .await;
    let foreign = create_feature(&app, foreign_project["id"].as_i64().unwrap(), "x").await;
    set_limits(
        &app,
        project,
        json!({"max_identity_overrides": 1, "max_feature_value_bytes": 10}),
    )
    .await;
    let alice = create_identity(&app, &key, "alice").await;
    let bob = create_identity(&app, &key, "bob").await;
    let base = format!("/api/v1/environments/{key}/identities/{alice}/featurestates/");
    let (s, o) = app
        .post(&base, json!({"feature": feature, "enabled": true}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let before = marks(&app, &key).await;

    let (s, body) = app.post(&base, json!({"feature": feature})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "conflict", "{body}");
    assert_eq!(body["field"], "feature");

    for f in [foreign, 999_999] {
        let (s, body) = app.post(&base, json!({"feature": f})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid");
        assert_eq!(body["field"], "feature");
    }

    let (s, body) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/{bob}/featurestates/"),
            json!({"feature": feature}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "limit_exceeded");
    assert_eq!(body["limit"], "max_identity_overrides");
    assert_eq!(body["max"], 1);

    let oid = o["id"].as_i64().unwrap();
    let (s, body) = app
        .patch(
            &format!("{base}{oid}/"),
            json!({"feature_state_value": "far too long a value"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["limit"], "max_feature_value_bytes");
    let (s, body) = app
        .patch(
            &format!("{base}{oid}/"),
            json!({"feature_state_value": {"a": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "feature_state_value");
    let (s, body) = app
        .patch(&format!("{base}{oid}/"), json!({"feature": second}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "feature");
    for bad in [
        json!({"feature": "banner"}),
        json!({"enabled": true}),
        json!({"feature": feature, "colour": 1}),
    ] {
        let (s, body) = app.post(&base, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_json");
    }
    let (s, body) = app
        .patch(&format!("{base}{oid}/"), json!({"enabled": "yes"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_json");

    assert_eq!(marks(&app, &key).await, before);
    let (_, got) = app.get(&format!("{base}{oid}/")).await;
    assert_eq!(got, o);
}

#[tokio::test]
async fn sdk_traits_are_persisted_without_audit_or_revision() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    set_limits(&app, project, json!({"max_trait_value_chars": 10})).await;
    let env = environment_id(&app, &key).await;
    let before = marks(&app, &key).await;
    let t = |k: &str, v: Option<Value>| (k.to_string(), v);

    // Creates the identity on first sight.
    let mut tx = app.store().write().await.unwrap();
    let created = identities::persist_sdk_traits(
        &mut tx,
        env,
        "sdk-user",
        &[
            t("plan", Some(json!("gold"))),
            t("age", Some(json!(42))),
            t("ratio", Some(json!(0.5))),
            t("beta", Some(json!(true))),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.identifier, "sdk-user");

    // The same identity next time; null deletes; a key listed twice: the last write wins.
    let mut tx = app.store().write().await.unwrap();
    let again = identities::persist_sdk_traits(
        &mut tx,
        env,
        "sdk-user",
        &[
            t("plan", None),
            t("age", Some(json!(43))),
            t("beta", Some(json!(true))),
            t("country", Some(json!("fr"))),
            t("country", Some(json!("de"))),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again.id, created.id);

    let mut tx = app.store().read().await.unwrap();
    let (identity, traits, overrides) = identities::load_identity(&mut tx, env, "sdk-user")
        .await
        .unwrap()
        .expect("identity exists");
    drop(tx);
    assert_eq!(identity, created);
    assert!(overrides.is_empty());
    let got: Vec<(String, Value)> = traits
        .into_iter()
        .map(|t| (t.trait_key, t.trait_value))
        .collect();
    assert_eq!(
        got,
        [
            ("age".to_string(), json!(43)),
            ("beta".to_string(), json!(true)),
            ("country".to_string(), json!("de")),
            ("ratio".to_string(), json!(0.5)),
        ]
    );
    assert!(got[3].1.is_f64());

    // Invalid input writes nothing (not even the identity).
    for bad in [
        vec![
            t("ok", Some(json!(1))),
            t("long", Some(json!("x".repeat(11)))),
        ],
        vec![t("", Some(json!(1)))],
        vec![t("obj", Some(json!({"a": 1})))],
    ] {
        let mut tx = app.store().write().await.unwrap();
        let err = identities::persist_sdk_traits(&mut tx, env, "new-user", &bad).await;
        assert!(err.is_err(), "{bad:?}");
    }
    let err = {
        let mut tx = app.store().write().await.unwrap();
        identities::persist_sdk_traits(&mut tx, env, "", &[]).await
    };
    assert!(err.is_err());
    let mut tx = app.store().read().await.unwrap();
    assert!(identities::load_identity(&mut tx, env, "new-user")
        .await
        .unwrap()
        .is_none());
    drop(tx);

    // Nothing here is configuration: no audit entry, no revision bump.
    assert_eq!(marks(&app, &key).await, before);

    // The admin API sees what the edge wrote.
    let (_, list) = app
        .get(&format!(
            "/api/v1/environments/{key}/identities/{}/traits/",
            created.id
        ))
        .await;
    assert_eq!(list["count"], 4);
}

#[tokio::test]
async fn the_edge_loads_identities_with_their_overrides() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let env = environment_id(&app, &key).await;
    let banner = create_feature(&app, project, "banner").await;
    let theme = create_feature(&app, project, "theme").await;
    let alice = create_identity(&app, &key, "alice").await;
    create_identity(&app, &key, "no-overrides").await;
    let bob = create_identity(&app, &key, "bob").await;
    for (identity, feature, value) in [
        (alice, theme, json!("dark")),
        (alice, banner, json!(1.5)),
        (bob, banner, json!(false)),
    ] {
        let (s, o) = app
            .post(
                &format!("/api/v1/environments/{key}/identities/{identity}/featurestates/"),
                json!({"feature": feature, "enabled": true, "feature_state_value": value}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
    }

    let mut tx = app.store().read().await.unwrap();
    let (identity, traits, overrides) = identities::load_identity(&mut tx, env, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.id, alice);
    assert!(traits.is_empty());
    let features: Vec<i64> = overrides.iter().map(|o| o.feature).collect();
    assert_eq!(features, [banner, theme], "ordered by feature");
    assert_eq!(overrides[0].feature_state_value, json!(1.5));
    assert!(!overrides[0].uuid.is_empty());

    let first = identities::sdk::environment_overrides_page(&mut tx, env, 0, 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0.identifier, "alice");
    assert_eq!(first[0].1.len(), 2);
    let next = identities::sdk::environment_overrides_page(&mut tx, env, first[0].0.id, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "identities without overrides are skipped");
    assert_eq!(next[0].0.identifier, "bob");
    let rest = identities::sdk::environment_overrides_page(&mut tx, env, next[0].0.id, 10)
        .await
        .unwrap();
    assert!(rest.is_empty());
}
