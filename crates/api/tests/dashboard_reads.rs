//! The reads the dashboard needs beyond Flagsmith's: features filtered by tags and archive
//! state with an environment's states embedded, the project's tags, audit filters and authors,
//! a project's usage of its limits, and an identity's flags explained.

mod common;

use axum::http::StatusCode;
use common::TestApp;
use flagstone_store::document::{build, store_if_newer, BuildOptions};
use serde_json::{json, Value};

async fn feature(app: &TestApp, project: i64, body: Value) -> Value {
    let (s, f) = app
        .post(&format!("/api/v1/projects/{project}/features/"), body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    f
}

fn names(list: &Value) -> Vec<&str> {
    list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

async fn publish(app: &TestApp, env_id: i64) {
    let doc = build(app.store(), env_id, &BuildOptions::default())
        .await
        .unwrap();
    let mut tx = app.store().write().await.unwrap();
    store_if_newer(&mut tx, &doc).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn features_filter_by_tags_and_archive_with_states_embedded() {
    let app = TestApp::new().await;
    let (p, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let mut tag = std::collections::HashMap::new();
    for label in ["checkout", "ui", "other"] {
        let (s, t) = app
            .post(
                &format!("/api/v1/projects/{p}/tags/"),
                json!({"label": label, "color": "#3d4db6"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        tag.insert(label, t["id"].as_i64().unwrap());
    }
    let (checkout, ui, other) = (tag["checkout"], tag["ui"], tag["other"]);
    feature(
        &app,
        p,
        json!({"name": "a", "tags": [checkout, ui], "default_enabled": true}),
    )
    .await;
    feature(&app, p, json!({"name": "b", "tags": [checkout]})).await;
    let c = feature(
        &app,
        p,
        json!({"name": "c", "tags": [ui], "initial_value": "x"}),
    )
    .await;
    feature(&app, p, json!({"name": "d", "tags": [other]})).await;

    let list = |q: String| {
        let app = &app;
        async move {
            let (s, l) = app
                .get(&format!("/api/v1/projects/{p}/features/?{q}"))
                .await;
            assert_eq!(s, StatusCode::OK, "{l}");
            l
        }
    };
    assert_eq!(names(&list(format!("tags={ui}")).await), ["a", "c"]);
    assert_eq!(names(&list(format!("tags={ui},{checkout}")).await), ["a"]);
    assert_eq!(names(&list(format!("tags={other}")).await), ["d"]);
    assert_eq!(
        names(&list(format!("tags={}", other + 100)).await),
        Vec::<&str>::new()
    );
    let (s, bad) = app
        .get(&format!("/api/v1/projects/{p}/features/?tags=ui"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");

    let (s, archived) = app
        .patch(
            &format!("/api/v1/projects/{p}/features/{}/", c["id"]),
            json!({"is_archived": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{archived}");
    assert_eq!(archived["is_archived"], true);
    assert_eq!(
        names(&list("is_archived=false".into()).await),
        ["a", "b", "d"]
    );
    assert_eq!(names(&list("is_archived=true".into()).await), ["c"]);
    assert_eq!(list(String::new()).await["count"], 4);

    let with_states = list(format!("environment={}&page_size=2&page=2", env["id"])).await;
    assert_eq!(names(&with_states), ["c", "d"]);
    assert_eq!(
        with_states["results"][0]["environment_feature_state"]["feature_state_value"],
        "x"
    );
    assert_eq!(
        with_states["results"][0]["environment_feature_state"]["environment"],
        env["id"]
    );
    assert!(list(String::new()).await["results"][0]
        .get("environment_feature_state")
        .is_none());

    let (s, tags) = app.get(&format!("/api/v1/projects/{p}/tags/")).await;
    assert_eq!(s, StatusCode::OK);
    let labels: Vec<&str> = tags["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["checkout", "ui", "other"]);

    // An environment of another project is refused, by name.
    let (_, org) = app
        .post("/api/v1/organisations/", json!({"name": "O2"}))
        .await;
    let (_, p2) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "P2", "organisation": org["id"]}),
        )
        .await;
    let (_, e2) = app
        .post(
            "/api/v1/environments/",
            json!({"name": "e", "project": p2["id"]}),
        )
        .await;
    let (s, err) = app
        .get(&format!(
            "/api/v1/projects/{p}/features/?environment={}",
            e2["id"]
        ))
        .await;
    assert_eq!(
        (s, err["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("environment"))
    );

    let (_, log) = app
        .get(&format!("/api/v1/projects/{p}/audit/?page_size=1"))
        .await;
    assert_eq!(log["results"][0]["log"], "Feature 'c' archived");
}

#[tokio::test]
async fn audit_filters_by_environment_author_and_dates() {
    let app = TestApp::new().await;
    let (p, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let f = feature(&app, p, json!({"name": "f"})).await;
    let (_, state) = app
        .get(&format!(
            "/api/v1/environments/{key}/featurestates/?feature={}",
            f["id"]
        ))
        .await;
    let (s, _) = app
        .patch(
            &format!(
                "/api/v1/environments/{key}/featurestates/{}/",
                state["results"][0]["id"]
            ),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (_, in_env) = app
        .get(&format!(
            "/api/v1/audit/?project={p}&environment={}",
            env["id"]
        ))
        .await;
    assert!(in_env["count"].as_i64().unwrap() >= 1, "{in_env}");
    assert!(in_env["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["environment_id"] == env["id"]));

    let (_, authors) = app
        .get(&format!("/api/v1/audit/authors/?project={p}"))
        .await;
    let author = authors[0].as_str().unwrap().to_string();
    let (_, all) = app.get(&format!("/api/v1/audit/?project={p}")).await;
    let (_, by) = app
        .get(&format!("/api/v1/audit/?project={p}&author={author}"))
        .await;
    assert_eq!(by["count"], all["count"]);
    let (_, nobody) = app
        .get(&format!("/api/v1/audit/?project={p}&author=someone-else"))
        .await;
    assert_eq!(nobody["count"], 0);

    // `created_date` is ISO-8601 (as Flagsmith prints it); `since`/`until` take it back, or
    // Unix ms.
    let newest = time::OffsetDateTime::parse(
        all["results"][0]["created_date"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let newest = (newest.unix_timestamp_nanos() / 1_000_000) as i64;
    let (_, later) = app
        .get(&format!("/api/v1/audit/?project={p}&since={}", newest + 1))
        .await;
    assert_eq!(later["count"], 0);
    let (_, upto) = app
        .get(&format!("/api/v1/audit/?project={p}&until={}", newest + 1))
        .await;
    assert_eq!(upto["count"], all["count"]);
    let newest_iso = all["results"][0]["created_date"].as_str().unwrap();
    let (s, from_newest) = app
        .get(&format!("/api/v1/audit/?project={p}&since={newest_iso}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{from_newest}");
    assert!(from_newest["count"].as_i64().unwrap() >= 1);
    let (_, before_newest) = app
        .get(&format!("/api/v1/audit/?project={p}&until={newest_iso}"))
        .await;
    assert_eq!(
        before_newest["count"].as_i64().unwrap() + from_newest["count"].as_i64().unwrap(),
        all["count"].as_i64().unwrap()
    );
    let (s, _) = app.get("/api/v1/audit/?since=yesterday").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn usage_counts_what_each_limit_bounds() {
    let app = TestApp::new().await;
    let (p, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let f = feature(&app, p, json!({"name": "f"})).await;
    let (s, seg) = app
        .post(
            &format!("/api/v1/projects/{p}/segments/"),
            json!({"name": "s", "rules": [{"type": "ALL", "conditions": [
                {"operator": "EQUAL", "property": "a", "value": "1"}],
                "rules": [{"type": "ANY", "conditions": [
                    {"operator": "IS_SET", "property": "b"},
                    {"operator": "IS_SET", "property": "c"}]}]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{seg}");
    let (s, _) = app
        .post(
            &format!(
                "/api/v1/environments/{key}/features/{}/create-segment-override/",
                f["id"]
            ),
            json!({"segment": seg["id"], "enabled": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, u) = app.get(&format!("/api/v1/projects/{p}/usage/")).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["features"], 1);
    assert_eq!(u["segments"], 1);
    assert_eq!(u["largest_segment_conditions"], 3);
    assert_eq!(u["deepest_segment_rules"], 2);
    assert_eq!(u["limits"]["max_features"], 5000);
    let e = &u["environments"][0];
    assert_eq!(e["segment_overrides"], 1);
    assert_eq!(e["identity_overrides"], 0);
    assert_eq!(e["document_bytes"], Value::Null, "nothing published yet");

    publish(&app, env["id"].as_i64().unwrap()).await;
    let (_, u) = app.get(&format!("/api/v1/projects/{p}/usage/")).await;
    let e = &u["environments"][0];
    assert!(e["document_bytes"].as_i64().unwrap() > 100, "{e}");
    assert_eq!(e["published_revision"], e["revision"]);
    assert_eq!(
        app.get("/api/v1/projects/999/usage/").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_identitys_flags_are_explained() {
    let app = TestApp::new().await;
    let (p, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let plain = feature(
        &app,
        p,
        json!({"name": "plain", "default_enabled": true, "initial_value": "d"}),
    )
    .await;
    let targeted = feature(&app, p, json!({"name": "targeted"})).await;
    let mine = feature(&app, p, json!({"name": "mine"})).await;
    let (_, seg) = app
        .post(
            &format!("/api/v1/projects/{p}/segments/"),
            json!({"name": "beta", "rules": [{"type": "ALL", "conditions": [
                {"operator": "EQUAL", "property": "plan", "value": "beta"}]}]}),
        )
        .await;
    app.post(
        &format!(
            "/api/v1/environments/{key}/features/{}/create-segment-override/",
            targeted["id"]
        ),
        json!({"segment": seg["id"], "enabled": true, "feature_state_value": "for-beta"}),
    )
    .await;
    let (_, ada) = app
        .post(
            &format!("/api/v1/environments/{key}/identities/"),
            json!({"identifier": "ada"}),
        )
        .await;
    let base = format!("/api/v1/environments/{key}/identities/{}", ada["id"]);
    app.post(
        &format!("{base}/traits/"),
        json!({"trait_key": "plan", "trait_value": "beta"}),
    )
    .await;
    app.post(
        &format!("{base}/featurestates/"),
        json!({"feature": mine["id"], "enabled": true, "feature_state_value": 7}),
    )
    .await;

    let (s, err) = app.get(&format!("{base}/evaluation/")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "nothing published yet: {err}");

    publish(&app, env["id"].as_i64().unwrap()).await;
    let (s, ev) = app.get(&format!("{base}/evaluation/")).await;
    assert_eq!(s, StatusCode::OK, "{ev}");
    assert_eq!(ev["identifier"], "ada");
    assert_eq!(ev["revision"], ev["current_revision"]);
    assert_eq!(ev["traits"], json!({"plan": "beta"}));
    assert_eq!(ev["segments"][0]["name"], "beta");
    assert_eq!(ev["segments"][0]["id"], seg["id"]);
    let flag = |name: &str| {
        ev["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap()
    };
    let f = flag("plain");
    assert_eq!(
        (
            f["decision"].as_str(),
            f["value"].as_str(),
            f["feature"].clone()
        ),
        (Some("environment_default"), Some("d"), plain["id"].clone())
    );
    let f = flag("targeted");
    assert_eq!(f["decision"], "segment_override");
    assert_eq!(f["value"], "for-beta");
    assert_eq!(f["segment"]["name"], "beta");
    assert_eq!(f["reason"], "TARGETING_MATCH; segment=beta");
    let f = flag("mine");
    assert_eq!(
        (
            f["decision"].as_str(),
            f["value"].as_i64(),
            f["enabled"].as_bool()
        ),
        (Some("identity_override"), Some(7), Some(true))
    );

    let (s, _) = app
        .get(&format!(
            "/api/v1/environments/{key}/identities/99999/evaluation/"
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
