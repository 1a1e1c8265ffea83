//! `GET /metrics`: the Prometheus text exposition, optionally behind a bearer token. Operators
//! who would rather not expose it on the public listener serve it on its own address instead
//! (the binary's `--metrics-addr`); both use [`metrics_router`].

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;

/// Who may read `/metrics`.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// When set, requests must send `Authorization: Bearer <token>`.
    token: Option<Arc<str>>,
}

impl MetricsAccess {
    pub fn open() -> MetricsAccess {
        MetricsAccess::default()
    }

    pub fn bearer(token: &str) -> MetricsAccess {
        MetricsAccess {
            token: Some(token.into()),
        }
    }

    /// Whether `headers` may read the metrics (constant-time token comparison).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        presented.as_bytes().ct_eq(expected.as_bytes()).into()
    }
}

/// A router with `GET /metrics` rendering `handle` (empty if no recorder could be installed).
pub fn metrics_router(handle: Option<PrometheusHandle>, access: MetricsAccess) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let handle = handle.clone();
            let access = access.clone();
            async move { render(handle.as_ref(), &access, &headers) }
        }),
    )
}

fn render(
    handle: Option<&PrometheusHandle>,
    access: &MetricsAccess,
    headers: &HeaderMap,
) -> Response {
    if !access.allows(headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need Authorization: Bearer <the --metrics-token>\n",
        )
            .into_response();
    }
    let body = handle.map(|h| h.render()).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
