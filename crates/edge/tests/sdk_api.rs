//! The SDK API against published documents: flags, identities, overrides, keys, the document
//! endpoint with identity overrides streamed in, conditional requests, real-time events and
//! serving from the last-good cache when the store is gone.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::EdgeApp;
use serde_json::{json, Value};

fn names(flags: &Value) -> Vec<String> {
    let mut v: Vec<String> = flags
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"]["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn flag<'a>(flags: &'a Value, name: &str) -> &'a Value {
    flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == name)
        .unwrap_or_else(|| panic!("no flag {name} in {flags}"))
}

#[tokio::test]
async fn environment_flags_are_served_with_flagsmith_shapes_and_errors() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    app.feature(project, &key, "banner", true, json!("blue"))
        .await;
    app.feature(project, &key, "limit", false, json!(10)).await;
    app.publish().await;

    let r = app
        .sdk(Method::GET, "/api/v1/flags/", Some(&key), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.contains_key("x-flagsmith-document-updated-at"));
    let flags = r.json();
    assert_eq!(names(&flags), ["banner", "limit"]);
    let banner = flag(&flags, "banner");
    assert_eq!(banner["enabled"], true);
    assert_eq!(banner["feature_state_value"], "blue");
    assert_eq!(banner["feature"]["type"], "STANDARD");
    assert_eq!(flag(&flags, "limit")["feature_state_value"], 10);

    let one = app
        .sdk(
            Method::GET,
            "/api/v1/flags/?feature=limit",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(one.json()["feature"]["name"], "limit");
    let missing = app
        .sdk(
            Method::GET,
            "/api/v1/flags/?feature=nope",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["detail"], "Given feature not found");

    let none = app
        .sdk(Method::GET, "/api/v1/flags/", None, None, &[])
        .await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    assert_eq!(none.json()["detail"], "Invalid or missing Environment key");
    let wrong = app
        .sdk(Method::GET, "/api/v1/flags/", Some("not-a-key"), None, &[])
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.json()["detail"], "Invalid or missing Environment Key");
}

#[tokio::test]
async fn server_key_only_features_and_hidden_disabled_flags() {
    let app = EdgeApp::new().await;
    let (project, key, server) = app.setup().await;
    let secret = app.feature(project, &key, "secret", true, json!("s")).await;
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/features/{secret}/"),
        Some(json!({"is_server_key_only": true})),
    )
    .await;
    app.feature(project, &key, "off", false, Value::Null).await;
    app.publish().await;

    let client = app
        .sdk(Method::GET, "/api/v1/flags/", Some(&key), None, &[])
        .await
        .json();
    assert_eq!(names(&client), ["off"]);
    let srv = app
        .sdk(Method::GET, "/api/v1/flags/", Some(&server), None, &[])
        .await
        .json();
    assert_eq!(names(&srv), ["off", "secret"]);

    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/"),
        Some(json!({"hide_disabled_flags": true})),
    )
    .await;
    app.publish().await;
    let srv = app
        .sdk(Method::GET, "/api/v1/flags/", Some(&server), None, &[])
        .await
        .json();
    assert_eq!(names(&srv), ["secret"]);
}

#[tokio::test]
async fn identities_get_segment_and_identity_overrides_in_flagsmith_precedence() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    let banner = app
        .feature(project, &key, "banner", true, json!("default"))
        .await;
    let seg = app
        .post(
            &format!("/api/v1/projects/{project}/segments/"),
            json!({"name": "premium", "rules": [{"type": "ALL", "rules": [{"type": "ANY", "conditions": [
                {"operator": "EQUAL", "property": "plan", "value": "premium"}]}]}]}),
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
        json!({"feature": banner, "enabled": false, "feature_state_value": "personal"}),
    )
    .await;
    app.publish().await;

    let plain = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&key),
            Some(json!({"identifier": "u1", "traits": []})),
            &[],
        )
        .await;
    assert_eq!(
        plain.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&plain.body)
    );
    assert_eq!(
        flag(&plain.json()["flags"], "banner")["feature_state_value"],
        "default"
    );

    let premium = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&key),
            Some(json!({"identifier": "u2", "traits": [{"trait_key": "plan", "trait_value": "premium"}]})),
            &[],
        )
        .await
        .json();
    assert_eq!(
        flag(&premium["flags"], "banner")["feature_state_value"],
        "gold"
    );
    assert_eq!(premium["traits"][0]["trait_key"], "plan");

    // The identity override beats the segment override even when the segment matches.
    let vip = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&key),
            Some(json!({"identifier": "vip", "traits": [{"trait_key": "plan", "trait_value": "premium"}]})),
            &[],
        )
        .await
        .json();
    let b = flag(&vip["flags"], "banner");
    assert_eq!(b["feature_state_value"], "personal");
    assert_eq!(b["enabled"], false);

    let one = app
        .sdk(
            Method::GET,
            "/api/v1/identities/?identifier=vip&feature=banner",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(one.json()["feature_state_value"], "personal");
    // As Flagsmith: a missing or empty identifier is 200 with a `detail`, and creates nothing.
    for path in ["/api/v1/identities/", "/api/v1/identities/?identifier="] {
        let missing = app.sdk(Method::GET, path, Some(&key), None, &[]).await;
        assert_eq!(missing.status, StatusCode::OK, "{path}");
        assert_eq!(missing.json(), json!({"detail": "Missing identifier"}));
    }
}

#[tokio::test]
async fn traits_are_persisted_behind_the_request_unless_transient() {
    let app = EdgeApp::new().await;
    let (_, key, _) = app.setup().await;
    app.publish().await;
    let body = json!({"identifier": "alice", "traits": [
        {"trait_key": "age", "trait_value": 42},
        {"trait_key": "temp", "trait_value": "x", "transient": true}]});
    let r = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&key),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let env = {
        let mut tx = app.t.store.read().await.unwrap();
        flagstone_store::environments::get_by_key(&mut tx, &key)
            .await
            .unwrap()
            .id
    };
    let mut stored = None;
    for _ in 0..100 {
        let mut tx = app.t.store.read().await.unwrap();
        if let Some((_, traits, _)) =
            flagstone_store::identities::load_identity(&mut tx, env, "alice")
                .await
                .unwrap()
        {
            if !traits.is_empty() {
                stored = Some(traits);
                break;
            }
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let traits = stored.expect("traits persisted");
    assert_eq!(traits.len(), 1, "transient trait must not be stored");
    assert_eq!(traits[0].trait_key, "age");
    assert_eq!(traits[0].trait_value, json!(42));

    let too_long = json!({"identifier": "bob", "traits": [{"trait_key": "k", "trait_value": "x".repeat(2001)}]});
    let r = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&key),
            Some(too_long),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["trait_value"][0]
        .as_str()
        .unwrap()
        .contains("too long"));
    let malformed = app
        .sdk(
            Method::POST,
            "/api/v1/identities/",
            Some(&key),
            Some(json!({"identifier": 5})),
            &[],
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_environment_document_needs_a_server_key_and_streams_identity_overrides() {
    let app = EdgeApp::new().await;
    let (project, key, server) = app.setup().await;
    let f = app
        .feature(project, &key, "banner", true, json!("default"))
        .await;
    for who in ["a", "b"] {
        let i = app
            .post(
                &format!("/api/v1/environments/{key}/identities/"),
                json!({"identifier": who}),
            )
            .await;
        app.post(
            &format!(
                "/api/v1/environments/{key}/identities/{}/featurestates/",
                i["id"]
            ),
            json!({"feature": f, "enabled": true, "feature_state_value": format!("for-{who}")}),
        )
        .await;
    }
    app.publish().await;

    let client = app
        .sdk(
            Method::GET,
            "/api/v1/environment-document/",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(client.status, StatusCode::FORBIDDEN);

    let r = app
        .sdk(
            Method::GET,
            "/api/v1/environment-document/",
            Some(&server),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let doc: flagstone_engine::EnvironmentDocument =
        serde_json::from_slice(&r.body).expect("a valid document");
    assert_eq!(doc.api_key, key);
    assert_eq!(doc.identity_overrides.len(), 2);
    assert_eq!(
        doc.identity_overrides[0].identity_features[0].feature_state_value,
        json!("for-a")
    );

    let etag = r.headers["etag"].to_str().unwrap().to_string();
    let again = app
        .sdk(
            Method::GET,
            "/api/v1/environment-document/",
            Some(&server),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let lm = r.headers["last-modified"].to_str().unwrap().to_string();
    let since = app
        .sdk(
            Method::GET,
            "/api/v1/environment-document/",
            Some(&server),
            None,
            &[("if-modified-since", &lm)],
        )
        .await;
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);

    let gz = app
        .sdk(
            Method::GET,
            "/api/v1/environment-document/",
            Some(&server),
            None,
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(gz.headers["content-encoding"], "gzip");
    // The held (compressed) document is decompressed around the spliced overrides, then the
    // whole response compressed again.
    assert_eq!(gunzip(&gz.body), r.body);
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut out).unwrap();
    out
}

#[tokio::test]
async fn without_overrides_to_splice_the_document_is_served_as_stored() {
    let app = EdgeApp::new().await;
    let (project, key, server) = app.setup().await;
    // Large enough to span several decompressed chunks.
    let big = "x".repeat(19_000);
    for i in 0..10 {
        app.feature(
            project,
            &key,
            &format!("f{i}"),
            true,
            json!(format!("{i}{big}")),
        )
        .await;
    }
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/"),
        Some(json!({"use_identity_overrides_in_local_eval": false})),
    )
    .await;
    app.publish().await;
    let path = "/api/v1/environment-document/";

    // A client that accepts gzip gets the published bytes as they are.
    let gz = app
        .sdk(
            Method::GET,
            path,
            Some(&server),
            None,
            &[("accept-encoding", "br;q=1, gzip;q=0.8")],
        )
        .await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.headers["content-encoding"], "gzip");
    assert_eq!(gz.headers["vary"], "accept-encoding");
    assert!(gz.headers.contains_key("etag"));
    let stored = {
        let mut tx = app.t.store.read().await.unwrap();
        let env = app.state.registry.get(&key).await.unwrap().environment_id;
        flagstone_store::document::load(&mut tx, env)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(gz.body, stored.body);

    // Others get it decompressed, identical to the published JSON.
    for extra in [&[][..], &[("accept-encoding", "gzip;q=0, identity")][..]] {
        let plain = app.sdk(Method::GET, path, Some(&server), None, extra).await;
        assert_eq!(plain.status, StatusCode::OK);
        assert!(!plain.headers.contains_key("content-encoding"));
        assert_eq!(plain.body, stored.json().unwrap());
        let doc: flagstone_engine::EnvironmentDocument =
            serde_json::from_slice(&plain.body).expect("a valid document");
        assert_eq!(doc.feature_states.len(), 10);
        assert!(doc.identity_overrides.is_empty());
    }

    let etag = gz.headers["etag"].to_str().unwrap().to_string();
    let again = app
        .sdk(
            Method::GET,
            path,
            Some(&server),
            None,
            &[("if-none-match", &etag), ("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
}

#[tokio::test]
async fn a_revoked_server_key_stops_working_within_a_second() {
    let app = EdgeApp::new().await;
    let (_, key, _) = app.setup().await;
    let created = app
        .post(
            &format!("/api/v1/environments/{key}/api-keys/"),
            json!({"name": "temp"}),
        )
        .await;
    let secret = created["key"].as_str().unwrap().to_string();
    app.publish().await;
    let ok = app
        .sdk(Method::GET, "/api/v1/flags/", Some(&secret), None, &[])
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    app.admin_req(
        Method::DELETE,
        &format!("/api/v1/environments/{key}/api-keys/{}/", created["id"]),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = app
        .sdk(Method::GET, "/api/v1/flags/", Some(&secret), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn analytics_are_accepted_and_non_objects_refused() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    app.feature(project, &key, "banner", true, Value::Null)
        .await;
    app.publish().await;
    let ok = app
        .sdk(
            Method::POST,
            "/api/v1/analytics/flags/",
            Some(&key),
            Some(json!({"banner": 3, "unknown": 1})),
            &[],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let bad = app
        .sdk(
            Method::POST,
            "/api/v1/analytics/flags/",
            Some(&key),
            Some(json!([1])),
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["non_field_errors"][0], "Expected a JSON object.");
}

#[tokio::test]
async fn subscribers_hear_every_publish_of_their_environment() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    app.publish().await;
    let mut rx = app.state.registry.subscribe(&key);
    app.feature(project, &key, "new", true, Value::Null).await;
    app.publish().await;
    let updated_at = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated_at,
        app.state.registry.get(&key).await.unwrap().updated_at
    );
    assert!(updated_at > 0.0);
}

#[tokio::test]
async fn a_restarted_edge_serves_its_last_good_documents_while_the_store_is_unreachable() {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    app.feature(project, &key, "banner", true, json!("cached"))
        .await;
    app.publish().await;

    // A new edge process: same cache directory, but the store is gone.
    app.t.store.close().await;
    let registry = std::sync::Arc::new(flagstone_edge::Registry::default());
    let follower = flagstone_edge::Follower::start(
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
    assert!(follower.health.serving_from_cache());
    let snap = registry.get(&key).await.expect("served from the cache");
    assert_eq!(
        snap.revision,
        app.state.registry.get(&key).await.unwrap().revision
    );
    let flags: Value = serde_json::from_slice(&snap.flags_client).unwrap();
    assert_eq!(flag(&flags, "banner")["feature_state_value"], "cached");
}
