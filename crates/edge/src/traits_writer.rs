//! Persists traits sent by SDKs behind the request: handlers hand writes to a bounded queue and
//! answer at once; one background task writes them through the store. When the queue is full
//! the write is dropped and counted (`flagstone_edge_trait_writes_dropped_total`) rather than
//! slowing or failing flag requests.

use flagstone_store::Store;
use serde_json::Value;
use tokio::sync::mpsc;

pub struct TraitWrite {
    pub environment_id: i64,
    pub identifier: String,
    /// `(key, None)` deletes the trait.
    pub traits: Vec<(String, Option<Value>)>,
}

#[derive(Clone)]
pub struct TraitWriter {
    tx: mpsc::Sender<TraitWrite>,
}

impl TraitWriter {
    /// Starts the writer task; it ends when every `TraitWriter` is dropped and the queue drains.
    pub fn spawn(store: Store, capacity: usize) -> TraitWriter {
        let (tx, mut rx) = mpsc::channel::<TraitWrite>(capacity.max(1));
        tokio::spawn(async move {
            while let Some(w) = rx.recv().await {
                if let Err(e) = write(&store, &w).await {
                    metrics::counter!("flagstone_edge_trait_writes_failed_total").increment(1);
                    tracing::warn!(environment = w.environment_id, error = %e, "persisting SDK traits failed");
                }
            }
        });
        TraitWriter { tx }
    }

    pub fn submit(&self, w: TraitWrite) {
        if self.tx.try_send(w).is_err() {
            metrics::counter!("flagstone_edge_trait_writes_dropped_total").increment(1);
        }
    }
}

async fn write(store: &Store, w: &TraitWrite) -> flagstone_store::Result<()> {
    let mut tx = store.write().await?;
    flagstone_store::identities::persist_sdk_traits(
        &mut tx,
        w.environment_id,
        &w.identifier,
        &w.traits,
    )
    .await?;
    tx.commit().await
}
