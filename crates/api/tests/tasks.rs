//! `/api/v1/tasks/`: an operator sees the publish queue, a parked job's reason, and retries or
//! discards it — each an audited action.

mod common;

use axum::http::StatusCode;
use common::TestApp;
use flagstone_store::queue;
use flagstone_tasks::testing::{Fault, Pipeline, Ran};
use flagstone_tasks::Breakpoint;
use serde_json::json;

/// The pipeline stepped by hand, its clock a minute past the server's (every job is due).
fn pipeline(app: &TestApp) -> Pipeline {
    Pipeline::starting_at(app.store(), flagstone_store::now_ms() + 60_000)
}

/// Parks the environment's job the way a worker does after an oversized build.
async fn park(app: &TestApp) {
    let p = pipeline(app);
    p.inject(Breakpoint::Built, Fault::TooLarge);
    assert!(matches!(p.run("test-worker").await, Ran::Ended { .. }));
}

#[tokio::test]
async fn an_operator_sees_a_parked_job_and_retries_it() {
    let app = TestApp::new().await;
    let (_project, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let env_id = env["id"].as_i64().unwrap();

    let (status, body) = app.get("/api/v1/tasks/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["count"], 1);
    assert_eq!(body["results"][0]["environment_id"], env_id);
    assert_eq!(body["results"][0]["state"], "pending");

    park(&app).await;
    let (status, body) = app.get("/api/v1/tasks/?state=parked").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["count"], 1);
    let job = &body["results"][0];
    assert_eq!(job["park_reason"], "document_too_large");
    assert_eq!(
        job["last_error"],
        "document would exceed 100001 bytes (budget 100000)"
    );
    assert!(job["published_revision"].is_null());

    let (status, body) = app.get("/api/v1/tasks/status/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["parked"], 1);
    assert_eq!(body["stale_environments"], 1);
    assert_eq!(body["stale"][0]["park_reason"], "document_too_large");

    let audit = app.audit_count().await;
    let (status, body) = app
        .post(&format!("/api/v1/tasks/{env_id}/retry/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "pending");
    assert_eq!(body["attempts"], 0);
    assert!(body["park_reason"].is_null());
    assert_eq!(app.audit_count().await, audit + 1);
    let (_, body) = app.get(&format!("/api/v1/tasks/{env_id}/")).await;
    assert_eq!(body["state"], "pending");
}

#[tokio::test]
async fn an_operator_discards_a_parked_job() {
    let app = TestApp::new().await;
    let (_project, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let env_id = env["id"].as_i64().unwrap();
    park(&app).await;
    let audit = app.audit_count().await;
    let (status, body) = app
        .post(&format!("/api/v1/tasks/{env_id}/discard/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "parked");
    assert_eq!(app.audit_count().await, audit + 1);
    let (status, body) = app.get(&format!("/api/v1/tasks/{env_id}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The reconciler does not bring a discarded revision back.
    assert_eq!(queue::reconcile(app.store()).await.unwrap(), 0);
    let (_, body) = app.get("/api/v1/tasks/").await;
    assert_eq!(body["count"], 0);
}

#[tokio::test]
async fn task_requests_with_mistakes_get_clear_errors() {
    let app = TestApp::new().await;
    let (status, body) = app.get("/api/v1/tasks/?state=stuck").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "state");
    let (status, body) = app.post("/api/v1/tasks/999/retry/", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, _) = app.post("/api/v1/tasks/abc/discard/", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get("/api/v1/tasks/999/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A running job cannot be retried or discarded under its worker's feet.
    let (_project, key) = app.project_with_env().await;
    let (_, env) = app.get(&format!("/api/v1/environments/{key}/")).await;
    let env_id = env["id"].as_i64().unwrap();
    assert!(pipeline(&app).claim("w").await.is_some());
    let (status, body) = app
        .post(&format!("/api/v1/tasks/{env_id}/retry/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "conflict");
    let (status, _) = app
        .post(&format!("/api/v1/tasks/{env_id}/discard/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
