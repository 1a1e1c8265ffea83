//! The environments an edge serves, by client key and by environment id.
//!
//! Each is held as its published revision ([`Published`]: the compressed document and what a
//! lookup needs), and, while it is in use and the memory budget allows, as a compiled
//! [`EnvSnapshot`] ([`crate::resident`]). [`Registry::get`] compiles a snapshot on first
//! request; a new revision of a resident environment is compiled when it is installed (so it
//! stays hot), that of a cold one only when it is next asked for. A request in flight keeps
//! the snapshot it started with.
//!
//! Each install announces the environment's new `updated_at` on a per-environment broadcast
//! channel that feeds SSE streams (created only when someone subscribes), and every install or
//! removal on one channel for edges following this one ([`Registry::changes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::broadcast;

use crate::published::Published;
use crate::resident::{Resident, ResidentStats};
use crate::snapshot::{EnvSnapshot, SnapshotError};
use crate::usage::UsageBoard;

/// Installs and removals queued per follower before it lags (and resynchronises).
const CHANGES_CAPACITY: usize = 4096;

/// What changed in the registry, as announced to edges following this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryChange {
    Installed {
        environment_id: i64,
        api_key: String,
        revision: i64,
    },
    Removed {
        environment_id: i64,
        api_key: String,
    },
}

#[derive(Default)]
struct Index {
    by_key: HashMap<String, Arc<Published>>,
    by_id: HashMap<i64, Arc<Published>>,
    /// Sum of every entry's [`Published::cold_bytes`].
    cold_bytes: usize,
}

/// What the registry holds, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub environments: usize,
    /// Compressed documents and lookup fields of every environment.
    pub documents_bytes: usize,
    pub resident: ResidentStats,
}

pub struct Registry {
    index: RwLock<Index>,
    channels: Mutex<HashMap<String, broadcast::Sender<f64>>>,
    resident: Resident,
    /// The usage counters of every snapshot compiled (drained by the usage flusher).
    pub usage: UsageBoard,
    changes: broadcast::Sender<RegistryChange>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_memory_budget(crate::resident::DEFAULT_BUDGET_BYTES)
    }
}

impl Registry {
    /// A registry keeping compiled snapshots within `bytes` (estimated; compressed documents
    /// are held for every environment on top of it).
    pub fn with_memory_budget(bytes: usize) -> Registry {
        Registry {
            index: RwLock::default(),
            channels: Mutex::default(),
            resident: Resident::new(bytes),
            usage: UsageBoard::default(),
            changes: broadcast::channel(CHANGES_CAPACITY).0,
        }
    }

    /// A receiver of every install and removal from now on (subscribe before reading
    /// [`Registry::all`], so nothing falls between the two).
    pub fn changes(&self) -> broadcast::Receiver<RegistryChange> {
        self.changes.subscribe()
    }

    /// Every environment held (compiled or not).
    pub fn all(&self) -> Vec<Arc<Published>> {
        self.read().by_id.values().cloned().collect()
    }

    /// The published revision held for a client key, without compiling it.
    pub fn published(&self, client_key: &str) -> Option<Arc<Published>> {
        self.read().by_key.get(client_key).cloned()
    }

    /// The published revision held for an environment id, without compiling it.
    pub fn published_by_id(&self, environment_id: i64) -> Option<Arc<Published>> {
        self.read().by_id.get(&environment_id).cloned()
    }

    /// The snapshot of an environment, by id (compiled if it is not resident).
    pub fn get_by_id(&self, environment_id: i64) -> Option<Arc<EnvSnapshot>> {
        let entry = self.published_by_id(environment_id)?;
        self.hot(entry)
    }

    /// The snapshot to answer an SDK request with (compiled if it is not resident).
    pub fn get(&self, client_key: &str) -> Option<Arc<EnvSnapshot>> {
        let entry = self.published(client_key)?;
        self.hot(entry)
    }

    /// The revision held for an environment, if any.
    pub fn revision_of(&self, environment_id: i64) -> Option<i64> {
        self.read().by_id.get(&environment_id).map(|p| p.revision)
    }

    /// `(environment_id, revision)` of everything held.
    pub fn revisions(&self) -> Vec<(i64, i64)> {
        self.read()
            .by_id
            .values()
            .map(|p| (p.environment_id, p.revision))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What is held and how the memory budget is used.
    pub fn memory(&self) -> MemoryStats {
        let (environments, documents_bytes) = {
            let index = self.read();
            (index.by_id.len(), index.cold_bytes)
        };
        MemoryStats {
            environments,
            documents_bytes,
            resident: self.resident.stats(),
        }
    }

    /// Changes the budget of compiled snapshots (evicting at once what no longer fits).
    pub fn set_memory_budget(&self, bytes: usize) {
        self.resident.set_budget(bytes);
    }

    /// Installs a compiled snapshot unless the same or a newer revision is held. Returns
    /// whether it did. The snapshot stays resident if the revision it replaces was.
    pub fn install(&self, snap: EnvSnapshot) -> bool {
        let (published, snap) = Published::from_snapshot(snap);
        matches!(self.install_entry(published, Some(snap)), Ok(true))
    }

    /// Installs a published revision unless the same or a newer one is held. Returns whether
    /// it did. If the revision it replaces is resident, the new one is compiled now (and an
    /// error leaves the old one served); otherwise on its first request.
    pub fn install_published(&self, published: Published) -> Result<bool, SnapshotError> {
        self.install_entry(published, None)
    }

    fn install_entry(
        &self,
        published: Published,
        built: Option<EnvSnapshot>,
    ) -> Result<bool, SnapshotError> {
        let env = published.environment_id;
        let old = self.published_by_id(env);
        if old
            .as_ref()
            .is_some_and(|o| o.revision >= published.revision)
        {
            return Ok(false);
        }
        // A resident environment stays resident: compile before it is visible, outside the lock.
        let hot = match built {
            Some(snap) if old.as_ref().is_some_and(|o| o.is_resident()) => Some(snap),
            Some(_) => None,
            None if old.as_ref().is_some_and(|o| o.is_resident()) => {
                Some(published.build_snapshot()?)
            }
            None => None,
        };
        let entry = Arc::new(published);
        // Held until the snapshot is admitted: a request arriving meanwhile waits for it
        // rather than compiling it a second time.
        let building = entry.building.lock().unwrap_or_else(|p| p.into_inner());
        let replaced = {
            let mut index = self.write();
            if index
                .by_id
                .get(&env)
                .is_some_and(|o| o.revision >= entry.revision)
            {
                return Ok(false);
            }
            let replaced = index.by_id.insert(env, entry.clone());
            if let Some(r) = &replaced {
                index.cold_bytes -= r.cold_bytes();
                if r.api_key != entry.api_key {
                    index.by_key.remove(&r.api_key);
                }
            }
            index.cold_bytes += entry.cold_bytes();
            index.by_key.insert(entry.api_key.clone(), entry.clone());
            replaced
        };
        if let Some(snap) = hot {
            let snap = Arc::new(snap);
            self.usage.register(snap.usage.clone());
            self.resident.admit(&entry, snap);
        }
        drop(building);
        if let Some(r) = replaced {
            self.retire(&r);
        }
        self.announce(&entry.api_key, entry.updated_at);
        // Nobody following is not an error.
        let _ = self.changes.send(RegistryChange::Installed {
            environment_id: env,
            api_key: entry.api_key.clone(),
            revision: entry.revision,
        });
        Ok(true)
    }

    /// Forgets an environment that no longer exists. Its real-time subscribers' channel is
    /// dropped, which ends their streams with an explicit error event.
    pub fn remove(&self, environment_id: i64) {
        let removed = {
            let mut index = self.write();
            let removed = index.by_id.remove(&environment_id);
            if let Some(r) = &removed {
                index.cold_bytes -= r.cold_bytes();
                index.by_key.remove(&r.api_key);
            }
            removed
        };
        if let Some(r) = removed {
            self.retire(&r);
            self.channels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&r.api_key);
            let _ = self.changes.send(RegistryChange::Removed {
                environment_id,
                api_key: r.api_key.clone(),
            });
        }
    }

    /// A receiver of `updated_at` values published for this client key.
    pub fn subscribe(&self, client_key: &str) -> broadcast::Receiver<f64> {
        let mut ch = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        ch.entry(client_key.to_string())
            .or_insert_with(|| broadcast::channel(16).0)
            .subscribe()
    }

    /// Open real-time subscriptions (SSE streams) over every environment.
    pub fn subscribers(&self) -> usize {
        let ch = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        ch.values().map(|tx| tx.receiver_count()).sum()
    }

    fn announce(&self, client_key: &str, updated_at: f64) {
        let mut ch = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = ch.get(client_key) {
            if tx.send(updated_at).is_err() {
                // Nobody listens any more: drop the channel so the map stays bounded.
                ch.remove(client_key);
            }
        }
    }

    /// The resident snapshot of `entry`, compiled now if it is not.
    fn hot(&self, entry: Arc<Published>) -> Option<Arc<EnvSnapshot>> {
        if let Some(snap) = entry.resident() {
            entry.mark_referenced();
            self.resident.hit();
            return Some(snap);
        }
        let _building = entry.building.lock().unwrap_or_else(|p| p.into_inner());
        // Another request may have compiled it while this one waited.
        if let Some(snap) = entry.resident() {
            self.resident.hit();
            return Some(snap);
        }
        self.resident.miss();
        let started = std::time::Instant::now();
        match entry.build_snapshot() {
            Ok(snap) => {
                metrics::histogram!("flagstone_edge_compile_seconds")
                    .record(started.elapsed().as_secs_f64());
                let snap = Arc::new(snap);
                self.usage.register(snap.usage.clone());
                self.resident.admit(&entry, snap.clone());
                // Replaced or removed while it compiled: answer this request, keep nothing.
                if entry.retired.load(std::sync::atomic::Ordering::Acquire) {
                    self.resident.release(&entry);
                }
                Some(snap)
            }
            Err(e) => {
                // Accepted when installed (its head parsed) but not compilable: forget it, so
                // the follower's next check loads the environment again.
                tracing::error!(environment = entry.environment_id, revision = entry.revision, error = %e, "cannot compile a held document; dropping it until it is loaded again");
                self.resident.load_failed();
                let current = {
                    let mut index = self.write();
                    let current = index
                        .by_id
                        .get(&entry.environment_id)
                        .is_some_and(|c| Arc::ptr_eq(c, &entry));
                    if current {
                        index.by_id.remove(&entry.environment_id);
                        index.by_key.remove(&entry.api_key);
                        index.cold_bytes -= entry.cold_bytes();
                    }
                    current
                };
                if current {
                    entry
                        .retired
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                None
            }
        }
    }

    /// An entry no longer served: its snapshot is dropped (a request holding it finishes).
    fn retire(&self, entry: &Published) {
        entry
            .retired
            .store(true, std::sync::atomic::Ordering::Release);
        self.resident.release(entry);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }
}
