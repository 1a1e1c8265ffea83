//! Who is calling: `X-Environment-Key` is either an environment's client key (public) or a
//! server-side key (`ser.`). Client keys are resolved from the snapshots in memory; server keys
//! are checked against the store and cached for at most one second, so a revoked key stops
//! working within a second without a store query per request. An edge following an upstream
//! over HTTP asks its upstream instead (which checks its store, or asks its own upstream), with
//! the same cache. Keys are never logged.
//!
//! While the edge's initial load runs (it listens before its cache directory is read), a client
//! key not held yet is waited for, up to [`INITIAL_LOAD_WAIT`], before it is called unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use flagstone_store::keys::{find_server_key, hash_secret, SERVER_KEY_PREFIX};

use crate::error::SdkError;
use crate::registry::Registry;
use crate::snapshot::EnvSnapshot;
use crate::Source;

pub const KEY_HEADER: &str = "x-environment-key";
const SERVER_KEY_TTL: Duration = Duration::from_secs(1);
const MAX_CACHED_KEYS: usize = 10_000;
/// How long a request for a key not held yet waits for the initial load (10,000 cached
/// environments are read in about 4 s in a release build).
pub const INITIAL_LOAD_WAIT: Duration = Duration::from_secs(5);

/// An authenticated SDK caller.
pub struct Caller {
    pub snap: Arc<EnvSnapshot>,
    /// Called with a server-side key.
    pub server: bool,
}

impl Caller {
    /// Whether this caller is served a feature in this state: disabled flags are hidden when
    /// the environment hides them, and server-key-only features from client keys (Flagsmith's
    /// quirk kept: not when hide-disabled is on). Every per-identity answer applies this rule.
    pub fn serves(&self, feature_id: i64, enabled: bool) -> bool {
        let snap = &self.snap;
        if snap.hide_disabled {
            return enabled;
        }
        self.server || !snap.server_key_only.contains(&feature_id)
    }
}

struct Cached {
    /// The environment's client key, or `None` for a key the store does not know.
    api_key: Option<String>,
    checked: Instant,
}

#[derive(Default)]
pub struct ServerKeys {
    cache: Mutex<HashMap<String, Cached>>,
}

impl ServerKeys {
    /// The client key of the environment a server key belongs to.
    pub async fn resolve(&self, source: &Source, key: &str) -> Result<Option<String>, SdkError> {
        let hash = hash_secret(key);
        let stale = {
            let cache = self.cache.lock().expect("key cache lock");
            match cache.get(&hash) {
                Some(c) if c.checked.elapsed() < SERVER_KEY_TTL => return Ok(c.api_key.clone()),
                Some(c) => c.api_key.clone(),
                None => None,
            }
        };
        let looked_up: Result<Option<String>, String> = match source {
            Source::Store(store) => async {
                let mut tx = store.read().await?;
                find_server_key(&mut tx, key).await
            }
            .await
            .map(|owner| owner.map(|o| o.api_key))
            .map_err(|e| e.to_string()),
            Source::Upstream(client) => client
                .resolve_server_key(key)
                .await
                .map_err(|e| e.to_string()),
        };
        match looked_up {
            Ok(api_key) => {
                let mut cache = self.cache.lock().expect("key cache lock");
                if cache.len() >= MAX_CACHED_KEYS {
                    cache.clear();
                }
                cache.insert(
                    hash,
                    Cached {
                        api_key: api_key.clone(),
                        checked: Instant::now(),
                    },
                );
                Ok(api_key)
            }
            // The store is unreachable: keep serving a key we knew to be valid (the edge
            // serves its last good state); an unknown key cannot be checked.
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a server-side key against the store or upstream");
                match stale {
                    Some(k) => Ok(Some(k)),
                    None => Err(SdkError::Unavailable),
                }
            }
        }
    }
}

pub async fn authenticate(
    headers: &HeaderMap,
    registry: &Arc<Registry>,
    server_keys: &ServerKeys,
    source: &Source,
) -> Result<Caller, SdkError> {
    let key = headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(SdkError::MissingKey)?;
    authenticate_key(key, registry, server_keys, source).await
}

/// Authenticates an environment key (client or server-side) however the caller sent it.
pub async fn authenticate_key(
    key: &str,
    registry: &Arc<Registry>,
    server_keys: &ServerKeys,
    source: &Source,
) -> Result<Caller, SdkError> {
    let (snap, server) = if key.starts_with(SERVER_KEY_PREFIX) {
        let api_key = server_keys
            .resolve(source, key)
            .await?
            .ok_or(SdkError::UnknownKey)?;
        let snap = registry.get_waiting(&api_key, INITIAL_LOAD_WAIT).await;
        (snap.ok_or(SdkError::UnknownKey)?, true)
    } else {
        let snap = registry.get_waiting(key, INITIAL_LOAD_WAIT).await;
        (snap.ok_or(SdkError::UnknownKey)?, false)
    };
    if snap.stop_serving_flags {
        return Err(SdkError::ServingDisabled);
    }
    Ok(Caller { snap, server })
}
