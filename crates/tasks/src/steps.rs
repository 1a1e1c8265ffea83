//! One transaction per step of a publish job's life — [`claim`], [`finish`], [`fail`],
//! [`hand_back`] — each reading the job through the store, asking [`crate::policy`] what to do,
//! and writing that decision (and its publish-log line) before committing. The worker and the
//! test handle ([`crate::testing`]) both go through these, so what the tests step through is
//! what production runs.

use flagstone_store::document::{self, BuiltDocument};
use flagstone_store::queue::{
    self, BuildOutcome, ClaimDecision, ClaimSession, Decision, Lease, LogLine,
};
use flagstone_store::{Result, Store};

use crate::policy::{self, Failed, Failure};
use crate::WorkerConfig;

/// How a step that needed the lease ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The lease still held; this decision was written.
    Decided(Decision),
    /// Another worker took the job over (this one stalled past its lease), or an operator
    /// discarded it: the row was left alone.
    LeaseLost,
}

/// What [`finish`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The document was stored (it was newer than the published one).
    pub published: bool,
    pub settled: Settled,
}

/// Claims the oldest due job under `session` (the claim holds while the session lives), or
/// returns `None` when nothing is due. A job whose claimants keep dying is parked here (and
/// logged) instead of being handed out again.
pub async fn claim(
    store: &Store,
    session: &ClaimSession,
    cfg: &WorkerConfig,
) -> Result<Option<Lease>> {
    Ok(claim_batch(store, session, cfg, 1)
        .await?
        .into_iter()
        .next())
}

/// Claims up to `max` of the oldest due jobs in one transaction, each decided alone by
/// [`policy::on_claim`] exactly as [`claim`] decides one: a worker fills all its free build
/// slots with one round of the queue instead of one per job. Empty when nothing is due.
pub async fn claim_batch(
    store: &Store,
    session: &ClaimSession,
    cfg: &WorkerConfig,
    max: usize,
) -> Result<Vec<Lease>> {
    let owner = session.owner();
    // Each loop claims at least one job or parks some; the bound only guards against surprises.
    for _ in 0..16 {
        let now = store.clock().now_ms();
        let mut tx = queue::begin(store).await?;
        let due = queue::next_due_many(store, &mut tx, now, max.max(1) as i64).await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let decisions: Vec<ClaimDecision> = due
            .iter()
            .map(|due| policy::on_claim(&cfg.rules, due, now))
            .collect();
        let decided: Vec<(&queue::DueJob, &ClaimDecision)> = due.iter().zip(&decisions).collect();
        let taken = queue::take_many(&mut tx, &decided, session, now).await?;
        let mut leases = Vec::with_capacity(due.len());
        let mut parked = Vec::new();
        for ((due, decision), lease) in decided.into_iter().zip(taken) {
            if let Some(lease) = lease {
                leases.push(lease);
                continue;
            }
            if let ClaimDecision::Park { message, .. } = decision {
                let dead = match &due.claimant {
                    queue::Claimant::Lapsed { owner, .. } => owner.as_str(),
                    queue::Claimant::Unclaimed => owner,
                };
                let line = LogLine {
                    environment_id: due.environment_id,
                    revision: due.wanted_revision,
                    worker: dead,
                    started_at: now,
                    finished_at: now,
                    bytes: None,
                    outcome: BuildOutcome::Parked,
                    detail: Some(message),
                };
                queue::log(&mut tx, &line, cfg.publish_log_cap).await?;
            }
            parked.push((due.environment_id, decision.clone()));
        }
        tx.commit().await?;
        for (environment, decision) in parked {
            tracing::warn!(environment, decision = ?decision, "parked at claim");
        }
        if !leases.is_empty() {
            return Ok(leases);
        }
    }
    Ok(Vec::new())
}

/// Publishes `doc` and ends the job, in one transaction: the document is stored only if newer
/// than the published one (listeners are notified on commit, and webhooks that opted in get
/// its `ENVIRONMENT_PUBLISHED` event, queued in this transaction); the policy then finishes the job
/// or, if its wanted revision moved past what is now published, schedules one follow-up.
///
/// The lease is checked first, with the job's row locked: a worker whose claim lapsed (its
/// session's connection was cut, or it stalled past its lease) may still be finishing a build
/// while another worker rebuilds the same environment, and it must then record nothing — no
/// document, no publish-log line — so one environment's builds never overlap on record.
pub async fn finish(
    store: &Store,
    lease: &Lease,
    doc: &BuiltDocument,
    cfg: &WorkerConfig,
) -> Result<Finished> {
    let mut finished = finish_many(store, &[(lease, doc)], cfg).await?;
    Ok(finished.pop().expect("one result per build"))
}

/// [`finish`] for several builds of distinct environments in one transaction (group commit):
/// each is checked, stored, logged and decided exactly as alone — a lost lease or a superseded
/// document affects only its own build — but the group shares the transaction and most of its
/// statements. Returns one [`Finished`] per build, in order. A failure fails the whole group;
/// the caller ([`crate::finishing`]) then finishes each alone.
pub async fn finish_many(
    store: &Store,
    builds: &[(&Lease, &BuiltDocument)],
    cfg: &WorkerConfig,
) -> Result<Vec<Finished>> {
    debug_assert!(
        {
            let mut envs: Vec<i64> = builds.iter().map(|(l, _)| l.environment_id).collect();
            envs.sort_unstable();
            envs.windows(2).all(|w| w[0] != w[1])
        },
        "a group finishes distinct environments"
    );
    let now = store.clock().now_ms();
    let mut tx = queue::begin(store).await?;
    let leases: Vec<&Lease> = builds.iter().map(|(l, _)| *l).collect();
    let owned = queue::owned_many(&mut tx, &leases).await?;
    // Only builds whose lease still holds are recorded at all.
    let live: Vec<(usize, queue::OwnedJob)> = owned
        .iter()
        .enumerate()
        .filter_map(|(i, job)| job.map(|j| (i, j)))
        .collect();
    let docs: Vec<&BuiltDocument> = live.iter().map(|(i, _)| builds[*i].1).collect();
    let prepared = crate::published::prepare_many(&mut tx, &docs).await?;
    let stored = document::store_many_if_newer(&mut tx, &docs).await?;
    let published: Vec<(i64, i64)> = docs
        .iter()
        .zip(&stored)
        .filter(|(_, stored)| **stored)
        .map(|(d, _)| (d.environment_id, d.revision))
        .collect();
    queue::notify_published_many(&mut tx, &published).await?;
    let mut announced = 0;
    for ((doc, stored), prepared) in docs.iter().zip(&stored).zip(prepared) {
        if let (true, Some(prepared)) = (*stored, prepared) {
            announced += crate::published::announce(&mut tx, prepared, doc, now).await?;
        }
    }
    let lines: Vec<LogLine> = live
        .iter()
        .zip(&stored)
        .map(|((i, _), stored)| {
            let (lease, doc) = builds[*i];
            LogLine {
                environment_id: doc.environment_id,
                revision: doc.revision,
                worker: &lease.owner,
                started_at: lease.claimed_at,
                finished_at: now,
                bytes: Some(doc.bytes),
                outcome: if *stored {
                    BuildOutcome::Published
                } else {
                    BuildOutcome::Superseded
                },
                detail: None,
            }
        })
        .collect();
    queue::log_many(&mut tx, &lines, cfg.publish_log_cap).await?;
    let delay = store.publish_settings().debounce_ms;
    let mut decisions = Vec::with_capacity(live.len());
    for ((i, job), stored) in live.iter().zip(&stored) {
        let doc = builds[*i].1;
        // Just stored: it is the published revision (the row is locked by this transaction).
        let current = if *stored {
            doc.revision
        } else {
            document::stored::published_revision(&mut tx, doc.environment_id)
                .await?
                .unwrap_or(doc.revision)
        };
        let decision = policy::after_success(job.wanted_revision > current, now, delay);
        decisions.push((doc.environment_id, decision));
    }
    queue::apply_many(&mut tx, &decisions, now).await?;
    tx.commit().await?;
    if announced > 0 {
        store.webhook_notifier().notify_one();
    }
    let lost = Finished {
        published: false,
        settled: Settled::LeaseLost,
    };
    let mut out = vec![lost; builds.len()];
    for (((i, _), stored), (_, decision)) in live.iter().zip(stored).zip(decisions) {
        out[*i] = Finished {
            published: stored,
            settled: Settled::Decided(decision),
        };
    }
    Ok(out)
}

/// Records a failed attempt: the policy retries it after backoff or parks it. The environment
/// keeps serving its last published document either way.
pub async fn fail(
    store: &Store,
    lease: &Lease,
    failure: Failure,
    error: &str,
    cfg: &WorkerConfig,
) -> Result<Settled> {
    let now = store.clock().now_ms();
    let mut tx = queue::begin(store).await?;
    let Some(job) = queue::owned(&mut tx, lease).await? else {
        return Ok(Settled::LeaseLost);
    };
    let failed = Failed {
        attempts_before: job.attempts,
        failure,
        newer_input: job.wanted_revision > lease.wanted_revision,
        error,
    };
    let delay = store.publish_settings().debounce_ms;
    let decision = policy::after_failure(&cfg.rules, &failed, now, delay, cfg.jitter.next());
    queue::apply(&mut tx, lease.environment_id, &decision, now).await?;
    let line = LogLine {
        environment_id: lease.environment_id,
        revision: lease.wanted_revision,
        worker: &lease.owner,
        started_at: lease.claimed_at,
        finished_at: now,
        bytes: None,
        outcome: match decision {
            Decision::Park { .. } => BuildOutcome::Parked,
            _ => BuildOutcome::Failed,
        },
        detail: Some(error),
    };
    queue::log(&mut tx, &line, cfg.publish_log_cap).await?;
    tx.commit().await?;
    Ok(Settled::Decided(decision))
}

/// Hands a claimed job back without counting an attempt (the worker is shutting down).
pub async fn hand_back(store: &Store, lease: &Lease) -> Result<Settled> {
    let now = store.clock().now_ms();
    let mut tx = queue::begin(store).await?;
    if queue::owned(&mut tx, lease).await?.is_none() {
        return Ok(Settled::LeaseLost);
    }
    let decision = policy::on_shutdown(now);
    queue::apply(&mut tx, lease.environment_id, &decision, now).await?;
    tx.commit().await?;
    Ok(Settled::Decided(decision))
}

/// The build found the environment gone: its job goes too.
pub async fn forget(store: &Store, environment_id: i64) -> Result<()> {
    let mut tx = queue::begin(store).await?;
    queue::forget(&mut tx, environment_id).await?;
    tx.commit().await
}

/// Renews `lease` for another `lease_ms`. False when it was lost: the build must stop.
pub async fn heartbeat(store: &Store, lease: &Lease, cfg: &WorkerConfig) -> Result<bool> {
    let now = store.clock().now_ms();
    queue::heartbeat(store, lease, policy::lease_until(&cfg.rules, now), now).await
}
