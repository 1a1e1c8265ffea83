//! HTTP request metrics: a middleware counting every answered request by route *template*
//! (axum's [`MatchedPath`], e.g. `/api/v1/environments/{api_key}/`), method and status, and
//! timing it; and a tracing span per request with the same template. Raw paths never become
//! labels or log fields: they hold environment keys and identifiers, and would make the label
//! set unbounded. A request no route matched is labelled
//! [`UNMATCHED_ROUTE`](crate::catalogue::UNMATCHED_ROUTE).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;

use crate::catalogue::{HTTP_REQUESTS_TOTAL, HTTP_REQUEST_SECONDS, UNMATCHED_ROUTE};

/// A bounded method label: the standard methods, anything else as `other`.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route label of a request: its matched template, or [`UNMATCHED_ROUTE`].
pub fn route_label(matched: Option<&MatchedPath>) -> String {
    matched
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_string())
}

/// Registers the series of one route at zero (status 200), so they exist before its first
/// request.
pub fn register_route(method: &'static str, route: &'static str) {
    metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route, "method" => method, "status" => "200")
        .absolute(0);
    let _ = metrics::histogram!(HTTP_REQUEST_SECONDS, "route" => route, "method" => method);
}

/// The middleware: records one request after its response head is ready.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_label(req.extensions().get::<MatchedPath>());
    let method = method_label(req.method());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_SECONDS, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `app` with every request counted. Apply it to the complete router (after every `route` and
/// `merge`), so each route's template is known to the middleware.
pub fn with_request_metrics(app: Router) -> Router {
    app.layer(axum::middleware::from_fn(track))
}

/// `app` with a tracing span per request carrying its method and route template, never the raw
/// path or query (they hold environment keys and identifiers). Apply it to the complete router.
pub fn with_request_tracing(app: Router) -> Router {
    app.layer(
        tower_http::trace::TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                let route = route_label(req.extensions().get::<MatchedPath>());
                tracing::debug_span!("request", method = %req.method(), route = %route)
            },
        ),
    )
}
