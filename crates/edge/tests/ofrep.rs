//! OFREP (OpenFeature Remote Evaluation Protocol) at the edge: the single and bulk evaluation
//! endpoints answer what `POST /api/v1/identities/` answers for the same identity and traits
//! (segment, identity overrides, splits), in the spec's shapes, reasons and error codes; the
//! context is transient (nothing persisted); bulk answers carry an ETag and honour
//! If-None-Match.

mod common;

use axum::http::{Method, StatusCode};
use common::{EdgeApp, Resp};
use serde_json::{json, Value};

struct Fixture {
    key: String,
    server: String,
    environment: i64,
}

/// Features: `banner` ("hello", segment override "gold" for plan == premium, identity override
/// for `vip`), `beta` (flag only, disabled), `limit` (42), `color` (50/50 red/blue split),
/// `secret` (server-key-only).
async fn seeded(app: &EdgeApp) -> Fixture {
    let (project, key, server) = app.setup().await;
    let banner = app
        .feature(project, &key, "banner", true, json!("hello"))
        .await;
    app.feature(project, &key, "beta", false, Value::Null).await;
    app.feature(project, &key, "limit", true, json!(42)).await;
    app.post(
        &format!("/api/v1/projects/{project}/features/"),
        json!({"name": "color", "initial_value": "grey", "default_enabled": true,
               "multivariate_options": [
                   {"value": "red", "key": "red-variant", "default_percentage_allocation": 50},
                   {"value": "blue", "key": "blue-variant", "default_percentage_allocation": 50}]}),
    )
    .await;
    app.post(
        &format!("/api/v1/projects/{project}/features/"),
        json!({"name": "secret", "initial_value": "s", "default_enabled": true,
               "is_server_key_only": true}),
    )
    .await;
    let seg = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "premium", "rules": [{"type": "ALL", "rules": [{"type": "ANY",
                "conditions": [{"operator": "EQUAL", "property": "plan", "value": "premium"}]}]}]}),
        )
        .await;
    app.post(
        &format!("/api/v1/environments/{key}/features/{banner}/create-segment-override/"),
        json!({"segment": seg["id"], "enabled": true, "feature_state_value": "gold"}),
    )
    .await;
    let vip = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({"identifier": "vip"}),
        )
        .await;
    app.post(
        &format!(
            "/api/v1/environments/{key}/identities/{}/featurestates/",
            vip["id"]
        ),
        json!({"feature": banner, "enabled": true, "feature_state_value": "personal"}),
    )
    .await;
    app.publish().await;
    let environment = app
        .admin_req(Method::GET, &format!("/api/v1/environments/{key}/"), None)
        .await["id"]
        .as_i64()
        .unwrap();
    Fixture {
        key,
        server,
        environment,
    }
}

async fn bearer(app: &EdgeApp, key: &str, path: &str, body: Value, extra: &[(&str, &str)]) -> Resp {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    app.sdk(Method::POST, path, None, Some(body), &headers)
        .await
}

async fn one(app: &EdgeApp, key: &str, flag: &str, context: Value) -> Resp {
    bearer(
        app,
        key,
        &format!("/ofrep/v1/evaluate/flags/{flag}"),
        json!({ "context": context }),
        &[],
    )
    .await
}

fn item<'a>(bulk: &'a Value, key: &str) -> &'a Value {
    bulk["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key)
        .unwrap_or_else(|| panic!("{key} not in {bulk}"))
}

#[tokio::test]
async fn single_flags_carry_flagsmiths_precedence_as_reasons_and_variants() {
    let app = EdgeApp::new().await;
    let f = seeded(&app).await;

    let plain = one(&app, &f.key, "banner", json!({"targetingKey": "u1"})).await;
    assert_eq!(
        plain.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&plain.body)
    );
    assert_eq!(
        plain.headers["content-type"], "application/json",
        "JSON, as the JS providers require"
    );
    let feature_id = plain.json()["metadata"]["featureId"].clone();
    assert_eq!(
        plain.json(),
        json!({"key": "banner", "value": "hello", "reason": "STATIC", "variant": "default",
               "metadata": {"featureId": feature_id, "enabled": true}})
    );

    // Other context fields are traits: the segment override applies.
    let premium = one(
        &app,
        &f.key,
        "banner",
        json!({"targetingKey": "u2", "plan": "premium"}),
    )
    .await
    .json();
    assert_eq!(
        (&premium["value"], &premium["reason"], &premium["variant"]),
        (
            &json!("gold"),
            &json!("TARGETING_MATCH"),
            &json!("segment:premium")
        )
    );
    assert_eq!(premium["metadata"]["segment"], "premium");

    // The identity override beats the segment.
    let vip = one(
        &app,
        &f.key,
        "banner",
        json!({"targetingKey": "vip", "plan": "premium"}),
    )
    .await
    .json();
    assert_eq!(
        (
            &vip["value"],
            &vip["reason"],
            &vip["metadata"]["identityOverride"]
        ),
        (&json!("personal"), &json!("TARGETING_MATCH"), &json!(true))
    );

    // Flag only: a boolean of its state; disabled says so.
    let beta = one(&app, &f.key, "beta", json!({"targetingKey": "u1"}))
        .await
        .json();
    assert_eq!(
        (&beta["value"], &beta["reason"]),
        (&json!(false), &json!("DISABLED"))
    );
    let limit = one(&app, &f.key, "limit", json!({"targetingKey": "u1"}))
        .await
        .json();
    assert_eq!(limit["value"], 42);

    // The split: both variants hit, each identity always the same one.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let id = format!("user-{i}");
        let c = one(&app, &f.key, "color", json!({"targetingKey": id}))
            .await
            .json();
        assert_eq!(c["reason"], "SPLIT");
        let again = one(&app, &f.key, "color", json!({"targetingKey": id}))
            .await
            .json();
        assert_eq!(c, again);
        let expected = if c["value"] == "red" {
            "red-variant"
        } else {
            "blue-variant"
        };
        assert_eq!(c["variant"], expected, "{c}");
        seen.insert(c["value"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test]
async fn ofrep_answers_what_the_identities_endpoint_answers() {
    let app = EdgeApp::new().await;
    let f = seeded(&app).await;
    for (identifier, traits) in [
        ("a", json!({})),
        ("b", json!({"plan": "premium"})),
        ("vip", json!({"plan": "basic"})),
        ("c", json!({"plan": "premium", "age": 31})),
    ] {
        let mut context = traits.clone();
        context["targetingKey"] = json!(identifier);
        let bulk = bearer(
            &app,
            &f.server,
            "/ofrep/v1/evaluate/flags",
            json!({ "context": context }),
            &[],
        )
        .await
        .json();
        let sdk_traits: Vec<Value> = traits
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| json!({"trait_key": k, "trait_value": v, "transient": true}))
            .collect();
        let identity = app
            .sdk(
                Method::POST,
                "/api/v1/identities/",
                Some(&f.server),
                Some(json!({"identifier": identifier, "traits": sdk_traits, "transient": true})),
                &[],
            )
            .await
            .json();
        let flags = identity["flags"].as_array().unwrap();
        assert_eq!(bulk["flags"].as_array().unwrap().len(), flags.len());
        for flag in flags {
            let name = flag["feature"]["name"].as_str().unwrap();
            let o = item(&bulk, name);
            assert_eq!(
                o["metadata"]["enabled"], flag["enabled"],
                "{identifier} {name}"
            );
            let value = match &flag["feature_state_value"] {
                Value::Null => flag["enabled"].clone(),
                v => v.clone(),
            };
            assert_eq!(o["value"], value, "{identifier} {name}");
            if let Some(variant) = flag["variant"].as_str() {
                assert_eq!(o["variant"], variant, "{identifier} {name}");
            }
        }
    }
}

#[tokio::test]
async fn errors_are_the_specs_codes_and_statuses() {
    let app = EdgeApp::new().await;
    let f = seeded(&app).await;

    let missing = one(&app, &f.key, "nope", json!({"targetingKey": "u1"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["key"], "nope");
    assert_eq!(missing.json()["errorCode"], "FLAG_NOT_FOUND");
    // A server-key-only flag does not exist for a client key.
    let hidden = one(&app, &f.key, "secret", json!({"targetingKey": "u1"})).await;
    assert_eq!(hidden.json()["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(
        one(&app, &f.server, "secret", json!({"targetingKey": "u1"}))
            .await
            .json()["value"],
        "s"
    );

    let garbled = bearer(
        &app,
        &f.key,
        "/ofrep/v1/evaluate/flags/banner",
        json!("x"),
        &[],
    )
    .await;
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbled.json()["errorCode"], "PARSE_ERROR");
    assert_eq!(garbled.json()["key"], "banner");
    let not_json = app
        .sdk(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&f.key),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.json()["errorCode"], "PARSE_ERROR");
    assert!(
        not_json.json().get("key").is_none(),
        "bulk failures have no key"
    );

    let bad_key = one(&app, &f.key, "banner", json!({"targetingKey": 7})).await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_key.json()["errorCode"], "INVALID_CONTEXT");
    let bad_id = one(
        &app,
        &f.key,
        "banner",
        json!({"targetingKey": "a\u{202e}b"}),
    )
    .await;
    assert_eq!(
        bad_id.json()["errorCode"],
        "INVALID_CONTEXT",
        "{}",
        bad_id.json()
    );

    // No targeting key: flags that do not depend on who asks are served, targeted ones are not.
    let anon = one(&app, &f.key, "limit", json!({})).await.json();
    assert_eq!(
        (&anon["value"], &anon["reason"]),
        (&json!(42), &json!("STATIC"))
    );
    let targeted = one(&app, &f.key, "banner", json!({"plan": "premium"})).await;
    assert_eq!(targeted.status, StatusCode::BAD_REQUEST);
    assert_eq!(targeted.json()["errorCode"], "TARGETING_KEY_MISSING");
    let bulk = bearer(&app, &f.key, "/ofrep/v1/evaluate/flags", json!({}), &[]).await;
    assert_eq!(bulk.status, StatusCode::OK);
    let bulk = bulk.json();
    assert_eq!(item(&bulk, "color")["errorCode"], "TARGETING_KEY_MISSING");
    assert_eq!(item(&bulk, "banner")["errorCode"], "TARGETING_KEY_MISSING");
    assert_eq!(item(&bulk, "limit")["value"], 42);

    // Auth: none, unknown, other schemes -> 401; X-Environment-Key and X-API-Key work too.
    let body = json!({"context": {"targetingKey": "u1"}});
    let none = app
        .sdk(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            None,
            Some(body.clone()),
            &[],
        )
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let unknown = bearer(&app, "nope", "/ofrep/v1/evaluate/flags", body.clone(), &[]).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let basic = app
        .sdk(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            None,
            Some(body.clone()),
            &[("authorization", &format!("Basic {}", f.key))],
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    let flagsmith_header = app
        .sdk(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&f.key),
            Some(body.clone()),
            &[],
        )
        .await;
    assert_eq!(flagsmith_header.status, StatusCode::OK);
    let api_key = app
        .sdk(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            None,
            Some(body),
            &[("x-api-key", &f.key)],
        )
        .await;
    assert_eq!(api_key.status, StatusCode::OK);
}

#[tokio::test]
async fn the_context_is_transient_and_checked_by_the_projects_trait_limits() {
    let app = EdgeApp::new().await;
    let f = seeded(&app).await;
    let r = one(
        &app,
        &f.server,
        "banner",
        json!({"targetingKey": "newcomer", "plan": "premium"}),
    )
    .await;
    assert_eq!(r.json()["value"], "gold");
    // Trait writes are queued behind requests: give the writer a moment, then check.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut tx = app.t.store.read().await.unwrap();
    let stored = flagstone_store::identities::load_identity(&mut tx, f.environment, "newcomer")
        .await
        .unwrap();
    drop(tx);
    assert!(stored.is_none(), "OFREP created an identity: {stored:?}");

    // The store's per-request trait limit (200 by default) applies to the context.
    let mut context = serde_json::Map::new();
    context.insert("targetingKey".into(), json!("u1"));
    for i in 0..201 {
        context.insert(format!("t{i}"), json!(i));
    }
    let many = one(&app, &f.server, "banner", Value::Object(context)).await;
    assert_eq!(many.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        many.json()["errorCode"],
        "INVALID_CONTEXT",
        "{}",
        many.json()
    );
    let long = one(
        &app,
        &f.server,
        "banner",
        json!({"targetingKey": "u1", "bio": "x".repeat(5000)}),
    )
    .await;
    assert_eq!(
        long.json()["errorCode"],
        "INVALID_CONTEXT",
        "{}",
        long.json()
    );
}

#[tokio::test]
async fn bulk_answers_have_an_etag_and_304_until_the_answer_changes() {
    let app = EdgeApp::new().await;
    let f = seeded(&app).await;
    let body = json!({"context": {"targetingKey": "u1", "plan": "premium"}});
    let first = bearer(&app, &f.key, "/ofrep/v1/evaluate/flags", body.clone(), &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    let etag = first.headers["etag"].to_str().unwrap().to_string();
    let first_body = first.json();
    let names: Vec<&str> = first_body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"secret"), "{names:?}");
    assert_eq!(item(&first.json(), "banner")["value"], "gold");

    let again = bearer(
        &app,
        &f.key,
        "/ofrep/v1/evaluate/flags",
        body.clone(),
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.headers["etag"], etag.as_str());

    // Another context gets another answer, so the tag does not match.
    let other = bearer(
        &app,
        &f.key,
        "/ofrep/v1/evaluate/flags",
        json!({"context": {"targetingKey": "u1"}}),
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);

    // A change to the flags: the old tag no longer matches.
    let (project, key) = (
        app.admin_req(
            Method::GET,
            &format!("/api/v1/environments/{}/", f.key),
            None,
        )
        .await["project"]
            .as_i64()
            .unwrap(),
        f.key.clone(),
    );
    app.feature(project, &key, "fresh", true, json!("new"))
        .await;
    app.publish().await;
    let changed = bearer(
        &app,
        &f.key,
        "/ofrep/v1/evaluate/flags",
        body,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(item(&changed.json(), "fresh")["value"], "new");
}

#[tokio::test]
async fn browsers_on_other_origins_may_call_ofrep_with_a_bearer_key_and_read_the_etag() {
    let app = EdgeApp::new().await;
    let f = seeded(&app).await;
    let origin = "https://shop.example";
    let pre = app
        .sdk(
            Method::OPTIONS,
            "/ofrep/v1/evaluate/flags",
            None,
            None,
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type,if-none-match,x-api-key",
                ),
            ],
        )
        .await;
    assert!(pre.status.is_success(), "{}", pre.status);
    let allowed = pre.headers["access-control-allow-headers"]
        .to_str()
        .unwrap();
    for needed in [
        "authorization",
        "content-type",
        "if-none-match",
        "x-api-key",
    ] {
        assert!(allowed.contains(needed), "{allowed}");
    }
    let r = bearer(
        &app,
        &f.key,
        "/ofrep/v1/evaluate/flags",
        json!({"context": {"targetingKey": "u1"}}),
        &[("origin", origin)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let exposed = r.headers["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("etag"), "{exposed}");
}
