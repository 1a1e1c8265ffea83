//! Segments and segment overrides over HTTP: CRUD and pagination, every rule validation error,
//! every limit (refused with nothing written), hostile regexes, revisions of every environment
//! of the project, and override priorities.

mod common;

use axum::http::StatusCode;
use common::TestApp;
use flagstone_store::{features, Actor};
use serde_json::{json, Value};

fn segments_path(project: i64) -> String {
    format!("/api/v1/projects/{project}/segments/")
}

fn one_condition(operator: &str, value: Value) -> Value {
    json!([{"type": "ALL", "rules": [{"type": "ANY", "conditions": [
        {"operator": operator, "property": "plan", "value": value}
    ]}]}])
}

/// Creates a feature through the store (the features API is another module's concern).
async fn feature(app: &TestApp, project: i64, name: &str) -> i64 {
    let mut ch = app.store().change(&Actor::system("test")).await.unwrap();
    let new: features::NewFeature = serde_json::from_value(json!({"name": name})).unwrap();
    let f = features::create(&mut ch, project, &new).await.unwrap();
    ch.commit().await.unwrap();
    f.id
}

async fn mv_option(app: &TestApp, project: i64, feature_id: i64) -> i64 {
    let mut ch = app.store().change(&Actor::system("test")).await.unwrap();
    let new: features::NewMvOption = serde_json::from_value(json!({"value": "blue"})).unwrap();
    let o = features::options::create(&mut ch, project, feature_id, &new)
        .await
        .unwrap();
    ch.commit().await.unwrap();
    o.id
}

async fn segment(app: &TestApp, project: i64, name: &str) -> i64 {
    let (s, body) = app
        .post(
            &segments_path(project),
            json!({"name": name, "rules": one_condition("EQUAL", json!("pro"))}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Asserts a response is a 400 with `error`, naming `name` as its `field` (or `limit`).
fn assert_refused((s, body): (StatusCode, Value), error: &str, name: &str) {
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], error, "{body}");
    let named = if error == "limit_exceeded" {
        &body["limit"]
    } else {
        &body["field"]
    };
    assert_eq!(named, name, "{body}");
}

#[tokio::test]
async fn segment_crud_and_pagination() {
    let app = TestApp::new().await;
    let (project, _) = app.project_with_env().await;
    let rules = json!([{"type": "ALL", "rules": [{"type": "ANY", "conditions": [
        {"operator": "EQUAL", "property": "plan", "value": "pro"},
        {"operator": "IN", "property": "country", "value": ["de", "fr", 7]},
        {"operator": "GREATER_THAN", "property": "age", "value": 18},
        {"operator": "EQUAL", "property": "beta", "value": true},
        {"operator": "PERCENTAGE_SPLIT", "value": 12.5},
        {"operator": "IS_SET", "property": "email"}
    ]}]}]);
    let (s, seg) = app
        .post(
            &segments_path(project),
            json!({"name": "Pro users", "description": "paying", "rules": rules}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    let id = seg["id"].as_i64().unwrap();
    assert_eq!(seg["project"], project);
    let conds = &seg["rules"][0]["rules"][0]["conditions"];
    assert_eq!(conds[1]["value"], "de,fr,7");
    assert_eq!(conds[2]["value"], "18");
    assert_eq!(conds[3]["value"], "True");
    assert_eq!(conds[4]["value"], "12.5");
    assert!(conds[4]["property"].is_null());
    assert!(conds[5]["value"].is_null());

    let path = format!("{}{id}/", segments_path(project));
    let (s, got) = app.get(&path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, seg);

    // PATCH changes only what is given.
    let (s, patched) = app.patch(&path, json!({"name": "Pros"})).await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Pros");
    assert_eq!(patched["description"], "paying");
    assert_eq!(patched["rules"], seg["rules"]);

    // PUT replaces everything (an absent description is cleared).
    let (s, put) = app
        .put(
            &path,
            json!({"name": "Replaced", "rules": [{"type": "NONE", "conditions": []}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert!(put["description"].is_null());
    assert_eq!(
        put["rules"],
        json!([{"type": "NONE", "rules": [], "conditions": []}])
    );

    // Names are unique per project.
    let (s, body) = app
        .post(
            &segments_path(project),
            json!({"name": "Replaced", "rules": []}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "conflict");
    assert_eq!(body["field"], "name");

    for i in 0..4 {
        segment(&app, project, &format!("s{i}")).await;
    }
    let (s, page) = app
        .get(&format!("{}?page=2&page_size=2", segments_path(project)))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["count"], 5);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert!(page["next"].is_string() && page["previous"].is_string());

    // Another project's path does not reach this segment.
    let (s, _) = app
        .get(&format!("/api/v1/projects/999999/segments/{id}/"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get("/api/v1/projects/999999/segments/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, _) = app.delete(&path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = app.get(&path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn every_rule_mistake_is_a_400_naming_the_field() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let cond = "rules[0].rules[0].conditions[0]";
    let cases: Vec<(Value, String)> = vec![
        (
            one_condition("SOMETIMES", json!("x")),
            format!("{cond}.operator"),
        ),
        (json!([{"type": "MOST"}]), "rules[0].type".into()),
        (
            json!([{"type": "ALL", "extra": 1}]),
            "rules[0].extra".into(),
        ),
        (
            json!([{"type": "ALL", "conditions": [{"operator": "EQUAL", "property": "a", "value": "b", "property_": "a"}]}]),
            "rules[0].conditions[0].property_".into(),
        ),
        (
            one_condition("EQUAL", json!({"a": 1})),
            format!("{cond}.value"),
        ),
        (
            one_condition("EQUAL", json!(["a"])),
            format!("{cond}.value"),
        ),
        (
            one_condition("IN", json!([["nested"]])),
            format!("{cond}.value[0]"),
        ),
        (one_condition("EQUAL", json!(null)), format!("{cond}.value")),
        (
            one_condition("REGEX", json!("(unclosed")),
            format!("{cond}.value"),
        ),
        (
            one_condition("EQUAL", json!("1.2:semver")),
            format!("{cond}.value"),
        ),
        (
            one_condition("LESS_THAN", json!("v1.2.3:semver")),
            format!("{cond}.value"),
        ),
        (
            one_condition("PERCENTAGE_SPLIT", json!("100.5")),
            format!("{cond}.value"),
        ),
        (
            one_condition("PERCENTAGE_SPLIT", json!("half")),
            format!("{cond}.value"),
        ),
        (
            one_condition("MODULO", json!("0|1")),
            format!("{cond}.value"),
        ),
        (
            one_condition("MODULO", json!("2-1")),
            format!("{cond}.value"),
        ),
        (
            json!([{"type": "ALL", "conditions": [{"operator": "EQUAL", "value": "b"}]}]),
            "rules[0].conditions[0].property".into(),
        ),
        (json!({"type": "ALL"}), "rules".into()),
    ];
    let revision = app.revision(&key).await;
    let audits = app.audit_count().await;
    for (rules, field) in cases {
        let r = app
            .post(
                &segments_path(project),
                json!({"name": "bad", "rules": rules}),
            )
            .await;
        assert_refused(r, "invalid", &field);
    }
    // The same checks apply to PATCH.
    let id = segment(&app, project, "ok").await;
    let (s, body) = app
        .patch(
            &format!("{}{id}/", segments_path(project)),
            json!({"rules": one_condition("NOPE", json!("x"))}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], format!("{cond}.operator"));
    // Unknown top-level keys are refused by the JSON extractor.
    let (s, body) = app
        .post(
            &segments_path(project),
            json!({"name": "x", "rules": [], "colour": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_json");
    assert_eq!(
        app.revision(&key).await,
        revision + 1,
        "only the good segment"
    );
    assert_eq!(app.audit_count().await, audits + 1);

    // Valid semver, modulo and regex values are accepted.
    let (s, body) = app
        .post(
            &segments_path(project),
            json!({"name": "fine", "rules": [{"type": "ALL", "conditions": [
                {"operator": "GREATER_THAN_INCLUSIVE", "property": "v", "value": "1.2.3-beta.1:semver"},
                {"operator": "MODULO", "property": "n", "value": "2|0"},
                {"operator": "REGEX", "property": "email", "value": ".*@example\\.com$"},
                {"operator": "NOT_CONTAINS", "property": "email", "value": "spam"}
            ]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn hostile_regexes_are_handled_at_write_time() {
    let app = TestApp::new().await;
    let (project, _) = app.project_with_env().await;
    // Catastrophic for backtracking engines, harmless for the regex crate.
    let (s, body) = app
        .post(
            &segments_path(project),
            json!({"name": "nested", "rules": one_condition("REGEX", json!("(a+)+$"))}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // Compiles to far more than the size limit: refused quickly, not a hang or a 500.
    let start = std::time::Instant::now();
    let (s, body) = app
        .post(
            &segments_path(project),
            json!({"name": "huge", "rules": one_condition("REGEX", json!("\\w{1000}{1000}"))}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "rules[0].rules[0].conditions[0].value");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    // Lookarounds are Python syntax the engine cannot run.
    let (s, _) = app
        .post(
            &segments_path(project),
            json!({"name": "look", "rules": one_condition("REGEX", json!("(?=a)a"))}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_segment_limit_refuses_and_writes_nothing() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let (s, body) = app
        .patch(
            &format!("/api/v1/projects/{project}/"),
            json!({"limits": {
                "max_segments": 1,
                "max_conditions_per_segment": 2,
                "max_rule_depth": 2,
                "max_condition_value_bytes": 10,
                "max_in_condition_value_bytes": 20
            }}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let c = json!({"operator": "IS_SET", "property": "a"});
    let cases = [
        (
            json!([{"type": "ALL", "conditions": [c, c]}, {"type": "ANY", "conditions": [c]}]),
            "max_conditions_per_segment",
        ),
        (
            json!([{"type": "ALL", "rules": [{"type": "ANY", "rules": [{"type": "ALL"}]}]}]),
            "max_rule_depth",
        ),
        (
            one_condition("EQUAL", json!("eleven-bytes")),
            "max_condition_value_bytes",
        ),
        (
            one_condition("IN", json!(["aaaaaaaa", "bbbbbbbb", "cccccccc"])),
            "max_in_condition_value_bytes",
        ),
    ];
    let revision = app.revision(&key).await;
    let audits = app.audit_count().await;
    for (rules, limit) in cases {
        let r = app
            .post(
                &segments_path(project),
                json!({"name": "s", "rules": rules}),
            )
            .await;
        assert_refused(r, "limit_exceeded", limit);
    }
    // Values within the limits pass (an IN list may be longer than other values).
    let (s, body) = app
        .post(
            &segments_path(project),
            json!({"name": "first", "rules": one_condition("IN", json!("aaaa,bbbb,cccc"))}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (revision, audits) = (revision + 1, audits + 1);
    let r = app
        .post(
            &segments_path(project),
            json!({"name": "second", "rules": []}),
        )
        .await;
    assert_refused(r, "limit_exceeded", "max_segments");
    assert_eq!(segment_count(&app, project).await, 1);
    assert_eq!(app.revision(&key).await, revision);
    assert_eq!(app.audit_count().await, audits);
}

async fn segment_count(app: &TestApp, project: i64) -> i64 {
    let (_, page) = app.get(&segments_path(project)).await;
    page["count"].as_i64().unwrap()
}

#[tokio::test]
async fn segment_changes_republish_every_environment_of_the_project() {
    let app = TestApp::new().await;
    let (project, prod) = app.project_with_env().await;
    let (s, staging) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "staging", "project": project}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let staging = staging["api_key"].as_str().unwrap().to_string();
    let before = (app.revision(&prod).await, app.revision(&staging).await);
    let audits = app.audit_count().await;
    let id = segment(&app, project, "beta").await;
    let path = format!("{}{id}/", segments_path(project));
    let after_create = (app.revision(&prod).await, app.revision(&staging).await);
    assert_eq!(after_create, (before.0 + 1, before.1 + 1));

    let (s, _) = app
        .patch(&path, json!({"rules": one_condition("EQUAL", json!("x"))}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let after_edit = (app.revision(&prod).await, app.revision(&staging).await);
    assert_eq!(after_edit, (after_create.0 + 1, after_create.1 + 1));

    // Deleting cascades to the segment's overrides in every environment.
    let f = feature(&app, project, "flag").await;
    for key in [&prod, &staging] {
        let (s, body) = app
            .post(
                &format!("/api/v1/environments/{key}/features/{f}/create-segment-override/"),
                json!({"segment": id, "enabled": true, "feature_state_value": "on"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let mid = (app.revision(&prod).await, app.revision(&staging).await);
    let audits_mid = app.audit_count().await;
    let (s, _) = app.delete(&path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        (app.revision(&prod).await, app.revision(&staging).await),
        (mid.0 + 1, mid.1 + 1)
    );
    assert_eq!(app.audit_count().await, audits_mid + 1);
    for key in [&prod, &staging] {
        let (_, list) = app
            .get(&format!("/api/v1/environments/{key}/segment-overrides/"))
            .await;
        assert_eq!(list["count"], 0);
    }
    assert!(app.audit_count().await > audits);
}

fn create_override_path(key: &str, feature: i64) -> String {
    format!("/api/v1/environments/{key}/features/{feature}/create-segment-override/")
}

#[tokio::test]
async fn segment_override_crud_validation_and_limits() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let f = feature(&app, project, "banner").await;
    let seg_a = segment(&app, project, "a").await;
    let seg_b = segment(&app, project, "b").await;

    let revision = app.revision(&key).await;
    let audits = app.audit_count().await;
    let (s, o) = app
        .post(
            &create_override_path(&key, f),
            json!({"segment": seg_a, "enabled": true, "feature_state_value": 42}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "uuid",
            "feature",
            "segment",
            "environment",
            "priority",
            "enabled",
            "feature_state_value",
            "multivariate_feature_state_values",
            "updated_at"
        ]
    );
    assert_eq!(o["feature_state_value"], 42);
    assert_eq!(o["priority"], 0);
    assert_eq!(app.revision(&key).await, revision + 1);
    assert_eq!(app.audit_count().await, audits + 1);
    let id = o["id"].as_i64().unwrap();
    let path = format!("/api/v1/environments/{key}/segment-overrides/{id}/");

    let (s, got) = app.get(&path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, o);

    let (s, patched) = app
        .patch(
            &path,
            json!({"enabled": false, "feature_state_value": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert!(patched["feature_state_value"].is_null());
    assert_eq!(app.revision(&key).await, revision + 2);

    // Mistakes: duplicate, foreign segment, unknown feature, bad value, unknown option.
    let (other_project, _) = app.project_with_env().await;
    let foreign = segment(&app, other_project, "elsewhere").await;
    let revision = app.revision(&key).await;
    let audits = app.audit_count().await;
    let r = app
        .post(&create_override_path(&key, f), json!({"segment": seg_a}))
        .await;
    assert_refused(r, "conflict", "segment");
    let r = app
        .post(&create_override_path(&key, f), json!({"segment": foreign}))
        .await;
    assert_refused(r, "invalid", "segment");
    let (s, _) = app
        .post(
            &create_override_path(&key, 999_999),
            json!({"segment": seg_b}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let r = app
        .post(
            &create_override_path(&key, f),
            json!({"segment": seg_b, "feature_state_value": {"an": "object"}}),
        )
        .await;
    assert_refused(r, "invalid", "feature_state_value");
    let r = app
        .post(
            &create_override_path(&key, f),
            json!({"segment": seg_b, "multivariate_feature_state_values": [
                {"multivariate_feature_option": 424242, "percentage_allocation": 10}]}),
        )
        .await;
    assert_refused(r, "invalid", "multivariate_feature_state_values");
    assert_eq!(app.revision(&key).await, revision);
    assert_eq!(app.audit_count().await, audits);

    // Allocations to the feature's own options are accepted.
    let option = mv_option(&app, project, f).await;
    let (s, body) = app
        .patch(
            &path,
            json!({"multivariate_feature_state_values": [
                {"multivariate_feature_option": option, "percentage_allocation": 30}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["multivariate_feature_state_values"][0]["percentage_allocation"],
        30.0
    );

    // Limits: value bytes and overrides per environment.
    let (s, _) = app
        .patch(
            &format!("/api/v1/projects/{project}/"),
            json!({"limits": {"max_segment_overrides": 1, "max_feature_value_bytes": 5}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let revision = app.revision(&key).await;
    let audits = app.audit_count().await;
    let r = app
        .patch(&path, json!({"feature_state_value": "too long"}))
        .await;
    assert_refused(r, "limit_exceeded", "max_feature_value_bytes");
    let r = app
        .post(&create_override_path(&key, f), json!({"segment": seg_b}))
        .await;
    assert_refused(r, "limit_exceeded", "max_segment_overrides");
    assert_eq!(app.revision(&key).await, revision);
    assert_eq!(app.audit_count().await, audits);

    let (s, _) = app.delete(&path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.revision(&key).await, revision + 1);
    let (s, _) = app.get(&path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn overrides_are_listed_filtered_and_paginated() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let f1 = feature(&app, project, "one").await;
    let f2 = feature(&app, project, "two").await;
    let segs = [
        segment(&app, project, "a").await,
        segment(&app, project, "b").await,
        segment(&app, project, "c").await,
    ];
    for f in [f1, f2] {
        for s in segs {
            let (st, body) = app
                .post(&create_override_path(&key, f), json!({"segment": s}))
                .await;
            assert_eq!(st, StatusCode::CREATED, "{body}");
        }
    }
    let base = format!("/api/v1/environments/{key}/segment-overrides/");
    let (_, all) = app.get(&format!("{base}?page_size=4")).await;
    assert_eq!(all["count"], 6);
    assert_eq!(all["results"].as_array().unwrap().len(), 4);
    assert!(all["next"].is_string());
    let (_, by_feature) = app.get(&format!("{base}?feature={f2}")).await;
    assert_eq!(by_feature["count"], 3);
    let priorities: Vec<i64> = by_feature["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["priority"].as_i64().unwrap())
        .collect();
    assert_eq!(priorities, [0, 1, 2]);
    let (_, by_segment) = app.get(&format!("{base}?segment={}", segs[1])).await;
    assert_eq!(by_segment["count"], 2);
    let (_, both) = app
        .get(&format!("{base}?feature={f1}&segment={}", segs[2]))
        .await;
    assert_eq!(both["count"], 1);
    let (s, _) = app
        .get("/api/v1/environments/nope-nope-nope/segment-overrides/")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The ids of a feature's overrides in priority order.
async fn order(app: &TestApp, key: &str, feature: i64) -> Vec<i64> {
    let (_, list) = app
        .get(&format!(
            "/api/v1/environments/{key}/segment-overrides/?feature={feature}"
        ))
        .await;
    let results = list["results"].as_array().unwrap();
    for (i, o) in results.iter().enumerate() {
        assert_eq!(o["priority"], i as i64, "priorities stay dense");
    }
    results.iter().map(|o| o["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn override_priorities_insert_move_and_reorder() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let f = feature(&app, project, "flag").await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let s = segment(&app, project, name).await;
        let (_, o) = app
            .post(&create_override_path(&key, f), json!({"segment": s}))
            .await;
        ids.push(o["id"].as_i64().unwrap());
    }
    let [a, b, c] = [ids[0], ids[1], ids[2]];
    assert_eq!(order(&app, &key, f).await, [a, b, c]);

    // Created with a priority: inserted there, the others shift down.
    let s = segment(&app, project, "d").await;
    let (st, d) = app
        .post(
            &create_override_path(&key, f),
            json!({"segment": s, "priority": 0}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    let d = d["id"].as_i64().unwrap();
    assert_eq!(order(&app, &key, f).await, [d, a, b, c]);

    // PATCH priority moves one override to that position.
    let (st, _) = app
        .patch(
            &format!("/api/v1/environments/{key}/segment-overrides/{d}/"),
            json!({"priority": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(order(&app, &key, f).await, [a, b, d, c]);

    // Bulk re-ordering: one change, one audit entry, one revision.
    let revision = app.revision(&key).await;
    let audits = app.audit_count().await;
    let (st, body) = app
        .post(
            "/api/v1/features/feature-segments/update-priorities/",
            json!([{"id": c, "priority": 0}, {"id": b, "priority": 1},
                   {"id": a, "priority": 2}, {"id": d, "priority": 3}]),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 4);
    assert_eq!(order(&app, &key, f).await, [c, b, a, d]);
    assert_eq!(app.revision(&key).await, revision + 1);
    assert_eq!(app.audit_count().await, audits + 1);
    let (_, audit) = app.get("/api/v1/audit/?page_size=1").await;
    assert_eq!(audit["results"][0]["log"], "Segment overrides re-ordered");

    // Every id must exist, once; otherwise nothing changes.
    for bad in [
        json!([{"id": a, "priority": 0}, {"id": 987654, "priority": 1}]),
        json!([{"id": a, "priority": 0}, {"id": a, "priority": 1}]),
        json!([{"id": a, "priority": -1}]),
    ] {
        let (st, body) = app
            .post("/api/v1/features/feature-segments/update-priorities/", bad)
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid");
    }
    assert_eq!(order(&app, &key, f).await, [c, b, a, d]);
    assert_eq!(app.revision(&key).await, revision + 1);
    assert_eq!(app.audit_count().await, audits + 1);

    // Deleting keeps the rest dense.
    let (st, _) = app
        .delete(&format!(
            "/api/v1/environments/{key}/segment-overrides/{b}/"
        ))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(order(&app, &key, f).await, [c, a, d]);
}

#[tokio::test]
async fn update_priorities_refuses_overrides_of_more_than_one_environment() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let (st, other) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "staging", "project": project}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{other}");
    let other = other["api_key"].as_str().unwrap().to_string();
    let f = feature(&app, project, "flag").await;
    let s = segment(&app, project, "s").await;
    let mut ids = Vec::new();
    for k in [&key, &other] {
        let (st, o) = app
            .post(&create_override_path(k, f), json!({"segment": s}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{o}");
        ids.push(o["id"].as_i64().unwrap());
    }
    let revisions = (app.revision(&key).await, app.revision(&other).await);
    let audits = app.audit_count().await;
    let (st, body) = app
        .post(
            "/api/v1/features/feature-segments/update-priorities/",
            json!([{"id": ids[0], "priority": 0}, {"id": ids[1], "priority": 0}]),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "[1].id", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("one environment"),
        "{body}"
    );
    assert_eq!(
        (app.revision(&key).await, app.revision(&other).await),
        revisions
    );
    assert_eq!(app.audit_count().await, audits);
}

#[tokio::test]
async fn routes_are_in_the_openapi_document() {
    let app = TestApp::new().await;
    let (s, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/projects/{id}/segments",
        "/api/v1/projects/{id}/segments/{segment_id}",
        "/api/v1/environments/{api_key}/features/{feature_id}/create-segment-override",
        "/api/v1/environments/{api_key}/segment-overrides",
        "/api/v1/environments/{api_key}/segment-overrides/{id}",
        "/api/v1/features/feature-segments/update-priorities",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["SegmentRule"].is_object());
}
