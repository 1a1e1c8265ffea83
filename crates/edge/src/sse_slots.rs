//! Caps on open SSE subscriptions, per environment and per edge. SSE connections are exempt from
//! the transport's idle and body timeouts (they are meant to stay open), so they get their own
//! bound: a subscriber past either cap is refused with 503 naming the cap, before any byte of a
//! stream is sent. A slot is held by the stream and released when the stream is dropped (the
//! client went away, or the server shut down).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many subscriptions may be open at once.
#[derive(Clone, Copy, Debug)]
pub struct SseCaps {
    pub per_environment: usize,
    pub per_server: usize,
}

impl Default for SseCaps {
    fn default() -> Self {
        SseCaps {
            per_environment: 1_000,
            per_server: 2_000,
        }
    }
}

/// Why a subscription was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseRefusal {
    Environment { cap: usize },
    Server { cap: usize },
}

impl SseRefusal {
    pub fn reason(&self) -> String {
        match self {
            SseRefusal::Environment { cap } => format!(
                "This environment already has {cap} open real-time subscriptions on this \
                 server (--edge-sse-max-per-environment); try again later."
            ),
            SseRefusal::Server { cap } => format!(
                "This server already has {cap} open real-time subscriptions \
                 (--edge-sse-max-connections); try again later."
            ),
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_environment: HashMap<i64, usize>,
}

/// The open subscriptions of one edge.
pub struct SseSlots {
    caps: SseCaps,
    counts: Mutex<Counts>,
}

impl SseSlots {
    pub fn new(caps: SseCaps) -> SseSlots {
        SseSlots {
            caps,
            counts: Mutex::default(),
        }
    }

    /// Takes a slot for `environment_id`, or says which cap is reached.
    pub fn acquire(self: &Arc<Self>, environment_id: i64) -> Result<SseSlot, SseRefusal> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.caps.per_server {
            return Err(SseRefusal::Server {
                cap: self.caps.per_server,
            });
        }
        let env = counts.by_environment.entry(environment_id).or_insert(0);
        if *env >= self.caps.per_environment {
            return Err(SseRefusal::Environment {
                cap: self.caps.per_environment,
            });
        }
        *env += 1;
        counts.total += 1;
        metrics::gauge!("flagstone_edge_sse_subscriptions").set(counts.total as f64);
        Ok(SseSlot {
            slots: self.clone(),
            environment_id,
        })
    }

    /// Open subscriptions: in all, and for `environment_id`.
    pub fn open(&self, environment_id: i64) -> (usize, usize) {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let env = counts
            .by_environment
            .get(&environment_id)
            .copied()
            .unwrap_or(0);
        (counts.total, env)
    }
}

/// One open subscription; dropping it frees the slot.
pub struct SseSlot {
    slots: Arc<SseSlots>,
    environment_id: i64,
}

impl Drop for SseSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_environment.get_mut(&self.environment_id) {
            *n -= 1;
            if *n == 0 {
                counts.by_environment.remove(&self.environment_id);
            }
        }
        metrics::gauge!("flagstone_edge_sse_subscriptions").set(counts.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_environment_and_per_server_and_slots_come_back() {
        let slots = Arc::new(SseSlots::new(SseCaps {
            per_environment: 1,
            per_server: 2,
        }));
        let a = slots.acquire(1).unwrap();
        assert_eq!(
            slots.acquire(1).err(),
            Some(SseRefusal::Environment { cap: 1 })
        );
        let _b = slots.acquire(2).unwrap();
        assert_eq!(slots.acquire(3).err(), Some(SseRefusal::Server { cap: 2 }));
        drop(a);
        assert_eq!(slots.open(1), (1, 0));
        let _c = slots.acquire(1).unwrap();
    }
}
