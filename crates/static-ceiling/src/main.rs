//! `static-ceiling BIND FILE`: answers every request with FILE's bytes (`application/json`), on
//! the same stack as Flagstone's SDK API (axum on hyper, Tokio's multi-threaded runtime) but with
//! no routing, authentication or lookup. It is the ceiling `bench/edge/run.sh` compares
//! `GET /api/v1/flags/` against.

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::IntoResponse;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(bind), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: static-ceiling BIND FILE");
        std::process::exit(2);
    };
    let body = Bytes::from(std::fs::read(&file)?);
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    eprintln!("static-ceiling listening on {bind}");
    axum::serve(listener, app).await
}
