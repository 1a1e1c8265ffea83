//! Flagsmith's legacy SDK trait endpoints (`POST /api/v1/traits/`, `PUT /api/v1/traits/bulk/`,
//! `POST /api/v1/traits/increment-value/`): Flagsmith's request and answer shapes and statuses,
//! written through the edge's trait writer with the store's one trait rule and the new-identity
//! bound; a refused request writes nothing.

mod common;

use axum::http::{Method, StatusCode};
use common::{EdgeApp, Resp};
use flagstone_edge::EdgeConfig;
use serde_json::{json, Value};

/// The stored traits of an identity once the writer has caught up; `None` if the identity does
/// not exist.
async fn stored(app: &EdgeApp, env: i64, identifier: &str) -> Option<Value> {
    app.state.traits.flush().await;
    app.stored_traits(env, identifier).await
}

async fn send(app: &EdgeApp, method: Method, path: &str, key: &str, body: Value) -> Resp {
    app.sdk(method, path, Some(key), Some(body), &[]).await
}

fn one(identifier: &str, key: &str, value: Value) -> Value {
    json!({"identity": {"identifier": identifier}, "trait_key": key, "trait_value": value})
}

#[tokio::test]
async fn one_trait_is_set_as_flagsmith_answers_it_and_seen_by_the_next_identify() {
    let app = EdgeApp::new().await;
    let (_, key, server_key) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;

    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits/",
        &server_key,
        one("ada", "plan", json!("pro")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json(), one("ada", "plan", json!("pro")));
    assert_eq!(stored(&app, env, "ada").await, Some(json!({"plan": "pro"})));

    // A second trait of the same identity (client key: client traits are allowed by default)
    // is added beside the first; identify answers with both.
    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits",
        &key,
        one("ada", "age", json!(36)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let r = app
        .sdk(
            Method::GET,
            "/api/v1/identities/?identifier=ada",
            Some(&key),
            None,
            &[],
        )
        .await;
    assert_eq!(
        r.json()["traits"],
        json!([{"trait_key": "plan", "trait_value": "pro"}, {"trait_key": "age", "trait_value": 36}])
    );
    assert_eq!(
        stored(&app, env, "ada").await,
        Some(json!({"age": 36, "plan": "pro"}))
    );
}

#[tokio::test]
async fn bad_single_traits_are_refused_and_write_nothing() {
    let app = EdgeApp::new().await;
    let (project, key, server_key) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;

    // A null value is not a deletion here (Flagsmith refuses it).
    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits/",
        &server_key,
        one("bob", "plan", Value::Null),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"trait_value": ["This field may not be null."]})
    );
    // No identity object.
    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits/",
        &server_key,
        json!({"trait_key": "plan", "trait_value": "x"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A value past the project's limit: the store's rule, the limit's body.
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/"),
        Some(json!({"limits": {"max_trait_value_chars": 5}})),
    )
    .await;
    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits/",
        &server_key,
        one("bob", "plan", json!("enterprise")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["limit"], "max_trait_value_chars");
    // An identifier the store would refuse.
    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits/",
        &server_key,
        one("bad\u{7}id", "plan", json!("pro")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(stored(&app, env, "bob").await, None);
    assert_eq!(stored(&app, env, "bad\u{7}id").await, None);
}

#[tokio::test]
async fn bulk_sets_and_deletes_traits_of_several_identities_or_nothing_at_all() {
    let app = EdgeApp::new().await;
    let (project, key, server_key) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;
    // Limits are set first: the edge reads them at most 10 s old.
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/projects/{project}/"),
        Some(json!({"limits": {"max_traits_per_identity": 2, "max_traits_per_request": 4}})),
    )
    .await;

    let r = send(
        &app,
        Method::PUT,
        "/api/v1/traits/bulk/",
        &server_key,
        json!([
            one("ada", "plan", json!("pro")),
            one("ada", "age", json!(36)),
            one("bob", "plan", json!("free")),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(
        r.json(),
        json!([
            one("ada", "plan", json!("pro")),
            one("ada", "age", json!(36)),
            one("bob", "plan", json!("free")),
        ])
    );
    assert_eq!(
        stored(&app, env, "ada").await,
        Some(json!({"age": 36, "plan": "pro"}))
    );
    assert_eq!(
        stored(&app, env, "bob").await,
        Some(json!({"plan": "free"}))
    );

    // null (or a missing value) deletes; deletions are not listed in the answer, and deleting
    // for an identity that does not exist creates nothing.
    let r = send(
        &app,
        Method::PUT,
        "/api/v1/traits/bulk",
        &server_key,
        json!([
            one("ada", "age", Value::Null),
            {"identity": {"identifier": "bob"}, "trait_key": "plan"},
            one("ghost", "plan", Value::Null),
            one("bob", "seen", json!(true)),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json(), json!([one("bob", "seen", json!(true))]));
    assert_eq!(stored(&app, env, "ada").await, Some(json!({"plan": "pro"})));
    assert_eq!(stored(&app, env, "bob").await, Some(json!({"seen": true})));
    assert_eq!(stored(&app, env, "ghost").await, None);

    // One identity past the per-identity limit refuses the whole request: the other identity's
    // traits (listed first) are not written either.
    let r = send(
        &app,
        Method::PUT,
        "/api/v1/traits/bulk/",
        &server_key,
        json!([
            one("carol", "plan", json!("pro")),
            one("ada", "a", json!(1)),
            one("ada", "b", json!(2)),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["limit"], "max_traits_per_identity");
    assert_eq!(stored(&app, env, "carol").await, None);
    assert_eq!(stored(&app, env, "ada").await, Some(json!({"plan": "pro"})));

    // The request's size is bounded across identities.
    let r = send(
        &app,
        Method::PUT,
        "/api/v1/traits/bulk/",
        &server_key,
        json!([
            one("x1", "k", json!(1)),
            one("x2", "k", json!(1)),
            one("x3", "k", json!(1)),
            one("x4", "k", json!(1)),
            one("x5", "k", json!(1)),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["limit"], "max_traits_per_request");
    assert_eq!(stored(&app, env, "x1").await, None);

    // Not a list.
    let r = send(
        &app,
        Method::PUT,
        "/api/v1/traits/bulk/",
        &server_key,
        one("x1", "k", json!(1)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(stored(&app, env, "x1").await, None);
}

#[tokio::test]
async fn increments_add_up_from_zero_and_a_non_integer_trait_is_refused() {
    let app = EdgeApp::new().await;
    let (_, key, server_key) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;
    let inc = |identifier: &str, trait_key: &str, by: Value| {
        send(
            &app,
            Method::POST,
            "/api/v1/traits/increment-value/",
            &server_key,
            json!({"identifier": identifier, "trait_key": trait_key, "increment_by": by}),
        )
    };

    let r = inc("ada", "logins", json!(1)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(
        r.json(),
        json!({"trait_key": "logins", "trait_value": 1, "identifier": "ada"})
    );
    let r = inc("ada", "logins", json!(5)).await;
    assert_eq!(r.json()["trait_value"], 6);
    let r = inc("ada", "logins", json!("-2")).await;
    assert_eq!(r.json()["trait_value"], 4);
    assert_eq!(stored(&app, env, "ada").await, Some(json!({"logins": 4})));

    // Concurrent increments sent to one edge add up.
    // Polled together on one task: the edge's lock, not the test, orders them.
    let all = futures_util::future::join_all((0..10).map(|_| inc("ada", "logins", json!(1)))).await;
    assert!(all.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(stored(&app, env, "ada").await, Some(json!({"logins": 14})));

    // A string trait is not incremented; nor is anything by a non-integer or past i64.
    send(
        &app,
        Method::POST,
        "/api/v1/traits/",
        &server_key,
        one("ada", "plan", json!("pro")),
    )
    .await;
    let r = inc("ada", "plan", json!(1)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json(), json!(["Trait is not an integer."]));
    let r = inc("ada", "logins", json!(1.5)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"increment_by": ["A valid integer is required."]})
    );
    let r = inc("ada", "logins", json!(i64::MAX)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        stored(&app, env, "ada").await,
        Some(json!({"logins": 14, "plan": "pro"}))
    );
}

#[tokio::test]
async fn client_keys_organisations_without_trait_storage_and_new_identity_floods_are_refused() {
    let app = EdgeApp::with_config(EdgeConfig {
        max_new_identities_per_minute: 2,
        ..EdgeConfig::default()
    })
    .await;
    let (_, key, server_key) = app.setup().await;
    app.publish().await;
    let env = app.environment_id(&key).await;

    // Two new identities use up the bound; a bulk request naming a third writes nothing, not
    // even the known identity's trait; known identities still take traits.
    let r = send(
        &app,
        Method::PUT,
        "/api/v1/traits/bulk/",
        &server_key,
        json!([one("n1", "k", json!(1)), one("n2", "k", json!(1))]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let r = send(
        &app,
        Method::PUT,
        "/api/v1/traits/bulk/",
        &server_key,
        json!([one("n1", "k", json!(2)), one("n3", "k", json!(1))]),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["limit"], "max_new_identities_per_minute");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(stored(&app, env, "n1").await, Some(json!({"k": 1})));
    assert_eq!(stored(&app, env, "n3").await, None);
    for path in ["/api/v1/traits/", "/api/v1/traits/increment-value/"] {
        let body = if path.contains("increment") {
            json!({"identifier": "n4", "trait_key": "k", "increment_by": 1})
        } else {
            one("n4", "k", json!(1))
        };
        let r = send(&app, Method::POST, path, &server_key, body).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    assert_eq!(stored(&app, env, "n4").await, None);
    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits/",
        &server_key,
        one("n2", "k", json!(5)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // Client traits off: the client key may not set traits, the server key still may.
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/environments/{key}/"),
        Some(json!({"allow_client_traits": false})),
    )
    .await;
    app.publish().await;
    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits/",
        &key,
        one("n1", "k", json!(9)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"non_field_errors": ["Setting traits not allowed with client key."]})
    );
    let r = send(
        &app,
        Method::PUT,
        "/api/v1/traits/bulk/",
        &key,
        json!([one("n1", "k", json!(9))]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(stored(&app, env, "n1").await, Some(json!({"k": 1})));

    // The organisation does not persist traits: 403 with Flagsmith's message, for every key.
    let orgs = app
        .admin_req(Method::GET, "/api/v1/organisations/", None)
        .await;
    let org = orgs["results"][0]["id"].as_i64().unwrap();
    app.admin_req(
        Method::PATCH,
        &format!("/api/v1/organisations/{org}/"),
        Some(json!({"persist_trait_data": false})),
    )
    .await;
    app.publish().await;
    let r = send(
        &app,
        Method::POST,
        "/api/v1/traits/increment-value/",
        &server_key,
        json!({"identifier": "n1", "trait_key": "k", "increment_by": 1}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json(),
        json!({"detail": "Organisation is not authorised to store traits."})
    );
    assert_eq!(stored(&app, env, "n1").await, Some(json!({"k": 1})));

    // No key at all.
    let r = app
        .sdk(
            Method::POST,
            "/api/v1/traits/",
            None,
            Some(one("n1", "k", json!(1))),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
