//! Sending one delivery over HTTP: sign, post, classify the answer. The host is resolved by
//! Flagstone (not by the client) and every address checked against the [`AddressPolicy`]
//! first; the client's own resolver checks again and hands the connector only addresses that
//! passed, so an answer that changes between the two lookups (DNS rebinding) still cannot
//! reach an internal address. Redirects are not followed (a redirect could point anywhere).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flagstone_store::queue::ParkReason;
use flagstone_store::webhooks::deliveries::Claimed;
use flagstone_webhooks::address::Host;
use flagstone_webhooks::signature::{
    Signed, EVENT_ID, EVENT_TYPE, FLAGSMITH_SIGNATURE, FLAGSTONE_SIGNATURE, TIMESTAMP,
};
use flagstone_webhooks::{AddressPolicy, UrlRefusal, WebhookUrl};

/// How an attempt ended, as the queue's policy needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Worth retrying: 5xx, 408, 429, timeout, connection error, DNS failure.
    Transient(String),
    /// Retrying would fail the same way: a 4xx, a redirect, an address the rules refuse.
    Permanent(ParkReason, String),
}

/// One attempt: its outcome, the status if the receiver answered, how long it took.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub elapsed: Duration,
}

/// The HTTP client of the deliverer: one connection pool, the SSRF rules, a timeout.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: AddressPolicy,
}

/// reqwest's resolver, replaced: resolves with the system resolver and refuses unless every
/// address passes the policy.
struct CheckedResolver {
    policy: AddressPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = resolve(&host, 0).await?;
            let ips: Vec<_> = addrs.iter().map(SocketAddr::ip).collect();
            policy.check_all(&host, &ips)?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, UrlRefusal> {
    tokio::net::lookup_host((host, port))
        .await
        .map(|a| a.collect())
        .map_err(|_| UrlRefusal::Unresolvable(host.to_string()))
}

/// Checks where `url` would connect, resolving its host: the refusal if any address is not
/// allowed. The API calls this when a webhook is saved; [`Sender::send`] before each attempt.
pub async fn check_url(url: &str, policy: AddressPolicy) -> Result<WebhookUrl, UrlRefusal> {
    let parsed = WebhookUrl::parse(url)?;
    match parsed.host() {
        Host::Ip(ip) => policy.check(ip)?,
        Host::Name(name) => {
            let addrs = resolve(&name, parsed.port()).await?;
            let ips: Vec<_> = addrs.iter().map(SocketAddr::ip).collect();
            policy.check_all(&name, &ips)?;
        }
    }
    Ok(parsed)
}

impl Sender {
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Sender {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver { policy }))
            .user_agent(concat!("Flagstone-Webhooks/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(4)
            .build()
            .expect("the HTTP client's configuration is static");
        Sender { client, policy }
    }

    /// Sends `d` once, signed at `now_secs`.
    pub async fn send(&self, d: &Claimed, now_secs: i64) -> Attempt {
        let started = Instant::now();
        let done = |outcome, status| Attempt {
            outcome,
            status,
            elapsed: started.elapsed(),
        };
        if let Err(refusal) = check_url(&d.url, self.policy).await {
            let outcome = match refusal {
                // DNS may come back: retry. An address the rules refuse will not change by
                // itself: park (redeliver after fixing the URL or the flag).
                UrlRefusal::Unresolvable(_) => Outcome::Transient(format!("url {refusal}")),
                _ => Outcome::Permanent(ParkReason::AddressRefused, format!("url {refusal}")),
            };
            return done(outcome, None);
        }
        let body = d.body.clone().into_bytes();
        let mut req = self
            .client
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID, &d.event_id)
            .header(EVENT_TYPE, &d.event_type)
            .header(TIMESTAMP, now_secs.to_string());
        if !d.secret.is_empty() {
            let signed = Signed::new(&d.secret, &body, now_secs);
            req = req
                .header(FLAGSMITH_SIGNATURE, signed.flagsmith)
                .header(FLAGSTONE_SIGNATURE, signed.flagstone);
        }
        match req.body(body).send().await {
            Ok(resp) => {
                let status = resp.status();
                let code = status.as_u16();
                let outcome = if status.is_success() {
                    Outcome::Delivered
                } else if status.is_server_error() || code == 408 || code == 429 {
                    Outcome::Transient(format!("receiver answered {status}"))
                } else {
                    Outcome::Permanent(
                        ParkReason::ReceiverRefused,
                        format!("receiver answered {status}"),
                    )
                };
                done(outcome, Some(code))
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    format!("could not connect: {}", root_cause(&e))
                } else {
                    format!("request failed: {}", root_cause(&e))
                };
                done(Outcome::Transient(what), None)
            }
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
