//! Who may follow this edge's documents (`/api/v1/edge/…`): an organisation API key
//! (`Authorization: Api-Key fsk_…`, created by an operator in the dashboard or admin API).
//!
//! A key follows the environments in which it holds `VIEW_ENVIRONMENT` (an admin key: every
//! environment of its organisation), read-only: their compiled documents and revisions, the
//! resolution of their server-side keys and their identities' stored data; it may also send
//! traits and flag usage for those environments (what an SDK could send with their keys). It
//! grants nothing in the admin API that the key did not already hold.
//!
//! The core checks the key against its store (hashed, compared in constant time); an edge
//! without a store asks its upstream which environments the key sees, so a chain of edges
//! checks every key at the core. Either answer is cached for [`KEY_TTL`] (a revoked key stops
//! working within it), and a key known good stays good while the store or upstream is
//! unreachable (the edge serves its last good state). Keys are never logged.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use flagstone_access::secrets;
use flagstone_access::{EnvironmentPermission, EnvironmentRef, Grants};
use flagstone_store::accounts::{api_keys, grants};

use crate::error::SdkError;
use crate::published::Published;
use crate::Source;

/// The prefix of organisation API keys.
pub const ORG_KEY_PREFIX: &str = "fsk_";
/// How long a key's check is trusted.
pub const KEY_TTL: Duration = Duration::from_secs(1);
const MAX_CACHED_KEYS: usize = 1_000;

/// What a follower key may see.
pub enum Scope {
    /// Checked at this node's store: the key's grants.
    Grants(Grants),
    /// Told by the upstream: the environments the key sees there.
    Environments(HashSet<i64>),
}

impl Scope {
    pub fn sees(&self, snap: &Published) -> bool {
        match self {
            Scope::Grants(g) => g
                .environment_permissions(EnvironmentRef {
                    organisation: snap.organisation_id,
                    project: snap.project_id,
                    environment: snap.environment_id,
                })
                .has(EnvironmentPermission::ViewEnvironment),
            Scope::Environments(ids) => ids.contains(&snap.environment_id),
        }
    }
}

struct Cached {
    scope: Option<Arc<Scope>>,
    checked: Instant,
}

#[derive(Default)]
pub struct FollowerKeys {
    cache: Mutex<HashMap<String, Cached>>,
}

/// The key presented as `Authorization: Api-Key <key>`.
pub fn presented(headers: &HeaderMap) -> Result<&str, SdkError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Api-Key"))
        .map(|(_, key)| key.trim())
        .filter(|k| !k.is_empty())
        .ok_or(SdkError::Forbidden(
            "An organisation API key is required: Authorization: Api-Key <key>.",
        ))
}

impl FollowerKeys {
    /// What `key` may follow; `Forbidden` if it is unknown, revoked or expired.
    pub async fn resolve(&self, source: &Source, key: &str) -> Result<Arc<Scope>, SdkError> {
        const REFUSED: SdkError = SdkError::Forbidden("Invalid or revoked organisation API key.");
        let hash = secrets::hash(key);
        let stale = {
            let cache = self.lock();
            match cache.get(&hash) {
                Some(c) if c.checked.elapsed() < KEY_TTL => return c.scope.clone().ok_or(REFUSED),
                Some(c) => c.scope.clone(),
                None => None,
            }
        };
        let checked: Result<Option<Scope>, String> = match source {
            Source::Store(store) => check_at_store(store, key).await.map_err(|e| e.to_string()),
            Source::Upstream(client) => client
                .scope(key)
                .await
                .map(|ids| ids.map(Scope::Environments))
                .map_err(|e| e.to_string()),
        };
        match checked {
            Ok(scope) => {
                let scope = scope.map(Arc::new);
                let mut cache = self.lock();
                if cache.len() >= MAX_CACHED_KEYS {
                    cache.clear();
                }
                cache.insert(
                    hash,
                    Cached {
                        scope: scope.clone(),
                        checked: Instant::now(),
                    },
                );
                scope.ok_or(REFUSED)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a follower's organisation API key");
                stale.ok_or(SdkError::Unavailable)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn check_at_store(
    store: &flagstone_store::Store,
    presented: &str,
) -> flagstone_store::Result<Option<Scope>> {
    let Some(lookup) = secrets::lookup_of(presented, ORG_KEY_PREFIX) else {
        return Ok(None);
    };
    let now = store.clock().now_ms();
    let mut tx = store.read().await?;
    let Some(k) = api_keys::find(&mut tx, lookup).await? else {
        return Ok(None);
    };
    if !secrets::verify(presented, &k.secret_hash) || !k.usable(now) {
        return Ok(None);
    }
    let g = grants::of_key(&mut tx, k.id, k.organisation_id, k.is_admin).await?;
    drop(tx);
    if api_keys::needs_touch(k.last_used_at, now) {
        let mut w = store.write().await?;
        api_keys::touch(&mut w, k.id, now).await?;
        w.commit().await?;
    }
    Ok(Some(Scope::Grants(g)))
}
