//! Flag usage counting: what each environment's features were served and what SDKs report
//! having evaluated, aggregated in memory and written to the store in batches.
//!
//! The request path pays one relaxed atomic add: a response listing an environment's flags
//! (`/flags/`, `/identities/`) bumps one counter of its snapshot ([`UsageCounters::listed`]),
//! spread over the listed features only when the flusher drains it; a one-flag response bumps
//! that feature's slot, found by its index in the compiled document. The [`UsageFlusher`]
//! swaps every counter to zero each interval and adds the counts to the store's hourly rows in
//! one transaction. If the store cannot be reached the counts wait for the next flush, up to
//! [`MAX_PENDING_ROWS`] rows; beyond it they are dropped and counted
//! (`flagstone_usage_evaluations_dropped_total`), so memory stays bounded.
//!
//! Counters belong to a snapshot (one published revision). The [`UsageBoard`] holds every
//! snapshot's counters from its install until a flush finds nobody else holding them, so
//! counts made by requests still using a replaced snapshot are not lost.
//!
//! An edge without a store sends the rows to its upstream in one HTTP POST per flush
//! (`POST /api/v1/edge/usage`), with the same pending cap while the upstream is unreachable;
//! rows its followers send it join its own pending rows ([`UsageFlusher::add_rows`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagstone_store::evaluations::{hour_of, UsageDelta};
use serde::{Deserialize, Serialize};

use crate::metrics::{USAGE_DROPPED_TOTAL, USAGE_FLUSHES_TOTAL, USAGE_PENDING_ROWS};
use crate::registry::Registry;
use crate::Source;

/// `(environment, feature, hour)` rows a flusher keeps while the store is unreachable.
pub const MAX_PENDING_ROWS: usize = 100_000;

static COUNTING: AtomicBool = AtomicBool::new(true);

/// Turns usage counting on or off for the whole process (on by default; `flagstone bench
/// usage` compares both in one run).
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

#[inline]
fn counting() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

/// One snapshot's counters, indexed by the feature's position in its document.
pub struct UsageCounters {
    environment_id: i64,
    feature_ids: Box<[i64]>,
    index: HashMap<i64, u32>,
    /// Whether a client-side key is served the feature (server-side keys are served all).
    client_visible: Box<[bool]>,
    /// Responses listing every flag a client key / a server key sees.
    listed_client: AtomicU64,
    listed_server: AtomicU64,
    /// Responses naming one feature (`?feature=`).
    one: Box<[AtomicU64]>,
    /// Evaluations SDKs reported.
    reported: Box<[AtomicU64]>,
}

impl UsageCounters {
    /// `features`: `(feature id, whether client-side keys are served it)`, in document order.
    pub fn new(environment_id: i64, features: &[(i64, bool)]) -> UsageCounters {
        let zeros = || features.iter().map(|_| AtomicU64::new(0)).collect();
        UsageCounters {
            environment_id,
            feature_ids: features.iter().map(|f| f.0).collect(),
            index: features
                .iter()
                .enumerate()
                .map(|(i, f)| (f.0, i as u32))
                .collect(),
            client_visible: features.iter().map(|f| f.1).collect(),
            listed_client: AtomicU64::new(0),
            listed_server: AtomicU64::new(0),
            one: zeros(),
            reported: zeros(),
        }
    }

    /// A response listed every flag the caller's key sees.
    #[inline]
    pub fn listed(&self, server_key: bool) {
        if !counting() {
            return;
        }
        let c = if server_key {
            &self.listed_server
        } else {
            &self.listed_client
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A response served this one feature.
    #[inline]
    pub fn served_one(&self, feature_id: i64) {
        if !counting() {
            return;
        }
        if let Some(&i) = self.index.get(&feature_id) {
            self.one[i as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An SDK reported `n` evaluations of this feature.
    pub fn reported(&self, feature_id: i64, n: u64) {
        if !counting() {
            return;
        }
        if let Some(&i) = self.index.get(&feature_id) {
            self.reported[i as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Takes the counts made so far: `(feature id, reported, served)` of every feature with
    /// any, leaving zeros.
    fn drain(&self, mut each: impl FnMut(i64, u64, u64)) {
        let client = self.listed_client.swap(0, Ordering::Relaxed);
        let server = self.listed_server.swap(0, Ordering::Relaxed);
        for (i, &feature) in self.feature_ids.iter().enumerate() {
            let listed = server + if self.client_visible[i] { client } else { 0 };
            let served = listed + self.one[i].swap(0, Ordering::Relaxed);
            let reported = self.reported[i].swap(0, Ordering::Relaxed);
            if served > 0 || reported > 0 {
                each(feature, reported, served);
            }
        }
    }
}

/// Every snapshot's counters that may still hold counts.
#[derive(Default)]
pub struct UsageBoard {
    counters: Mutex<Vec<Arc<UsageCounters>>>,
}

impl UsageBoard {
    pub fn register(&self, counters: Arc<UsageCounters>) {
        self.counters.lock().expect("usage board").push(counters);
    }

    /// Drains every counter; forgets those no snapshot holds any more (nobody can count into
    /// them after this drain).
    fn drain(&self, mut each: impl FnMut(i64, i64, u64, u64)) {
        let mut counters = self.counters.lock().expect("usage board");
        counters.retain(|c| {
            let retired = Arc::strong_count(c) == 1;
            c.drain(|feature, reported, served| each(c.environment_id, feature, reported, served));
            !retired
        });
    }
}

/// What a flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Nothing was counted since the last flush.
    Idle,
    /// `rows` rows were added to the store.
    Written { rows: usize },
    /// The store refused or could not be reached: `pending` rows wait for the next flush.
    Failed { pending: usize },
}

type Key = (i64, i64, i64);

/// One `(environment, feature, hour)` row as an edge sends it to its upstream.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct UsageRow {
    pub environment_id: i64,
    pub feature_id: i64,
    /// Start of the hour (Unix ms).
    pub hour: i64,
    pub reported: u64,
    pub served: u64,
    /// When it was counted (Unix ms).
    pub at: i64,
}

/// Drains the counters into the store every interval (and when asked).
pub struct UsageFlusher {
    source: Source,
    registry: Arc<Registry>,
    /// Counts not yet written: `(environment, feature, hour)` -> `(reported, served, at)`.
    pending: tokio::sync::Mutex<HashMap<Key, (u64, u64, i64)>>,
}

impl UsageFlusher {
    pub fn new(source: Source, registry: Arc<Registry>) -> Arc<UsageFlusher> {
        Arc::new(UsageFlusher {
            source,
            registry,
            pending: Default::default(),
        })
    }

    /// Flushes every `interval` until the process ends. Call inside a Tokio runtime.
    pub fn spawn(self: &Arc<Self>, interval: Duration) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(flusher) = me.upgrade() else { return };
                flusher.flush().await;
            }
        });
    }

    /// Adds rows an edge following this one counted; they are written with the next flush.
    /// Returns how many were dropped because the pending rows are at their cap.
    pub async fn add_rows(&self, rows: &[UsageRow]) -> u64 {
        let mut pending = self.pending.lock().await;
        let mut dropped = 0u64;
        for r in rows {
            let key = (r.environment_id, r.feature_id, r.hour);
            if let Some(row) = pending.get_mut(&key) {
                row.0 += r.reported;
                row.1 += r.served;
                row.2 = row.2.max(r.at);
            } else if pending.len() < MAX_PENDING_ROWS {
                pending.insert(key, (r.reported, r.served, r.at));
            } else {
                dropped += r.reported + r.served;
            }
        }
        if dropped > 0 {
            metrics::counter!(USAGE_DROPPED_TOTAL).increment(dropped);
        }
        metrics::gauge!(USAGE_PENDING_ROWS).set(pending.len() as f64);
        dropped
    }

    /// Drains the counters and writes what they held, with anything left from a failed flush.
    pub async fn flush(&self) -> FlushOutcome {
        let mut pending = self.pending.lock().await;
        let now = match &self.source {
            Source::Store(store) => store.clock().now_ms(),
            Source::Upstream(_) => flagstone_store::now_ms(),
        };
        let hour = hour_of(now);
        let mut dropped = 0u64;
        self.registry.usage.drain(|env, feature, reported, served| {
            let key = (env, feature, hour);
            if let Some(row) = pending.get_mut(&key) {
                row.0 += reported;
                row.1 += served;
                row.2 = now;
            } else if pending.len() < MAX_PENDING_ROWS {
                pending.insert(key, (reported, served, now));
            } else {
                dropped += reported + served;
            }
        });
        if dropped > 0 {
            metrics::counter!(USAGE_DROPPED_TOTAL).increment(dropped);
            tracing::warn!(
                dropped,
                "flag usage dropped: the store has been unreachable for too long"
            );
        }
        if pending.is_empty() {
            return FlushOutcome::Idle;
        }
        let batch: Vec<UsageDelta> = pending
            .iter()
            .map(
                |(&(environment_id, feature_id, hour), &(reported, served, at))| UsageDelta {
                    environment_id,
                    feature_id,
                    hour,
                    reported: reported as i64,
                    served: served as i64,
                    at,
                },
            )
            .collect();
        let written: Result<(), String> = match &self.source {
            Source::Store(store) => async {
                let mut tx = store.write().await?;
                flagstone_store::evaluations::record(&mut tx, &batch).await?;
                tx.commit().await
            }
            .await
            .map_err(|e| e.to_string()),
            Source::Upstream(client) => {
                let rows: Vec<UsageRow> = batch
                    .iter()
                    .map(|d| UsageRow {
                        environment_id: d.environment_id,
                        feature_id: d.feature_id,
                        hour: d.hour,
                        reported: d.reported.max(0) as u64,
                        served: d.served.max(0) as u64,
                        at: d.at,
                    })
                    .collect();
                client.send_usage(&rows).await.map_err(|e| e.to_string())
            }
        };
        let outcome = match written {
            Ok(()) => {
                pending.clear();
                metrics::counter!(USAGE_FLUSHES_TOTAL, "outcome" => "ok").increment(1);
                FlushOutcome::Written { rows: batch.len() }
            }
            Err(e) => {
                metrics::counter!(USAGE_FLUSHES_TOTAL, "outcome" => "failed").increment(1);
                tracing::warn!(error = %e, pending = pending.len(), "writing flag usage failed; kept for the next flush");
                FlushOutcome::Failed {
                    pending: pending.len(),
                }
            }
        };
        metrics::gauge!(USAGE_PENDING_ROWS).set(pending.len() as f64);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_counts_reach_only_the_features_the_key_sees() {
        let c = UsageCounters::new(7, &[(1, true), (2, false)]);
        c.listed(false);
        c.listed(false);
        c.listed(true);
        c.served_one(2);
        c.served_one(99);
        c.reported(1, 5);
        let mut got = Vec::new();
        c.drain(|f, r, s| got.push((f, r, s)));
        assert_eq!(got, [(1, 5, 3), (2, 0, 2)]);
        got.clear();
        c.drain(|f, r, s| got.push((f, r, s)));
        assert!(got.is_empty(), "drained counters start again at zero");
    }

    #[test]
    fn the_board_forgets_counters_once_drained_and_unheld() {
        let board = UsageBoard::default();
        let held = Arc::new(UsageCounters::new(1, &[(1, true)]));
        board.register(held.clone());
        board.register(Arc::new(UsageCounters::new(2, &[(1, true)])));
        held.listed(true);
        let mut envs = Vec::new();
        board.drain(|e, _, _, _| envs.push(e));
        assert_eq!(envs, [1]);
        assert_eq!(board.counters.lock().unwrap().len(), 1);
    }
}
