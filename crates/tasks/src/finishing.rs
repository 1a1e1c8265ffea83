//! Group commit of finished builds. A worker running many builds at once (a burst over many
//! environments) would otherwise pay one finishing transaction per build — lease check,
//! store, notify, log, job update, commit — each a round of statements on PostgreSQL. A batch
//! ([`crate::batch`]) hands its builds over together; builds that end while [`MAX_IN_FLIGHT`]
//! groups are being committed wait and go in the next group together
//! ([`crate::steps::finish_many`], where each is still decided alone); a quiet worker's single
//! build is committed at once.
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

/// One caller's builds (a batch, or a lone build), answered together.
struct Pending {
    builds: Vec<(Lease, Arc<BuiltDocument>)>,
    reply: oneshot::Sender<Vec<Result<Finished>>>,
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
        let mut finished = self
            .finish_all(store, vec![(lease.clone(), doc)], cfg)
            .await;
        finished.pop().expect("one result per build")
    }

    /// Finishes `builds` (distinct environments, at most [`MAX_GROUP`]) in one transaction
    /// when they can be, each decided alone ([`steps::finish_many`]); one result per build, in
    /// order. A worker's builds go through its group commit, so builds that end together in
    /// other slots share the transaction too.
    pub async fn finish_all(
        &self,
        store: &Store,
        builds: Vec<(Lease, BuiltDocument)>,
        cfg: &WorkerConfig,
    ) -> Vec<Result<Finished>> {
        let builds: Vec<(Lease, Arc<BuiltDocument>)> =
            builds.into_iter().map(|(l, d)| (l, Arc::new(d))).collect();
        if let Some(group) = &self.group {
            let (reply, answer) = oneshot::channel();
            let pending = Pending {
                builds: builds.clone(),
                reply,
            };
            if group.send(pending).is_ok() {
                if let Ok(finished) = answer.await {
                    return finished;
                }
            }
        }
        // Alone, or the committer is gone (shutting down, or it panicked): finish here.
        commit_builds(store, cfg, &builds).await
    }
}

/// Group transactions in flight at once. Two, not one: a lone build that ends while another
/// group commits goes ahead in its own transaction instead of waiting for that commit (at two
/// build slots, serialising commits was slower than none), and more builds than that waiting
/// means a group forms.
pub const MAX_IN_FLIGHT: usize = 2;

/// Takes whatever builds are waiting (up to [`MAX_GROUP`], distinct environments; a caller's
/// builds are never split) and commits them together, at most [`MAX_IN_FLIGHT`] groups at a
/// time, until the channel closes. Groups in flight together never share an environment: a
/// build's job stays claimed until its group commits, so its environment cannot be built again
/// meanwhile.
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
        let mut size = first.builds.len();
        let mut group = vec![first];
        while size < MAX_GROUP {
            let Ok(p) = rx.try_recv() else { break };
            let shared = p.builds.iter().any(|(l, _)| {
                group.iter().any(|g| {
                    g.builds
                        .iter()
                        .any(|(gl, _)| gl.environment_id == l.environment_id)
                })
            });
            if shared || size + p.builds.len() > MAX_GROUP {
                // Two builds of one environment never share a statement: next group.
                held = Some(p);
                break;
            }
            size += p.builds.len();
            group.push(p);
        }
        let (store, cfg) = (store.clone(), cfg.clone());
        in_flight.spawn(async move { commit(&store, &cfg, group).await });
    }
    while in_flight.join_next().await.is_some() {}
}

/// Commits the builds of every caller in `group` together and answers each caller.
async fn commit(store: &Store, cfg: &WorkerConfig, group: Vec<Pending>) {
    let builds: Vec<(Lease, Arc<BuiltDocument>)> = group
        .iter()
        .flat_map(|p| p.builds.iter().cloned())
        .collect();
    let mut finished = commit_builds(store, cfg, &builds).await.into_iter();
    for p in group {
        let mine: Vec<Result<Finished>> = finished.by_ref().take(p.builds.len()).collect();
        let _ = p.reply.send(mine);
    }
}

/// Finishes `builds` in one transaction; if that fails as a whole and there is more than one,
/// each alone, so one bad build never fails the others.
async fn commit_builds(
    store: &Store,
    cfg: &WorkerConfig,
    builds: &[(Lease, Arc<BuiltDocument>)],
) -> Vec<Result<Finished>> {
    let refs: Vec<(&Lease, &BuiltDocument)> = builds.iter().map(|(l, d)| (l, &**d)).collect();
    crate::metrics::finish_group(refs.len());
    match steps::finish_many(store, &refs, cfg).await {
        Ok(finished) => finished.into_iter().map(Ok).collect(),
        Err(e) if refs.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, builds = refs.len(), "group finish failed; finishing each alone");
            let mut out = Vec::with_capacity(refs.len());
            for (lease, doc) in refs {
                out.push(steps::finish(store, lease, doc, cfg).await);
            }
            out
        }
    }
}
