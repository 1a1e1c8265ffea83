//! The people side of the admin API, over HTTP on either store: organisation API keys (made,
//! used, revoked: the next request is refused), members and roles (never without an admin),
//! groups whose grants apply to their members and stop when a member leaves, and grants scoped
//! to exactly one environment. Every refusal writes nothing.

mod common;

use axum::http::{Method, StatusCode};
use common::{As, TestApp, ADMIN_KEY};
use flagstone_store::accounts::members;
use serde_json::{json, Value};

const HERE: &str = "127.0.0.1";

/// An organisation with a project and two environments, made with the installation key.
struct World {
    org: i64,
    project: i64,
    prod: String,
    staging: String,
}

async fn world(app: &TestApp) -> World {
    let (s, org) = app
        .post("/api/v1/organisations/", json!({"name": "Acme"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{org}");
    let org = org["id"].as_i64().unwrap();
    let (s, p) = app
        .post(
            "/api/v1/projects/",
            json!({"name": "Web", "organisation": org}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let project = p["id"].as_i64().unwrap();
    let mut keys = Vec::new();
    for name in ["prod", "staging"] {
        let (s, e) = app
            .post(
                "/api/v1/environments/",
                json!({"name": name, "project": project}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
        keys.push(e["api_key"].as_str().unwrap().to_string());
    }
    World {
        org,
        project,
        prod: keys[0].clone(),
        staging: keys[1].clone(),
    }
}

/// A user who is a member of `org` with `role`, signed in: (user id, API token).
async fn member(app: &TestApp, org: i64, email: &str, role: &str) -> (i64, String) {
    let id = app.create_user(email).await;
    let mut ch = app
        .store()
        .change(&flagstone_store::Actor::system("test"))
        .await
        .unwrap();
    members::add(&mut ch, org, id, email, role, flagstone_store::now_ms())
        .await
        .unwrap();
    ch.commit().await.unwrap();
    (id, app.login(email).await)
}

async fn call(
    app: &TestApp,
    m: Method,
    path: &str,
    body: Option<Value>,
    who: As<'_>,
) -> common::Sent {
    app.call(m, path, body, who, HERE).await
}

fn perms(v: &Value) -> Vec<String> {
    v["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn organisation_keys_are_shown_once_used_and_refused_after_revocation() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let (_, admin) = member(&app, w.org, "ada@example.com", "ADMIN").await;
    let keys = format!("/api/v1/organisations/{}/master-api-keys/", w.org);

    let r = call(
        &app,
        Method::POST,
        &keys,
        Some(json!({"name": "CI", "is_admin": true})),
        As::Token(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let key = r.body["key"].as_str().unwrap().to_string();
    let prefix = r.body["prefix"].as_str().unwrap().to_string();
    assert!(key.starts_with("fsk_") && key.starts_with(&prefix));
    assert_eq!(r.body["is_admin"], true);
    assert_eq!(r.body["created_by"], r.body["created_by"].as_i64().unwrap());

    // The key works as an organisation admin, and is listed without the key.
    let r = call(&app, Method::GET, &keys, None, As::Key(&key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body[0]["prefix"], prefix.as_str());
    assert!(r.body[0].get("key").is_none());
    assert!(r.body[0]["last_used_at"].is_i64(), "{}", r.body);
    assert_eq!(r.body[0]["revoked"], false);

    // What the key changes is audited under its name.
    let r = call(
        &app,
        Method::POST,
        &format!("/api/v1/organisations/{}/groups/", w.org),
        Some(json!({"name": "Developers"})),
        As::Key(&key),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (_, audit) = app.get("/api/v1/audit/?page_size=1").await;
    assert_eq!(audit["results"][0]["actor"], "api-key:CI");
    assert_eq!(audit["results"][0]["resource_type"], "group");

    // Neither the key nor anything that would let one rebuild it is stored.
    let db = flagstone_store::testing::dump_text(app.store()).await;
    assert!(!db.contains(&key));
    assert!(!db.contains(&key[prefix.len()..]));

    // Revoked: the very next request is refused.
    let r = call(
        &app,
        Method::DELETE,
        &format!("{keys}{prefix}/"),
        None,
        As::Token(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = call(&app, Method::GET, &keys, None, As::Key(&key)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(&app, Method::GET, &keys, None, As::Token(&admin)).await;
    assert_eq!(r.body[0]["revoked"], true);

    // Expired keys are refused too; an expiry in the past is refused at once.
    let r = call(
        &app,
        Method::POST,
        &keys,
        Some(json!({"name": "old", "expires_at": 1})),
        As::Token(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "expires_at");
    let soon = app.state.auth.now_ms() + 60_000;
    let r = call(
        &app,
        Method::POST,
        &keys,
        Some(json!({"name": "brief", "expires_at": soon})),
        As::Token(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let brief = r.body["key"].as_str().unwrap().to_string();
    assert_eq!(
        call(&app, Method::GET, &keys, None, As::Key(&brief))
            .await
            .status,
        StatusCode::OK
    );
    // Flagsmith's clients send `expiry_date` as an ISO-8601 date-time.
    let later = soon + 3_600_000;
    let r = call(
        &app,
        Method::POST,
        &keys,
        Some(json!({"name": "dated", "expiry_date": flagstone_store::clock::iso8601(later)})),
        As::Token(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["expires_at"], later);
    let r = call(
        &app,
        Method::POST,
        &keys,
        Some(json!({"name": "garbled", "expiry_date": "next tuesday"})),
        As::Token(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    app.clock.advance(61_000);
    assert_eq!(
        call(&app, Method::GET, &keys, None, As::Key(&brief))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_non_admin_key_holds_only_what_it_was_granted() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let keys = format!("/api/v1/organisations/{}/master-api-keys/", w.org);
    let (s, k) = app
        .post(&keys, json!({"name": "deployer", "is_admin": false}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let key = k["key"].as_str().unwrap().to_string();

    // Not an admin: organisation management is refused, and writes nothing.
    let audit = app.audit_count().await;
    let r = call(
        &app,
        Method::POST,
        &keys,
        Some(json!({"name": "escalate"})),
        As::Key(&key),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["missing_permission"], "ADMIN");
    assert_eq!(app.audit_count().await, audit);

    let mine = format!("/api/v1/environments/{}/my-permissions/", w.prod);
    let r = call(&app, Method::GET, &mine, None, As::Key(&key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(perms(&r.body).is_empty());

    let (s, g) = app
        .post(
            &format!(
                "/api/v1/environments/{}/master-api-key-permissions/",
                w.prod
            ),
            json!({"master_api_key": k["id"], "permissions": ["UPDATE_FEATURE_STATE"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["master_api_key"]["name"], "deployer");
    let r = call(&app, Method::GET, &mine, None, As::Key(&key)).await;
    assert_eq!(perms(&r.body), ["UPDATE_FEATURE_STATE"]);
    assert_eq!(r.body["admin"], false);
}

#[tokio::test]
async fn an_environment_grant_gives_nothing_in_another_environment() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let (ada, _) = member(&app, w.org, "ada@example.com", "ADMIN").await;
    let (bob, bob_token) = member(&app, w.org, "bob@example.com", "USER").await;
    let _ = ada;
    let grants = format!("/api/v1/environments/{}/user-permissions/", w.prod);
    let (s, g) = app
        .post(&grants, json!({"user": bob, "permissions": ["UPDATE_FEATURE_STATE", "VIEW_ENVIRONMENT"], "admin": false}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!(g["user"]["email"], "bob@example.com");
    assert_eq!(
        g["permissions"],
        json!(["VIEW_ENVIRONMENT", "UPDATE_FEATURE_STATE"])
    );

    let r = call(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{}/my-permissions/", w.prod),
        None,
        As::Token(&bob_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(perms(&r.body), ["VIEW_ENVIRONMENT", "UPDATE_FEATURE_STATE"]);
    let r = call(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{}/my-permissions/", w.staging),
        None,
        As::Token(&bob_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(perms(&r.body).is_empty());
    let r = call(
        &app,
        Method::GET,
        &format!("/api/v1/projects/{}/my-permissions/", w.project),
        None,
        As::Token(&bob_token),
    )
    .await;
    assert!(perms(&r.body).is_empty());

    // Bob is no admin of the environment: he cannot grant himself more.
    let audit = app.audit_count().await;
    let r = call(
        &app,
        Method::PATCH,
        &format!("{grants}{}/", g["id"]),
        Some(json!({"admin": true})),
        As::Token(&bob_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(app.audit_count().await, audit);

    // Changing and removing the grant take effect at the next request.
    let (s, _) = app
        .patch(
            &format!("{grants}{}/", g["id"]),
            json!({"permissions": ["VIEW_IDENTITIES"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = call(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{}/my-permissions/", w.prod),
        None,
        As::Token(&bob_token),
    )
    .await;
    assert_eq!(perms(&r.body), ["VIEW_IDENTITIES"]);
    let (s, _) = app.delete(&format!("{grants}{}/", g["id"])).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let r = call(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{}/my-permissions/", w.prod),
        None,
        As::Token(&bob_token),
    )
    .await;
    assert!(perms(&r.body).is_empty());

    // Bad input names the field and writes nothing.
    let audit = app.audit_count().await;
    for (body, field) in [
        (
            json!({"user": bob, "permissions": ["VIEW_PROJECT"]}),
            "permissions",
        ),
        (json!({"permissions": []}), "user"),
        (json!({"group": 1, "permissions": []}), "group"),
        (json!({"user": 999_999, "permissions": []}), "user"),
    ] {
        let (s, b) = app.post(&grants, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(b["field"], field, "{b}");
    }
    assert_eq!(app.audit_count().await, audit);
}

#[tokio::test]
async fn group_grants_apply_to_members_and_stop_when_they_leave() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let (_, ada) = member(&app, w.org, "ada@example.com", "ADMIN").await;
    let (bob, bob_token) = member(&app, w.org, "bob@example.com", "USER").await;
    let outsider = app.create_user("eve@example.com").await;
    let groups = format!("/api/v1/organisations/{}/groups/", w.org);

    let r = call(
        &app,
        Method::POST,
        &groups,
        Some(json!({"name": "Developers"})),
        As::Token(&ada),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let gid = r.body["id"].as_i64().unwrap();
    let r = call(
        &app,
        Method::POST,
        &groups,
        Some(json!({"name": "developers "})),
        As::Token(&ada),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "names differ by case: {}",
        r.body
    );
    let r = call(
        &app,
        Method::POST,
        &groups,
        Some(json!({"name": "Developers"})),
        As::Token(&ada),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "name");

    let r = call(
        &app,
        Method::POST,
        &format!("{groups}{gid}/add-users/"),
        Some(json!({"user_ids": [bob, outsider]})),
        As::Token(&ada),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["field"], "user_ids");
    let r = call(
        &app,
        Method::POST,
        &format!("{groups}{gid}/add-users/"),
        Some(json!({"user_ids": [bob]})),
        As::Token(&ada),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["users"][0]["email"], "bob@example.com");

    let r = call(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{}/user-group-permissions/", w.project),
        Some(json!({"group": gid, "permissions": ["VIEW_PROJECT", "CREATE_FEATURE"]})),
        As::Token(&ada),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["group"]["name"], "Developers");
    let mine = format!("/api/v1/projects/{}/my-permissions/", w.project);
    let r = call(&app, Method::GET, &mine, None, As::Token(&bob_token)).await;
    assert_eq!(perms(&r.body), ["VIEW_PROJECT", "CREATE_FEATURE"]);

    // A direct grant adds up with the group's.
    let (s, _) = app
        .post(
            &format!("/api/v1/projects/{}/user-permissions/", w.project),
            json!({"user": bob, "permissions": ["MANAGE_SEGMENTS"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let r = call(&app, Method::GET, &mine, None, As::Token(&bob_token)).await;
    assert_eq!(
        perms(&r.body),
        ["VIEW_PROJECT", "CREATE_FEATURE", "MANAGE_SEGMENTS"]
    );

    let r = call(
        &app,
        Method::POST,
        &format!("{groups}{gid}/remove-users/"),
        Some(json!({"user_ids": [bob]})),
        As::Token(&ada),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["users"], json!([]));
    let r = call(&app, Method::GET, &mine, None, As::Token(&bob_token)).await;
    assert_eq!(perms(&r.body), ["MANAGE_SEGMENTS"]);

    // Groups are listed in pages with their members; deleting one removes its grants.
    let r = call(&app, Method::GET, &groups, None, As::Token(&ada)).await;
    assert_eq!(r.body["count"], 2);
    let (s, _) = app.delete(&format!("{groups}{gid}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app
        .get(&format!(
            "/api/v1/projects/{}/user-group-permissions/",
            w.project
        ))
        .await;
    assert_eq!(list, json!([]));

    // A plain member may not manage groups.
    let r = call(&app, Method::GET, &groups, None, As::Token(&bob_token)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn members_change_roles_and_leave_but_never_the_last_admin() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let (ada, ada_token) = member(&app, w.org, "ada@example.com", "ADMIN").await;
    let (bob, bob_token) = member(&app, w.org, "bob@example.com", "USER").await;
    let users = format!("/api/v1/organisations/{}/users/", w.org);

    let r = call(&app, Method::GET, &users, None, As::Token(&ada_token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    assert_eq!(r.body[1]["role"], "USER");
    assert!(r.body[0]["last_login_at"].is_i64());

    let r = call(&app, Method::GET, &users, None, As::Token(&bob_token)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The last admin stays.
    let audit = app.audit_count().await;
    let r = call(
        &app,
        Method::POST,
        &format!("{users}{ada}/update-role/"),
        Some(json!({"role": "USER"})),
        As::Token(&ada_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = call(
        &app,
        Method::DELETE,
        &format!("{users}{ada}/"),
        None,
        As::Token(&ada_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = call(
        &app,
        Method::POST,
        &format!("{users}{bob}/update-role/"),
        Some(json!({"role": "OWNER"})),
        As::Token(&ada_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "role");
    assert_eq!(app.audit_count().await, audit);

    let r = call(
        &app,
        Method::POST,
        &format!("{users}{bob}/update-role/"),
        Some(json!({"role": "ADMIN"})),
        As::Token(&ada_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "ADMIN");
    // Bob is admin now, at his very next request.
    let r = call(&app, Method::GET, &users, None, As::Token(&bob_token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &app,
        Method::POST,
        &format!("{users}{ada}/update-role/"),
        Some(json!({"role": "USER"})),
        As::Token(&bob_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Removing Ada takes effect at her next request, and takes her grants.
    let (s, _) = app
        .post(
            &format!("/api/v1/environments/{}/user-permissions/", w.prod),
            json!({"user": ada, "permissions": ["VIEW_ENVIRONMENT"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let r = call(
        &app,
        Method::DELETE,
        &format!("{users}{ada}/"),
        None,
        As::Token(&bob_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = call(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{}/my-permissions/", w.prod),
        None,
        As::Token(&ada_token),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["reason"], "not_a_member");
    let (_, list) = app
        .get(&format!(
            "/api/v1/environments/{}/user-permissions/",
            w.prod
        ))
        .await;
    assert_eq!(list, json!([]));
    let r = call(&app, Method::GET, &users, None, As::Key(ADMIN_KEY)).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_catalogues_list_every_permission_with_flagsmith_keys() {
    let app = TestApp::new().await;
    let (s, p) = app.get("/api/v1/projects/permissions/").await;
    assert_eq!(s, StatusCode::OK);
    let keys: Vec<&str> = p
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["key"].as_str().unwrap())
        .collect();
    for k in [
        "VIEW_PROJECT",
        "CREATE_ENVIRONMENT",
        "DELETE_FEATURE",
        "CREATE_FEATURE",
        "MANAGE_SEGMENTS",
        "VIEW_AUDIT_LOG",
    ] {
        assert!(keys.contains(&k), "{k}");
    }
    let (_, e) = app.get("/api/v1/environments/permissions/").await;
    let keys: Vec<&str> = e
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["key"].as_str().unwrap())
        .collect();
    for k in [
        "VIEW_ENVIRONMENT",
        "UPDATE_FEATURE_STATE",
        "MANAGE_IDENTITIES",
        "VIEW_IDENTITIES",
        "MANAGE_SEGMENT_OVERRIDES",
        "APPROVE_CHANGE_REQUEST",
    ] {
        assert!(keys.contains(&k), "{k}");
    }
    assert!(e[0]["description"].as_str().unwrap().len() > 5);
}
