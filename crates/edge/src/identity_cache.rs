//! Stored identities (traits and identity overrides) cached per edge in a bounded LRU, so a busy
//! identity costs one store read per revision rather than one per request. An entry is valid
//! for the revision it was read at (identity-override changes bump the revision) and for a short
//! time (other edges may have written traits since).
//!
//! The cache is bounded twice: by entries and by an estimate of the heap bytes its entries hold
//! (identities with many or large traits cost more), evicting least recently used entries until
//! both bounds hold. Its table grows with use: an idle edge pays nothing for it (a table
//! preallocated for 100,000 entries was 2.2 MB of every edge's memory).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::mem::size_of;
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

/// An entry's key: the environment and the identifier.
struct Key {
    env: i64,
    identifier: Box<str>,
}

/// A key as looked up: [`Key`] itself, or an environment and a borrowed identifier, so a lookup
/// does not allocate a copy of the identifier (`Key: Borrow<dyn KeyView>`, with the same hash
/// and equality either way).
trait KeyView {
    fn env(&self) -> i64;
    fn identifier(&self) -> &str;
}

impl KeyView for Key {
    fn env(&self) -> i64 {
        self.env
    }
    fn identifier(&self) -> &str {
        &self.identifier
    }
}

impl KeyView for (i64, &str) {
    fn env(&self) -> i64 {
        self.0
    }
    fn identifier(&self) -> &str {
        self.1
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for Key {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.env().hash(h);
        self.identifier().hash(h);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.env() == other.env() && self.identifier() == other.identifier()
    }
}

impl Eq for dyn KeyView + '_ {}

// `Key`'s hash and equality are those of its view, as `Borrow` requires.
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as &dyn KeyView).hash(h);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn KeyView) == (other as &dyn KeyView)
    }
}

impl Eq for Key {}

struct Entry {
    revision: i64,
    loaded: Instant,
    /// [`entry_bytes`] of this entry, as accounted in [`Lru::bytes`].
    bytes: usize,
    identity: Arc<StoredIdentity>,
}

struct Lru {
    entries: LruCache<Key, Entry>,
    /// Sum of the entries' estimated bytes.
    bytes: usize,
}

impl Lru {
    fn remove(&mut self, key: &dyn KeyView) {
        if let Some(e) = self.entries.pop(key) {
            self.bytes -= e.bytes;
        }
    }
}

pub struct IdentityCache {
    lru: Mutex<Lru>,
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
}

/// A heap block's cost: glibc rounds to 16 bytes and keeps an 8-byte header (at least 32).
fn block(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len + 8).next_multiple_of(16).max(32)
    }
}

/// Estimated heap bytes of a JSON value's allocations (not its inline part).
fn value_heap(v: &Value) -> usize {
    match v {
        Value::String(s) => block(s.len()),
        Value::Array(a) => {
            block(a.len() * size_of::<Value>()) + a.iter().map(value_heap).sum::<usize>()
        }
        // preserve_order: an IndexMap (entries + index table) of String keys.
        Value::Object(o) => {
            block(o.len() * (size_of::<(String, Value)>() + 8 + 2 * size_of::<usize>()))
                + o.iter()
                    .map(|(k, v)| block(k.len()) + value_heap(v))
                    .sum::<usize>()
        }
        _ => 0,
    }
}

/// Estimated heap bytes an entry holds: its key, the LRU node and table slot, the
/// `StoredIdentity` (`Arc`), its trait map and overrides.
fn entry_bytes(identifier: &str, identity: &StoredIdentity) -> usize {
    // LRU node (key, value, two links), plus the hash table's slot (two pointers) and control
    // byte, counted twice: the table grows by doubling, so it is between half and fully loaded.
    let node = block(size_of::<(Key, Entry)>() + 2 * size_of::<usize>())
        + 2 * (2 * size_of::<usize>() + 1);
    let traits = &identity.traits;
    let trait_map = if traits.capacity() == 0 {
        0
    } else {
        block(traits.capacity() * (size_of::<(String, Value)>() + 8))
            + block(traits.capacity() * 2 * size_of::<usize>())
    };
    let trait_data: usize = traits
        .iter()
        .map(|(k, v)| block(k.len()) + value_heap(v))
        .sum();
    let overrides = block(identity.overrides.capacity() * size_of::<(i64, bool, Value)>())
        + identity
            .overrides
            .iter()
            .map(|(_, _, v)| value_heap(v))
            .sum::<usize>();
    node + block(identifier.len())
        + block(size_of::<StoredIdentity>() + 2 * size_of::<usize>())
        + trait_map
        + trait_data
        + overrides
}

impl IdentityCache {
    /// At most `max_entries` identities holding about `max_bytes` of heap (an identity larger
    /// than `max_bytes` alone is not cached).
    pub fn new(max_entries: usize, max_bytes: usize, ttl: Duration) -> Self {
        IdentityCache {
            lru: Mutex::new(Lru {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            ttl,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    pub fn get(&self, env: i64, identifier: &str, revision: i64) -> Option<Arc<StoredIdentity>> {
        let key: &dyn KeyView = &(env, identifier);
        let mut lru = self.lru.lock().expect("identity cache lock");
        match lru.entries.get(key) {
            Some(e) if e.revision == revision && e.loaded.elapsed() < self.ttl => {
                Some(e.identity.clone())
            }
            Some(_) => {
                lru.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, env: i64, identifier: &str, revision: i64, identity: Arc<StoredIdentity>) {
        let bytes = entry_bytes(identifier, &identity);
        let key = Key {
            env,
            identifier: identifier.into(),
        };
        let mut lru = self.lru.lock().expect("identity cache lock");
        lru.remove(&key);
        if bytes > self.max_bytes {
            return;
        }
        while lru.entries.len() >= self.max_entries || lru.bytes + bytes > self.max_bytes {
            match lru.entries.pop_lru() {
                Some((_, e)) => lru.bytes -= e.bytes,
                None => break,
            }
        }
        lru.bytes += bytes;
        lru.entries.put(
            key,
            Entry {
                revision,
                loaded: Instant::now(),
                bytes,
                identity,
            },
        );
    }

    /// `(entries, estimated bytes)` held.
    pub fn usage(&self) -> (usize, usize) {
        let lru = self.lru.lock().expect("identity cache lock");
        (lru.entries.len(), lru.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(traits: usize, value_len: usize) -> Arc<StoredIdentity> {
        Arc::new(StoredIdentity {
            exists: true,
            traits: (0..traits)
                .map(|i| (format!("trait_{i}"), json!("x".repeat(value_len))))
                .collect(),
            overrides: vec![(1, true, json!("on"))],
        })
    }

    #[test]
    fn hits_only_at_the_same_revision_and_within_the_ttl() {
        let c = IdentityCache::new(10, 1 << 20, Duration::from_millis(50));
        c.put(1, "ada", 7, identity(2, 5));
        assert!(c.get(1, "ada", 7).is_some());
        assert!(c.get(2, "ada", 7).is_none());
        assert!(c.get(1, "ada", 8).is_none(), "another revision");
        assert_eq!(c.usage().0, 0, "a stale entry is dropped");
        c.put(1, "ada", 8, identity(2, 5));
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get(1, "ada", 8).is_none(), "expired");
        assert_eq!(c.usage(), (0, 0));
    }

    #[test]
    fn evicts_the_least_recently_used_beyond_the_entry_bound() {
        let c = IdentityCache::new(2, 1 << 20, Duration::from_secs(10));
        c.put(1, "a", 1, identity(1, 1));
        c.put(1, "b", 1, identity(1, 1));
        assert!(c.get(1, "a", 1).is_some()); // "b" is now the least recently used
        c.put(1, "c", 1, identity(1, 1));
        assert!(c.get(1, "b", 1).is_none());
        assert!(c.get(1, "a", 1).is_some());
        assert!(c.get(1, "c", 1).is_some());
        assert_eq!(c.usage().0, 2);
    }

    #[test]
    fn evicts_beyond_the_byte_bound_and_accounts_replacements() {
        let one = entry_bytes("id-0", &identity(5, 100));
        assert!(one > 5 * 100, "the estimate counts the trait values");
        let c = IdentityCache::new(1000, 3 * one + one / 2, Duration::from_secs(10));
        for i in 0..10 {
            c.put(1, &format!("id-{i}"), 1, identity(5, 100));
        }
        let (entries, bytes) = c.usage();
        assert_eq!(entries, 3);
        assert!(bytes <= 3 * one + one / 2);
        assert!(c.get(1, "id-9", 1).is_some());
        assert!(c.get(1, "id-6", 1).is_none());
        // Replacing an entry does not count it twice.
        c.put(1, "id-9", 2, identity(5, 100));
        c.put(1, "id-9", 3, identity(5, 100));
        assert_eq!(c.usage().0, 3);
        // An identity larger than the whole bound is not cached (and evicts nothing).
        c.put(1, "huge", 1, identity(5, 10 * one));
        assert!(c.get(1, "huge", 1).is_none());
        assert_eq!(c.usage().0, 3);
    }
}
