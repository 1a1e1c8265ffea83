//! HTTP request metrics: a middleware counting every answered request by route *template*
//! (axum's [`MatchedPath`], e.g. `/api/v1/environments/{api_key}/`), method and status, and
//! timing it; and a tracing span per request with the same template. Raw paths never become
//! labels or log fields: they hold environment keys and identifiers, and would make the label
//! set unbounded. A request no route matched is labelled
//! [`UNMATCHED_ROUTE`](crate::catalogue::UNMATCHED_ROUTE).

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
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

/// The handles of one (route, method, status), looked up once: building a metric key and
/// finding it in the recorder's registry on every request cost about 2 µs, a tenth of what an
/// SDK request costs in all. Route templates, methods and statuses are few, so the cache stays
/// small.
#[derive(Clone)]
struct Series {
    requests: metrics::Counter,
    seconds: metrics::Histogram,
}

type SeriesCache = RwLock<HashMap<Box<str>, HashMap<(&'static str, u16), Series>>>;

fn series(route: &str, method: &'static str, status: StatusCode) -> Series {
    static CACHE: OnceLock<SeriesCache> = OnceLock::new();
    let make = || Series {
        requests: metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route.to_string(), "method" => method, "status" => status.as_u16().to_string()),
        seconds: metrics::histogram!(HTTP_REQUEST_SECONDS, "route" => route.to_string(), "method" => method),
    };
    // Handles taken before the recorder exists would record nowhere, forever: cache only after.
    if !crate::catalogue::installed() {
        return make();
    }
    let cache = CACHE.get_or_init(Default::default);
    let key = (method, status.as_u16());
    if let Some(s) = cache
        .read()
        .ok()
        .and_then(|c| c.get(route).and_then(|m| m.get(&key)).cloned())
    {
        return s;
    }
    let s = make();
    if let Ok(mut c) = cache.write() {
        c.entry(route.into()).or_default().insert(key, s.clone());
    }
    s
}

/// The middleware: records one request after its response head is ready.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    let response = next.run(req).await;
    let route = matched.as_ref().map_or(UNMATCHED_ROUTE, |m| m.as_str());
    let s = series(route, method, response.status());
    s.requests.increment(1);
    s.seconds.record(started.elapsed().as_secs_f64());
    response
}

/// `app` with every request counted. Apply it to the complete router (after every `route` and
/// `merge`), so each route's template is known to the middleware.
pub fn with_request_metrics(app: Router) -> Router {
    app.layer(axum::middleware::from_fn(track))
}

/// `app` with a tracing span per request carrying its method and route template, never the raw
/// path or query (they hold environment keys and identifiers). Apply it to the complete router.
///
/// Server errors are logged at ERROR, except 503: that is an answer, not a fault — readiness
/// while a node loads its cache or has lost its store (each probe would log a line; the health
/// probe already logs the state change once) and load shedding (counted in metrics).
pub fn with_request_tracing(app: Router) -> Router {
    use tower_http::classify::ServerErrorsFailureClass;
    app.layer(
        tower_http::trace::TraceLayer::new_for_http()
            .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                let route = route_label(req.extensions().get::<MatchedPath>());
                tracing::debug_span!("request", method = %req.method(), route = %route)
            })
            .on_failure(
                |class: ServerErrorsFailureClass, latency: Duration, _: &tracing::Span| {
                    let latency_ms = latency.as_millis() as u64;
                    match class {
                        ServerErrorsFailureClass::StatusCode(s)
                            if s == axum::http::StatusCode::SERVICE_UNAVAILABLE =>
                        {
                            tracing::debug!(status = %s, latency_ms, "service unavailable")
                        }
                        other => {
                            tracing::error!(classification = %other, latency_ms, "response failed")
                        }
                    }
                },
            ),
    )
}
