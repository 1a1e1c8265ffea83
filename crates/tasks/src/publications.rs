//! In-process publish announcements: "environment X published revision R", for an edge in the
//! same process (SQLite `serve`, where there is no `NOTIFY`). Subscribers that fall behind miss
//! announcements (`Lagged`) and rely on their periodic check, as after a missed `NOTIFY`.

use tokio::sync::broadcast;

/// A cheap-to-clone sender of `(environment_id, revision)` pairs.
#[derive(Clone)]
pub struct Publications {
    tx: broadcast::Sender<(i64, i64)>,
}

impl Default for Publications {
    fn default() -> Self {
        Publications::new()
    }
}

impl Publications {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Publications { tx }
    }

    /// Hears every publish announced after this call.
    pub fn subscribe(&self) -> broadcast::Receiver<(i64, i64)> {
        self.tx.subscribe()
    }

    pub(crate) fn announce(&self, environment_id: i64, revision: i64) {
        // No subscriber is fine: nobody in this process is listening.
        let _ = self.tx.send((environment_id, revision));
    }
}
