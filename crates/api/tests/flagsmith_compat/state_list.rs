//! `GET /api/v1/features/featurestates/?environment=&feature=` as Flagsmith's dashboard reads a
//! feature's states (`frontend/web/components/…`: the default is the state with neither
//! `feature_segment` nor `identity`, the others are matched to feature segments by
//! `feature_segment`), and what Flagsmith's `SimpleFeatureStateViewSet` does not serve.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::shapes::{has_fields, World};
use crate::common::TestApp;

#[tokio::test]
async fn the_dashboards_feature_state_list_has_defaults_overrides_and_identities() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let key = w.env_key().to_string();
    let env = w.env_id();
    let mut features = Vec::new();
    for name in ["a", "b"] {
        let (s, f) = app
            .post(
                &format!("/api/v1/projects/{p}/features/"),
                json!({"name": name, "project": p, "initial_value": name}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
        features.push(f);
    }
    let (_, seg) = app
        .post(
            &format!("/api/v1/projects/{p}/segments/"),
            json!({"name": "beta", "project": p, "rules": [{"type": "ALL", "rules": [], "conditions": []}]}),
        )
        .await;
    let (s, fs) = app
        .post(
            "/api/v1/features/feature-segments/",
            json!({"feature": features[0]["id"], "environment": env, "segment": seg["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{fs}");
    let (s, identity) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({"identifier": "ada"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{identity}");
    let (s, io) = app
        .post(
            &format!(
                "/api/v1/environments/{key}/identities/{}/featurestates/",
                identity["id"]
            ),
            json!({"feature": features[0]["id"], "enabled": true, "feature_state_value": "ada's"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{io}");

    // The dashboard's read: one feature's states.
    let (s, page) = app
        .get(&format!(
            "/api/v1/features/featurestates/?environment={env}&feature={}",
            features[0]["id"]
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    has_fields("page", &page, &["count", "next", "previous", "results"]);
    assert_eq!(page["count"], 3, "{page}");
    let results = page["results"].as_array().unwrap();
    for state in results {
        has_fields(
            "feature state",
            state,
            &[
                "id",
                "uuid",
                "feature",
                "environment",
                "enabled",
                "feature_state_value",
                "feature_segment",
                "identity",
                "multivariate_feature_state_values",
                "updated_at",
            ],
        );
        assert_eq!(state["feature"], features[0]["id"]);
    }
    let default = results
        .iter()
        .find(|v| v["feature_segment"].is_null() && v["identity"].is_null())
        .expect("the environment default");
    assert_eq!(default["feature_state_value"], "a");
    let segment = results
        .iter()
        .find(|v| v["feature_segment"] == fs["id"])
        .expect("the feature segment's state");
    assert!(segment["identity"].is_null());
    let of_identity = results
        .iter()
        .find(|v| v["identity"] == identity["id"])
        .expect("the identity override");
    assert_eq!(of_identity["feature_state_value"], "ada's");
    assert!(of_identity["feature_segment"].is_null());

    // Every state of the environment, paged across the three kinds.
    let mut seen: Vec<Value> = Vec::new();
    let mut url = format!("/api/v1/features/featurestates/?environment={env}&page_size=1");
    loop {
        let (s, page) = app.get(&url).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["count"], 4, "{page}");
        seen.extend(page["results"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => {
                url = format!(
                    "/api/v1/features/featurestates/?{}",
                    next.split_once('?').unwrap().1
                )
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
    let kinds: Vec<(bool, bool)> = seen
        .iter()
        .map(|v| (v["feature_segment"].is_null(), v["identity"].is_null()))
        .collect();
    assert_eq!(
        kinds,
        [(true, true), (true, true), (false, true), (true, false)]
    );

    // Flagsmith's `feature_segment` filter: that feature segment's state only.
    let (_, only) = app
        .get(&format!(
            "/api/v1/features/featurestates/?environment={env}&feature_segment={}",
            fs["id"]
        ))
        .await;
    assert_eq!(only["count"], 1, "{only}");
    assert_eq!(only["results"][0]["feature_segment"], fs["id"]);
    // Parameters Flagsmith's filter set does not know are ignored (the dashboard sends
    // `segment`).
    let (s, all) = app
        .get(&format!(
            "/api/v1/features/featurestates/?environment={env}&segment={}",
            seg["id"]
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(all["count"], 4);
}

#[tokio::test]
async fn the_state_list_needs_an_environment_and_states_are_not_deleted_by_id() {
    let app = TestApp::new().await;
    let w = World::new(&app).await;
    let p = w.project_id();
    let env = w.env_id();
    let (s, e) = app.get("/api/v1/features/featurestates/").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["field"], "environment");
    let (s, e) = app
        .get("/api/v1/features/featurestates/?environment=999999")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e) = app
        .get(&format!(
            "/api/v1/features/featurestates/?environment={env}&feature=x"
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    // Flagsmith's viewset has no destroy: a state goes with its feature segment, identity or
    // feature.
    let (_, f) = app
        .post(
            &format!("/api/v1/projects/{p}/features/"),
            json!({"name": "kept", "project": p}),
        )
        .await;
    let (_, page) = app
        .get(&format!(
            "/api/v1/features/featurestates/?environment={env}&feature={}",
            f["id"]
        ))
        .await;
    let id = &page["results"][0]["id"];
    let (s, _) = app
        .delete(&format!("/api/v1/features/featurestates/{id}/"))
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (_, again) = app
        .get(&format!(
            "/api/v1/features/featurestates/?environment={env}&feature={}",
            f["id"]
        ))
        .await;
    assert_eq!(again["count"], 1);
}
