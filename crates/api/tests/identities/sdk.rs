//! The store functions the SDK edge uses: `persist_sdk_traits`, `load_identity`,
//! `environment_overrides_page`.

use axum::http::StatusCode;
use flagstone_store::identities;
use serde_json::{json, Value};

use super::{create_feature, create_identity, environment_id, marks, set_limits};
use crate::common::TestApp;

#[tokio::test]
async fn sdk_traits_are_persisted_without_audit_or_revision() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    set_limits(&app, project, json!({"max_trait_value_chars": 10})).await;
    let env = environment_id(&app, &key).await;
    let before = marks(&app, &key).await;
    let t = |k: &str, v: Option<Value>| (k.to_string(), v);

    // Creates the identity on first sight.
    let mut tx = app.store().write().await.unwrap();
    let created = identities::persist_sdk_traits(
        &mut tx,
        env,
        "sdk-user",
        &[
            t("plan", Some(json!("gold"))),
            t("age", Some(json!(42))),
            t("ratio", Some(json!(0.5))),
            t("beta", Some(json!(true))),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.identifier, "sdk-user");

    // The same identity next time; null deletes; a key listed twice: the last write wins.
    let mut tx = app.store().write().await.unwrap();
    let again = identities::persist_sdk_traits(
        &mut tx,
        env,
        "sdk-user",
        &[
            t("plan", None),
            t("age", Some(json!(43))),
            t("beta", Some(json!(true))),
            t("country", Some(json!("fr"))),
            t("country", Some(json!("de"))),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again.id, created.id);

    let mut tx = app.store().read().await.unwrap();
    let (identity, traits, overrides) = identities::load_identity(&mut tx, env, "sdk-user")
        .await
        .unwrap()
        .expect("identity exists");
    drop(tx);
    assert_eq!(identity, created);
    assert!(overrides.is_empty());
    let got: Vec<(String, Value)> = traits
        .into_iter()
        .map(|t| (t.trait_key, t.trait_value))
        .collect();
    assert_eq!(
        got,
        [
            ("age".to_string(), json!(43)),
            ("beta".to_string(), json!(true)),
            ("country".to_string(), json!("de")),
            ("ratio".to_string(), json!(0.5)),
        ]
    );
    assert!(got[3].1.is_f64());

    // Invalid input writes nothing (not even the identity).
    for bad in [
        vec![
            t("ok", Some(json!(1))),
            t("long", Some(json!("x".repeat(11)))),
        ],
        vec![t("", Some(json!(1)))],
        vec![t("obj", Some(json!({"a": 1})))],
    ] {
        let mut tx = app.store().write().await.unwrap();
        let err = identities::persist_sdk_traits(&mut tx, env, "new-user", &bad).await;
        assert!(err.is_err(), "{bad:?}");
    }
    let err = {
        let mut tx = app.store().write().await.unwrap();
        identities::persist_sdk_traits(&mut tx, env, "", &[]).await
    };
    assert!(err.is_err());
    let mut tx = app.store().read().await.unwrap();
    assert!(identities::load_identity(&mut tx, env, "new-user")
        .await
        .unwrap()
        .is_none());
    drop(tx);

    // Nothing here is configuration: no audit entry, no revision bump.
    assert_eq!(marks(&app, &key).await, before);

    // The admin API sees what the edge wrote.
    let (_, list) = app
        .get(&format!(
            "/api/v1/environments/{key}/identities/{}/traits/",
            created.id
        ))
        .await;
    assert_eq!(list["count"], 4);
}

#[tokio::test]
async fn the_edge_loads_identities_with_their_overrides() {
    let app = TestApp::new().await;
    let (project, key) = app.project_with_env().await;
    let env = environment_id(&app, &key).await;
    let banner = create_feature(&app, project, "banner").await;
    let theme = create_feature(&app, project, "theme").await;
    let alice = create_identity(&app, &key, "alice").await;
    create_identity(&app, &key, "no-overrides").await;
    let bob = create_identity(&app, &key, "bob").await;
    for (identity, feature, value) in [
        (alice, theme, json!("dark")),
        (alice, banner, json!(1.5)),
        (bob, banner, json!(false)),
    ] {
        let (s, o) = app
            .post(
                &format!("/api/v1/environments/{key}/identities/{identity}/featurestates/"),
                json!({"feature": feature, "enabled": true, "feature_state_value": value}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
    }

    let mut tx = app.store().read().await.unwrap();
    let (identity, traits, overrides) = identities::load_identity(&mut tx, env, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.id, alice);
    assert!(traits.is_empty());
    let features: Vec<i64> = overrides.iter().map(|o| o.feature).collect();
    assert_eq!(features, [banner, theme], "ordered by feature");
    assert_eq!(overrides[0].feature_state_value, json!(1.5));
    assert!(!overrides[0].uuid.is_empty());

    let first = identities::sdk::environment_overrides_page(&mut tx, env, 0, 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0.identifier, "alice");
    assert_eq!(first[0].1.len(), 2);
    let next = identities::sdk::environment_overrides_page(&mut tx, env, first[0].0.id, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "identities without overrides are skipped");
    assert_eq!(next[0].0.identifier, "bob");
    let rest = identities::sdk::environment_overrides_page(&mut tx, env, next[0].0.id, 10)
        .await
        .unwrap();
    assert!(rest.is_empty());
}
