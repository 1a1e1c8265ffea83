//! Traits through the admin API: types, null deletes, bulk writes, validation and limits.

use axum::http::StatusCode;
use serde_json::json;

use super::{create_identity, marks, set_limits};
use crate::common::TestApp;

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
