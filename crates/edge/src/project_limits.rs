//! The project limits an edge checks SDK traits with, read from the store and kept per
//! environment for `ttl` (the identity cache's TTL), so a trait the edge accepts is one the store
//! will keep: both use the same rules (`flagstone_store::identities::traits`) with the same
//! numbers. If the store cannot be reached the last known limits (or the defaults) are used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flagstone_store::Limits;

use crate::Source;

pub struct ProjectLimits {
    ttl: Duration,
    entries: Mutex<HashMap<i64, (Limits, Instant)>>,
}

impl ProjectLimits {
    pub fn new(ttl: Duration) -> ProjectLimits {
        ProjectLimits {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// The limits of `environment_id`'s project. An edge without a store checks with the
    /// defaults; its upstream applies the project's own limits when the traits reach it.
    pub async fn get(&self, source: &Source, environment_id: i64) -> Limits {
        let Source::Store(store) = source else {
            return Limits::default();
        };
        let known = self.lock().get(&environment_id).copied();
        if let Some((limits, at)) = known {
            if at.elapsed() < self.ttl {
                return limits;
            }
        }
        let loaded = async {
            let mut tx = store.read().await?;
            flagstone_store::identities::environment_limits(&mut tx, environment_id).await
        }
        .await;
        match loaded {
            Ok(limits) => {
                self.lock().insert(environment_id, (limits, Instant::now()));
                limits
            }
            Err(e) => {
                tracing::warn!(environment = environment_id, error = %e, "reading the project's limits failed; using the last known");
                known.map(|(l, _)| l).unwrap_or_default()
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (Limits, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
