//! People for permission scenarios: a user member of an organisation with an API token, and
//! admin requests made as them.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use flagstone_store::accounts::{members, tokens};
use flagstone_store::Actor;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;

use super::EdgeApp;

/// A user member of `organisation` with `role`, and an API token for them.
pub async fn user(app: &EdgeApp, organisation: i64, email: &str, role: &str) -> (i64, String) {
    let now = flagstone_store::now_ms();
    let mut tx = app.t.store.write().await.unwrap();
    let u = flagstone_store::accounts::users::create(
        &mut tx,
        &flagstone_store::accounts::users::NewUser {
            email: email.into(),
            first_name: String::new(),
            last_name: String::new(),
            password_hash: None,
            is_superuser: false,
        },
        now,
    )
    .await
    .unwrap();
    let secret = flagstone_access::secrets::new_secret("fst_");
    tokens::insert(
        &mut tx,
        u.id,
        tokens::TokenKind::Api,
        &secret.lookup,
        &secret.hash,
        now,
        now + 3_600_000,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut ch = app.t.store.change(&Actor::system("test")).await.unwrap();
    members::add(&mut ch, organisation, u.id, email, role, now)
        .await
        .unwrap();
    ch.commit().await.unwrap();
    (u.id, secret.secret)
}

/// An admin request as the holder of `token`: status and JSON body.
pub async fn call(
    app: &EdgeApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Token {token}"));
    let mut req = match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let router = NormalizePathLayer::trim_trailing_slash().layer(app.admin());
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
