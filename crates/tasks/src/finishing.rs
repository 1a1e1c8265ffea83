//! Group commit of finished builds. A worker running many builds at once (a burst over many
//! environments) would otherwise pay one finishing transaction per build — lease check,
//! store, notify, log, job update, commit — each a round of statements on PostgreSQL. Builds
//! that end while [`MAX_IN_FLIGHT`] groups are being committed wait and go in the next group
//! together ([`crate::steps::finish_many`], where each is still decided alone); a quiet
//! worker's single build is committed at once, as before.
//!
//! A group that fails as a whole (say a statement error one build's data causes) is retried
//! one build at a time, so one bad build never fails the others.

use std::sync::Arc;

use flagstone_store::document::BuiltDocument;
use flagstone_store::queue::Lease;
use flagstone_store::{Result, Store};
use tokio::sync::{mpsc, oneshot};

use crate::steps::{self, Finished};
use crate::WorkerConfig;

/// At most this many builds share one finishing transaction.
pub const MAX_GROUP: usize = 32;

/// How builds are finished: each in its own transaction, or through a worker's group commit.
#[derive(Clone)]
pub struct Finishing {
    group: Option<mpsc::UnboundedSender<Pending>>,
}

struct Pending {
    lease: Lease,
    doc: Arc<BuiltDocument>,
    reply: oneshot::Sender<Result<Finished>>,
}

impl Finishing {
    /// Each build finishes alone, in the caller's task (tests step through this).
    pub fn alone() -> Finishing {
        Finishing { group: None }
    }

    /// Builds finish in groups, committed by a task that runs until every clone of the
    /// returned handle is dropped.
    pub fn grouped(store: Store, cfg: Arc<WorkerConfig>) -> Finishing {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(commit_groups(store, cfg, rx));
        Finishing { group: Some(tx) }
    }

    /// Finishes the build of `lease` (see [`steps::finish`]).
    pub async fn finish(
        &self,
        store: &Store,
        lease: &Lease,
        doc: BuiltDocument,
        cfg: &WorkerConfig,
    ) -> Result<Finished> {
        let Some(group) = &self.group else {
            return steps::finish(store, lease, &doc, cfg).await;
        };
        let doc = Arc::new(doc);
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            lease: lease.clone(),
            doc: doc.clone(),
            reply,
        };
        if group.send(pending).is_ok() {
            if let Ok(finished) = answer.await {
                return finished;
            }
        }
        // The committer is gone (shutting down, or it panicked): finish here.
        steps::finish(store, lease, &doc, cfg).await
    }
}

/// Group transactions in flight at once. Two, not one: a lone build that ends while another
/// group commits goes ahead in its own transaction instead of waiting for that commit (at two
/// build slots, serialising commits was slower than none), and more builds than that waiting
/// means a group forms.
pub const MAX_IN_FLIGHT: usize = 2;

/// Takes whatever builds are waiting (up to [`MAX_GROUP`], distinct environments) and commits
/// them together, at most [`MAX_IN_FLIGHT`] groups at a time, until the channel closes. Groups
/// in flight together never share an environment: a build's job stays claimed until its group
/// commits, so its environment cannot be built again meanwhile.
async fn commit_groups(
    store: Store,
    cfg: Arc<WorkerConfig>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    let mut held: Option<Pending> = None;
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        if in_flight.len() >= MAX_IN_FLIGHT {
            in_flight.join_next().await;
        }
        let first = match held.take() {
            Some(p) => p,
            None => {
                let next = tokio::select! {
                    p = rx.recv() => p,
                    // A commit ending frees a slot; keep reaping while waiting for builds.
                    Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
                };
                match next {
                    Some(p) => p,
                    None => break,
                }
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => {
                    let env = p.lease.environment_id;
                    if group.iter().any(|g| g.lease.environment_id == env) {
                        // Two builds of one environment never share a statement: next group.
                        held = Some(p);
                        break;
                    }
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        let (store, cfg) = (store.clone(), cfg.clone());
        in_flight.spawn(async move { commit(&store, &cfg, group).await });
    }
    while in_flight.join_next().await.is_some() {}
}

async fn commit(store: &Store, cfg: &WorkerConfig, group: Vec<Pending>) {
    let builds: Vec<(&Lease, &BuiltDocument)> = group.iter().map(|p| (&p.lease, &*p.doc)).collect();
    crate::metrics::finish_group(builds.len());
    let result = steps::finish_many(store, &builds, cfg).await;
    drop(builds);
    match result {
        Ok(finished) => {
            for (p, f) in group.into_iter().zip(finished) {
                let _ = p.reply.send(Ok(f));
            }
        }
        Err(e) if group.len() == 1 => {
            let p = group.into_iter().next().expect("one");
            let _ = p.reply.send(Err(e));
        }
        Err(e) => {
            tracing::warn!(error = %e, builds = group.len(), "group finish failed; finishing each alone");
            for p in group {
                let _ = p
                    .reply
                    .send(steps::finish(store, &p.lease, &p.doc, cfg).await);
            }
        }
    }
}
