//! HTTP-level test harness: the real admin router (with trailing-slash normalisation, as
//! `flagstone serve` runs it) over an isolated store, driven in-process with `oneshot`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use flagstone_api::auth::AuthConfig;
use flagstone_api::clock::ManualClock;
use flagstone_api::AppState;
use flagstone_store::testing::{test_store, TestStore};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

pub struct TestApp {
    pub t: TestStore,
    /// Read freely; change it with [`TestApp::set_state`], which rebuilds the router.
    pub state: AppState,
    /// The clock token expiry and rate limits read; tests move it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The admin router over `state`, built on first use: building it generates the OpenAPI
    /// document, which an unoptimised build takes tens of milliseconds for, and some tests
    /// send hundreds of requests.
    router: OnceLock<Router>,
}

/// Who sends a request.
#[derive(Clone, Copy, Debug)]
pub enum As<'a> {
    Nobody,
    /// `Authorization: Api-Key …`
    Key(&'a str),
    /// `Authorization: Token …`
    Token(&'a str),
    /// The session cookie, with `X-CSRF-Token` if given.
    Session {
        cookie: &'a str,
        csrf: Option<&'a str>,
    },
}

/// A response: status, headers, JSON body (Null when empty).
#[derive(Debug)]
pub struct Sent {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Sent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A password that meets the policy.
pub const PASSWORD: &str = "correct-horse-battery";

impl TestApp {
    /// Replaces the state requests are served with.
    pub fn set_state(&mut self, state: AppState) {
        self.state = state;
        self.router = OnceLock::new();
    }

    /// The admin router as `flagstone serve` runs it (trailing slashes trimmed).
    fn app(&self) -> tower_http::normalize_path::NormalizePath<Router> {
        let router = self
            .router
            .get_or_init(|| flagstone_api::router(self.state.clone()));
        NormalizePathLayer::trim_trailing_slash().layer(router.clone())
    }

    pub async fn new() -> TestApp {
        TestApp::with_config(|_| {}).await
    }

    /// An app with these authentication settings (on a manual clock).
    pub async fn with_config(f: impl FnOnce(&mut AuthConfig)) -> TestApp {
        let t = test_store().await;
        flagstone_store::keys::ensure_admin_key(&t.store, Some(ADMIN_KEY))
            .await
            .unwrap();
        let mut config = AuthConfig::default();
        f(&mut config);
        let clock = Arc::new(ManualClock::starting_now());
        let state = AppState::with_auth(t.store.clone(), config, clock.clone());
        TestApp {
            t,
            state,
            clock,
            router: OnceLock::new(),
        }
    }

    /// Sends a request as `who` from client address `from` (the socket peer).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        who: As<'_>,
        from: &str,
    ) -> Sent {
        let mut b = Request::builder().method(method).uri(path);
        match who {
            As::Nobody => {}
            As::Key(k) => b = b.header("authorization", format!("Api-Key {k}")),
            As::Token(t) => b = b.header("authorization", format!("Token {t}")),
            As::Session { cookie, csrf } => {
                b = b.header("cookie", format!("other=1; flagstone_session={cookie}"));
                if let Some(c) = csrf {
                    b = b.header("x-csrf-token", c);
                }
            }
        }
        let mut req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let peer: SocketAddr = format!("{from}:40000").parse().expect("an IP address");
        req.extensions_mut().insert(ConnectInfo(peer));
        let resp = self.app().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Sent {
            status,
            headers,
            body,
        }
    }

    /// Signs up (asserting 201); returns the response body (the user and its `key`).
    pub async fn sign_up(&self, email: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/users/",
                Some(json!({"email": email, "password": PASSWORD, "first_name": "F", "last_name": "L"})),
                As::Nobody,
                "127.0.0.1",
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    /// Creates a user from the store (as an operator would), outside any organisation.
    pub async fn create_user(&self, email: &str) -> i64 {
        let hash = flagstone_access::password::hash(PASSWORD, self.state.auth.passwords.cost());
        let mut tx = self.store().write().await.unwrap();
        let u = flagstone_store::accounts::users::create(
            &mut tx,
            &flagstone_store::accounts::users::NewUser {
                email: email.into(),
                first_name: String::new(),
                last_name: String::new(),
                password_hash: Some(hash),
                is_superuser: false,
            },
            flagstone_store::now_ms(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        u.id
    }

    /// Signs in with `PASSWORD`; returns the API token.
    pub async fn login(&self, email: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login/",
                Some(json!({"email": email, "password": PASSWORD})),
                As::Nobody,
                "127.0.0.1",
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["key"].as_str().unwrap().to_string()
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
        let resp = self.app().oneshot(req).await.unwrap();
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
