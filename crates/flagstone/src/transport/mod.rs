//! The HTTP listener every server role uses (`serve`, `edge`, and the `--metrics-addr` listener of
//! every role, the standalone `worker`'s included): hyper's connection builder driven
//! directly, so that a client which opens connections and never finishes a request cannot hold
//! them forever and exhaust the process's file descriptors.
//!
//! - A new connection must send its first complete request head within the header timeout;
//!   between requests a kept-alive connection must send its next complete head within the idle
//!   timeout ([`timer`]). Both are hyper's `header_read_timeout`, told apart per connection.
//! - A request body must arrive in full within the body timeout, or the request is answered 408
//!   and the connection closed ([`body_deadline`]).
//! - At most `max_connections` connections are open at once. At the cap the server stops
//!   accepting (new clients wait in the kernel's listen backlog) and says so in the log, once per
//!   episode, instead of failing later with "too many open files".
//! - Responses being streamed (SSE) are not subject to the idle or body timeouts: hyper only
//!   reads a next request head once the response is done. SSE has its own caps (see the edge).
//! - Graceful shutdown: on the signal the listener closes, idle connections close at once and
//!   in-flight requests get `shutdown_grace` to finish (SSE streams never finish by themselves).

mod body_deadline;
mod timer;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::Service;

/// Transport limits shared by `serve`, `edge` and `worker` (its `--metrics-addr` listener).
#[derive(clap::Args, Debug, Clone)]
pub struct HttpOptions {
    /// How long a new connection may take to send its first complete request head (request line
    /// and headers), in milliseconds; slower connections are closed.
    #[arg(
        long,
        env = "FLAGSTONE_HTTP_HEADER_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub http_header_timeout_ms: u64,
    /// How long a kept-alive connection may stay idle between requests (until its next complete
    /// request head), in milliseconds.
    #[arg(long, env = "FLAGSTONE_HTTP_IDLE_TIMEOUT_MS", default_value_t = 75_000)]
    pub http_idle_timeout_ms: u64,
    /// How long a request body may take to arrive in full, in milliseconds; past it the request
    /// is answered 408 and the connection closed. Raise it for large imports over slow links.
    #[arg(long, env = "FLAGSTONE_HTTP_BODY_TIMEOUT_MS", default_value_t = 60_000)]
    pub http_body_timeout_ms: u64,
    /// Connections open at once, at most (SSE subscribers included). At the cap the server
    /// stops accepting until one closes, and logs it. Keep it below the process's file
    /// descriptor limit (`ulimit -n`).
    #[arg(long, env = "FLAGSTONE_HTTP_MAX_CONNECTIONS", default_value_t = 4096)]
    pub http_max_connections: usize,
    /// On shutdown, how long in-flight requests and open streams get to finish, in milliseconds.
    #[arg(
        long,
        env = "FLAGSTONE_HTTP_SHUTDOWN_GRACE_MS",
        default_value_t = 10_000
    )]
    pub http_shutdown_grace_ms: u64,
}

impl HttpOptions {
    fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout_ms.max(1))
    }
    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.http_idle_timeout_ms.max(1))
    }
    fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.http_body_timeout_ms.max(1))
    }
}

/// Which listener of the process: the label of its connection metrics (each has its own cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The role's `--bind` address.
    Main,
    /// The `--metrics-addr` address.
    Metrics,
}

impl Listener {
    pub fn label(self) -> &'static str {
        match self {
            Listener::Main => "main",
            Listener::Metrics => "metrics",
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module docs).
/// Handlers can read the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve<S>(
    listener: TcpListener,
    which: Listener,
    app: S,
    opts: &HttpOptions,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let max = opts.http_max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    // Connections watch `stop`; each holds a `done` receiver, so `closed()` means all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::warn!(
                    max_connections = max,
                    listener = which.label(),
                    "connection cap reached: {max} connections open; new connections wait in \
                     the listen backlog until one closes (--http-max-connections)"
                );
                metrics::counter!("flagstone_http_connection_cap_reached_total", "listener" => which.label())
                    .increment(1);
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => {
                            tracing::info!("below the connection cap again; accepting");
                            permit
                        }
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Typically out of file descriptors: retrying at once would spin.
                    tracing::error!(error = %e, "cannot accept a connection; retrying in 1 s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        metrics::gauge!("flagstone_http_connections_open", "listener" => which.label())
            .set((max - slots.available_permits()) as f64);
        let conn = Connection {
            stream,
            peer,
            app: app.clone(),
            opts: opts.clone(),
            stop: stop_rx.clone(),
        };
        let done = done_rx.clone();
        tokio::spawn(async move {
            conn.run().await;
            drop(permit);
            drop(done);
        });
    }
    drop(listener);
    drop(done_rx);
    let _ = stop_tx.send(true);
    let open = max - slots.available_permits();
    tracing::info!(
        open,
        "listener closed; waiting for open connections to finish"
    );
    let grace = Duration::from_millis(opts.http_shutdown_grace_ms);
    if tokio::time::timeout(grace, done_tx.closed()).await.is_err() {
        let open = max - slots.available_permits();
        tracing::warn!(
            open,
            "{open} connection(s) still open after the shutdown grace period; closing them"
        );
    }
}

/// Errors that concern one incoming connection only (the listener itself is fine).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

struct Connection<S> {
    stream: TcpStream,
    peer: SocketAddr,
    app: S,
    opts: HttpOptions,
    stop: watch::Receiver<bool>,
}

impl<S> Connection<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    async fn run(mut self) {
        let peer = self.peer;
        let app = self.app;
        let body_timeout = self.opts.body_timeout();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            body_deadline::call(app.clone(), req, body_timeout)
        });
        // HTTP/1 only, and said so: without a fixed version the builder first waits for the
        // client's opening bytes to tell HTTP/1 from HTTP/2, with no timeout at all, which is
        // exactly the hole a client that connects and sends nothing uses (`axum::serve` has it).
        let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
        builder
            .http1()
            .timer(timer::ConnTimer::new(self.opts.idle_timeout()))
            .header_read_timeout(self.opts.header_timeout());
        let mut conn = pin!(builder.serve_connection(TokioIo::new(self.stream), service));
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                changed = self.stop.changed(), if !stopping => {
                    // A closed channel means the server is gone: shut down as well.
                    let _ = changed;
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
