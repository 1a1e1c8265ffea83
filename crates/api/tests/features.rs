//! Features, multivariate options and environment feature states over HTTP: CRUD, pagination,
//! validation, limits, and that every change bumps revisions and writes audit (a rejected one
//! neither).

mod common;

use axum::http::StatusCode;
use common::TestApp;
use serde_json::{json, Value};

fn features_url(project: i64) -> String {
    format!("/api/v1/projects/{project}/features/")
}

fn options_url(project: i64, feature: &Value) -> String {
    format!("/api/v1/projects/{project}/features/{feature}/mv-options/")
}

async fn create_feature(app: &TestApp, project: i64, body: Value) -> Value {
    let (s, f) = app.post(&features_url(project), body).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    f
}

/// The default state of `feature` in the environment `key`.
async fn state_of(app: &TestApp, key: &str, feature: &Value) -> Value {
    let (s, list) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={feature}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["count"], 1, "{list}");
    list["results"][0].clone()
}

/// Asserts a rejected request left revision and audit log untouched.
async fn assert_nothing_written(app: &TestApp, key: &str, rev: i64, audit: i64) {
    assert_eq!(app.revision(key).await, rev, "revision changed");
    assert_eq!(app.audit_count().await, audit, "audit written");
}

#[tokio::test]
async fn feature_crud_bumps_revision_and_audits() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;

    let mut tag_ids = Vec::new();
    for label in ["team-a", "beta"] {
        let (s, tag) = app
            .post(
                &format!("/api/v1/projects/{project}/tags/"),
                json!({"label": label, "color": "#3d4db6"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{tag}");
        tag_ids.push(tag["id"].as_i64().unwrap());
    }
    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let f = create_feature(
        &app,
        project,
        json!({"name": "checkout", "initial_value": 42, "default_enabled": true,
               "description": "new checkout", "tags": [tag_ids[1], tag_ids[0]],
               "is_server_key_only": true}),
    )
    .await;
    assert_eq!(f["type"], "STANDARD");
    assert_eq!(f["initial_value"], 42);
    assert_eq!(f["project"], project);
    assert_eq!(f["tags"], json!(tag_ids));
    assert_eq!(f["multivariate_options"], json!([]));
    assert!(app.revision(&key).await > rev);
    assert_eq!(app.audit_count().await, audit + 1);

    let url = format!("{}{}/", features_url(project), f["id"]);
    let (s, got) = app.get(&url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, f);

    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let (s, upd) = app
        .patch(
            &url,
            json!({"name": "checkout-v2", "initial_value": "x", "description": null, "tags": []}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(upd["name"], "checkout-v2");
    assert_eq!(upd["initial_value"], "x");
    assert!(upd["description"].is_null());
    assert_eq!(
        upd["default_enabled"], true,
        "untouched fields keep their values"
    );
    assert!(app.revision(&key).await > rev);
    assert_eq!(app.audit_count().await, audit + 1);
    // The environment's state keeps the value it was created with.
    assert_eq!(
        state_of(&app, &key, &f["id"]).await["feature_state_value"],
        42
    );

    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let (s, _) = app.delete(&url).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(app.revision(&key).await > rev);
    assert_eq!(app.audit_count().await, audit + 1);
    let (s, body) = app.get(&url).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (_, states) = app
        .get(&format!("/api/v1/environments/{key}/featurestates/"))
        .await;
    assert_eq!(states["count"], 0, "states are deleted with the feature");
}

#[tokio::test]
async fn features_are_paginated_and_searchable() {
    let app = TestApp::new().await;
    let (project, _) = app.project_with_env().await;
    for i in 0..5 {
        create_feature(&app, project, json!({"name": format!("flag_{i}")})).await;
    }
    create_feature(&app, project, json!({"name": "Other"})).await;
    let (s, page) = app
        .get(&format!("{}?page=2&page_size=2", features_url(project)))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["count"], 6);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["results"][0]["name"], "flag_2");
    assert!(page["next"].as_str().unwrap().contains("page=3"));
    assert!(page["previous"].as_str().unwrap().contains("page=1"));

    let (_, found) = app
        .get(&format!("{}?search=OTH", features_url(project)))
        .await;
    assert_eq!(found["count"], 1);
    assert_eq!(found["results"][0]["name"], "Other");
    // LIKE wildcards in the search are literal.
    let (_, none) = app
        .get(&format!("{}?search=%25", features_url(project)))
        .await;
    assert_eq!(none["count"], 0);

    let (s, _) = app.get(&features_url(999_999)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_and_invalid_features_are_refused_without_writing() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    create_feature(&app, project, json!({"name": "dup"})).await;
    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);

    let (s, b) = app
        .post(&features_url(project), json!({"name": "DUP"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"], "conflict");
    assert_eq!(b["field"], "name");

    for (body, field) in [
        (
            json!({"name": "a", "initial_value": {"x": 1}}),
            Some("initial_value"),
        ),
        (
            json!({"name": "a", "initial_value": [1]}),
            Some("initial_value"),
        ),
        (json!({"name": "  "}), Some("name")),
        (json!({"name": "a", "tags": [1, 1]}), Some("tags")),
        (json!({"name": "a", "tags": [999_999]}), Some("tags")),
        (json!({"name": "a", "tags": ["t"]}), None),
        (
            json!({"name": "a", "project": project + 1}),
            Some("project"),
        ),
        (json!({"name": "a", "type": "BOOLEAN"}), None),
        (json!({"name": "a", "default_enabled": "yes"}), None),
        (json!({"name": "a", "tags": "t"}), None),
        (json!({"name": "a", "unknown": 1}), None),
        (json!({"initial_value": 1}), None),
    ] {
        let (s, b) = app.post(&features_url(project), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {b}");
        if let Some(field) = field {
            assert_eq!(b["field"], field, "{body} -> {b}");
        }
    }

    let url = features_url(project);
    let (_, list) = app.get(&url).await;
    let id = &list["results"][0]["id"];
    let (s, b) = app
        .patch(&format!("{url}{id}/"), json!({"is_server_key_only": 1}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_nothing_written(&app, &key, rev, audit).await;
    assert_eq!(list["count"], 1);
}

#[tokio::test]
async fn max_features_limit_is_enforced_at_write_time() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let (s, b) = app
        .patch(
            &format!("/api/v1/projects/{project}/"),
            json!({"limits": {"max_features": 2}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    create_feature(&app, project, json!({"name": "one"})).await;
    create_feature(&app, project, json!({"name": "two"})).await;

    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let (s, b) = app
        .post(&features_url(project), json!({"name": "three"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"], "limit_exceeded");
    assert_eq!(b["limit"], "max_features");
    assert_eq!(b["max"], 2);
    assert_nothing_written(&app, &key, rev, audit).await;
    let (_, list) = app.get(&features_url(project)).await;
    assert_eq!(list["count"], 2);
    let (_, states) = app
        .get(&format!("/api/v1/environments/{key}/featurestates/"))
        .await;
    assert_eq!(
        states["count"], 2,
        "no state was written for the refused feature"
    );
}

#[tokio::test]
async fn lowering_a_limit_below_what_is_used_is_refused_unless_forced() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    for name in ["one", "two", "three"] {
        create_feature(&app, project, json!({"name": name})).await;
    }
    let url = format!("/api/v1/projects/{project}/");
    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let (s, b) = app
        .patch(&url, json!({"limits": {"max_features": 2}}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["field"], "limits.max_features");
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("3 features"), "{detail}");
    assert!(detail.contains("force=true"), "{detail}");
    assert_nothing_written(&app, &key, rev, audit).await;
    let (_, p) = app.get(&url).await;
    assert_eq!(p["limits"]["max_features"], 5000);

    // Exactly what is used is fine; other settings of a project already over a limit too.
    let (s, b) = app
        .patch(&url, json!({"limits": {"max_features": 3}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .patch(
            &format!("{url}?force=true"),
            json!({"limits": {"max_features": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["limits"]["max_features"], 1);
    let (s, b) = app.patch(&url, json!({"name": "renamed"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .post(&features_url(project), json!({"name": "four"}))
        .await;
    assert_eq!(
        (s, b["limit"].as_str()),
        (StatusCode::BAD_REQUEST, Some("max_features"))
    );
}

#[tokio::test]
async fn feature_value_size_is_limited() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    app.patch(
        &format!("/api/v1/projects/{project}/"),
        json!({"limits": {"max_feature_value_bytes": 10}}),
    )
    .await;
    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let long = "x".repeat(11);
    let (s, b) = app
        .post(
            &features_url(project),
            json!({"name": "big", "initial_value": long}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"], "limit_exceeded");
    assert_eq!(b["limit"], "max_feature_value_bytes");
    assert_nothing_written(&app, &key, rev, audit).await;

    let f = create_feature(
        &app,
        project,
        json!({"name": "small", "initial_value": "ok"}),
    )
    .await;
    let state = state_of(&app, &key, &f["id"]).await;
    let state_url = format!("/api/v1/environments/{key}/featurestates/{}/", state["id"]);
    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let (s, b) = app
        .patch(&state_url, json!({"feature_state_value": long}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["limit"], "max_feature_value_bytes");
    let (s, b) = app
        .post(&options_url(project, &f["id"]), json!({"value": long}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["limit"], "max_feature_value_bytes");
    assert_nothing_written(&app, &key, rev, audit).await;
}

#[tokio::test]
async fn default_states_exist_whichever_comes_first() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    // Feature created after the environment.
    let f = create_feature(
        &app,
        project,
        json!({"name": "late", "initial_value": "v", "default_enabled": true}),
    )
    .await;
    let s1 = state_of(&app, &key, &f["id"]).await;
    assert_eq!(s1["enabled"], true);
    assert_eq!(s1["feature_state_value"], "v");
    assert_eq!(s1["feature"], f["id"]);
    assert_eq!(s1["multivariate_feature_state_values"], json!([]));

    // Environment created after the feature.
    let (s, env) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "staging", "project": project}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{env}");
    let key2 = env["api_key"].as_str().unwrap();
    let s2 = state_of(&app, key2, &f["id"]).await;
    assert_eq!(s2["enabled"], true);
    assert_eq!(s2["feature_state_value"], "v");
    assert_eq!(s2["environment"], env["id"]);
    assert_ne!(s1["id"], s2["id"]);

    // A new feature gets a state in both environments, and bumps both.
    let (r1, r2) = (app.revision(&key).await, app.revision(key2).await);
    let g = create_feature(&app, project, json!({"name": "both"})).await;
    assert_eq!(state_of(&app, &key, &g["id"]).await["enabled"], false);
    assert!(state_of(&app, key2, &g["id"]).await["feature_state_value"].is_null());
    assert!(app.revision(&key).await > r1);
    assert!(app.revision(key2).await > r2);
}

#[tokio::test]
async fn feature_states_read_update_and_paginate() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    for i in 0..3 {
        create_feature(&app, project, json!({"name": format!("f{i}")})).await;
    }
    let (s, page) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?page_size=2"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["count"], 3);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert!(page["next"].as_str().unwrap().contains("page=2"));
    let state = page["results"][0].clone();
    for field in [
        "id",
        "feature",
        "environment",
        "enabled",
        "feature_state_value",
        "multivariate_feature_state_values",
        "updated_at",
    ] {
        assert!(state.get(field).is_some(), "missing {field}: {state}");
    }
    let url = format!("/api/v1/environments/{key}/featurestates/{}/", state["id"]);
    let (s, got) = app.get(&url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, state);

    for value in [
        json!("text"),
        json!(7),
        json!(1.5),
        json!(true),
        json!(null),
    ] {
        let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
        let (s, upd) = app
            .patch(&url, json!({"enabled": true, "feature_state_value": value}))
            .await;
        assert_eq!(s, StatusCode::OK, "{upd}");
        assert_eq!(upd["enabled"], true);
        assert_eq!(upd["feature_state_value"], value, "kept type of {value}");
        assert!(app.revision(&key).await > rev);
        assert_eq!(app.audit_count().await, audit + 1);
    }
    // Absent fields are unchanged.
    let (_, upd) = app.patch(&url, json!({"feature_state_value": 3})).await;
    let (_, upd2) = app.patch(&url, json!({"enabled": false})).await;
    assert_eq!(upd2["feature_state_value"], 3);
    assert_eq!(upd["enabled"], true);

    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    for body in [
        json!({"enabled": "no"}),
        json!({"feature_state_value": {"a": 1}}),
        json!({"feature_state_value": [1]}),
        json!({"feature": state["feature"].as_i64().unwrap() + 1000}),
        json!({"identity": 1}),
    ] {
        let (s, b) = app.patch(&url, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {b}");
    }
    assert_nothing_written(&app, &key, rev, audit).await;

    // A state is addressed through its own environment only.
    let (s, env2) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "other", "project": project}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let other = format!(
        "/api/v1/environments/{}/featurestates/{}/",
        env2["api_key"].as_str().unwrap(),
        state["id"]
    );
    let (s, _) = app.get(&other).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.patch(&other, json!({"enabled": true})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get("/api/v1/environments/nosuchkey123/featurestates/")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn multivariate_options_crud() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let f = create_feature(
        &app,
        project,
        json!({"name": "colour", "initial_value": "red"}),
    )
    .await;
    assert_eq!(f["type"], "STANDARD");
    let url = options_url(project, &f["id"]);

    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let (s, blue) = app
        .post(
            &url,
            json!({"value": "blue", "default_percentage_allocation": 30, "key": "b"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{blue}");
    assert_eq!(blue["value"], "blue");
    assert_eq!(blue["default_percentage_allocation"], 30.0);
    assert_eq!(blue["feature"], f["id"]);
    assert!(app.revision(&key).await > rev);
    assert_eq!(app.audit_count().await, audit + 1);
    let (_, f2) = app
        .get(&format!("{}{}/", features_url(project), f["id"]))
        .await;
    assert_eq!(
        f2["type"], "MULTIVARIATE",
        "an option makes the feature multivariate"
    );
    assert_eq!(f2["multivariate_options"][0]["id"], blue["id"]);

    for v in [json!(5), json!(false), json!(2.5)] {
        let (s, o) = app.post(&url, json!({"value": v})).await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        assert_eq!(o["value"], v);
    }
    let (s, page) = app.get(&format!("{url}?page=2&page_size=3")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["count"], 4);
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert!(page["previous"].is_string());

    let opt_url = format!("{url}{}/", blue["id"]);
    let (s, got) = app.get(&opt_url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, blue);
    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let (s, upd) = app
        .patch(
            &opt_url,
            json!({"value": "navy", "default_percentage_allocation": 60, "key": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(upd["value"], "navy");
    assert!(upd["key"].is_null());
    assert!(app.revision(&key).await > rev);
    assert_eq!(app.audit_count().await, audit + 1);

    // Keys are unique within a feature.
    let (s, _) = app.post(&url, json!({"value": 1, "key": "k"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = app.post(&url, json!({"value": 2, "key": "k"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["field"], "key");

    // Cannot go back to STANDARD while options exist.
    let (s, b) = app
        .patch(
            &format!("{}{}/", features_url(project), f["id"]),
            json!({"type": "STANDARD"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["field"], "type");

    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    let (s, _) = app.delete(&opt_url).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(app.revision(&key).await > rev);
    assert_eq!(app.audit_count().await, audit + 1);
    let (s, _) = app.get(&opt_url).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn inline_options_are_created_with_the_feature() {
    let app = TestApp::new().await;
    let (project, _) = app.project_with_env().await;
    let f = create_feature(
        &app,
        project,
        json!({"name": "mv", "multivariate_options": [
            {"value": "a", "default_percentage_allocation": 50},
            {"value": "b", "default_percentage_allocation": 50}]}),
    )
    .await;
    assert_eq!(f["type"], "MULTIVARIATE");
    assert_eq!(f["multivariate_options"].as_array().unwrap().len(), 2);
    let (s, b) = app
        .post(
            &features_url(project),
            json!({"name": "mv2", "multivariate_options": [
                {"value": "a", "default_percentage_allocation": 60},
                {"value": "b", "default_percentage_allocation": 50}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["field"], "default_percentage_allocation");
}

#[tokio::test]
async fn allocations_over_100_are_refused() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let f = create_feature(
        &app,
        project,
        json!({"name": "exp", "type": "MULTIVARIATE"}),
    )
    .await;
    let url = options_url(project, &f["id"]);
    let (_, a) = app
        .post(
            &url,
            json!({"value": "a", "default_percentage_allocation": 40}),
        )
        .await;
    let (_, b) = app
        .post(
            &url,
            json!({"value": "b", "default_percentage_allocation": 40}),
        )
        .await;

    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    // Option defaults: 40 + 40 + 30 > 100.
    let (s, e) = app
        .post(
            &url,
            json!({"value": "c", "default_percentage_allocation": 30}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["field"], "default_percentage_allocation");
    let (s, _) = app
        .patch(
            &format!("{url}{}/", a["id"]),
            json!({"default_percentage_allocation": 61}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for pct in [json!(-1), json!(101)] {
        let (s, _) = app
            .post(
                &url,
                json!({"value": "d", "default_percentage_allocation": pct}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    assert_nothing_written(&app, &key, rev, audit).await;

    // State allocations: listed ones plus the defaults of unlisted options.
    let state = state_of(&app, &key, &f["id"]).await;
    let state_url = format!("/api/v1/environments/{key}/featurestates/{}/", state["id"]);
    let alloc = |o: &Value, p: f64| json!({"multivariate_feature_option": o["id"], "percentage_allocation": p});
    let (s, upd) = app
        .patch(
            &state_url,
            json!({"multivariate_feature_state_values": [alloc(&a, 70.0), alloc(&b, 30.0)]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{upd}");
    assert_eq!(
        upd["multivariate_feature_state_values"],
        json!([alloc(&a, 70.0), alloc(&b, 30.0)])
    );

    let (rev, audit) = (app.revision(&key).await, app.audit_count().await);
    for bad in [
        json!([alloc(&a, 70.0), alloc(&b, 31.0)]),
        // b unlisted counts at its default of 40.
        json!([alloc(&a, 61.0)]),
        json!([alloc(&a, 10.0), alloc(&a, 10.0)]),
        json!([alloc(&a, -5.0)]),
        json!([{"multivariate_feature_option": 999_999, "percentage_allocation": 1}]),
        json!([{"multivariate_feature_option": a["id"]}]),
        json!("all"),
    ] {
        let (s, e) = app
            .patch(
                &state_url,
                json!({"multivariate_feature_state_values": bad.clone()}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} -> {e}");
    }
    // A state listing only a at 60 takes b at its default of 40: raising that default to 41
    // would make the state allocate 101%, so the option change is refused.
    app.patch(
        &state_url,
        json!({"multivariate_feature_state_values": [alloc(&a, 60.0)]}),
    )
    .await;
    let (rev2, audit2) = (app.revision(&key).await, app.audit_count().await);
    assert!(rev2 > rev);
    assert_eq!(audit2, audit + 1);
    let (s, e) = app
        .patch(
            &format!("{url}{}/", b["id"]),
            json!({"default_percentage_allocation": 41}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_nothing_written(&app, &key, rev2, audit2).await;

    // An option of another feature is refused.
    let g = create_feature(&app, project, json!({"name": "g"})).await;
    let (_, foreign) = app
        .post(&options_url(project, &g["id"]), json!({"value": 1}))
        .await;
    let (s, e) = app
        .patch(
            &state_url,
            json!({"multivariate_feature_state_values": [alloc(&foreign, 1.0)]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["field"], "multivariate_feature_state_values");

    // Deleting an option drops it from the states' allocations.
    let (s, _) = app.delete(&format!("{url}{}/", a["id"])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, after) = app.get(&state_url).await;
    assert_eq!(after["multivariate_feature_state_values"], json!([]));
}

#[tokio::test]
async fn features_of_another_project_are_not_found() {
    let app = TestApp::new().await;
    let (p1, _) = app.project_with_env().await;
    let (p2, _) = app.project_with_env().await;
    let f = create_feature(&app, p1, json!({"name": "mine"})).await;
    let (_, o) = app
        .post(&options_url(p1, &f["id"]), json!({"value": 1}))
        .await;
    let audit = app.audit_count().await;

    let wrong = format!("{}{}/", features_url(p2), f["id"]);
    let (s, b) = app.get(&wrong).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _) = app.patch(&wrong, json!({"name": "stolen"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete(&wrong).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let wrong_opts = options_url(p2, &f["id"]);
    let (s, _) = app.get(&wrong_opts).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.post(&wrong_opts, json!({"value": 2})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get(&format!("{wrong_opts}{}/", o["id"])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.delete(&format!("{wrong_opts}{}/", o["id"])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get(&format!("{}{}/", features_url(p1), 999_999)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(app.audit_count().await, audit);

    // Path ids that are not numbers are a 400, not a 500.
    let (s, _) = app.get(&format!("{}abc/", features_url(p1))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
