//! The request-body deadline: a body must arrive in full within the body timeout, counted from
//! when its request head arrived. A client that announces a body and then trickles or stops
//! would otherwise hold a connection (and a handler) for as long as it likes. On expiry the
//! handler's read fails, and whatever the handler answered is replaced by a 408 that names the
//! limit, with `Connection: close` (the rest of the body is never read).

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};
use tower::Service;

/// Calls `app` with `req`'s body bounded by `timeout`.
pub(super) async fn call<S>(
    mut app: S,
    req: Request<Incoming>,
    timeout: Duration,
) -> Result<Response, Infallible>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Instant::now() + timeout,
            sleep: None,
            expired: expired.clone(),
        })
    });
    std::future::poll_fn(|cx| app.poll_ready(cx)).await?;
    let response = app.call(req).await?;
    if !expired.load(Ordering::Relaxed) {
        return Ok(response);
    }
    metrics::counter!("flagstone_http_body_timeouts_total").increment(1);
    let detail = format!(
        "The request body did not arrive within {} ms (--http-body-timeout-ms).",
        timeout.as_millis()
    );
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        axum::Json(serde_json::json!({ "detail": detail })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    /// Armed only once the body is waited for: most requests never need a timer.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

#[derive(Debug)]
struct BodyTimedOut;

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl StdError for BodyTimedOut {}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}
