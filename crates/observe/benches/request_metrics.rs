//! What request metrics and tracing cost on the SDK hot path: one `GET /api/v1/flags/`-shaped
//! request (a 1,685-byte pre-serialised body, like the edge's) through a bare router, with
//! `with_request_metrics` (the Prometheus recorder installed), and with request tracing too.
//! Run: `cargo bench -p flagstone-observe --bench request_metrics`; figures in BENCHMARKS.md.

use axum::body::{Body, Bytes};
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use flagstone_observe::http::{with_request_metrics, with_request_tracing};
use flagstone_observe::Role;
use tower::ServiceExt;

fn app() -> Router {
    let body = Bytes::from(vec![b'x'; 1685]);
    Router::new().route(
        "/api/v1/flags",
        get(move || {
            let b = body.clone();
            async move { b }
        }),
    )
}

fn bench(c: &mut Criterion) {
    let _handle = flagstone_observe::install(Role::Edge);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let variants = [
        ("bare", app()),
        (
            "empty-middleware",
            app().layer(axum::middleware::from_fn(
                |req: axum::extract::Request, next: axum::middleware::Next| async move {
                    next.run(req).await
                },
            )),
        ),
        ("metrics", with_request_metrics(app())),
        (
            "metrics+tracing",
            with_request_tracing(with_request_metrics(app())),
        ),
    ];
    let mut group = c.benchmark_group("sdk_request");
    for (name, router) in variants {
        group.bench_function(name, |b| {
            b.iter(|| {
                let req = Request::get("/api/v1/flags")
                    .header("X-Environment-Key", "abc")
                    .body(Body::empty())
                    .unwrap();
                rt.block_on(router.clone().oneshot(req)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
