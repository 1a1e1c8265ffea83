//! Stored identities (traits and identity overrides) cached per edge in a bounded LRU, so a busy
//! identity costs one store read per revision rather than one per request. An entry is valid
//! for the revision it was read at (identity-override changes bump the revision) and for a short
//! time (other edges may have written traits since).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use lru::LruCache;
use serde_json::Value;

/// What the store holds for one identity.
#[derive(Debug, Clone, Default)]
pub struct StoredIdentity {
    pub exists: bool,
    pub traits: IndexMap<String, Value>,
    /// `(feature id, enabled, value)`.
    pub overrides: Vec<(i64, bool, Value)>,
}

struct Entry {
    revision: i64,
    loaded: Instant,
    identity: Arc<StoredIdentity>,
}

pub struct IdentityCache {
    lru: Mutex<LruCache<(i64, String), Entry>>,
    ttl: Duration,
}

impl IdentityCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        IdentityCache {
            lru: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).expect("non-zero"),
            )),
            ttl,
        }
    }

    pub fn get(&self, env: i64, identifier: &str, revision: i64) -> Option<Arc<StoredIdentity>> {
        let mut lru = self.lru.lock().expect("identity cache lock");
        let key = (env, identifier.to_string());
        match lru.get(&key) {
            Some(e) if e.revision == revision && e.loaded.elapsed() < self.ttl => {
                Some(e.identity.clone())
            }
            Some(_) => {
                lru.pop(&key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, env: i64, identifier: &str, revision: i64, identity: Arc<StoredIdentity>) {
        let mut lru = self.lru.lock().expect("identity cache lock");
        lru.put(
            (env, identifier.to_string()),
            Entry {
                revision,
                loaded: Instant::now(),
                identity,
            },
        );
    }
}
