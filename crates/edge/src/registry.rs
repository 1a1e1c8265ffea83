//! The environments an edge serves, by client key and by environment id.
//!
//! Each is held as its published revision ([`Published`]: the compressed document and what a
//! lookup needs), and, while it is in use and the memory budget allows, as a compiled
//! [`EnvSnapshot`] ([`crate::resident`]). [`Registry::get`] compiles a snapshot on first
//! request; a new revision of a resident environment is compiled when it is installed (so it
//! stays hot), that of a cold one only when it is next asked for. A request in flight keeps
//! the snapshot it started with.
//!
//! A snapshot is compiled on the request's task when its document is small, and on a
//! blocking thread when it is large ([`BLOCKING_BUILD_FROM_BYTES`]), so a 25 ms compile does not
//! hold up every other request scheduled on that async worker; concurrent first requests for
//! one environment share one compile either way.
//!
//! While an edge's initial load runs ([`Registry::begin_initial_load`]: its cache directory
//! read in the background, after the edge already listens), a request for a client key not yet
//! held waits for it ([`Registry::get_waiting`]) rather than being told the key is unknown.
//!
//! Each install announces the environment's new `updated_at` on a per-environment broadcast
//! channel that feeds SSE streams (created only when someone subscribes), and every install or
//! removal on one channel for edges following this one ([`Registry::changes`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::published::Published;
use crate::resident::{Resident, ResidentStats};
use crate::snapshot::{EnvSnapshot, SnapshotError};
use crate::usage::UsageBoard;

/// Installs and removals queued per follower before it lags (and resynchronises).
const CHANGES_CAPACITY: usize = 4096;

/// From this compressed size a document is compiled on a blocking thread rather than on the
/// request's async task. Measured (debug build, documents of `fixture::Shape`; a release build
/// is about 5.5 times faster): compiling takes about 1 ms per compressed kB (an environment of
/// 20 features, 1.3 kB: 1.2 ms; 12.8 kB: 13 ms; the July 2023 incident's, 229 kB: 139 ms, 25
/// ms in release), while handing a task to the blocking pool and back costs 20–60 µs. From 8 kB
/// (≈ 1.5 ms in release) a compile holds up every other request queued on that worker long
/// enough to matter, and the hand-off costs under 5% of it; below it, the hand-off would cost
/// a noticeable share of a compile that is over almost at once, so those stay inline.
pub const BLOCKING_BUILD_FROM_BYTES: usize = 8 << 10;

/// How far an edge's initial load has come ([`Registry::begin_initial_load`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InitialLoad {
    /// The initial load is under way (the cache directory, then the source when nothing was
    /// cached): a client key not held yet may still arrive.
    pub loading: bool,
    /// The cache directory is being read.
    pub reading_cache: bool,
    /// Documents installed from the cache directory so far.
    pub from_cache: usize,
}

/// Marks the initial load finished when dropped (also if the task loading it fails), so no
/// request waits for a load that will not finish.
pub struct InitialLoadGuard {
    registry: Arc<Registry>,
}

impl Drop for InitialLoadGuard {
    fn drop(&mut self) {
        self.registry.initial.send_modify(|l| {
            l.loading = false;
            l.reading_cache = false;
        });
        self.registry.lock_removed_while_loading().clear();
    }
}

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
    /// The initial load's progress; every document of the cache directory installed is a
    /// change, which wakes the requests waiting for a key.
    initial: watch::Sender<InitialLoad>,
    /// Environments removed while the initial load runs: the cache directory may still hold
    /// a copy read before the removal, which must not be installed after it.
    removed_while_loading: Mutex<HashSet<i64>>,
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
            initial: watch::Sender::new(InitialLoad::default()),
            removed_while_loading: Mutex::default(),
        }
    }

    /// Marks the initial load under way until the guard is dropped. Call it before the edge
    /// listens, so that no request sees an empty registry as a finished one.
    pub fn begin_initial_load(self: &Arc<Self>) -> InitialLoadGuard {
        self.initial.send_modify(|l| l.loading = true);
        InitialLoadGuard {
            registry: self.clone(),
        }
    }

    /// How far the initial load has come.
    pub fn initial_load(&self) -> InitialLoad {
        *self.initial.borrow()
    }

    /// Resolves once the initial load is finished (at once when none runs).
    pub async fn initial_load_finished(&self) {
        let mut rx = self.initial.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail while it is borrowed.
        let _ = rx.wait_for(|l| !l.loading).await;
    }

    /// Says whether the cache directory is being read.
    pub(crate) fn reading_cache(&self, reading: bool) {
        self.initial.send_modify(|l| l.reading_cache = reading);
    }

    /// Installs a document read from the cache directory, unless its environment was removed
    /// since the initial load began (or the same or a newer revision is held). Each install
    /// is counted and wakes the requests waiting for a key.
    pub(crate) fn install_cached(&self, published: Published) -> Result<bool, SnapshotError> {
        // Held across the install: a removal either comes after it (and removes it) or is
        // seen by it.
        let removed = self.lock_removed_while_loading();
        if removed.contains(&published.environment_id) {
            return Ok(false);
        }
        let installed = self.install_entry(published, None)?;
        drop(removed);
        if installed {
            self.initial.send_modify(|l| l.from_cache += 1);
        }
        Ok(installed)
    }

    /// The published revision held for a client key; while the initial load runs and the key
    /// is not held yet, waits for it up to `max_wait` (looking again after each install).
    pub async fn published_waiting(
        &self,
        client_key: &str,
        max_wait: Duration,
    ) -> Option<Arc<Published>> {
        if let Some(p) = self.published(client_key) {
            return Some(p);
        }
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut rx = self.initial.subscribe();
        loop {
            // Read before the lookup: a load reported finished had installed everything before
            // saying so, and an install after this read is announced as a change.
            let loading = rx.borrow_and_update().loading;
            if let Some(p) = self.published(client_key) {
                return Some(p);
            }
            if !loading {
                return None;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.published(client_key),
            }
        }
    }

    /// The snapshot to answer an SDK request with, waiting up to `max_wait` for a key not held
    /// yet while the initial load runs ([`Registry::published_waiting`]).
    pub async fn get_waiting(
        self: &Arc<Self>,
        client_key: &str,
        max_wait: Duration,
    ) -> Option<Arc<EnvSnapshot>> {
        let entry = self.published_waiting(client_key, max_wait).await?;
        self.hot(entry).await
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
    pub async fn get_by_id(self: &Arc<Self>, environment_id: i64) -> Option<Arc<EnvSnapshot>> {
        let entry = self.published_by_id(environment_id)?;
        self.hot(entry).await
    }

    /// The snapshot to answer an SDK request with (compiled if it is not resident).
    pub async fn get(self: &Arc<Self>, client_key: &str) -> Option<Arc<EnvSnapshot>> {
        let entry = self.published(client_key)?;
        self.hot(entry).await
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
        // rather than compiling it a second time. Nobody else can hold the lock of an entry
        // not yet visible, so this never fails.
        let building = entry.building.try_lock();
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
        if self.initial.borrow().loading {
            self.lock_removed_while_loading().insert(environment_id);
        }
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

    /// The resident snapshot of `entry`, compiled now if it is not: once however many
    /// requests ask at the same time, on a blocking thread if its document is large.
    async fn hot(self: &Arc<Self>, entry: Arc<Published>) -> Option<Arc<EnvSnapshot>> {
        if let Some(snap) = entry.resident() {
            entry.mark_referenced();
            self.resident.hit();
            return Some(snap);
        }
        let building = entry.building.clone().lock_owned().await;
        // Another request may have compiled it while this one waited.
        if let Some(snap) = entry.resident() {
            self.resident.hit();
            return Some(snap);
        }
        if entry.document_gz.len() < BLOCKING_BUILD_FROM_BYTES {
            return self.compile(&entry);
        }
        let registry = self.clone();
        // The lock moves with the build: if this request goes away, the build still finishes
        // and is admitted before the next request takes the lock (which then finds it).
        let build = tokio::task::spawn_blocking(move || {
            let _building = building;
            registry.compile(&entry)
        });
        match build.await {
            Ok(snap) => snap,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only when the runtime shuts down.
            Err(_) => None,
        }
    }

    /// Compiles `entry` (its `building` lock held by the caller) and admits the snapshot.
    fn compile(&self, entry: &Arc<Published>) -> Option<Arc<EnvSnapshot>> {
        self.resident.miss();
        let started = std::time::Instant::now();
        match entry.build_snapshot() {
            Ok(snap) => {
                metrics::histogram!("flagstone_edge_compile_seconds")
                    .record(started.elapsed().as_secs_f64());
                let snap = Arc::new(snap);
                self.usage.register(snap.usage.clone());
                self.resident.admit(entry, snap.clone());
                // Replaced or removed while it compiled: answer this request, keep nothing.
                if entry.retired.load(std::sync::atomic::Ordering::Acquire) {
                    self.resident.release(entry);
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
                        .is_some_and(|c| Arc::ptr_eq(c, entry));
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

    fn lock_removed_while_loading(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.removed_while_loading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}
