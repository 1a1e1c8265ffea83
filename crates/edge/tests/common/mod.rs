//! Edge test harness: the admin API and the SDK API over one isolated store. Entities are made
//! through the admin API (as a user would), documents are built and published with the
//! pipeline's builder, and the edge follows them.
#![allow(dead_code)]

pub mod change_requests;
pub mod people;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use flagstone_edge::{EdgeConfig, EdgeState, Follower, FollowerConfig, PublishFeed, Registry};
use flagstone_store::document::{build, store_if_newer, BuildOptions};
use flagstone_store::testing::{test_store, TestStore};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;

pub const ADMIN_KEY: &str = "edge-test-admin-key-0123";

pub struct EdgeApp {
    pub t: TestStore,
    pub state: EdgeState,
    pub follower: Arc<Follower>,
    pub cache_dir: tempfile::TempDir,
    /// The admin router, built on first use (building it generates the OpenAPI document:
    /// tens of milliseconds unoptimised, per request were it rebuilt each time).
    admin: std::sync::OnceLock<Router>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl EdgeApp {
    pub async fn new() -> EdgeApp {
        Self::with_clock_and_config(flagstone_store::Clock::system(), EdgeConfig::default()).await
    }

    /// An app whose store reads "now" from `clock` (a manual clock lets a test pass days).
    pub async fn with_clock(clock: flagstone_store::Clock) -> EdgeApp {
        Self::with_clock_and_config(clock, EdgeConfig::default()).await
    }

    pub async fn with_config(config: EdgeConfig) -> EdgeApp {
        Self::with_clock_and_config(flagstone_store::Clock::system(), config).await
    }

    async fn with_clock_and_config(clock: flagstone_store::Clock, config: EdgeConfig) -> EdgeApp {
        let mut t = test_store().await;
        t.store = t.store.clone().with_clock(clock);
        flagstone_store::keys::ensure_admin_key(&t.store, Some(ADMIN_KEY))
            .await
            .unwrap();
        let registry = Arc::new(Registry::default());
        let cache_dir = tempfile::tempdir().unwrap();
        let follower = Follower::start(
            t.store.clone(),
            registry.clone(),
            FollowerConfig {
                poll_interval: std::time::Duration::from_secs(3600),
                cache_dir: Some(cache_dir.path().to_path_buf()),
            },
            PublishFeed::PollOnly,
        )
        .await;
        registry.initial_load_finished().await;
        let state = EdgeState::new(t.store.clone(), registry, config);
        EdgeApp {
            t,
            state,
            follower,
            cache_dir,
            admin: std::sync::OnceLock::new(),
        }
    }

    /// The admin API over this app's store, as `flagstone serve` mounts it.
    pub fn admin(&self) -> Router {
        self.admin
            .get_or_init(|| {
                flagstone_api::router(flagstone_api::AppState::new(self.t.store.clone()))
            })
            .clone()
    }

    async fn send(router: Router, req: Request<Body>) -> Resp {
        let app = NormalizePathLayer::trim_trailing_slash().layer(router);
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// An admin request, whatever its answer.
    pub async fn admin_raw(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Api-Key {ADMIN_KEY}"));
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        Self::send(self.admin(), req).await
    }

    /// An admin request; panics unless it succeeds.
    pub async fn admin_req(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Api-Key {ADMIN_KEY}"));
        let req = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                b.body(Body::from(v.to_string())).unwrap()
            }
            None => b.body(Body::empty()).unwrap(),
        };
        let r = Self::send(self.admin(), req).await;
        assert!(
            r.status.is_success(),
            "{path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.admin_req(Method::POST, path, Some(body)).await
    }

    /// An SDK request with an optional `X-Environment-Key`.
    pub async fn sdk(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            b = b.header("x-environment-key", k);
        }
        for (h, v) in extra {
            b = b.header(*h, *v);
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        Self::send(flagstone_edge::router(self.state.clone()), req).await
    }

    /// Builds and publishes every environment's document, then lets the edge catch up.
    pub async fn publish(&self) {
        let envs: Vec<i64> = {
            let mut tx = self.t.store.read().await.unwrap();
            flagstone_store::environments::list(
                &mut tx,
                None,
                flagstone_store::PageRequest::new(1, 1000),
            )
            .await
            .unwrap()
            .results
            .into_iter()
            .map(|e| e.id)
            .collect()
        };
        for env in envs {
            let doc = build(&self.t.store, env, &BuildOptions::default())
                .await
                .unwrap();
            let mut tx = self.t.store.write().await.unwrap();
            store_if_newer(&mut tx, &doc).await.unwrap();
            tx.commit().await.unwrap();
        }
        self.follower.sync_all().await.unwrap();
        // Its last good copies too, as a stopped edge leaves them.
        self.follower.cache_written().await;
    }

    /// The id of the environment whose client key is `key`.
    pub async fn environment_id(&self, key: &str) -> i64 {
        let mut tx = self.t.store.read().await.unwrap();
        flagstone_store::environments::get_by_key(&mut tx, key)
            .await
            .unwrap()
            .id
    }

    /// The stored traits of an identity, as `{key: value}`; `None` if it does not exist.
    pub async fn stored_traits(&self, env: i64, identifier: &str) -> Option<Value> {
        let mut tx = self.t.store.read().await.unwrap();
        flagstone_store::identities::load_identity(&mut tx, env, identifier)
            .await
            .unwrap()
            .map(|(_, traits, _)| {
                traits
                    .into_iter()
                    .map(|t| (t.trait_key, t.trait_value))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
    }

    /// Organisation, project, environment; returns (project id, client key, server key).
    pub async fn setup(&self) -> (i64, String, String) {
        let org = self
            .post("/api/v1/organisations/", json!({"name": "Org"}))
            .await;
        let p = self
            .post(
                "/api/v1/projects/",
                json!({"name": "Proj", "organisation": org["id"]}),
            )
            .await;
        let e = self
            .post(
                "/api/v1/environments/",
                json!({"name": "prod", "project": p["id"]}),
            )
            .await;
        let key = e["api_key"].as_str().unwrap().to_string();
        let sk = self
            .post(
                &format!("/api/v1/environments/{key}/api-keys/"),
                json!({"name": "srv"}),
            )
            .await;
        (
            p["id"].as_i64().unwrap(),
            key,
            sk["key"].as_str().unwrap().to_string(),
        )
    }

    /// Creates a feature and sets its value/enabled in the environment; returns its id.
    pub async fn feature(
        &self,
        project: i64,
        key: &str,
        name: &str,
        enabled: bool,
        value: Value,
    ) -> i64 {
        let f = self
            .post(
                &format!("/api/v1/projects/{project}/features/"),
                json!({"name": name}),
            )
            .await;
        let id = f["id"].as_i64().unwrap();
        let states = self
            .admin_req(
                Method::GET,
                &format!("/api/v1/environments/{key}/featurestates/?feature={id}"),
                None,
            )
            .await;
        let fs = states["results"][0]["id"].as_i64().unwrap();
        self.admin_req(
            Method::PATCH,
            &format!("/api/v1/environments/{key}/featurestates/{fs}/"),
            Some(json!({"enabled": enabled, "feature_state_value": value})),
        )
        .await;
        id
    }
}
