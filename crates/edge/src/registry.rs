//! The snapshots an edge serves, by client key and by environment id, swapped atomically
//! (`arc-swap`): a request in flight keeps the snapshot it started with. Each swap announces the
//! environment's new `updated_at` on a per-environment broadcast channel that feeds SSE streams,
//! and every install or removal on one channel for edges following this one
//! ([`Registry::changes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::broadcast;

use crate::snapshot::EnvSnapshot;
use crate::usage::UsageBoard;

type Map = HashMap<String, Arc<EnvSnapshot>>;

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

pub struct Registry {
    by_key: ArcSwap<Map>,
    /// Client key of each environment id, to replace or remove by id.
    keys: Mutex<HashMap<i64, String>>,
    channels: Mutex<HashMap<String, broadcast::Sender<f64>>>,
    /// The usage counters of every snapshot installed (drained by the usage flusher).
    pub usage: UsageBoard,
    changes: broadcast::Sender<RegistryChange>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            by_key: ArcSwap::default(),
            keys: Mutex::default(),
            channels: Mutex::default(),
            usage: UsageBoard::default(),
            changes: broadcast::channel(CHANGES_CAPACITY).0,
        }
    }
}

impl Registry {
    /// A receiver of every install and removal from now on (subscribe before reading
    /// [`Registry::all`], so nothing falls between the two).
    pub fn changes(&self) -> broadcast::Receiver<RegistryChange> {
        self.changes.subscribe()
    }

    /// Every snapshot held.
    pub fn all(&self) -> Vec<Arc<EnvSnapshot>> {
        self.by_key.load().values().cloned().collect()
    }

    /// The snapshot of an environment, by id.
    pub fn get_by_id(&self, environment_id: i64) -> Option<Arc<EnvSnapshot>> {
        let key = self.keys.lock().ok()?.get(&environment_id).cloned()?;
        self.get(&key)
    }

    pub fn get(&self, client_key: &str) -> Option<Arc<EnvSnapshot>> {
        self.by_key.load().get(client_key).cloned()
    }

    /// The revision held for an environment, if any.
    pub fn revision_of(&self, environment_id: i64) -> Option<i64> {
        let key = self.keys.lock().ok()?.get(&environment_id).cloned()?;
        self.get(&key).map(|s| s.revision)
    }

    /// `(environment_id, revision)` of everything held.
    pub fn revisions(&self) -> Vec<(i64, i64)> {
        self.by_key
            .load()
            .values()
            .map(|s| (s.environment_id, s.revision))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_key.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Installs `snap` unless the same or a newer revision is held. Returns whether it did.
    pub fn install(&self, snap: EnvSnapshot) -> bool {
        let mut keys = self.keys.lock().expect("registry lock");
        let old_key = keys.get(&snap.environment_id).cloned();
        let current = self.by_key.load();
        if let Some(old) = old_key.as_ref().and_then(|k| current.get(k)) {
            if old.revision >= snap.revision {
                return false;
            }
        }
        let snap = Arc::new(snap);
        self.usage.register(snap.usage.clone());
        let mut next: Map = (**current).clone();
        if let Some(k) = &old_key {
            if *k != snap.api_key {
                next.remove(k);
            }
        }
        next.insert(snap.api_key.clone(), snap.clone());
        keys.insert(snap.environment_id, snap.api_key.clone());
        self.by_key.store(Arc::new(next));
        drop(keys);
        self.announce(&snap.api_key, snap.updated_at);
        // Nobody following is not an error.
        let _ = self.changes.send(RegistryChange::Installed {
            environment_id: snap.environment_id,
            api_key: snap.api_key.clone(),
            revision: snap.revision,
        });
        true
    }

    /// Forgets an environment that no longer exists. Its real-time subscribers' channel is
    /// dropped, which ends their streams with an explicit error event.
    pub fn remove(&self, environment_id: i64) {
        let mut keys = self.keys.lock().expect("registry lock");
        if let Some(k) = keys.remove(&environment_id) {
            let mut next: Map = (**self.by_key.load()).clone();
            next.remove(&k);
            self.by_key.store(Arc::new(next));
            self.channels.lock().expect("channels lock").remove(&k);
            let _ = self.changes.send(RegistryChange::Removed {
                environment_id,
                api_key: k,
            });
        }
    }

    /// A receiver of `updated_at` values published for this client key.
    pub fn subscribe(&self, client_key: &str) -> broadcast::Receiver<f64> {
        let mut ch = self.channels.lock().expect("channels lock");
        ch.entry(client_key.to_string())
            .or_insert_with(|| broadcast::channel(16).0)
            .subscribe()
    }

    /// Open real-time subscriptions (SSE streams) over every environment.
    pub fn subscribers(&self) -> usize {
        let ch = self.channels.lock().expect("channels lock");
        ch.values().map(|tx| tx.receiver_count()).sum()
    }

    fn announce(&self, client_key: &str, updated_at: f64) {
        let mut ch = self.channels.lock().expect("channels lock");
        if let Some(tx) = ch.get(client_key) {
            if tx.send(updated_at).is_err() {
                // Nobody listens any more: drop the channel so the map stays bounded.
                ch.remove(client_key);
            }
        }
    }
}
