//! Environments side by side: a clone serves exactly what its source serves (SDK endpoint) and
//! compares equal to it; changes in one show in the comparison per feature; promoting a
//! feature copies its whole configuration (default, overrides) across until the comparison is
//! empty again; into an environment that requires approvals a promotion by a non-admin opens
//! a change request that applies only once approved and committed. Bad input writes nothing.

mod common;

use axum::http::{Method, StatusCode};
use common::people::{call, user};
use common::EdgeApp;
use flagstone_store::PageRequest;
use serde_json::{json, Value};

/// Every flag as the SDK sees it in the environment: name → (enabled, value).
async fn sdk_flags(app: &EdgeApp, key: &str) -> Value {
    app.publish().await;
    let r = app
        .sdk(Method::GET, "/api/v1/flags/", Some(key), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut out = serde_json::Map::new();
    for f in r.json().as_array().unwrap() {
        out.insert(
            f["feature"]["name"].as_str().unwrap().to_string(),
            json!([f["enabled"], f["feature_state_value"]]),
        );
    }
    Value::Object(out)
}

/// The flags an identity with `plan: pro` gets (segment overrides apply).
async fn pro_flags(app: &EdgeApp, key: &str) -> Value {
    app.publish().await;
    let r = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(key),
            Some(
                json!({"identifier": "p1", "traits": [{"trait_key": "plan", "trait_value": "pro"}]}),
            ),
            &[],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let mut out = serde_json::Map::new();
    for f in r.json()["flags"].as_array().unwrap() {
        out.insert(
            f["feature"]["name"].as_str().unwrap().to_string(),
            json!([f["enabled"], f["feature_state_value"]]),
        );
    }
    Value::Object(out)
}

/// Feature b as the SDK shows it to identity `vip` (no traits sent).
async fn vip_b(app: &EdgeApp, key: &str) -> Value {
    app.publish().await;
    let r = app
        .sdk(
            Method::GET,
            "/api/v1/identities/?identifier=vip",
            Some(key),
            None,
            &[],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let body = r.json();
    let f = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "b")
        .unwrap()
        .clone();
    json!([f["enabled"], f["feature_state_value"]])
}

async fn revision_and_audit(app: &EdgeApp) -> (Vec<(i64, i64)>, i64) {
    let mut tx = app.t.store.read().await.unwrap();
    let envs = flagstone_store::environments::list(&mut tx, None, PageRequest::new(1, 100))
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|e| (e.id, e.revision))
        .collect();
    let audit = flagstone_store::audit::list(&mut tx, None, PageRequest::new(1, 1))
        .await
        .unwrap()
        .count;
    (envs, audit)
}

async fn segment(app: &EdgeApp, project: i64) -> i64 {
    app.post(
        &format!("/api/v1/projects/{project}/segments/"),
        json!({"name": "pro", "rules": [{"type": "ALL", "rules": [{"type": "ANY",
            "conditions": [{"operator": "EQUAL", "property": "plan", "value": "pro"}]}]}]}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn state_of(app: &EdgeApp, key: &str, feature: i64) -> i64 {
    app.admin_req(
        Method::GET,
        &format!("/api/v1/environments/{key}/featurestates/?feature={feature}"),
        None,
    )
    .await["results"][0]["id"]
        .as_i64()
        .unwrap()
}

async fn revision(app: &EdgeApp, key: &str) -> i64 {
    let mut tx = app.t.store.read().await.unwrap();
    flagstone_store::environments::get_by_key(&mut tx, key)
        .await
        .unwrap()
        .revision
}

async fn compare(app: &EdgeApp, a: &str, b: &str) -> Value {
    app.admin_req(
        Method::GET,
        &format!("/api/v1/environments/{a}/compare/{b}/"),
        None,
    )
    .await
}

#[tokio::test]
async fn clone_compare_and_promote_round_trip() {
    let app = EdgeApp::new().await;
    let (project, prod, _) = app.setup().await;
    let pro = segment(&app, project).await;
    let a = app.feature(project, &prod, "a", true, json!("x")).await;
    let b = app.feature(project, &prod, "b", false, json!(1)).await;
    app.post(
        &format!("/api/v1/environments/{prod}/features/{a}/create-segment-override/"),
        json!({"segment": pro, "enabled": true, "feature_state_value": "pro-x"}),
    )
    .await;

    // A VIP identity with a trait and an override of b in prod.
    let vip = app
        .post(
            &format!("/api/v1/environments/{prod}/identities/"),
            json!({"identifier": "vip"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/v1/environments/{prod}/identities/{vip}/traits/"),
        json!({"trait_key": "tier", "trait_value": "gold"}),
    )
    .await;
    app.post(
        &format!("/api/v1/environments/{prod}/identities/{vip}/featurestates/"),
        json!({"feature": b, "enabled": true, "feature_state_value": 9}),
    )
    .await;

    let (status, staging) = {
        let r = app
            .admin_raw(
                Method::POST,
                &format!("/api/v1/environments/{prod}/clone/"),
                Some(json!({"name": "staging"})),
            )
            .await;
        (r.status, r.json())
    };
    assert_eq!(status, StatusCode::CREATED, "{staging}");
    assert_eq!(staging["name"], "staging");
    let staging = staging["api_key"].as_str().unwrap().to_string();
    assert_ne!(staging, prod);
    // The clone serves what its source serves, overrides included, and compares equal.
    assert_eq!(
        sdk_flags(&app, &staging).await,
        sdk_flags(&app, &prod).await
    );
    assert_eq!(
        pro_flags(&app, &staging).await,
        json!({"a": [true, "pro-x"], "b": [false, 1]})
    );
    // Identity overrides are copied only when asked.
    assert_eq!(vip_b(&app, &staging).await, json!([false, 1]));
    let qa = app
        .post(
            &format!("/api/v1/environments/{prod}/clone/"),
            json!({"name": "qa", "clone_identity_overrides": true}),
        )
        .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(vip_b(&app, &qa).await, json!([true, 9]));
    let copied = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{qa}/identities/"),
            None,
        )
        .await;
    assert_eq!(copied["count"], 1, "{copied}");
    let copy = copied["results"][0]["id"].as_i64().unwrap();
    let traits = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{qa}/identities/{copy}/traits/"),
            None,
        )
        .await;
    assert_eq!(traits["results"][0]["trait_key"], "tier", "{traits}");
    assert_eq!(traits["results"][0]["trait_value"], "gold", "{traits}");
    let same = compare(&app, &prod, &staging).await;
    assert_eq!(same["features_compared"], 2);
    assert_eq!(same["differences"], json!([]));

    // Staging moves on: a's default changes, b gains an override.
    let sa = state_of(&app, &staging, a).await;
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{staging}/featurestates/{sa}/"),
        Some(json!({"enabled": false, "feature_state_value": "y"})),
    )
    .await;
    app.post(
        &format!("/api/v1/environments/{staging}/features/{b}/create-segment-override/"),
        json!({"segment": pro, "enabled": true, "feature_state_value": 2}),
    )
    .await;
    let differs = compare(&app, &prod, &staging).await;
    let d = differs["differences"].as_array().unwrap();
    assert_eq!(d.len(), 2, "{differs}");
    assert_eq!(d[0]["name"], "a");
    assert_eq!(
        d[0]["diff"]["fields_changed"],
        json!([{"field": "enabled", "before": true, "after": false},
               {"field": "feature_state_value", "before": "x", "after": "y"}])
    );
    assert_eq!(d[1]["name"], "b");
    assert_eq!(d[1]["diff"]["overrides_added"][0]["segment"], pro);
    // Prod is untouched by all that.
    assert_eq!(
        sdk_flags(&app, &prod).await,
        json!({"a": [true, "x"], "b": [false, 1]})
    );

    // Promote both features into prod: the comparison is empty again and SDKs see it.
    for f in [a, b] {
        let r = app
            .admin_raw(
                Method::POST,
                &format!("/api/v1/environments/{prod}/features/{f}/promote/"),
                Some(json!({"from": staging})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    }
    assert_eq!(
        compare(&app, &staging, &prod).await["differences"],
        json!([])
    );
    assert_eq!(
        sdk_flags(&app, &prod).await,
        json!({"a": [false, "y"], "b": [false, 1]})
    );
    assert_eq!(
        pro_flags(&app, &prod).await,
        json!({"a": [true, "pro-x"], "b": [true, 2]})
    );
    // An ordinary change: a version in the feature's history, an audit entry.
    let versions = app
        .admin_req(
            Method::GET,
            &format!("/api/v1/environments/{prod}/features/{b}/versions/"),
            None,
        )
        .await;
    assert_eq!(versions["count"], 3, "{versions}");
    assert_eq!(versions["results"][0]["kind"], "change");
    let audit = app.admin_req(Method::GET, "/api/v1/audit/", None).await;
    assert!(
        audit["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["log"]
                == "Feature 'b' in environment 'prod' promoted from environment 'staging'"),
        "{audit}"
    );
    // Promoting what is already equal writes nothing.
    let before = revision_and_audit(&app).await;
    let r = app
        .admin_raw(
            Method::POST,
            &format!("/api/v1/environments/{prod}/features/{a}/promote/"),
            Some(json!({"from": staging})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(revision_and_audit(&app).await, before);
}

#[tokio::test]
async fn promoting_into_an_environment_that_requires_approvals_opens_a_change_request() {
    let app = EdgeApp::new().await;
    let (project, prod, _) = app.setup().await;
    let pro = segment(&app, project).await;
    let a = app.feature(project, &prod, "a", false, json!("old")).await;
    let staging = app
        .post(
            &format!("/api/v1/environments/{prod}/clone/"),
            json!({"name": "staging"}),
        )
        .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let sa = state_of(&app, &staging, a).await;
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{staging}/featurestates/{sa}/"),
        Some(json!({"enabled": true, "feature_state_value": "new"})),
    )
    .await;
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{prod}/"),
        Some(json!({"minimum_change_request_approvals": 1})),
    )
    .await;
    let organisation = app
        .admin_req(Method::GET, &format!("/api/v1/projects/{project}/"), None)
        .await["organisation"]
        .as_i64()
        .unwrap();
    let (ada_id, ada) = user(&app, organisation, "ada@example.com", "USER").await;
    let (bob_id, bob) = user(&app, organisation, "bob@example.com", "USER").await;
    for key in [&prod, &staging] {
        app.post(
            &format!("/api/v1/environments/{key}/user-permissions/"),
            json!({"user": ada_id, "permissions": ["VIEW_ENVIRONMENT", "UPDATE_FEATURE_STATE",
                   "MANAGE_SEGMENT_OVERRIDES", "CREATE_CHANGE_REQUEST"]}),
        )
        .await;
    }
    app.post(
        &format!("/api/v1/environments/{prod}/user-permissions/"),
        json!({"user": bob_id, "permissions": ["VIEW_ENVIRONMENT", "APPROVE_CHANGE_REQUEST"]}),
    )
    .await;

    let promote = format!("/api/v1/environments/{prod}/features/{a}/promote/");
    let (s, cr) = call(
        &app,
        &ada,
        Method::POST,
        &promote,
        Some(json!({"from": staging})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{cr}");
    assert_eq!(cr["title"], "Promote 'a' from 'staging'");
    assert_eq!(cr["status"], "open");
    let id = cr["id"].as_i64().unwrap();
    assert_eq!(sdk_flags(&app, &prod).await, json!({"a": [false, "old"]}));
    let (s, body) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = call(
        &app,
        &ada,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/commit/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(sdk_flags(&app, &prod).await, json!({"a": [true, "new"]}));

    // Now equal: promoting again changes nothing, so it neither opens a request nor writes.
    let before = revision_and_audit(&app).await;
    let (s, body) = call(
        &app,
        &ada,
        Method::POST,
        &promote,
        Some(json!({"from": staging})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["diff"]["fields_changed"], json!([]));
    assert_eq!(revision_and_audit(&app).await, before);

    // A promotion that changes overrides travels in a change request too: staging gains an
    // override for pro and a second one, in an order prod must take over.
    let vip = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "vip", "rules": [{"type": "ALL", "rules": [{"type": "ANY",
                "conditions": [{"operator": "EQUAL", "property": "plan", "value": "pro"}]}]}]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/v1/environments/{staging}/features/{a}/create-segment-override/"),
        json!({"segment": vip, "enabled": true, "feature_state_value": "vip"}),
    )
    .await;
    app.post(
        &format!("/api/v1/environments/{staging}/features/{a}/create-segment-override/"),
        json!({"segment": pro, "enabled": false, "feature_state_value": "pro", "priority": 0}),
    )
    .await;
    // prod has a vip override of its own, with another value, that the promotion changes.
    app.post(
        &format!("/api/v1/environments/{prod}/features/{a}/create-segment-override/"),
        json!({"segment": vip, "enabled": true, "feature_state_value": "prod-vip"}),
    )
    .await;
    let before = revision(&app, &prod).await;
    let (s, cr) = call(
        &app,
        &ada,
        Method::POST,
        &promote,
        Some(json!({"from": staging})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{cr}");
    assert_eq!(
        cr["feature_states"],
        json!([
            {"feature": a, "feature_segment": {"segment": pro, "priority": 0},
             "enabled": false, "feature_state_value": "pro",
             "multivariate_feature_state_values": []},
            {"feature": a, "feature_segment": {"segment": vip, "priority": 1},
             "enabled": true, "feature_state_value": "vip",
             "multivariate_feature_state_values": []}
        ])
    );
    let fields: Vec<(Value, Value)> = cr["diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["segment"].clone(), d["field"].clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (json!(pro), json!("segment_override")),
            (json!(vip), json!("feature_state_value")),
            (json!(vip), json!("priority")),
        ],
        "{}",
        cr["diff"]
    );
    // Opening it wrote the request only: prod serves what it served.
    assert_eq!(revision(&app, &prod).await, before);
    assert_eq!(
        pro_flags(&app, &prod).await,
        json!({"a": [true, "prod-vip"]})
    );
    let id = cr["id"].as_i64().unwrap();
    let (s, body) = call(
        &app,
        &bob,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/approve/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = call(
        &app,
        &ada,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/commit/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // One change: one revision of prod; pro now wins first, as in staging.
    assert_eq!(revision(&app, &prod).await, before + 1);
    assert_eq!(pro_flags(&app, &prod).await, json!({"a": [false, "pro"]}));
    assert_eq!(
        compare(&app, &prod, &staging).await["differences"],
        json!([])
    );
    let before = revision_and_audit(&app).await;
    // Cloning needs CREATE_ENVIRONMENT in the project, which ada lacks.
    let (s, body) = call(
        &app,
        &ada,
        Method::POST,
        &format!("/api/v1/environments/{prod}/clone/"),
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["missing_permission"], "CREATE_ENVIRONMENT");
    assert_eq!(revision_and_audit(&app).await, before);
}

#[tokio::test]
async fn bad_clones_and_promotions_are_refused_and_write_nothing() {
    let app = EdgeApp::new().await;
    let (project, prod, _) = app.setup().await;
    let a = app.feature(project, &prod, "a", true, json!("x")).await;
    // Another project's environment.
    let org = app
        .admin_req(Method::GET, &format!("/api/v1/projects/{project}/"), None)
        .await["organisation"]
        .clone();
    let other_project = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Other", "organisation": org}),
        )
        .await["id"]
        .clone();
    let elsewhere = app
        .post(
            "/api/v1/environments/",
            json!({"name": "elsewhere", "project": other_project}),
        )
        .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let before = revision_and_audit(&app).await;
    let promote = format!("/api/v1/environments/{prod}/features/{a}/promote/");
    for (body, status) in [
        (json!({"from": elsewhere}), StatusCode::BAD_REQUEST),
        (json!({"from": prod}), StatusCode::BAD_REQUEST),
        (
            json!({"from": "no-such-environment"}),
            StatusCode::NOT_FOUND,
        ),
        (json!({}), StatusCode::BAD_REQUEST),
    ] {
        let r = app
            .admin_raw(Method::POST, &promote, Some(body.clone()))
            .await;
        assert_eq!(
            r.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = app
        .admin_raw(
            Method::GET,
            &format!("/api/v1/environments/{prod}/compare/{elsewhere}/"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for body in [json!({"name": ""}), json!({"title": "x"})] {
        let r = app
            .admin_raw(
                Method::POST,
                &format!("/api/v1/environments/{prod}/clone/"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(revision_and_audit(&app).await, before);
}
