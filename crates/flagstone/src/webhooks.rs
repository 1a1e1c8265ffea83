//! Webhook delivery options shared by `serve` and `worker`, and running the deliverer
//! (`flagstone_tasks::deliveries`) beside the publish worker: its own loop and its own
//! concurrency, so a slow receiver never holds up a publish.

use std::time::Duration;

use flagstone_store::Store;
use flagstone_tasks::deliveries::{Deliverer, DeliveryConfig};
use flagstone_tasks::Rules;
use flagstone_webhooks::AddressPolicy;

#[derive(clap::Args, Debug, Clone)]
pub struct WebhookOptions {
    /// Let webhooks reach loopback, private and link-local addresses (receivers on a private
    /// network; tests). Cloud metadata addresses stay refused.
    #[arg(long, env = "FLAGSTONE_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,
    /// Deliveries in flight at once in this process.
    #[arg(long, env = "FLAGSTONE_WEBHOOKS_CONCURRENCY", default_value_t = 8)]
    pub webhooks_concurrency: usize,
    /// One attempt's time limit (connect, send, answer), in milliseconds.
    #[arg(long, env = "FLAGSTONE_WEBHOOKS_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhooks_timeout_ms: u64,
    /// Failed attempts before a delivery is parked (redeliver it from the delivery log).
    #[arg(long, env = "FLAGSTONE_WEBHOOKS_MAX_ATTEMPTS", default_value_t = 8)]
    pub webhooks_max_attempts: i64,
    /// First retry delay in milliseconds; doubles per attempt (with jitter) up to 10 minutes.
    #[arg(long, env = "FLAGSTONE_WEBHOOKS_BACKOFF_MS", default_value_t = 2_000)]
    pub webhooks_backoff_ms: i64,
}

impl WebhookOptions {
    pub fn policy(&self) -> AddressPolicy {
        AddressPolicy {
            allow_private: self.webhooks_allow_private,
        }
    }

    pub fn config(&self) -> DeliveryConfig {
        let defaults = DeliveryConfig::default();
        let timeout = Duration::from_millis(self.webhooks_timeout_ms.max(100));
        DeliveryConfig {
            concurrency: self.webhooks_concurrency.max(1),
            timeout,
            rules: Rules {
                // The lease outlives an attempt, so a live deliverer never loses it.
                lease_ms: (timeout.as_millis() as i64 * 3).max(defaults.rules.lease_ms),
                max_attempts: self.webhooks_max_attempts.max(1),
                backoff_base_ms: self.webhooks_backoff_ms.max(1),
                ..defaults.rules
            },
            policy: self.policy(),
            ..defaults
        }
    }
}

/// Runs the deliverer until `stop` is set.
pub fn spawn(
    store: Store,
    opts: &WebhookOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let deliverer = Deliverer::new(store, opts.config());
    tokio::spawn(deliverer.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }))
}
