//! Every admin endpoint checks the caller's permission. The route walk enumerates every route of
//! the OpenAPI document (so a route added later without a check fails here), fills its path
//! parameters with the ids of real objects, and sends it as callers that may not use it: a user
//! who is a member of nothing, a `USER` member without grants (on every route that changes
//! something), and the `ADMIN` of another organisation. Each answer must be 403 naming the
//! missing permission, or a list with nothing of the organisation in it, and nothing may be
//! written: the audit log, every environment's revision and the publish queue stay as they were. Organisation
//! admins and the installation key are not refused.

mod common;

use axum::http::{Method, StatusCode};
use common::{As, TestApp, ADMIN_KEY};
use flagstone_store::{accounts::members, Actor, PageRequest};
use serde_json::{json, Value};

const HERE: &str = "127.0.0.1";

/// One organisation with one of everything, created with the installation key.
struct Fixture {
    organisation: i64,
    project: i64,
    environment: i64,
    api_key: String,
    feature: i64,
    option: i64,
    feature_state: i64,
    segment: i64,
    segment_override: i64,
    tag: i64,
    identity: i64,
    identity_override: i64,
    server_key: i64,
    document: Value,
    /// A `USER` member of the organisation.
    member: i64,
    group: i64,
    /// The prefix of a non-admin organisation API key.
    key_prefix: String,
    /// A grant per `{scope}/{path}` (`projects/user-permissions`, …).
    grants: std::collections::BTreeMap<String, i64>,
    /// The newest version of the feature's configuration in the environment.
    version: i64,
    /// The newest version of the segment's definition.
    segment_version: i64,
    scheduled_change: i64,
    change_request: i64,
    env_webhook: i64,
    org_webhook: i64,
    env_delivery: i64,
    org_delivery: i64,
    invite_link: i64,
    invite: i64,
    /// The uuid of the project, environment, feature, segment and tag, by collection name.
    uuids: std::collections::BTreeMap<&'static str, String>,
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

async fn created(app: &TestApp, path: &str, body: Value) -> Value {
    let (s, v) = app.post(path, body).await;
    assert!(s.is_success(), "POST {path}: {s} {v}");
    v
}

async fn fixture(app: &TestApp, name: &str) -> Fixture {
    let organisation = id(&created(app, "/api/v1/organisations/", json!({"name": name})).await);
    let project = id(&created(
        app,
        "/api/v1/projects/",
        json!({"name": "P", "organisation": organisation}),
    )
    .await);
    let env = created(
        app,
        "/api/v1/environments/",
        json!({"name": "prod", "project": project}),
    )
    .await;
    let api_key = env["api_key"].as_str().unwrap().to_string();
    let feature = id(&created(
        app,
        &format!("/api/v1/projects/{project}/features/"),
        json!({"name": "checkout"}),
    )
    .await);
    let option_created = created(
        app,
        &format!("/api/v1/projects/{project}/features/{feature}/mv-options/"),
        json!({"value": "blue"}),
    )
    .await;
    let option = id(&option_created);
    let (_, states) = app
        .get(&format!(
            "/api/v1/environments/{api_key}/featurestates/?feature={feature}"
        ))
        .await;
    let feature_state = id(&states["results"][0]);
    let segment = id(&created(
        app,
        &format!("/api/v1/projects/{project}/segments/"),
        json!({"name": "pro", "rules": [{"type": "ALL", "rules": [{"type": "ANY", "conditions": [
            {"operator": "EQUAL", "property": "plan", "value": "pro"}]}]}]}),
    )
    .await);
    let segment_override = id(&created(
        app,
        &format!("/api/v1/environments/{api_key}/features/{feature}/create-segment-override/"),
        json!({"segment": segment, "enabled": true, "feature_state_value": "on"}),
    )
    .await);
    let tag = created(
        app,
        &format!("/api/v1/projects/{project}/tags/"),
        json!({"label": "walk", "color": "#3d4db6"}),
    )
    .await;
    let identity = id(&created(
        app,
        &format!("/api/v1/environments/{api_key}/identities/"),
        json!({"identifier": "alice"}),
    )
    .await);
    created(
        app,
        &format!("/api/v1/environments/{api_key}/identities/{identity}/traits/"),
        json!({"trait_key": "plan", "trait_value": "pro"}),
    )
    .await;
    let identity_override = id(&created(
        app,
        &format!("/api/v1/environments/{api_key}/identities/{identity}/featurestates/"),
        json!({"feature": feature, "enabled": true}),
    )
    .await);
    let server_key = id(&created(
        app,
        &format!("/api/v1/environments/{api_key}/api-keys/"),
        json!({"name": "ci"}),
    )
    .await);
    let (s, document) = app
        .get(&format!("/api/v1/environments/{api_key}/document/"))
        .await;
    assert_eq!(s, StatusCode::OK, "{document}");
    let member = app
        .create_user(&format!("member-{}@example.com", name.to_lowercase()))
        .await;
    let mut ch = app.store().change(&Actor::system("test")).await.unwrap();
    members::add(
        &mut ch,
        organisation,
        member,
        "member",
        "USER",
        flagstone_store::now_ms(),
    )
    .await
    .unwrap();
    ch.commit().await.unwrap();
    let group = id(&created(
        app,
        &format!("/api/v1/organisations/{organisation}/groups/"),
        json!({"name": "devs", "users": [member]}),
    )
    .await);
    let key = created(
        app,
        &format!("/api/v1/organisations/{organisation}/master-api-keys/"),
        json!({"name": "ci", "is_admin": false}),
    )
    .await;
    let mut grants = std::collections::BTreeMap::new();
    for (scope, at) in [
        ("organisations", organisation.to_string()),
        ("projects", project.to_string()),
        ("environments", api_key.clone()),
    ] {
        for (path, holder) in [
            ("user-permissions", json!({"user": member})),
            ("user-group-permissions", json!({"group": group})),
            (
                "master-api-key-permissions",
                json!({"master_api_key": id(&key)}),
            ),
        ] {
            let g = created(app, &format!("/api/v1/{scope}/{at}/{path}/"), holder).await;
            grants.insert(format!("{scope}/{path}"), id(&g));
        }
    }
    let (_, versions) = app
        .get(&format!(
            "/api/v1/environments/{api_key}/features/{feature}/versions/"
        ))
        .await;
    let version = id(&versions["results"][0]);
    let (_, segment_versions) = app
        .get(&format!(
            "/api/v1/projects/{project}/segments/{segment}/versions/"
        ))
        .await;
    let segment_version = id(&segment_versions["results"][0]);
    let later = flagstone_store::clock::iso8601(flagstone_store::now_ms() + 3_600_000);
    let (status, scheduled) = app
        .patch(
            &format!("/api/v1/environments/{api_key}/featurestates/{feature_state}/"),
            json!({"enabled": true, "live_from": later}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{scheduled}");
    let scheduled_change = id(&scheduled);
    let change_request = id(&created(
        app,
        &format!("/api/v1/environments/{api_key}/create-change-request/"),
        json!({"title": "walk", "feature_states": [{"feature": feature, "enabled": false}]}),
    )
    .await);
    // A public (documentation-range) address: the default policy refuses private ones.
    let hook = json!({"url": "https://203.0.113.10/hook", "secret": "s"});
    let env_hooks = format!("/api/v1/environments/{api_key}/webhooks/");
    let env_webhook = id(&created(app, &env_hooks, hook.clone()).await);
    let env_delivery =
        id(&created(app, &format!("{env_hooks}{env_webhook}/test/"), json!({})).await);
    let org_hooks = format!("/api/v1/organisations/{organisation}/webhooks/");
    let org_webhook = id(&created(app, &org_hooks, hook).await);
    let org_delivery =
        id(&created(app, &format!("{org_hooks}{org_webhook}/test/"), json!({})).await);
    let invite_link = id(&created(
        app,
        &format!("/api/v1/organisations/{organisation}/invite-links/"),
        json!({"role": "USER"}),
    )
    .await);
    let invited = created(
        app,
        &format!("/api/v1/organisations/{organisation}/invite/"),
        json!({"emails": [format!("invited-{}@example.com", name.to_lowercase())]}),
    )
    .await;
    let invite = id(&invited[0]["invite"]);
    let mut uuids = std::collections::BTreeMap::new();
    for (collection, path) in [
        ("projects", format!("/api/v1/projects/{project}/")),
        ("environments", format!("/api/v1/environments/{api_key}/")),
        (
            "features",
            format!("/api/v1/projects/{project}/features/{feature}/"),
        ),
        (
            "segments",
            format!("/api/v1/projects/{project}/segments/{segment}/"),
        ),
    ] {
        let (_, v) = app.get(&path).await;
        uuids.insert(collection, v["uuid"].as_str().unwrap().to_string());
    }
    uuids.insert("tags", tag["uuid"].as_str().unwrap().to_string());
    uuids.insert(
        "multivariate",
        option_created["uuid"].as_str().unwrap().to_string(),
    );
    let (_, state) = app
        .get(&format!(
            "/api/v1/environments/{api_key}/featurestates/{feature_state}/"
        ))
        .await;
    uuids.insert("featurestates", state["uuid"].as_str().unwrap().to_string());
    Fixture {
        tag: id(&tag),
        uuids,
        version,
        segment_version,
        scheduled_change,
        change_request,
        env_webhook,
        org_webhook,
        env_delivery,
        org_delivery,
        organisation,
        project,
        environment: id(&env),
        api_key,
        feature,
        option,
        feature_state,
        segment,
        segment_override,
        identity,
        identity_override,
        server_key,
        document,
        member,
        group,
        key_prefix: key["prefix"].as_str().unwrap().to_string(),
        grants,
        invite_link,
        invite,
    }
}

/// Every authenticated admin route of the OpenAPI document: (method, path template). The
/// caller's own account (`/api/v1/auth/…`) is left out: it is everyone's.
fn admin_routes(app: &TestApp) -> Vec<(Method, String)> {
    let (_, openapi) = flagstone_api::admin_api(app.state.clone());
    let doc = serde_json::to_value(&openapi).unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/api/v1/auth/") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            routes.push((m, path.clone()));
        }
    }
    assert!(routes.len() > 60, "only {} routes found", routes.len());
    routes
}

/// The path with each parameter replaced by the fixture's object of that kind. A parameter
/// this table does not know fails the test: add it (with the object it names) when adding a
/// route.
fn fill(template: &str, f: &Fixture) -> String {
    let mut out = Vec::new();
    let mut previous = "";
    for seg in template.split('/') {
        if seg.starts_with('{') {
            let value = match previous {
                "organisations" => f.organisation.to_string(),
                "projects" => f.project.to_string(),
                "environments" | "compare" => f.api_key.clone(),
                "features" => f.feature.to_string(),
                "mv-options" => f.option.to_string(),
                "featurestates" if template.contains("/identities/") => {
                    f.identity_override.to_string()
                }
                "featurestates" => f.feature_state.to_string(),
                "segments" => f.segment.to_string(),
                "segment-overrides" | "feature-segments" => f.segment_override.to_string(),
                "tags" => f.tag.to_string(),
                "identities" => f.identity.to_string(),
                "traits" => "plan".to_string(),
                "api-keys" => f.server_key.to_string(),
                "tasks" => f.environment.to_string(),
                "versions" if template.contains("/segments/") => f.segment_version.to_string(),
                "versions" => f.version.to_string(),
                "scheduled-changes" => f.scheduled_change.to_string(),
                "change-requests" => f.change_request.to_string(),
                "users" => f.member.to_string(),
                "groups" => f.group.to_string(),
                "master-api-keys" => f.key_prefix.clone(),
                "invite-links" => f.invite_link.to_string(),
                "invites" => f.invite.to_string(),
                // Joining is everyone's (see `everyones`): never sent by the walk.
                "join" | "link" => "fsi_walk".to_string(),
                grants @ ("user-permissions"
                | "user-group-permissions"
                | "master-api-key-permissions") => {
                    let scope = template.split('/').nth(3).unwrap_or_default();
                    f.grants[&format!("{scope}/{grants}")].to_string()
                }
                "webhooks" if template.starts_with("/api/v1/organisations/") => {
                    f.org_webhook.to_string()
                }
                "webhooks" => f.env_webhook.to_string(),
                "deliveries" if template.starts_with("/api/v1/organisations/") => {
                    f.org_delivery.to_string()
                }
                "deliveries" => f.env_delivery.to_string(),
                "get-by-uuid" => {
                    let collection = if template.contains("/tags/") {
                        "tags"
                    } else if template.contains("/featurestates/") {
                        "featurestates"
                    } else {
                        template.split('/').nth(3).unwrap_or_default()
                    };
                    f.uuids[collection].clone()
                }
                _ => panic!(
                    "{template}: no fixture for parameter {seg} after /{previous}/; \
                     add one to `fill` in crates/api/tests/permissions.rs"
                ),
            };
            out.push(value);
        } else {
            previous = seg;
            out.push(seg.to_string());
        }
    }
    out.join("/") + "/"
}

/// A body that is valid for routes whose object is named in the body; `{}` elsewhere (a route
/// that checks its permission first refuses before reading it).
fn body(method: &Method, template: &str, f: &Fixture) -> Option<Value> {
    if matches!(*method, Method::GET | Method::DELETE | Method::HEAD) {
        return None;
    }
    Some(match template {
        "/api/v1/projects" => json!({"name": "Q", "organisation": f.organisation}),
        "/api/v1/environments" => json!({"name": "dev", "project": f.project}),
        "/api/v1/features/feature-segments/update-priorities" => {
            json!([{"id": f.segment_override, "priority": 0}])
        }
        "/api/v1/environment-document/import" => f.document.clone(),
        // Flagsmith's project-wide override paths name their environment in the body.
        "/api/v1/features/feature-segments" => {
            json!({"feature": f.feature, "segment": f.segment, "environment": f.environment})
        }
        "/api/v1/features/featurestates" => json!({"feature_segment": f.segment_override}),
        "/api/v1/features/featurestates/{id}" => json!({"environment": f.environment}),
        "/api/v1/organisations/{id}/groups" | "/api/v1/organisations/{id}/master-api-keys" => {
            json!({"name": "walk"})
        }
        "/api/v1/organisations/{id}/groups/{group_id}/add-users"
        | "/api/v1/organisations/{id}/groups/{group_id}/remove-users" => {
            json!({"user_ids": [f.member]})
        }
        "/api/v1/organisations/{id}/users/{user_id}/update-role" => json!({"role": "ADMIN"}),
        _ => json!({}),
    })
}

/// What nobody else may see or do: changes that are allowed to every user (creating an
/// organisation; joining one with an invitation one holds), and the permission catalogues
/// (the same for everyone, naming nothing of any organisation).
fn everyones(method: &Method, template: &str) -> bool {
    let catalogue = matches!(
        template,
        "/api/v1/projects/permissions"
            | "/api/v1/environments/permissions"
            | "/api/v1/organisations/permissions"
    );
    let join = template.starts_with("/api/v1/users/join/");
    (*method == Method::POST && (template == "/api/v1/organisations" || join))
        || (*method == Method::GET && catalogue)
}

/// The import also reads its target from the query.
fn query(template: &str, f: &Fixture) -> String {
    if template == "/api/v1/environment-document/import" {
        format!("?project={}", f.project)
    } else if template.ends_with("/evaluation-data") {
        format!("?environment_id={}", f.environment)
    } else if template == "/api/v1/features/featurestates" {
        format!("?environment={}", f.environment)
    } else if template == "/api/v1/features/feature-segments" {
        format!("?environment={}&feature={}", f.environment, f.feature)
    } else {
        String::new()
    }
}

/// What was written: audit entries, every environment's revision, the publish queue.
async fn written(app: &TestApp) -> (i64, Vec<(i64, i64)>, Vec<(i64, i64, String)>) {
    let mut tx = app.store().read().await.unwrap();
    let all = PageRequest::new(1, PageRequest::MAX_PAGE_SIZE);
    let audit = flagstone_store::audit::list(&mut tx, None, PageRequest::new(1, 1))
        .await
        .unwrap()
        .count;
    let envs = flagstone_store::environments::list(&mut tx, None, all)
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|e| (e.id, e.revision))
        .collect();
    let jobs = flagstone_store::queue::jobs(&mut tx, None, all)
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|j| {
            (
                j.environment_id,
                j.wanted_revision,
                format!("{:?}", j.state),
            )
        })
        .collect();
    (audit, envs, jobs)
}

/// Whether a listed item belongs to `f`'s organisation.
fn of(f: &Fixture, template: &str, item: &Value) -> bool {
    let is = |k: &str, v: i64| item[k] == json!(v);
    is("organisation_id", f.organisation)
        || is("organisation", f.organisation)
        || is("project_id", f.project)
        || is("project", f.project)
        || is("environment_id", f.environment)
        || is("environment", f.environment)
        || item["api_key"] == json!(f.api_key)
        || (template == "/api/v1/organisations" && is("id", f.organisation))
}

/// Whether an answer refuses: 403 naming the missing permission, or a list without any of
/// `f`'s objects (a list of names, such as audit authors, may not show objects at all). Every
/// object the walk names exists, so 404 is not a refusal here: it means the walk's table named
/// the wrong object.
fn refuses(status: StatusCode, body: &Value, template: &str, f: &Fixture) -> bool {
    match status {
        StatusCode::FORBIDDEN => {
            body["error"] == "forbidden" && body["missing_permission"].as_str().is_some()
        }
        StatusCode::OK => match (body.as_array(), body["results"].as_array()) {
            (Some(items), _) => items.iter().all(|i| i.is_string() || !of(f, template, i)),
            (None, Some(items)) => !items.iter().any(|i| of(f, template, i)),
            _ => false,
        },
        _ => false,
    }
}

/// Sends every route (only those that change something, if `only_changes`) as `who` over
/// `f`'s objects; returns the routes that were not refused.
async fn walk(app: &TestApp, who: As<'_>, f: &Fixture, only_changes: bool) -> Vec<String> {
    let mut let_through = Vec::new();
    for (method, template) in admin_routes(app) {
        if everyones(&method, &template) || (only_changes && method == Method::GET) {
            continue;
        }
        let path = fill(&template, f) + &query(&template, f);
        let r = app
            .call(
                method.clone(),
                &path,
                body(&method, &template, f),
                who,
                HERE,
            )
            .await;
        if !refuses(r.status, &r.body, &template, f) {
            let_through.push(format!("{method} {path} -> {} {}", r.status, r.body));
        }
    }
    let_through
}

async fn user(app: &TestApp, email: &str, member_of: Option<(i64, &str)>) -> String {
    let user_id = app.create_user(email).await;
    if let Some((org, role)) = member_of {
        let mut ch = app.store().change(&Actor::system("test")).await.unwrap();
        members::add(
            &mut ch,
            org,
            user_id,
            email,
            role,
            flagstone_store::now_ms(),
        )
        .await
        .unwrap();
        ch.commit().await.unwrap();
    }
    app.login(email).await
}

#[tokio::test]
async fn a_member_of_nothing_is_refused_everywhere_and_writes_nothing() {
    let app = TestApp::new().await;
    let a = fixture(&app, "A").await;
    let token = user(&app, "nobody@example.com", None).await;
    let before = written(&app).await;
    let let_through = walk(&app, As::Token(&token), &a, false).await;
    assert!(
        let_through.is_empty(),
        "not refused:\n{}",
        let_through.join("\n")
    );
    assert_eq!(
        written(&app).await,
        before,
        "a refused request wrote something"
    );

    // What every user may do: create an organisation, of which they become the admin.
    let r = app
        .call(
            Method::POST,
            "/api/v1/organisations/",
            Some(json!({"name": "Mine"})),
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mine = id(&r.body);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/organisations/{mine}/"),
            Some(json!({"name": "Still mine"})),
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .call(
            Method::GET,
            "/api/v1/organisations/",
            None,
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.body["count"], 1, "{}", r.body);
    assert_eq!(r.body["results"][0]["name"], "Still mine");
}

#[tokio::test]
async fn a_user_member_without_grants_changes_nothing() {
    let app = TestApp::new().await;
    let a = fixture(&app, "A").await;
    let token = user(&app, "user@example.com", Some((a.organisation, "USER"))).await;
    let before = written(&app).await;
    let let_through = walk(&app, As::Token(&token), &a, true).await;
    assert!(
        let_through.is_empty(),
        "not refused:\n{}",
        let_through.join("\n")
    );
    assert_eq!(
        written(&app).await,
        before,
        "a refused request wrote something"
    );

    // A member may read its organisation, sees no project without VIEW_PROJECT, and the
    // refusal names what is missing.
    let get = |path: String| {
        let token = token.clone();
        let app = &app;
        async move {
            app.call(Method::GET, &path, None, As::Token(&token), HERE)
                .await
        }
    };
    let r = get(format!("/api/v1/organisations/{}/", a.organisation)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = get("/api/v1/projects/".into()).await;
    assert_eq!(r.body, json!([]), "{}", r.body);
    let r = get(format!("/api/v1/projects/{}/", a.project)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["missing_permission"], "VIEW_PROJECT");
    assert_eq!(r.body["reason"], "not_granted");
    assert_eq!(r.body["scope"], json!({"type": "project", "id": a.project}));
    let r = app
        .call(
            Method::PATCH,
            &format!(
                "/api/v1/environments/{}/featurestates/{}/",
                a.api_key, a.feature_state
            ),
            Some(json!({"enabled": false})),
            As::Token(&token),
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["missing_permission"], "UPDATE_FEATURE_STATE");
    assert_eq!(
        r.body["detail"],
        format!(
            "this needs UPDATE_FEATURE_STATE in environment {}",
            a.environment
        )
    );
}

#[tokio::test]
async fn an_organisation_admin_sees_nothing_of_another_organisation() {
    let app = TestApp::new().await;
    let a = fixture(&app, "A").await;
    let b = fixture(&app, "B").await;
    let token = user(&app, "admin-a@example.com", Some((a.organisation, "ADMIN"))).await;
    let before = written(&app).await;
    let let_through = walk(&app, As::Token(&token), &b, false).await;
    assert!(
        let_through.is_empty(),
        "not refused:\n{}",
        let_through.join("\n")
    );
    assert_eq!(
        written(&app).await,
        before,
        "a refused request wrote something"
    );

    // Lists show A's objects only.
    for (path, count) in [
        ("/api/v1/organisations/", 1),
        ("/api/v1/projects/", 1),
        ("/api/v1/environments/", 1),
    ] {
        let r = app
            .call(Method::GET, path, None, As::Token(&token), HERE)
            .await;
        // Projects are a plain list (Flagsmith's shape); the others pages.
        let items = match r.body.as_array() {
            Some(items) => items.clone(),
            None => r.body["results"].as_array().unwrap().clone(),
        };
        assert_eq!(items.len(), count, "{path}: {}", r.body);
        assert_ne!(items[0]["id"], json!(b.organisation));
    }
    let r = app
        .call(Method::GET, "/api/v1/audit/", None, As::Token(&token), HERE)
        .await;
    let entries = r.body["results"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|e| e["organisation_id"] == json!(a.organisation)),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn organisation_admins_and_the_installation_key_may_read_everything() {
    let app = TestApp::new().await;
    let a = fixture(&app, "A").await;
    let token = user(&app, "admin@example.com", Some((a.organisation, "ADMIN"))).await;
    for (method, template) in admin_routes(&app) {
        if method != Method::GET {
            continue;
        }
        let path = fill(&template, &a) + &query(&template, &a);
        for who in [As::Key(ADMIN_KEY), As::Token(&token)] {
            let r = app.call(Method::GET, &path, None, who, HERE).await;
            let superuser_only = template == "/api/v1/tasks/status";
            // No worker runs here, so nothing is published yet.
            let unpublished = template.ends_with("/evaluation") && r.body["error"] == "conflict";
            match who {
                As::Token(_) if superuser_only => {
                    assert_eq!(r.status, StatusCode::FORBIDDEN, "GET {path}: {}", r.body)
                }
                _ => assert!(
                    r.status.is_success() || unpublished,
                    "GET {path} as {who:?}: {} {}",
                    r.status,
                    r.body
                ),
            }
        }
    }
}

#[tokio::test]
async fn organisation_admins_change_their_organisation() {
    let app = TestApp::new().await;
    let a = fixture(&app, "A").await;
    let token = user(&app, "admin@example.com", Some((a.organisation, "ADMIN"))).await;
    let who = As::Token(&token);
    let steps: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PATCH,
            format!("/api/v1/organisations/{}/", a.organisation),
            Some(json!({"name": "A2"})),
        ),
        (
            Method::POST,
            "/api/v1/projects/".into(),
            Some(json!({"name": "P2", "organisation": a.organisation})),
        ),
        (
            Method::POST,
            "/api/v1/environments/".into(),
            Some(json!({"name": "staging", "project": a.project})),
        ),
        (
            Method::PATCH,
            format!(
                "/api/v1/environments/{}/featurestates/{}/",
                a.api_key, a.feature_state
            ),
            Some(json!({"enabled": false})),
        ),
        (
            Method::PATCH,
            format!(
                "/api/v1/environments/{}/segment-overrides/{}/",
                a.api_key, a.segment_override
            ),
            Some(json!({"enabled": false})),
        ),
        (
            Method::POST,
            "/api/v1/features/feature-segments/update-priorities/".into(),
            Some(json!([{"id": a.segment_override, "priority": 0}])),
        ),
        (
            Method::POST,
            format!("/api/v1/environment-document/import/?project={}", a.project),
            Some(a.document.clone()),
        ),
        (
            Method::POST,
            format!("/api/v1/tasks/{}/retry/", a.environment),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/projects/{}/features/{}/", a.project, a.feature),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/environments/{}/", a.api_key),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/projects/{}/", a.project),
            None,
        ),
    ];
    for (method, path, body) in steps {
        let r = app.call(method.clone(), &path, body, who, HERE).await;
        assert!(
            r.status.is_success(),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
    }
    // Without a named target an import may create an organisation: superusers only.
    let r = app
        .call(
            Method::POST,
            "/api/v1/environment-document/import/",
            Some(a.document.clone()),
            who,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["missing_permission"], "SUPERUSER");
}
