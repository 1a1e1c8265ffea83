//! HTTP-level test harness: the real admin router (with trailing-slash normalisation, as
//! `flagstone serve` runs it) over an isolated store, driven in-process with `oneshot`.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flagstone_api::AppState;
use flagstone_store::testing::{test_store, TestStore};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

pub struct TestApp {
    pub t: TestStore,
    state: AppState,
}

impl TestApp {
    pub async fn new() -> TestApp {
        let t = test_store().await;
        flagstone_store::keys::ensure_admin_key(&t.store, Some(ADMIN_KEY))
            .await
            .unwrap();
        let state = AppState {
            store: t.store.clone(),
        };
        TestApp { t, state }
    }

    pub fn store(&self) -> &flagstone_store::Store {
        &self.t.store
    }

    /// Sends a request with the admin key; returns status and JSON body (Null when empty).
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.req_with(method, path, body.map(|b| b.to_string()), Some(ADMIN_KEY))
            .await
    }

    /// Sends a raw body with an optional admin key.
    pub async fn req_with(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            b = b.header("authorization", format!("Api-Key {k}"));
        }
        let req = match body {
            Some(s) => b
                .header("content-type", "application/json")
                .body(Body::from(s))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let app = NormalizePathLayer::trim_trailing_slash()
            .layer(flagstone_api::router(self.state.clone()));
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.req(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.req(Method::DELETE, path, None).await
    }

    /// Creates an organisation, a project and an environment; returns (project id, env api_key).
    pub async fn project_with_env(&self) -> (i64, String) {
        let (s, org) = self
            .post("/api/v1/organisations/", json!({"name": "Org"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{org}");
        let (s, p) = self
            .post(
                "/api/v1/projects/",
                json!({"name": "Proj", "organisation": org["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let (s, e) = self
            .post(
                "/api/v1/environments/",
                json!({"name": "prod", "project": p["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
        (
            p["id"].as_i64().unwrap(),
            e["api_key"].as_str().unwrap().to_string(),
        )
    }

    /// The environment's current revision.
    pub async fn revision(&self, api_key: &str) -> i64 {
        let (_, e) = self.get(&format!("/api/v1/environments/{api_key}/")).await;
        e["revision"].as_i64().unwrap()
    }

    /// Number of audit entries (all projects).
    pub async fn audit_count(&self) -> i64 {
        let (_, a) = self.get("/api/v1/audit/?page_size=1").await;
        a["count"].as_i64().unwrap()
    }
}
