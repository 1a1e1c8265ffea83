//! The permission matrix, over HTTP on either store: for every permission (and project and
//! environment admin), requests that need it are refused to a `USER` member who holds every
//! other permission of the scope — 403 naming exactly that permission, nothing written — and
//! succeed once the member holds that permission alone. Environment permissions held in another
//! environment give nothing.

mod common;

use axum::http::{Method, StatusCode};
use common::{As, TestApp};
use flagstone_store::{accounts::members, Actor, PageRequest};
use serde_json::{json, Value};

const HERE: &str = "127.0.0.1";

const PROJECT: &[&str] = &[
    "VIEW_PROJECT",
    "CREATE_ENVIRONMENT",
    "DELETE_FEATURE",
    "CREATE_FEATURE",
    "MANAGE_SEGMENTS",
    "VIEW_AUDIT_LOG",
    "MANAGE_TAGS",
];
const ENVIRONMENT: &[&str] = &[
    "VIEW_ENVIRONMENT",
    "UPDATE_FEATURE_STATE",
    "MANAGE_IDENTITIES",
    "VIEW_IDENTITIES",
    "MANAGE_SEGMENT_OVERRIDES",
    "CREATE_CHANGE_REQUEST",
    "APPROVE_CHANGE_REQUEST",
];
const ORGANISATION: &[&str] = &["CREATE_PROJECT", "MANAGE_USER_GROUPS"];

/// An organisation with a project, two environments (`prod` is where the matrix runs), a
/// feature, a segment, an identity; and Bob, a `USER` member, with an empty grant in each scope.
struct World {
    org: i64,
    project: i64,
    prod: String,
    staging: String,
    feature: i64,
    feature_state: i64,
    segment: i64,
    identity: i64,
    bob: String,
    /// Bob's grant paths: organisation, project, prod, staging.
    grants: [String; 4],
}

async fn created(app: &TestApp, path: &str, body: Value) -> Value {
    let (s, v) = app.post(path, body).await;
    assert!(s.is_success(), "POST {path}: {s} {v}");
    v
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

async fn world(app: &TestApp) -> World {
    let org = id(&created(app, "/api/v1/organisations/", json!({"name": "Acme"})).await);
    let project = id(&created(
        app,
        "/api/v1/projects/",
        json!({"name": "Web", "organisation": org}),
    )
    .await);
    let mut keys = Vec::new();
    for name in ["prod", "staging"] {
        let e = created(
            app,
            "/api/v1/environments/",
            json!({"name": name, "project": project}),
        )
        .await;
        keys.push(e["api_key"].as_str().unwrap().to_string());
    }
    let (prod, staging) = (keys[0].clone(), keys[1].clone());
    let feature = id(&created(
        app,
        &format!("/api/v1/projects/{project}/features/"),
        json!({"name": "checkout"}),
    )
    .await);
    let (_, states) = app
        .get(&format!(
            "/api/v1/environments/{prod}/featurestates/?feature={feature}"
        ))
        .await;
    let feature_state = id(&states["results"][0]);
    let segment = new_segment(app, project, "beta").await;
    let identity = id(&created(
        app,
        &format!("/api/v1/environments/{prod}/identities/"),
        json!({"identifier": "alice"}),
    )
    .await);

    let bob_id = app.create_user("bob@example.com").await;
    let mut ch = app.store().change(&Actor::system("test")).await.unwrap();
    members::add(
        &mut ch,
        org,
        bob_id,
        "bob@example.com",
        "USER",
        flagstone_store::now_ms(),
    )
    .await
    .unwrap();
    ch.commit().await.unwrap();
    let bob = app.login("bob@example.com").await;
    let mut grants = Vec::new();
    for scope in [
        format!("organisations/{org}"),
        format!("projects/{project}"),
        format!("environments/{prod}"),
        format!("environments/{staging}"),
    ] {
        let base = format!("/api/v1/{scope}/user-permissions/");
        let g = created(app, &base, json!({"user": bob_id, "permissions": []})).await;
        grants.push(format!("{base}{}/", id(&g)));
    }
    World {
        org,
        project,
        prod,
        staging,
        feature,
        feature_state,
        segment,
        identity,
        bob,
        grants: grants.try_into().unwrap(),
    }
}

async fn new_segment(app: &TestApp, project: i64, name: &str) -> i64 {
    id(&created(
        app,
        &format!("/api/v1/projects/{project}/segments/"),
        json!({"name": name, "rules": [{"type": "ALL", "rules": [{"type": "ANY", "conditions": [
            {"operator": "EQUAL", "property": "plan", "value": name}]}]}]}),
    )
    .await)
}

/// Where a need is held.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scope {
    Organisation,
    Project,
    Environment,
}

/// One request of the matrix and what it needs: a permission key, or `ADMIN` of the scope.
#[derive(Clone, Copy, Debug)]
enum Case {
    ViewProject,
    ListFeatures,
    ListSegments,
    ListTags,
    ViewAudit,
    CreateEnvironment,
    CreateFeature,
    UpdateFeature,
    CreateOption,
    DeleteFeature,
    CreateSegment,
    UpdateSegment,
    DeleteSegment,
    CreateTag,
    DeleteTag,
    UpdateProject,
    CreateProject,
    ViewEnvironment,
    ListStates,
    UpdateState,
    CreateSegmentOverride,
    ListIdentities,
    GetIdentity,
    CreateIdentity,
    SetTrait,
    CreateIdentityOverride,
    UpdateEnvironment,
    ServerKeys,
    Export,
    OpenChangeRequest,
    ApproveChangeRequest,
    AddOwners,
    ListAllStates,
}

const CASES: &[Case] = &[
    Case::ViewProject,
    Case::ListFeatures,
    Case::ListSegments,
    Case::ListTags,
    Case::ViewAudit,
    Case::CreateEnvironment,
    Case::CreateFeature,
    Case::UpdateFeature,
    Case::CreateOption,
    Case::DeleteFeature,
    Case::CreateSegment,
    Case::UpdateSegment,
    Case::DeleteSegment,
    Case::CreateTag,
    Case::DeleteTag,
    Case::UpdateProject,
    Case::CreateProject,
    Case::ViewEnvironment,
    Case::ListStates,
    Case::UpdateState,
    Case::CreateSegmentOverride,
    Case::ListIdentities,
    Case::GetIdentity,
    Case::CreateIdentity,
    Case::SetTrait,
    Case::CreateIdentityOverride,
    Case::UpdateEnvironment,
    Case::ServerKeys,
    Case::Export,
    Case::OpenChangeRequest,
    Case::ApproveChangeRequest,
    Case::AddOwners,
    Case::ListAllStates,
];

impl Case {
    fn need(self) -> (Scope, &'static str) {
        use Case::*;
        match self {
            ViewProject | ListFeatures | ListSegments | ListTags => {
                (Scope::Project, "VIEW_PROJECT")
            }
            CreateTag | DeleteTag => (Scope::Project, "MANAGE_TAGS"),
            ViewAudit => (Scope::Project, "VIEW_AUDIT_LOG"),
            CreateEnvironment => (Scope::Project, "CREATE_ENVIRONMENT"),
            CreateFeature | UpdateFeature | CreateOption | AddOwners => {
                (Scope::Project, "CREATE_FEATURE")
            }
            DeleteFeature => (Scope::Project, "DELETE_FEATURE"),
            CreateSegment | UpdateSegment | DeleteSegment => (Scope::Project, "MANAGE_SEGMENTS"),
            UpdateProject => (Scope::Project, "ADMIN"),
            CreateProject => (Scope::Organisation, "CREATE_PROJECT"),
            ViewEnvironment | ListStates | ListAllStates => {
                (Scope::Environment, "VIEW_ENVIRONMENT")
            }
            UpdateState | CreateIdentityOverride => (Scope::Environment, "UPDATE_FEATURE_STATE"),
            CreateSegmentOverride => (Scope::Environment, "MANAGE_SEGMENT_OVERRIDES"),
            ListIdentities | GetIdentity => (Scope::Environment, "VIEW_IDENTITIES"),
            CreateIdentity | SetTrait => (Scope::Environment, "MANAGE_IDENTITIES"),
            UpdateEnvironment | ServerKeys | Export => (Scope::Environment, "ADMIN"),
            OpenChangeRequest => (Scope::Environment, "CREATE_CHANGE_REQUEST"),
            ApproveChangeRequest => (Scope::Environment, "APPROVE_CHANGE_REQUEST"),
        }
    }

    /// The request, after setting up with the installation key what it works on (`n` makes
    /// names unique).
    async fn request(self, app: &TestApp, w: &World, n: usize) -> (Method, String, Option<Value>) {
        use Case::*;
        let (p, e) = (w.project, &w.prod);
        let get = |path: String| (Method::GET, path, None);
        match self {
            ViewProject => get(format!("/api/v1/projects/{p}/")),
            ListFeatures => get(format!("/api/v1/projects/{p}/features/")),
            ListSegments => get(format!("/api/v1/projects/{p}/segments/")),
            ListTags => get(format!("/api/v1/projects/{p}/tags/")),
            CreateTag => (
                Method::POST,
                format!("/api/v1/projects/{p}/tags/"),
                Some(json!({"label": format!("t{n}"), "color": "#3d4db6"})),
            ),
            DeleteTag => {
                let t = id(&created(
                    app,
                    &format!("/api/v1/projects/{p}/tags/"),
                    json!({"label": format!("doomed{n}"), "color": "#3d4db6"}),
                )
                .await);
                (
                    Method::DELETE,
                    format!("/api/v1/projects/{p}/tags/{t}/"),
                    None,
                )
            }
            ViewAudit => get(format!("/api/v1/projects/{p}/audit/")),
            CreateEnvironment => (
                Method::POST,
                "/api/v1/environments/".into(),
                Some(json!({"name": format!("env{n}"), "project": p})),
            ),
            CreateFeature => (
                Method::POST,
                format!("/api/v1/projects/{p}/features/"),
                Some(json!({"name": format!("f{n}")})),
            ),
            UpdateFeature => (
                Method::PATCH,
                format!("/api/v1/projects/{p}/features/{}/", w.feature),
                Some(json!({"description": format!("d{n}")})),
            ),
            CreateOption => (
                Method::POST,
                format!("/api/v1/projects/{p}/features/{}/mv-options/", w.feature),
                Some(json!({"value": format!("v{n}")})),
            ),
            AddOwners => (
                Method::POST,
                format!("/api/v1/projects/{p}/features/{}/add-owners/", w.feature),
                Some(json!({"user_ids": []})),
            ),
            DeleteFeature => {
                let f = id(&created(
                    app,
                    &format!("/api/v1/projects/{p}/features/"),
                    json!({"name": format!("doomed{n}")}),
                )
                .await);
                (
                    Method::DELETE,
                    format!("/api/v1/projects/{p}/features/{f}/"),
                    None,
                )
            }
            CreateSegment => (
                Method::POST,
                format!("/api/v1/projects/{p}/segments/"),
                Some(json!({"name": format!("s{n}"), "rules": []})),
            ),
            UpdateSegment => (
                Method::PATCH,
                format!("/api/v1/projects/{p}/segments/{}/", w.segment),
                Some(json!({"description": format!("d{n}")})),
            ),
            DeleteSegment => {
                let s = new_segment(app, p, &format!("doomed{n}")).await;
                (
                    Method::DELETE,
                    format!("/api/v1/projects/{p}/segments/{s}/"),
                    None,
                )
            }
            UpdateProject => (
                Method::PATCH,
                format!("/api/v1/projects/{p}/"),
                Some(json!({"name": format!("Web{n}")})),
            ),
            CreateProject => (
                Method::POST,
                "/api/v1/projects/".into(),
                Some(json!({"name": format!("p{n}"), "organisation": w.org})),
            ),
            ViewEnvironment => get(format!("/api/v1/environments/{e}/")),
            ListStates => get(format!("/api/v1/environments/{e}/featurestates/")),
            ListAllStates => {
                let (_, env) = app.get(&format!("/api/v1/environments/{e}/")).await;
                get(format!(
                    "/api/v1/features/featurestates/?environment={}",
                    env["id"]
                ))
            }
            UpdateState => (
                Method::PATCH,
                format!(
                    "/api/v1/environments/{e}/featurestates/{}/",
                    w.feature_state
                ),
                Some(json!({"enabled": n.is_multiple_of(2)})),
            ),
            CreateSegmentOverride => {
                let s = new_segment(app, p, &format!("o{n}")).await;
                (
                    Method::POST,
                    format!(
                        "/api/v1/environments/{e}/features/{}/create-segment-override/",
                        w.feature
                    ),
                    Some(json!({"segment": s, "enabled": true})),
                )
            }
            ListIdentities => get(format!("/api/v1/environments/{e}/identities/")),
            GetIdentity => get(format!(
                "/api/v1/environments/{e}/identities/{}/",
                w.identity
            )),
            CreateIdentity => (
                Method::POST,
                format!("/api/v1/environments/{e}/identities/"),
                Some(json!({"identifier": format!("i{n}")})),
            ),
            SetTrait => (
                Method::POST,
                format!("/api/v1/environments/{e}/identities/{}/traits/", w.identity),
                Some(json!({"trait_key": "plan", "trait_value": format!("t{n}")})),
            ),
            CreateIdentityOverride => {
                let i = id(&created(
                    app,
                    &format!("/api/v1/environments/{e}/identities/"),
                    json!({"identifier": format!("o{n}")}),
                )
                .await);
                (
                    Method::POST,
                    format!("/api/v1/environments/{e}/identities/{i}/featurestates/"),
                    Some(json!({"feature": w.feature, "enabled": true})),
                )
            }
            UpdateEnvironment => (
                Method::PATCH,
                format!("/api/v1/environments/{e}/"),
                Some(json!({"name": format!("prod{n}")})),
            ),
            ServerKeys => (
                Method::POST,
                format!("/api/v1/environments/{e}/api-keys/"),
                Some(json!({"name": format!("k{n}")})),
            ),
            Export => get(format!("/api/v1/environments/{e}/document/")),
            OpenChangeRequest => (
                Method::POST,
                format!("/api/v1/environments/{e}/create-change-request/"),
                Some(json!({"title": format!("cr{n}"),
                            "feature_states": [{"feature": w.feature, "enabled": true}]})),
            ),
            ApproveChangeRequest => {
                let cr = id(&created(
                    app,
                    &format!("/api/v1/environments/{e}/create-change-request/"),
                    json!({"title": format!("cr{n}"),
                           "feature_states": [{"feature": w.feature, "enabled": true}]}),
                )
                .await);
                (
                    Method::POST,
                    format!("/api/v1/change-requests/{cr}/approve/"),
                    None,
                )
            }
        }
    }
}

/// Sets Bob's grant in one scope (the others are emptied).
async fn hold(app: &TestApp, w: &World, at: usize, permissions: &[&str], admin: bool) {
    for (i, path) in w.grants.iter().enumerate() {
        let body = if i == at {
            json!({"permissions": permissions, "admin": admin})
        } else {
            json!({"permissions": [], "admin": false})
        };
        let body = if i == 0 {
            json!({"permissions": body["permissions"]})
        } else {
            body
        };
        let (s, v) = app.patch(path, body).await;
        assert_eq!(s, StatusCode::OK, "PATCH {path}: {v}");
    }
}

/// What was written: audit entries, every environment's revision, the publish queue.
async fn written(app: &TestApp) -> (i64, Vec<(i64, i64)>, Vec<(i64, i64)>) {
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
        .map(|j| (j.environment_id, j.wanted_revision))
        .collect();
    (audit, envs, jobs)
}

#[tokio::test]
async fn each_permission_is_needed_and_enough() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let bob = As::Token(&w.bob);
    let mut n = 0;
    for &case in CASES {
        let (scope, need) = case.need();
        let (at, all) = match scope {
            Scope::Organisation => (0, ORGANISATION),
            Scope::Project => (1, PROJECT),
            Scope::Environment => (2, ENVIRONMENT),
        };
        let others: Vec<&str> = all.iter().copied().filter(|p| *p != need).collect();

        // Everything else of the scope: refused, naming what is missing, nothing written.
        hold(&app, &w, at, &others, false).await;
        n += 1;
        let (m, path, body) = case.request(&app, &w, n).await;
        let before = written(&app).await;
        let r = app.call(m.clone(), &path, body, bob, HERE).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{case:?} {m} {path}: {}",
            r.body
        );
        assert_eq!(r.body["missing_permission"], need, "{case:?}: {}", r.body);
        assert_eq!(r.body["reason"], "not_granted", "{case:?}: {}", r.body);
        assert_eq!(
            written(&app).await,
            before,
            "{case:?}: a refusal wrote something"
        );

        // The permission alone (or admin of the scope): allowed.
        if need == "ADMIN" {
            hold(&app, &w, at, &[], true).await;
        } else {
            hold(&app, &w, at, &[need], false).await;
        }
        n += 1;
        let (m, path, body) = case.request(&app, &w, n).await;
        let r = app.call(m.clone(), &path, body, bob, HERE).await;
        assert!(
            r.status.is_success(),
            "{case:?} with {need}: {m} {path}: {} {}",
            r.status,
            r.body
        );

        // In another environment, it gives nothing here.
        if scope == Scope::Environment {
            if need == "ADMIN" {
                hold(&app, &w, 3, &[], true).await;
            } else {
                hold(&app, &w, 3, &[need], false).await;
            }
            n += 1;
            let (m, path, body) = case.request(&app, &w, n).await;
            let before = written(&app).await;
            let r = app.call(m.clone(), &path, body, bob, HERE).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{case:?} with {need} in staging: {m} {path}: {}",
                r.body
            );
            assert_eq!(
                written(&app).await,
                before,
                "{case:?}: a refusal wrote something"
            );
        }
    }
    // Staging is only there to hold grants.
    assert_ne!(w.staging, w.prod);
}

#[tokio::test]
async fn a_project_admin_holds_every_environment_of_the_project_but_not_the_organisation() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let bob = As::Token(&w.bob);
    hold(&app, &w, 1, &[], true).await;
    for (m, path, body) in [
        (
            Method::PATCH,
            format!(
                "/api/v1/environments/{}/featurestates/{}/",
                w.prod, w.feature_state
            ),
            Some(json!({"enabled": true})),
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{}/api-keys/", w.staging),
            Some(json!({"name": "ci"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/environments/{}/", w.staging),
            None,
        ),
    ] {
        let r = app.call(m.clone(), &path, body, bob, HERE).await;
        assert!(r.status.is_success(), "{m} {path}: {} {}", r.status, r.body);
    }
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/organisations/{}/", w.org),
            Some(json!({"name": "Mine"})),
            bob,
            HERE,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["missing_permission"], "ADMIN");
    // Lists show the project, its environments, and its audit log.
    for path in ["/api/v1/projects/", "/api/v1/environments/"] {
        let r = app.call(Method::GET, path, None, bob, HERE).await;
        // Projects are a plain list, as Flagsmith returns them; environments a page.
        let listed = match r.body.as_array() {
            Some(a) => a.len() as i64,
            None => r.body["count"].as_i64().unwrap(),
        };
        assert!(listed >= 1, "{path}: {}", r.body);
    }
    let r = app
        .call(Method::GET, "/api/v1/audit/", None, bob, HERE)
        .await;
    let entries = r.body["results"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["project_id"] == json!(w.project)));
}
