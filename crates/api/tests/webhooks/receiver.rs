//! A real HTTP receiver for webhook tests: axum on 127.0.0.1:0, recording every request, and
//! answering as told — fail the first N requests with 500, or never answer at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct Got {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status this receiver answered (None: it never answered).
    pub answered: Option<u16>,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    pub fn event_id(&self) -> String {
        self.header("x-flagstone-event-id").to_string()
    }
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Accept the connection, never answer.
    Hang,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Got>>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let seen = Arc::new(AtomicUsize::new(0));
        let (g, a) = (got.clone(), arrived.clone());
        let handler = move |headers: HeaderMap, body: Bytes| {
            let (g, a, seen) = (g.clone(), a.clone(), seen.clone());
            async move {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let status = match behaviour {
                    Behaviour::Hang => None,
                    Behaviour::FailFirst(k) if n < k => Some(500),
                    Behaviour::FailFirst(_) => Some(200),
                };
                g.lock().unwrap().push(Got {
                    headers,
                    body,
                    answered: status,
                });
                a.notify_waiters();
                match status {
                    None => std::future::pending::<StatusCode>().await,
                    Some(s) => StatusCode::from_u16(s).unwrap(),
                }
            }
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, got, arrived }
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Requests this receiver answered with 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| g.answered.is_some_and(|s| (200..300).contains(&s)))
            .collect()
    }

    /// Waits until at least `n` requests arrived (woken by each arrival; no polling).
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.arrived.notified();
            if self.got.lock().unwrap().len() >= n {
                return;
            }
            notified.await;
        }
    }
}
