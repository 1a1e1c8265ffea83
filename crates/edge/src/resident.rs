//! Which environments keep their compiled snapshot in memory: as many as fit a byte budget,
//! the least recently used evicted first, so that one edge can front far more environments
//! than it could compile at once. An evicted environment keeps its compressed document
//! ([`crate::published`]) and is compiled again on its next request.
//!
//! Recency is tracked with the CLOCK approximation of LRU: a request only sets its entry's
//! `referenced` bit (a read, and a write only when the bit was clear), never takes a lock or
//! moves a list node; eviction walks a ring of resident entries, giving each referenced one a
//! second chance (clearing its bit) and evicting the first that was not used since the hand
//! last passed. The ring is touched only when a snapshot is admitted or evicted.
//!
//! The bytes counted are each snapshot's estimate ([`EnvSnapshot::heap_bytes`]). A snapshot
//! larger than the whole budget is still built and answers the request that needed it; it is
//! evicted as soon as another is admitted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::published::Published;
use crate::snapshot::EnvSnapshot;

/// The default budget of compiled snapshots: about 6,000 environments of 20 features, or
/// twenty of the July 2023 incident's 1.7 MB document.
pub const DEFAULT_BUDGET_BYTES: usize = 128 << 20;

/// Counters of the resident set, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResidentStats {
    pub budget_bytes: usize,
    /// Estimated bytes of the compiled snapshots held.
    pub resident_bytes: usize,
    pub resident_environments: usize,
    /// Lookups answered by a resident snapshot.
    pub hits: u64,
    /// Lookups that compiled the snapshot first.
    pub misses: u64,
    /// Snapshots dropped to stay within the budget.
    pub evictions: u64,
    /// Snapshots that could not be compiled on demand.
    pub load_failures: u64,
}

pub struct Resident {
    budget: AtomicUsize,
    bytes: AtomicUsize,
    count: AtomicUsize,
    /// Entries admitted, in clock order; may hold entries already released (skipped and
    /// dropped when the hand reaches them, or compacted when they outnumber the live ones).
    ring: Mutex<VecDeque<Arc<Published>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    load_failures: AtomicU64,
}

impl Resident {
    pub fn new(budget_bytes: usize) -> Resident {
        Resident {
            budget: AtomicUsize::new(budget_bytes),
            bytes: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            ring: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            load_failures: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> ResidentStats {
        ResidentStats {
            budget_bytes: self.budget.load(Ordering::Relaxed),
            resident_bytes: self.bytes.load(Ordering::Relaxed),
            resident_environments: self.count.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            load_failures: self.load_failures.load(Ordering::Relaxed),
        }
    }

    /// Changes the budget; evicts at once what no longer fits.
    pub fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
        self.evict_over_budget();
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn load_failed(&self) {
        self.load_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes `snap` the resident snapshot of `entry` (replacing one held), then evicts what
    /// no longer fits.
    pub(crate) fn admit(&self, entry: &Arc<Published>, snap: Arc<EnvSnapshot>) {
        // Counted before it is visible, so a concurrent release never takes the count below
        // zero; whatever it replaces is uncounted by its own size.
        self.bytes.fetch_add(snap.heap_bytes, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        match entry.hot.swap(Some(snap)) {
            Some(old) => {
                self.bytes.fetch_sub(old.heap_bytes, Ordering::Relaxed);
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
            None => {
                let mut ring = self.lock_ring();
                ring.push_back(entry.clone());
                let live = self.count.load(Ordering::Relaxed);
                if ring.len() > 2 * live + 64 {
                    ring.retain(|e| e.is_resident());
                }
            }
        }
        entry.mark_referenced();
        self.evict_over_budget();
    }

    /// Drops `entry`'s snapshot, if resident. Returns whether it was.
    pub(crate) fn release(&self, entry: &Published) -> bool {
        match entry.hot.swap(None) {
            Some(old) => {
                self.bytes.fetch_sub(old.heap_bytes, Ordering::Relaxed);
                self.count.fetch_sub(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn evict_over_budget(&self) {
        let budget = self.budget.load(Ordering::Relaxed);
        if self.bytes.load(Ordering::Relaxed) <= budget {
            return;
        }
        let mut ring = self.lock_ring();
        // Two turns of the clock at most: the first clears every second chance.
        let mut steps = 2 * ring.len() + 1;
        while self.bytes.load(Ordering::Relaxed) > budget && steps > 0 {
            steps -= 1;
            let Some(entry) = ring.pop_front() else { break };
            if !entry.is_resident() {
                continue;
            }
            if entry.referenced.swap(false, Ordering::Relaxed) {
                ring.push_back(entry);
                continue;
            }
            if self.release(&entry) {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn lock_ring(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Published>>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Resident {
    fn default() -> Self {
        Resident::new(DEFAULT_BUDGET_BYTES)
    }
}
