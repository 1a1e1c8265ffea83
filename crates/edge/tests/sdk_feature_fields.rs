//! The SDK's feature object as Flagsmith's `SDKFeatureSerializer` gives it in `/flags/` and
//! `/identities/` (`created_date`, `description`, `initial_value` as a string,
//! `default_enabled`; nulled with `hide_sensitive_data`, with the state's `id` and
//! `environment`, as its `HideSensitiveFieldsSerializerMixin` does), the environment document
//! left in Flagsmith's `FeatureModel` shape, and the legacy
//! `GET /api/v1/flags/{id}/multivariate-options/`.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::EdgeApp;
use serde_json::{json, Value};

fn flag<'a>(flags: &'a Value, name: &str) -> &'a Value {
    flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {flags}"))
}

fn is_iso(v: &Value) -> bool {
    v.as_str().is_some_and(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

async fn flags(app: &EdgeApp, key: &str) -> Value {
    let r = app
        .sdk(Method::GET, "/api/v1/flags/", Some(key), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()
}

async fn identity_flags(app: &EdgeApp, key: &str) -> Value {
    let r = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(key),
            Some(json!({"identifier": "ada", "traits": []})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()["flags"].clone()
}

#[tokio::test]
async fn flags_and_identities_carry_flagsmiths_sdk_feature_fields() {
    let app = EdgeApp::new().await;
    let (project, key, server) = app.setup().await;
    let f = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "limit", "description": "requests per minute", "initial_value": 42,
                   "default_enabled": true}),
        )
        .await;
    app.post(
        &format!("/api/v1/projects/{project}/features/"),
        json!({"name": "plain"}),
    )
    .await;
    app.publish().await;

    for items in [flags(&app, &key).await, identity_flags(&app, &key).await] {
        let limit = flag(&items, "limit");
        let feature = &limit["feature"];
        assert_eq!(feature["id"], f["id"]);
        assert_eq!(feature["created_date"], f["created_date"]);
        assert!(is_iso(&feature["created_date"]), "{feature}");
        assert_eq!(feature["description"], "requests per minute");
        // Flagsmith keeps the initial value as text.
        assert_eq!(feature["initial_value"], "42");
        assert_eq!(feature["default_enabled"], true);
        assert_eq!(feature["type"], "STANDARD");
        let keys: Vec<&String> = feature.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "id",
                "name",
                "created_date",
                "description",
                "initial_value",
                "default_enabled",
                "type"
            ]
        );
        assert!(limit["id"].is_i64(), "{limit}");
        assert!(limit["environment"].is_i64(), "{limit}");
        let plain = &flag(&items, "plain")["feature"];
        assert_eq!(
            (
                &plain["description"],
                &plain["initial_value"],
                &plain["default_enabled"]
            ),
            (&Value::Null, &Value::Null, &json!(false))
        );
    }
    let one = app
        .sdk(
            Method::GET,
            "/api/v1/flags/?feature=limit",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(one.json()["feature"]["initial_value"], "42");

    // The environment document keeps Flagsmith's FeatureModel: id, name, type.
    let doc = app
        .sdk(
            Method::GET,
            "/api/v1/environment-document/",
            Some(&server),
            None,
            &[],
        )
        .await;
    let doc = doc.json();
    for fs in doc["feature_states"].as_array().unwrap() {
        let keys: Vec<&String> = fs["feature"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "name", "type"], "{fs}");
    }

    // A description changed later is served after the next publish.
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/features/{}/", f["id"]),
        Some(json!({"description": "per second"})),
    )
    .await;
    app.publish().await;
    assert_eq!(
        flag(&flags(&app, &key).await, "limit")["feature"]["description"],
        "per second"
    );

    // An edge started from its cache (store gone) serves the same fields.
    app.t.store.close().await;
    let registry = std::sync::Arc::new(flagstone_edge::Registry::default());
    let _follower = flagstone_edge::Follower::start(
        app.t.store.clone(),
        registry.clone(),
        flagstone_edge::FollowerConfig {
            poll_interval: Duration::from_secs(3600),
            cache_dir: Some(app.cache_dir.path().to_path_buf()),
        },
        flagstone_edge::PublishFeed::PollOnly,
    )
    .await;
    registry.initial_load_finished().await;
    let snap = registry.get(&key).await.expect("served from the cache");
    let cached: Value = serde_json::from_slice(&snap.flags_client).unwrap();
    assert_eq!(
        flag(&cached, "limit")["feature"]["description"],
        "per second"
    );
}

#[tokio::test]
async fn hide_sensitive_data_nulls_what_flagsmith_nulls() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    app.post(
        &format!("/api/v1/projects/{project}/features/"),
        json!({"name": "limit", "description": "secret plan", "initial_value": "x"}),
    )
    .await;
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/"),
        Some(json!({"hide_sensitive_data": true})),
    )
    .await;
    app.publish().await;
    for items in [flags(&app, &key).await, identity_flags(&app, &key).await] {
        let limit = flag(&items, "limit");
        for field in [
            "created_date",
            "description",
            "initial_value",
            "default_enabled",
        ] {
            assert!(limit["feature"][field].is_null(), "{field}: {limit}");
        }
        assert_eq!(limit["feature"]["name"], "limit");
        for field in ["id", "environment", "identity", "feature_segment"] {
            assert!(limit[field].is_null(), "{field}: {limit}");
        }
        assert_eq!(limit["feature_state_value"], "x");
    }
}

#[tokio::test]
async fn multivariate_options_are_listed_as_flagsmiths_legacy_endpoint_does() {
    let app = EdgeApp::new().await;
    let (project, key, server) = app.setup().await;
    let f = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "colour", "type": "MULTIVARIATE", "initial_value": "grey",
            "multivariate_options": [
                {"type": "unicode", "string_value": "blue", "default_percentage_allocation": 30},
                {"type": "int", "integer_value": 7, "default_percentage_allocation": 20},
                {"type": "bool", "boolean_value": true, "default_percentage_allocation": 10}
            ]}),
        )
        .await;
    let plain = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "plain", "initial_value": 3}),
        )
        .await;
    let hidden = app
        .post(
            &format!("/api/v1/projects/{project}/features/"),
            json!({"name": "hidden", "is_server_key_only": true}),
        )
        .await;
    app.publish().await;

    let get = |id: &Value, k: &str| {
        let path = format!("/api/v1/flags/{id}/multivariate-options/");
        let k = k.to_string();
        let app = &app;
        async move { app.sdk(Method::GET, &path, Some(&k), None, &[]).await }
    };
    let r = get(&f["id"], &key).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"control_value": "grey", "options": [{"value": "blue"}, {"value": 7}, {"value": true}]})
    );
    let r = get(&plain["id"], &key).await;
    assert_eq!(r.json(), json!({"control_value": 3, "options": []}));

    // Server-key-only features are not listed for client keys.
    assert_eq!(get(&hidden["id"], &key).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&hidden["id"], &server).await.status, StatusCode::OK);
    // Unknown ids, ids that are not numbers, and no key.
    assert_eq!(
        get(&json!(999_999), &key).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&json!("abc"), &key).await.status, StatusCode::NOT_FOUND);
    let r = app
        .sdk(
            Method::GET,
            &format!("/api/v1/flags/{}/multivariate-options/", f["id"]),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // An archived feature has no control value (Flagsmith reads unarchived live states).
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/features/{}/", f["id"]),
        Some(json!({"is_archived": true})),
    )
    .await;
    app.publish().await;
    let r = get(&f["id"], &key).await;
    assert_eq!(r.json()["control_value"], Value::Null);
    assert_eq!(r.json()["options"].as_array().unwrap().len(), 3);
}
