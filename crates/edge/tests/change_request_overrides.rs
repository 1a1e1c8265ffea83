//! Change requests beyond default states: segment overrides created, changed and deleted
//! through a change request (shown in its diff, applied as one change, refused when stale),
//! a scheduled change request re-checked for staleness when its `live_from` comes (parked
//! with a typed reason, never applied over someone else's change), and assigned approvers
//! (shown, filtered, recorded) with the opt-in webhook events.

mod common;

use axum::http::{Method, StatusCode};
use common::change_requests::{act, config, fixture, open, written, Fixture};
use common::people::call;
use common::EdgeApp;
use flagstone_store::clock::iso8601;
use flagstone_store::{Clock, Store};
use flagstone_tasks::schedule::{self, StepOutcome};
use serde_json::{json, Value};

/// A segment of the project matching identities whose `plan` trait is `plan`.
async fn segment(app: &EdgeApp, project: i64, plan: &str) -> i64 {
    app.post(
        &format!("/api/v1/projects/{project}/segments/"),
        json!({"name": plan, "rules": [{"type": "ALL", "rules": [{"type": "ANY",
            "conditions": [{"operator": "EQUAL", "property": "plan", "value": plan}]}]}]}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// An override made directly by the admin key (an environment admin); its id.
async fn override_of(app: &EdgeApp, key: &str, feature: i64, body: Value) -> i64 {
    app.post(
        &format!("/api/v1/environments/{key}/features/{feature}/create-segment-override/"),
        body,
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// The flag `launch` as the SDK serves it to an identity with `plan`: (enabled, value).
async fn launch_for(app: &EdgeApp, key: &str, plan: &str) -> Value {
    app.publish().await;
    let r = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(key),
            Some(json!({"identifier": format!("someone-{plan}"),
                        "traits": [{"trait_key": "plan", "trait_value": plan}]})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let flags = r.json();
    let f = flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "launch")
        .unwrap_or_else(|| panic!("no launch in {flags}"))
        .clone();
    json!([f["enabled"], f["feature_state_value"]])
}

async fn versions(app: &EdgeApp, key: &str, feature: i64) -> Value {
    app.admin_req(
        Method::GET,
        &format!("/api/v1/environments/{key}/features/{feature}/versions/"),
        None,
    )
    .await
}

struct Overrides {
    feature: i64,
    pro: i64,
    vip: i64,
    beta: i64,
}

/// `launch` (off, "old") with overrides for pro ("pro-old") and vip ("vip"); beta has none.
async fn overrides(f: &Fixture) -> Overrides {
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let (pro, vip, beta) = (
        segment(app, f.project, "pro").await,
        segment(app, f.project, "vip").await,
        segment(app, f.project, "beta").await,
    );
    override_of(
        app,
        key,
        feature,
        json!({"segment": pro, "enabled": true, "feature_state_value": "pro-old"}),
    )
    .await;
    override_of(
        app,
        key,
        feature,
        json!({"segment": vip, "enabled": true, "feature_state_value": "vip"}),
    )
    .await;
    Overrides {
        feature,
        pro,
        vip,
        beta,
    }
}

#[tokio::test]
async fn segment_overrides_change_through_a_change_request_as_one_change() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let o = overrides(&f).await;
    let feature = o.feature;
    let versions_before = versions(app, key, feature).await["count"].as_i64().unwrap();
    let cr = open(
        &f,
        json!({"title": "Segments", "feature_states": [
            {"feature": feature, "feature_segment": {"segment": o.pro},
             "feature_state_value": "pro-new"},
            {"feature": feature, "feature_segment": {"segment": o.vip}, "delete_override": true},
            {"feature": feature, "feature_segment": {"segment": o.beta, "priority": 0},
             "enabled": true, "feature_state_value": "beta"},
            {"feature": feature, "feature_segment": null, "enabled": true}
        ]}),
    )
    .await;
    let id = cr["id"].as_i64().unwrap();
    // The request as stored: Flagsmith's `feature_segment` object names each override.
    assert_eq!(
        cr["feature_states"][0]["feature_segment"],
        json!({"segment": o.pro})
    );
    assert_eq!(cr["feature_states"][1]["delete_override"], true);
    assert_eq!(cr["feature_states"][3].get("feature_segment"), None);
    assert_eq!(
        cr["diff"],
        json!([
            {"feature": feature, "segment": o.pro, "field": "feature_state_value",
             "current": "pro-old", "proposed": "pro-new"},
            {"feature": feature, "segment": o.vip, "field": "segment_override",
             "current": {"enabled": true, "feature_state_value": "vip",
                         "multivariate_feature_state_values": [], "priority": 1},
             "proposed": null},
            {"feature": feature, "segment": o.beta, "field": "segment_override",
             "current": null,
             "proposed": {"enabled": true, "feature_state_value": "beta",
                          "multivariate_feature_state_values": [], "priority": 0}},
            {"feature": feature, "field": "enabled", "current": false, "proposed": true}
        ])
    );
    // Not applied before its approval.
    assert_eq!(launch_for(app, key, "pro").await, json!([true, "pro-old"]));
    assert_eq!(launch_for(app, key, "vip").await, json!([true, "vip"]));
    assert_eq!(launch_for(app, key, "beta").await, json!([false, "old"]));
    let (s, body) = act(&f, &f.bob, id, "approve").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let before = written(app, key).await;
    let (s, done) = act(&f, &f.ada, id, "commit").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "committed");

    // One change: one revision, one version of the feature holding every override change,
    // audited per override and as the request.
    let (revision, audit) = written(app, key).await;
    assert_eq!(revision, before.0 + 1);
    let history = versions(app, key, feature).await;
    assert_eq!(history["count"], versions_before + 1, "{history}");
    assert_eq!(history["results"][0]["revision"], revision);
    assert_eq!(history["results"][0]["author"], "ada@example.com");
    // Four state writes (default, and three overrides), the commit entry, and nothing else.
    assert_eq!(audit, before.1 + 5);
    assert_eq!(launch_for(app, key, "pro").await, json!([true, "pro-new"]));
    assert_eq!(launch_for(app, key, "vip").await, json!([true, "old"]));
    assert_eq!(launch_for(app, key, "beta").await, json!([true, "beta"]));
    let listed = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/segment-overrides/?feature={feature}"),
            None,
        )
        .await;
    let order: Vec<i64> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["segment"].as_i64().unwrap())
        .collect();
    assert_eq!(order, vec![o.beta, o.pro], "{listed}");
}

#[tokio::test]
async fn a_change_request_is_stale_when_an_override_it_changes_was_changed() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let o = overrides(&f).await;
    let feature = o.feature;
    let change = open(
        &f,
        json!({"title": "Pro value", "feature_states": [
            {"feature": feature, "feature_segment": {"segment": o.pro},
             "feature_state_value": "mine"}]}),
    )
    .await;
    let create = open(
        &f,
        json!({"title": "Beta", "feature_states": [
            {"feature": feature, "feature_segment": {"segment": o.beta}, "enabled": true}]}),
    )
    .await;
    let toggle = open(
        &f,
        json!({"title": "Vip off", "feature_states": [
            {"feature": feature, "feature_segment": {"segment": o.vip}, "enabled": false}]}),
    )
    .await;
    let ids: Vec<i64> = [&change, &create, &toggle]
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    for &id in &ids {
        act(&f, &f.bob, id, "approve").await;
    }
    // Meanwhile an admin changes pro's value, creates beta's override, and changes vip's
    // value (which the third request leaves alone).
    let pro_override = app
        .admin_req(
            Method::GET,
            &format!(
                "/api/v1/environments/{key}/segment-overrides/?segment={}",
                o.pro
            ),
            None,
        )
        .await["results"][0]["id"]
        .as_i64()
        .unwrap();
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/segment-overrides/{pro_override}/"),
        Some(json!({"feature_state_value": "theirs"})),
    )
    .await;
    override_of(
        app,
        key,
        feature,
        json!({"segment": o.beta, "enabled": false}),
    )
    .await;
    let vip_override = app
        .admin_req(
            Method::GET,
            &format!(
                "/api/v1/environments/{key}/segment-overrides/?segment={}",
                o.vip
            ),
            None,
        )
        .await["results"][0]["id"]
        .as_i64()
        .unwrap();
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/segment-overrides/{vip_override}/"),
        Some(json!({"feature_state_value": "vip-2"})),
    )
    .await;

    let before = written(app, key).await;
    let (s, body) = act(&f, &f.ada, ids[0], "commit").await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["conflicts"],
        json!([{"feature": feature, "segment": o.pro, "field": "feature_state_value",
                "when_opened": "pro-old", "now": "theirs"}])
    );
    let (s, body) = act(&f, &f.ada, ids[1], "commit").await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["conflicts"][0]["field"], "segment_override");
    assert_eq!(body["conflicts"][0]["when_opened"], Value::Null);
    assert_eq!(written(app, key).await, before);
    assert_eq!(launch_for(app, key, "pro").await, json!([true, "theirs"]));
    // The third changes only vip's `enabled`, which nobody touched: it commits.
    let (s, body) = act(&f, &f.ada, ids[2], "commit").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(launch_for(app, key, "vip").await, json!([false, "vip-2"]));
}

#[tokio::test]
async fn bad_segment_override_changes_are_refused_and_write_nothing() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let o = overrides(&f).await;
    let feature = o.feature;
    let path = format!("/api/v1/environments/{key}/create-change-request/");
    let before = written(app, key).await;
    for (item, field) in [
        (
            json!([{"feature": feature, "delete_override": true}]),
            "feature_states[0].delete_override",
        ),
        (
            json!([{"feature": feature, "feature_segment": {"segment": 999_999},
                    "enabled": true}]),
            "feature_states[0].feature_segment.segment",
        ),
        (
            json!([{"feature": feature, "feature_segment": {"segment": o.beta},
                    "delete_override": true}]),
            "feature_states[0].feature_segment.segment",
        ),
        (
            json!([{"feature": feature, "feature_segment": {"segment": o.pro},
                    "delete_override": true, "enabled": false}]),
            "feature_states[0].delete_override",
        ),
        (
            json!([{"feature": feature, "feature_segment": {"segment": o.pro, "priority": -1},
                    "enabled": true}]),
            "feature_states[0].feature_segment.priority",
        ),
        (
            json!([{"feature": feature, "feature_segment": {"segment": o.pro}, "enabled": true},
                   {"feature": feature, "feature_segment": {"segment": o.pro},
                    "enabled": false}]),
            "feature_states[1]",
        ),
    ] {
        let (s, refused) = call(
            app,
            &f.ada,
            Method::POST,
            &path,
            Some(json!({"title": "t", "feature_states": item})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{item}: {refused}");
        assert_eq!(refused["field"], field, "{refused}");
    }
    // A default state and an override of the same feature are two different things.
    let (s, body) = call(
        app,
        &f.ada,
        Method::POST,
        &path,
        Some(json!({"title": "both", "feature_states": [
            {"feature": feature, "enabled": true},
            {"feature": feature, "feature_segment": {"segment": o.pro}, "enabled": false}]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(written(app, key).await.0, before.0);
}

#[tokio::test]
async fn a_scheduled_change_request_is_rechecked_at_live_from_and_parked_when_stale() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let o = overrides(&f).await;
    let feature = o.feature;
    let live_from = flagstone_store::now_ms() + 60_000;
    // Two requests for Monday: one changes pro's value (someone will change it meanwhile),
    // the other creates beta's override (nobody touches it).
    let stale = open(
        &f,
        json!({"title": "Monday pro", "live_from": iso8601(live_from), "feature_states": [
            {"feature": feature, "feature_segment": {"segment": o.pro},
             "feature_state_value": "monday"}]}),
    )
    .await;
    let fresh = open(
        &f,
        json!({"title": "Monday beta", "live_from": iso8601(live_from + 1), "feature_states": [
            {"feature": feature, "feature_segment": {"segment": o.beta},
             "enabled": true, "feature_state_value": "beta"}]}),
    )
    .await;
    let mut scheduled = Vec::new();
    for cr in [&stale, &fresh] {
        let id = cr["id"].as_i64().unwrap();
        act(&f, &f.bob, id, "approve").await;
        let (s, done) = act(&f, &f.ada, id, "commit").await;
        assert_eq!(s, StatusCode::OK, "{done}");
        scheduled.push(done["scheduled_change"].as_i64().expect("scheduled"));
    }
    // After the commit, before Monday, an admin changes pro's value directly.
    let pro_override = app
        .admin_req(
            Method::GET,
            &format!(
                "/api/v1/environments/{key}/segment-overrides/?segment={}",
                o.pro
            ),
            None,
        )
        .await["results"][0]["id"]
        .as_i64()
        .unwrap();
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/segment-overrides/{pro_override}/"),
        Some(json!({"feature_state_value": "hotfix"})),
    )
    .await;

    let worker = Store::connect(&app.t.connect_options())
        .await
        .unwrap()
        .with_clock(Clock::manual(live_from + 10));
    let before = written(app, key).await;
    let outcome = schedule::step(&worker, &config()).await.unwrap();
    let Some(StepOutcome::Failed { id, decision }) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(id, scheduled[0]);
    assert!(
        matches!(&decision, flagstone_store::queue::Decision::Park { reason, .. }
            if *reason == flagstone_store::queue::ParkReason::ChangeRequestStale),
        "{decision:?}"
    );
    // Not applied over the hotfix: nothing served changes, no revision; the parking is audited.
    let (revision, audit) = written(app, key).await;
    assert_eq!((revision, audit), (before.0, before.1 + 1));
    assert_eq!(launch_for(app, key, "pro").await, json!([true, "hotfix"]));
    let (s, parked) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("/api/v1/environments/{key}/scheduled-changes/?state=parked"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{parked}");
    assert_eq!(parked["count"], 1);
    let shown = &parked["results"][0];
    assert_eq!(shown["id"], scheduled[0]);
    assert_eq!(shown["park_reason"], "change_request_stale");
    let error = shown["last_error"].as_str().unwrap();
    assert!(
        error.contains("feature_state_value") && error.contains("hotfix"),
        "{error}"
    );
    let log = app.admin_req(Method::GET, "/api/v1/audit/", None).await["results"][0]["log"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(log.contains("not applied"), "{log}");

    // The other request is applied at its time, and the parked one is never tried again.
    let outcome = schedule::step(&worker, &config()).await.unwrap();
    assert!(
        matches!(outcome, Some(StepOutcome::Applied { id, .. }) if id == scheduled[1]),
        "{outcome:?}"
    );
    assert_eq!(schedule::step(&worker, &config()).await.unwrap(), None);
    assert_eq!(launch_for(app, key, "beta").await, json!([true, "beta"]));
    assert_eq!(launch_for(app, key, "pro").await, json!([true, "hotfix"]));
}

#[tokio::test]
async fn assigned_approvers_see_their_requests_and_their_approval_is_recorded() {
    let f = fixture(1).await;
    let (app, key) = (&f.app, f.key.as_str());
    let feature = app
        .feature(f.project, key, "launch", false, json!("old"))
        .await;
    let [ada_id, bob_id, carl_id, eve_id] = f.ids;
    // A webhook of the environment that opted in to the change-request events (made in the
    // store: the test's admin API refuses a receiver it cannot resolve).
    let hook = {
        let actor = flagstone_store::Actor::system("test");
        let mut ch = app.t.store.change(&actor).await.unwrap();
        let env = flagstone_store::environments::get_by_key(ch.tx(), key)
            .await
            .unwrap();
        let new = flagstone_store::webhooks::NewWebhook {
            url: "https://hooks.example.com/flagstone".into(),
            enabled: true,
            secret: None,
            events: vec![
                "CHANGE_REQUEST_CREATED".into(),
                "CHANGE_REQUEST_APPROVED".into(),
                "CHANGE_REQUEST_COMMITTED".into(),
            ],
        };
        let scope = flagstone_store::webhooks::Scope::Environment(env.id);
        let made = flagstone_store::webhooks::create(&mut ch, scope, &new)
            .await
            .unwrap();
        ch.commit().await.unwrap();
        made.id
    };
    let path = format!("/api/v1/environments/{key}/create-change-request/");
    // Assigning the author, a stranger, or someone twice is refused.
    for (approvals, field) in [
        (json!([{"user": ada_id}]), "approvals[0].user"),
        (json!([{"user": 999_999}]), "approvals[0].user"),
        (
            json!([{"user": bob_id}, {"user": bob_id}]),
            "approvals[1].user",
        ),
    ] {
        let (s, refused) = call(
            app,
            &f.ada,
            Method::POST,
            &path,
            Some(json!({"title": "t", "approvals": approvals,
                        "feature_states": [{"feature": feature, "enabled": true}]})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["field"], field, "{refused}");
    }
    let assigned = open(
        &f,
        json!({"title": "For bob", "approvals": [{"user": bob_id, "required": true}],
               "feature_states": [{"feature": feature, "enabled": true}]}),
    )
    .await;
    let other = open(
        &f,
        json!({"title": "For carl", "approvals": [{"user": carl_id}],
               "feature_states": [{"feature": feature, "feature_state_value": "x"}]}),
    )
    .await;
    let id = assigned["id"].as_i64().unwrap();
    let approval = &assigned["approvals"][0];
    assert_eq!(approval["user"], bob_id);
    assert_eq!(approval["required"], true);
    assert_eq!(approval["approved_at"], Value::Null);
    assert_eq!(approval["approver"], "bob@example.com");
    // An assignment is not an approval.
    assert_eq!(assigned["is_approved"], false);

    let list = format!("/api/v1/environments/{key}/list-change-requests/");
    for (user, expected) in [
        (bob_id, vec![id]),
        (carl_id, vec![other["id"].as_i64().unwrap()]),
    ] {
        let (s, mine) = call(
            app,
            &f.eve,
            Method::GET,
            &format!("{list}?assignee={user}&committed=false"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{mine}");
        let ids: Vec<i64> = mine["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, expected);
        assert_eq!(mine["count"], 1);
    }
    let (_, none) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("{list}?assignee={eve_id}"),
        None,
    )
    .await;
    assert_eq!(none["count"], 0);

    // Bob's approval fills in his assignment: still one row, now approved and required.
    let (s, approved) = act(&f, &f.bob, id, "approve").await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(approved["approvals"][0]["required"], true);
    assert!(approved["approvals"][0]["approved_at"].is_string());
    assert_eq!(approved["is_approved"], true);
    let (s, done) = act(&f, &f.ada, id, "commit").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    // Still listed for bob once committed, with `committed=true`.
    let (_, mine) = call(
        app,
        &f.eve,
        Method::GET,
        &format!("{list}?assignee={bob_id}&committed=true"),
        None,
    )
    .await;
    assert_eq!(mine["count"], 1);

    // The opt-in events: two created, one approved, one committed, each naming the request.
    let deliveries = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{key}/webhooks/{hook}/deliveries/"),
            None,
        )
        .await;
    let mut types: Vec<String> = deliveries["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap().to_string())
        .filter(|t| t.starts_with("CHANGE_REQUEST_"))
        .collect();
    types.sort();
    assert_eq!(
        types,
        vec![
            "CHANGE_REQUEST_APPROVED",
            "CHANGE_REQUEST_COMMITTED",
            "CHANGE_REQUEST_CREATED",
            "CHANGE_REQUEST_CREATED"
        ],
        "{deliveries}"
    );
}
