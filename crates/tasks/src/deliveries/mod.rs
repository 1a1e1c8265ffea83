//! Webhook deliveries: the second durable queue, with the publish queue's rules. Deliveries are
//! queued by the store in each change's own transaction (`flagstone_store::webhooks::events`);
//! here a [`Deliverer`] claims them (oldest first, one at a time per webhook so each receiver
//! gets its events in order), sends them ([`send`]) and settles each attempt with
//! [`crate::policy`]: a 2xx is done, a 5xx / timeout / connection error retries with exponential
//! backoff and jitter, a 4xx or a refused address parks at once, and `max_attempts` failures
//! park.
//!
//! A slow or dead receiver costs at most one of `concurrency` slots for at most `timeout` per
//! attempt: it never delays publishing (a separate loop) and only delays other receivers when
//! every slot is waiting on a dead one.

pub mod send;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flagstone_store::queue::{self, Decision};
use flagstone_store::webhooks::deliveries::{self, AttemptRecord, Claimed};
use flagstone_store::{Result, Store};
use flagstone_webhooks::AddressPolicy;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::policy::{self, Failed, Failure, Rules};
use crate::JitterSource;
pub use send::{check_url, Attempt, Outcome, Sender};

/// How deliveries run. Defaults suit production.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Deliveries in flight at once in this process.
    pub concurrency: usize,
    /// One attempt's limit (connect, send, answer).
    pub timeout: Duration,
    /// Leases, attempts and backoff. The lease outlives `timeout`, so no heartbeat is needed.
    pub rules: Rules,
    pub jitter: JitterSource,
    /// Longest idle sleep between looks at the queue.
    pub poll_interval: Duration,
    /// Which addresses deliveries may reach.
    pub policy: AddressPolicy,
    /// This deliverer's name in leases.
    pub owner: String,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            concurrency: 8,
            timeout: Duration::from_secs(10),
            rules: Rules {
                lease_ms: 60_000,
                max_attempts: 8,
                backoff_base_ms: 2_000,
                backoff_cap_ms: 10 * 60_000,
                // Deliveries tie nothing to a session: only leases lapse.
                session_lapse_window_ms: 60_000,
            },
            jitter: JitterSource::Random,
            poll_interval: Duration::from_millis(500),
            policy: AddressPolicy::default(),
            owner: crate::default_owner(),
        }
    }
}

/// Claims the oldest due delivery for `cfg.owner` (`None` when nothing is due). A delivery
/// whose claimants keep dying is parked here instead.
pub async fn claim(store: &Store, cfg: &DeliveryConfig) -> Result<Option<Claimed>> {
    for _ in 0..16 {
        let now = store.clock().now_ms();
        let mut tx = queue::begin(store).await?;
        let Some(due) = deliveries::next_due(&mut tx, now).await? else {
            return Ok(None);
        };
        let decision = policy::on_claim(&cfg.rules, &due, now);
        let claimed = deliveries::take(&mut tx, &due, &cfg.owner, &decision, now).await?;
        tx.commit().await?;
        if claimed.is_some() {
            return Ok(claimed);
        }
    }
    Ok(None)
}

/// Writes what an attempt decided, if `d`'s lease still holds (`None`: another deliverer took
/// it over and its outcome stands).
pub async fn settle(
    store: &Store,
    cfg: &DeliveryConfig,
    d: &Claimed,
    attempt: &Attempt,
) -> Result<Option<Decision>> {
    let now = store.clock().now_ms();
    let mut tx = queue::begin(store).await?;
    let Some(attempts_before) = deliveries::owned(&mut tx, d.id, &d.owner).await? else {
        crate::metrics::delivery_attempted("lease_lost", attempt.elapsed);
        return Ok(None);
    };
    let failed = |failure, error: &str| {
        let f = Failed {
            attempts_before,
            failure,
            newer_input: false,
            error,
        };
        policy::after_failure(&cfg.rules, &f, now, 0, cfg.jitter.next())
    };
    let decision = match &attempt.outcome {
        Outcome::Delivered => policy::after_success(false, now, 0),
        Outcome::Transient(e) => failed(Failure::Transient, e),
        Outcome::Permanent(reason, e) => failed(Failure::Permanent(*reason), e),
    };
    let record = AttemptRecord {
        status: attempt.status.map(i64::from),
        ms: Some(attempt.elapsed.as_millis() as i64),
    };
    deliveries::apply(&mut tx, d.id, &decision, &record, now).await?;
    tx.commit().await?;
    let outcome = match &decision {
        Decision::Park { .. } => "parked",
        Decision::Retry { .. } => "retrying",
        _ => "delivered",
    };
    crate::metrics::delivery_attempted(outcome, attempt.elapsed);
    Ok(Some(decision))
}

/// One delivery, start to end: claim, send, settle. What tests step through; the
/// [`Deliverer`] runs the same steps concurrently.
pub async fn step(
    store: &Store,
    cfg: &DeliveryConfig,
    sender: &Sender,
) -> Result<Option<(Claimed, Attempt, Option<Decision>)>> {
    let Some(d) = claim(store, cfg).await? else {
        return Ok(None);
    };
    let attempt = sender.send(&d, store.clock().now_ms() / 1000).await;
    let decision = settle(store, cfg, &d, &attempt).await?;
    Ok(Some((d, attempt, decision)))
}

/// The delivery loop: up to `concurrency` deliveries in flight, woken by in-process changes
/// that queued events, otherwise sleeping until the next delivery is due.
pub struct Deliverer {
    store: Store,
    config: Arc<DeliveryConfig>,
    sender: Sender,
    wake: Arc<Notify>,
}

impl Deliverer {
    pub fn new(store: Store, config: DeliveryConfig) -> Deliverer {
        let sender = Sender::new(config.policy, config.timeout);
        let wake = store.webhook_notifier();
        Deliverer {
            store,
            config: Arc::new(config),
            sender,
            wake,
        }
    }

    /// Runs until `shutdown` resolves. Deliveries in flight are left to finish for up to their
    /// timeout; one cut off keeps its lease, and a later deliverer reclaims it once the lease
    /// runs out (the receiver may then see the event twice: it deduplicates by event id).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let cfg = self.config.clone();
        let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        let mut running: JoinSet<()> = JoinSet::new();
        tracing::info!(owner = %cfg.owner, concurrency = cfg.concurrency, "webhook deliverer started");
        tokio::pin!(shutdown);
        loop {
            while running.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = &mut shutdown => break,
            };
            let idle = match claim(&self.store, &cfg).await {
                Ok(Some(d)) => {
                    let store = self.store.clone();
                    let cfg = cfg.clone();
                    let sender = self.sender.clone();
                    let wake = self.wake.clone();
                    // Every line of this attempt names its task (the delivery) and webhook.
                    let span = tracing::info_span!(
                        "webhook_delivery",
                        task = d.id,
                        webhook = d.webhook_id,
                        event = %d.event_type,
                        attempt = d.attempts + 1,
                    );
                    running.spawn(tracing::Instrument::instrument(async move {
                        let attempt = sender.send(&d, store.clock().now_ms() / 1000).await;
                        match settle(&store, &cfg, &d, &attempt).await {
                            Ok(decision) => log_attempt(&d, &attempt, decision.as_ref()),
                            Err(e) => tracing::warn!(delivery = d.id, error = %e,
                                "cannot record a webhook attempt; the lease will run out and it is retried"),
                        }
                        drop(permit);
                        // The next delivery of this webhook may be due now.
                        wake.notify_one();
                    }, span));
                    continue;
                }
                Ok(None) => {
                    let now = self.store.clock().now_ms();
                    let next = match self.store.read().await {
                        Ok(mut tx) => deliveries::next_due_in(&mut tx, now).await.ok().flatten(),
                        Err(_) => None,
                    };
                    next.map(|ms| Duration::from_millis(ms.max(1) as u64).min(cfg.poll_interval))
                        .unwrap_or(cfg.poll_interval)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim webhook deliveries; retrying");
                    cfg.poll_interval.max(Duration::from_secs(1))
                }
            };
            drop(permit);
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = self.wake.notified() => {}
                _ = &mut shutdown => break,
            }
        }
        let grace = tokio::time::sleep(cfg.timeout);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                _ = &mut grace => break,
            }
        }
        tracing::info!("webhook deliverer stopped");
    }
}

/// Logs an attempt without its body or secret.
fn log_attempt(d: &Claimed, a: &Attempt, decision: Option<&Decision>) {
    let ms = a.elapsed.as_millis() as u64;
    match decision {
        Some(Decision::Done) => tracing::debug!(delivery = d.id, webhook = d.webhook_id,
            event = %d.event_id, status = a.status, ms, "webhook delivered"),
        Some(Decision::Retry {
            attempts, error, ..
        }) => tracing::warn!(delivery = d.id,
            webhook = d.webhook_id, attempts, error = %error, "webhook delivery failed; will retry"),
        Some(Decision::Park {
            reason, message, ..
        }) => tracing::error!(delivery = d.id,
            webhook = d.webhook_id, reason = reason.as_str(), error = %message,
            "webhook delivery parked"),
        Some(other) => tracing::info!(delivery = d.id, ?other, "webhook delivery settled"),
        None => tracing::warn!(delivery = d.id, "webhook delivery lease lost"),
    }
}
