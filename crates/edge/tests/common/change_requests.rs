//! The change-request tests' fixture: an environment that requires approvals, people with
//! the permissions to open, approve and look at change requests, and the calls they make.

use axum::http::{Method, StatusCode};
use flagstone_store::PageRequest;
use flagstone_tasks::schedule::ScheduleConfig;
use serde_json::{json, Value};

use super::people::{call, user};
use super::EdgeApp;

/// The flag `name` as the SDK sees it: (enabled, value).
pub async fn sdk_flag(app: &EdgeApp, key: &str, name: &str) -> Value {
    app.publish().await;
    let r = app
        .sdk(Method::GET, "/api/v1/flags/", Some(key), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let flags = r.json();
    let f = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == name)
        .unwrap_or_else(|| panic!("no flag {name} in {flags}"))
        .clone();
    json!([f["enabled"], f["feature_state_value"]])
}

/// (revision, audit entries): what a refused request must leave as it was.
pub async fn written(app: &EdgeApp, key: &str) -> (i64, i64) {
    let mut tx = app.t.store.read().await.unwrap();
    let e = flagstone_store::environments::get_by_key(&mut tx, key)
        .await
        .unwrap();
    let audit = flagstone_store::audit::list(&mut tx, None, PageRequest::new(1, 1))
        .await
        .unwrap()
        .count;
    (e.revision, audit)
}

pub struct Fixture {
    pub app: EdgeApp,
    pub key: String,
    pub project: i64,
    /// May edit feature states and overrides, open and approve change requests; not an admin.
    pub ada: String,
    /// Two approvers.
    pub bob: String,
    pub carl: String,
    /// Can only look.
    pub eve: String,
    /// The user ids of ada, bob, carl and eve.
    pub ids: [i64; 4],
}

pub async fn fixture(minimum_approvals: i64) -> Fixture {
    let app = EdgeApp::new().await;
    let (project, key, _) = app.setup().await;
    let organisation = app
        .admin_req(Method::GET, &format!("/api/v1/projects/{project}/"), None)
        .await["organisation"]
        .as_i64()
        .unwrap();
    let grants = format!("/api/v1/environments/{key}/user-permissions/");
    let mut tokens = Vec::new();
    let mut ids = [0; 4];
    for (n, (email, permissions)) in [
        (
            "ada@example.com",
            json!([
                "VIEW_ENVIRONMENT",
                "UPDATE_FEATURE_STATE",
                "MANAGE_SEGMENT_OVERRIDES",
                "CREATE_CHANGE_REQUEST",
                "APPROVE_CHANGE_REQUEST"
            ]),
        ),
        (
            "bob@example.com",
            json!(["VIEW_ENVIRONMENT", "APPROVE_CHANGE_REQUEST"]),
        ),
        (
            "carl@example.com",
            json!(["VIEW_ENVIRONMENT", "APPROVE_CHANGE_REQUEST"]),
        ),
        ("eve@example.com", json!(["VIEW_ENVIRONMENT"])),
    ]
    .into_iter()
    .enumerate()
    {
        let (id, token) = user(&app, organisation, email, "USER").await;
        ids[n] = id;
        app.post(&grants, json!({"user": id, "permissions": permissions}))
            .await;
        tokens.push(token);
    }
    let env = app
        .admin_req(
            Method::PATCH,
            &format!("/api/v1/environments/{key}/"),
            Some(json!({"minimum_change_request_approvals": minimum_approvals})),
        )
        .await;
    assert_eq!(env["minimum_change_request_approvals"], minimum_approvals);
    let mut t = tokens.into_iter();
    Fixture {
        app,
        key,
        project,
        ada: t.next().unwrap(),
        bob: t.next().unwrap(),
        carl: t.next().unwrap(),
        eve: t.next().unwrap(),
        ids,
    }
}

/// The environment default state id of `feature`.
pub async fn state_of(app: &EdgeApp, key: &str, feature: i64) -> i64 {
    app.admin_req(
        Method::GET,
        &format!("/api/v1/environments/{key}/featurestates/?feature={feature}"),
        None,
    )
    .await["results"][0]["id"]
        .as_i64()
        .unwrap()
}

/// Opens a change request as ada; returns it.
pub async fn open(f: &Fixture, body: Value) -> Value {
    let (s, cr) = call(
        &f.app,
        &f.ada,
        Method::POST,
        &format!("/api/v1/environments/{}/create-change-request/", f.key),
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{cr}");
    cr
}

pub async fn act(f: &Fixture, who: &str, id: i64, what: &str) -> (StatusCode, Value) {
    call(
        &f.app,
        who,
        Method::POST,
        &format!("/api/v1/change-requests/{id}/{what}/"),
        None,
    )
    .await
}

pub fn config() -> ScheduleConfig {
    ScheduleConfig {
        jitter: flagstone_tasks::JitterSource::Fixed(flagstone_tasks::policy::Jitter::NONE),
        ..ScheduleConfig::default()
    }
}
