//! Change requests end to end: an environment that requires approvals refuses direct edits from
//! callers without environment admin (every direct-edit endpoint); a change request is not
//! applied before its approvals (the SDK endpoint shows the old configuration), cannot be
//! approved by its author, is refused when what it changes was changed since it was opened,
//! and once committed is an ordinary change SDKs see; with `live_from` it becomes a scheduled
//! change applied at its time. Bad input is a 400 that writes nothing.

mod common;

use axum::http::{Method, StatusCode};
use common::change_requests::{act, config, fixture, open, sdk_flag, state_of, written};
use common::people::call;
use flagstone_store::clock::iso8601;
use flagstone_store::{Clock, Store};
use flagstone_tasks::schedule::{self, StepOutcome};
use serde_json::{json, Value};

#[tokio::test]
async fn direct_edits_need_environment_admin_while_approvals_are_required() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let state = state_of(app, key, feature).await;
    let segment = app
        .post(
            &format!("/api/v1/projects/{}/segments/", f.project),
            json!({"name": "pro", "rules": [{"type": "ALL", "rules": [{"type": "ANY",
                "conditions": [{"operator": "EQUAL", "property": "plan", "value": "pro"}]}]}]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    // The admin key is an environment admin: its direct edits still apply.
    let over = app
        .post(
            &format!("/api/v1/environments/{key}/features/{feature}/create-segment-override/"),
            json!({"segment": segment, "enabled": true}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let version = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/features/{feature}/versions/"),
            None,
        )
        .await["results"][1]["id"]
        .as_i64()
        .unwrap();
    let later = iso8601(flagstone_store::now_ms() + 60_000);
    let before = written(app, key).await;
    let edits = [
        (
            Method::PATCH,
            format!("/api/v1/environments/{key}/featurestates/{state}/"),
            json!({"enabled": true}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/environments/{key}/featurestates/{state}/"),
            json!({"enabled": true, "live_from": later}),
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{key}/features/{feature}/create-segment-override/"),
            json!({"segment": segment, "enabled": false}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/environments/{key}/segment-overrides/{over}/"),
            json!({"enabled": false}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/environments/{key}/segment-overrides/{over}/"),
            Value::Null,
        ),
        (
            Method::POST,
            "/api/v1/features/feature-segments/update-priorities/".to_string(),
            json!([{"id": over, "priority": 0}]),
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{key}/features/{feature}/versions/{version}/restore/"),
            Value::Null,
        ),
    ];
    for (method, path, body) in edits {
        let body = (!body.is_null()).then_some(body);
        let (s, refused) = call(app, &f.ada, method.clone(), &path, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {refused}");
        assert_eq!(refused["error"], "change_request_required", "{path}");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("create-change-request"),
            "{refused}"
        );
    }
    assert_eq!(written(app, key).await, before);
    assert_eq!(sdk_flag(app, key, "launch").await, json!([false, "old"]));

    // Identity overrides are not gated (as in Flagsmith); and with approvals off, ada edits
    // directly again.
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/"),
        Some(json!({"minimum_change_request_approvals": null})),
    )
    .await;
    let (s, body) = call(
        app,
        &f.ada,
        Method::PATCH,
        &format!("/api/v1/environments/{key}/featurestates/{state}/"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(sdk_flag(app, key, "launch").await, json!([true, "old"]));
}

#[tokio::test]
async fn a_change_request_applies_only_after_its_approvals_and_never_by_its_author() {
    let f = fixture(2).await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let cr = open(
        &f,
        json!({"title": "Launch", "description": "go live",
               "feature_states": [{"feature": feature, "enabled": true,
                                   "feature_state_value": "new"}]}),
    )
    .await;
    let id = cr["id"].as_i64().unwrap();
    assert_eq!(cr["status"], "open");
    assert_eq!(cr["author"], "ada@example.com");
    assert_eq!(cr["is_approved"], false);
    assert_eq!(cr["required_approvals"], 2);
    assert_eq!(
        cr["diff"],
        json!([{"feature": feature, "field": "enabled", "current": false, "proposed": true},
               {"feature": feature, "field": "feature_state_value", "current": "old",
                "proposed": "new"}])
    );
    assert_eq!(cr["conflicts"], json!([]));
    let list = format!("/api/v1/environments/{key}/list-change-requests/");
    let (s, open_list) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("{list}?committed=false"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{open_list}");
    assert_eq!(open_list["count"], 1);
    assert_eq!(open_list["results"][0]["id"], id);

    // Not applied before its approvals: the author cannot approve, a viewer cannot either, and
    // a commit is refused with how many are missing.
    let before = written(app, key).await;
    let (s, body) = act(&f, &f.ada, id, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("author"),
        "{body}"
    );
    let (s, body) = act(&f, &f.eve, id, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["missing_permission"], "APPROVE_CHANGE_REQUEST");
    let (s, body) = act(&f, &f.ada, id, "commit").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("0 of the 2"),
        "{body}"
    );
    assert_eq!(written(app, key).await, before);
    assert_eq!(sdk_flag(app, key, "launch").await, json!([false, "old"]));

    let (s, body) = act(&f, &f.bob, id, "approve").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["approvals"][0]["approver"], "bob@example.com");
    // Approving twice still counts once.
    act(&f, &f.bob, id, "approve").await;
    let (s, body) = act(&f, &f.ada, id, "commit").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("1 of the 2"),
        "{body}"
    );
    assert_eq!(sdk_flag(app, key, "launch").await, json!([false, "old"]));

    let (s, body) = act(&f, &f.carl, id, "approve").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["is_approved"], true);
    // Someone who neither wrote nor may approve it cannot commit it.
    let (s, body) = act(&f, &f.eve, id, "commit").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    let (s, done) = act(&f, &f.ada, id, "commit").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "committed");
    assert_eq!(done["committed_by"], "ada@example.com");
    assert_eq!(sdk_flag(app, key, "launch").await, json!([true, "new"]));
    // An ordinary change: one revision, a version, an audit entry naming the request.
    let (revision, _) = written(app, key).await;
    assert_eq!(revision, before.0 + 1);
    let versions = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/features/{feature}/versions/"),
            None,
        )
        .await;
    assert_eq!(versions["results"][0]["revision"], revision);
    let audit = app.admin_req(Method::GET, "/api/v1/audit/", None).await;
    let logs: Vec<&str> = audit["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["log"].as_str().unwrap())
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.starts_with(&format!("Change request {id} 'Launch'"))
                && l.contains("committed")),
        "{logs:?}"
    );
    // Once: a second commit and a late approval are refused.
    let (s, _) = act(&f, &f.ada, id, "commit").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = act(&f, &f.bob, id, "approve").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(written(app, key).await.0, revision);
    let (_, committed) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("{list}?committed=true"),
        None,
    )
    .await;
    assert_eq!(committed["count"], 1);
    let (_, still_open) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("{list}?committed=false"),
        None,
    )
    .await;
    assert_eq!(still_open["count"], 0);
}

#[tokio::test]
async fn a_stale_change_request_is_refused_and_closing_one_withdraws_it() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let state = state_of(app, key, feature).await;
    let turn_on = open(
        &f,
        json!({"title": "On", "feature_states": [{"feature": feature, "enabled": true}]}),
    )
    .await;
    let new_value = open(
        &f,
        json!({"title": "Value", "feature_states": [{"feature": feature,
                                                     "feature_state_value": "v2"}]}),
    )
    .await;
    let (on, value) = (
        turn_on["id"].as_i64().unwrap(),
        new_value["id"].as_i64().unwrap(),
    );
    for id in [on, value] {
        let (s, body) = act(&f, &f.bob, id, "approve").await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    // An admin turns the flag on directly meanwhile.
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/featurestates/{state}/"),
        Some(json!({"enabled": true})),
    )
    .await;
    let (_, shown) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("/api/v1/change-requests/{on}/"),
        None,
    )
    .await;
    assert_eq!(
        shown["conflicts"],
        json!([{"feature": feature, "field": "enabled", "when_opened": false, "now": true}])
    );
    let before = written(app, key).await;
    let (s, body) = act(&f, &f.ada, on, "commit").await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "change_request_conflict");
    assert_eq!(body["conflicts"][0]["field"], "enabled");
    assert_eq!(written(app, key).await, before);
    // The other request changes only the value, which nobody touched: it commits.
    let (s, body) = act(&f, &f.bob, value, "commit").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(sdk_flag(app, key, "launch").await, json!([true, "v2"]));

    // Closing: not by a viewer; by its author; then it is gone from the list and final.
    let path = format!("/api/v1/change-requests/{on}/");
    let (s, _) = call(app, &f.eve, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(app, &f.ada, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, shown) = call(app, &f.eve, Method::GET, &path, None).await;
    assert_eq!(shown["status"], "closed");
    assert_eq!(shown["deleted_by"], "ada@example.com");
    let (_, listed) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("/api/v1/environments/{key}/list-change-requests/"),
        None,
    )
    .await;
    assert_eq!(listed["count"], 1, "{listed}");
    let (s, _) = act(&f, &f.ada, on, "commit").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(app, &f.ada, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_change_request_with_live_from_is_scheduled_by_its_commit_and_applied_then() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let live_from = flagstone_store::now_ms() + 60_000;
    let cr = open(
        &f,
        json!({"title": "Monday", "live_from": iso8601(live_from),
               "feature_states": [{"feature": feature, "enabled": true}]}),
    )
    .await;
    let id = cr["id"].as_i64().unwrap();
    assert_eq!(cr["live_from"], iso8601(live_from));
    act(&f, &f.bob, id, "approve").await;
    let before = written(app, key).await;
    let (s, done) = act(&f, &f.bob, id, "commit").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "committed");
    let scheduled = done["scheduled_change"]
        .as_i64()
        .expect("a scheduled change");
    let (_, change) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("/api/v1/environments/{key}/scheduled-changes/{scheduled}/"),
        None,
    )
    .await;
    assert_eq!(change["state"], "pending");
    assert_eq!(change["change_request"], id);
    assert_eq!(change["live_from"], iso8601(live_from));
    // Committed, not applied: nothing changes before live_from.
    assert_eq!(written(app, key).await.0, before.0);
    assert_eq!(sdk_flag(app, key, "launch").await, json!([false, "old"]));

    let clock = Clock::manual(live_from + 5);
    let worker = Store::connect(&app.t.connect_options())
        .await
        .unwrap()
        .with_clock(clock);
    let outcome = schedule::step(&worker, &config()).await.unwrap();
    assert!(
        matches!(outcome, Some(StepOutcome::Applied { id: applied, .. }) if applied == scheduled),
        "{outcome:?}"
    );
    assert_eq!(sdk_flag(app, key, "launch").await, json!([true, "old"]));
}

#[tokio::test]
async fn bad_change_requests_are_refused_and_write_nothing() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let before = written(app, key).await;
    let path = format!("/api/v1/environments/{key}/create-change-request/");
    let past = iso8601(flagstone_store::now_ms() - 1_000);
    for (body, field) in [
        (
            json!({"title": " ", "feature_states": [{"feature": feature, "enabled": true}]}),
            "title",
        ),
        (
            json!({"title": "t", "feature_states": []}),
            "feature_states",
        ),
        (
            json!({"title": "t", "feature_states": [{"feature": 999_999, "enabled": true}]}),
            "feature_states[0].feature",
        ),
        (
            json!({"title": "t", "live_from": past,
                   "feature_states": [{"feature": feature, "enabled": true}]}),
            "live_from",
        ),
    ] {
        let (s, refused) = call(app, &f.ada, Method::POST, &path, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["field"], field, "{refused}");
    }
    let (s, refused) = call(
        app,
        &f.ada,
        Method::POST,
        &path,
        Some(json!({"title": "t", "feature_states": [{"feature": feature, "colour": 1}]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{refused}");
    // Opening needs CREATE_CHANGE_REQUEST.
    let (s, refused) = call(
        app,
        &f.bob,
        Method::POST,
        &path,
        Some(json!({"title": "t", "feature_states": [{"feature": feature, "enabled": true}]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["missing_permission"], "CREATE_CHANGE_REQUEST");
    assert_eq!(written(app, key).await, before);
    // The setting itself: environment admins only, and a sensible number.
    let env = format!("/api/v1/environments/{key}/");
    let (s, _) = call(
        app,
        &f.ada,
        Method::PATCH,
        &env,
        Some(json!({"minimum_change_request_approvals": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let r = app
        .admin_raw(
            Method::PATCH,
            &env,
            Some(json!({"minimum_change_request_approvals": -1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "minimum_change_request_approvals");
    let (s, _) = call(
        app,
        &f.eve,
        Method::GET,
        "/api/v1/change-requests/424242/",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(written(app, key).await, before);
}

#[tokio::test]
async fn two_commits_at_once_apply_a_change_request_once() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let cr = open(
        &f,
        json!({"title": "Race", "feature_states": [{"feature": feature, "enabled": true}]}),
    )
    .await;
    let id = cr["id"].as_i64().unwrap();
    act(&f, &f.bob, id, "approve").await;
    let before = written(app, key).await;
    let (first, second) =
        tokio::join!(act(&f, &f.ada, id, "commit"), act(&f, &f.bob, id, "commit"));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::BAD_REQUEST],
        "{first:?} {second:?}"
    );
    assert_eq!(written(app, key).await.0, before.0 + 1);
    assert_eq!(sdk_flag(app, key, "launch").await, json!([true, "old"]));
}
