//! A test handle on the publishing pipeline (feature `testing`): step a worker through
//! claim → build → finish with the code production runs ([`crate::steps`],
//! [`crate::publish::settle`]), inject a failure at a named [`Breakpoint`], move a manual clock
//! instead of sleeping, and render the queue and the publish log as text for `insta` snapshots.
//! The main type is [`Pipeline`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use flagstone_store::document::{self, BuildError};
use flagstone_store::queue::{self, ClaimSession, JobState, Lease};
use flagstone_store::{sql, Clock, Store, StoreError};

use crate::breakpoints::Breakpoint;
use crate::config::JitterSource;
use crate::finishing::Finishing;
use crate::policy::{Jitter, Rules};
use crate::publish::{settle, BuildResult, PublishOutcome};
use crate::{steps, Publications, WorkerConfig};

/// Where the manual clock starts (2026-01-01T00:00:00Z); snapshots print times relative to it.
pub const START_MS: i64 = 1_767_225_600_000;

/// Something that goes wrong at a breakpoint, once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The database is unreachable: retried, never counted (nobody's fault).
    DatabaseDown,
    /// A query fails for a reason the worker cannot name (a transient failure, counted).
    QueryFails,
    /// The document passes its byte budget (permanent).
    TooLarge,
    /// Stored data cannot be turned into a document (permanent).
    Corrupt,
    /// The build runs past the worker's build timeout (transient).
    TimesOut,
    /// The worker stalls here for good: it stops without settling but its claim session stays
    /// open (the process hangs), so only the lease backstop frees the job.
    WorkerDies,
    /// The worker's process is killed here: it stops without settling and its claim session
    /// ends, so the job can be reclaimed at once.
    WorkerKilled,
}

/// What one [`Pipeline::run`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Nothing was due.
    NothingDue,
    /// The worker died (an injected [`Fault::WorkerDies`]) holding this lease.
    Died(Lease),
    /// The publish of `environment_id` ended so.
    Ended {
        environment_id: i64,
        outcome: PublishOutcome,
    },
}

/// The publishing pipeline, stepped by hand. Make every change through [`Pipeline::store`], so
/// it is scheduled by the same manual clock.
pub struct Pipeline {
    store: Store,
    cfg: WorkerConfig,
    publications: Publications,
    faults: Mutex<HashMap<Breakpoint, Fault>>,
    /// Each named worker's claim session, opened at its first claim.
    sessions: tokio::sync::Mutex<HashMap<String, ClaimSession>>,
    start: i64,
}

impl Pipeline {
    /// A pipeline over `store` (a clone of it that schedules by a manual clock standing at
    /// [`START_MS`]), with production rules, no jitter and a 50-row publish log.
    pub fn new(store: &Store) -> Pipeline {
        Pipeline::starting_at(store, START_MS)
    }

    /// [`Pipeline::new`] with the clock standing at `start_ms` (e.g. past the system clock, to
    /// step jobs that were requested through a store on the system clock).
    pub fn starting_at(store: &Store, start_ms: i64) -> Pipeline {
        let store = store.clone().with_clock(Clock::manual(start_ms));
        Pipeline {
            start: start_ms,
            store,
            cfg: WorkerConfig {
                jitter: JitterSource::Fixed(Jitter::NONE),
                publish_log_cap: 50,
                ..WorkerConfig::default()
            },
            publications: Publications::new(),
            faults: Mutex::default(),
            sessions: Default::default(),
        }
    }

    pub fn with_rules(mut self, rules: Rules) -> Pipeline {
        self.cfg.rules = rules;
        self
    }

    /// The store every change of the test should go through (it shares the manual clock).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.cfg
    }

    /// Where publishes are announced (what an in-process edge follows).
    pub fn publications(&self) -> &Publications {
        &self.publications
    }

    /// Moves the clock forward: debounces end, backoffs pass, leases lapse.
    pub fn advance(&self, ms: i64) {
        self.store.clock().advance(ms);
    }

    /// Milliseconds since the clock started.
    pub fn elapsed_ms(&self) -> i64 {
        self.store.clock().now_ms() - self.start
    }

    /// Makes the next publish that reaches `at` suffer `fault`.
    pub fn inject(&self, at: Breakpoint, fault: Fault) {
        self.faults.lock().expect("faults").insert(at, fault);
    }

    fn take_fault(&self, at: Breakpoint) -> Option<Fault> {
        self.faults.lock().expect("faults").remove(&at)
    }

    /// Claims the oldest due job for `worker` (the production claim step), under its claim
    /// session (opened at its first claim).
    pub async fn claim(&self, worker: &str) -> Option<Lease> {
        self.claim_batch(worker, 1).await.into_iter().next()
    }

    /// Claims up to `max` due jobs for `worker` in one round (the production batch claim, as a
    /// worker with `max` free build slots does).
    pub async fn claim_batch(&self, worker: &str, max: usize) -> Vec<Lease> {
        let mut sessions = self.sessions.lock().await;
        if !sessions.contains_key(worker) {
            let s = ClaimSession::open(&self.store, worker)
                .await
                .expect("claim session");
            sessions.insert(worker.to_string(), s);
        }
        steps::claim_batch(&self.store, &sessions[worker], &self.cfg, max)
            .await
            .expect("claim")
    }

    /// Ends `worker`'s claim session, as its process dying would.
    pub async fn kill(&self, worker: &str) {
        self.sessions.lock().await.remove(worker);
    }

    /// Builds the document of `lease`'s environment, or fails as injected at
    /// [`Breakpoint::Built`].
    pub async fn build(&self, lease: &Lease) -> BuildResult {
        let built = document::build(&self.store, lease.environment_id, &self.cfg.build).await;
        let fault = match self.take_fault(Breakpoint::Built) {
            None | Some(Fault::WorkerDies | Fault::WorkerKilled) => {
                return match built {
                    Ok(doc) => BuildResult::Built(doc),
                    Err(e) => BuildResult::Failed(e),
                }
            }
            Some(f) => f,
        };
        match fault {
            Fault::DatabaseDown => BuildResult::Failed(BuildError::Store(StoreError::Database(
                sqlx::Error::PoolTimedOut,
            ))),
            Fault::QueryFails => BuildResult::Failed(BuildError::Store(StoreError::Database(
                sqlx::Error::Protocol("unexpected message from the server".into()),
            ))),
            Fault::TooLarge => BuildResult::Failed(BuildError::TooLarge {
                attempted: 100_001,
                budget: 100_000,
            }),
            Fault::Corrupt => BuildResult::Failed(BuildError::Store(StoreError::Corrupt {
                what: "segment rules",
                detail: "expected an array".into(),
            })),
            Fault::TimesOut => BuildResult::TimedOut(self.cfg.build_timeout),
            Fault::WorkerDies | Fault::WorkerKilled => unreachable!("handled above"),
        }
    }

    /// Ends `lease`'s job with `result` (the production settle step).
    pub async fn settle(&self, lease: &Lease, result: BuildResult) -> PublishOutcome {
        settle(
            &self.store,
            lease,
            result,
            &self.cfg,
            &self.publications,
            &Finishing::alone(),
        )
        .await
    }

    /// Finishes several built documents in one transaction (the production group-commit step,
    /// [`steps::finish_many`]), as a worker whose builds ended together does.
    pub async fn finish_together(
        &self,
        builds: &[(&Lease, &document::BuiltDocument)],
    ) -> Vec<steps::Finished> {
        steps::finish_many(&self.store, builds, &self.cfg)
            .await
            .expect("finish")
    }

    /// One publish, claim → build → settle, as a worker named `worker` runs it.
    pub async fn run(&self, worker: &str) -> Ran {
        let Some(lease) = self.claim(worker).await else {
            return Ran::NothingDue;
        };
        match self.take_fault(Breakpoint::Claimed) {
            Some(Fault::WorkerDies) => return Ran::Died(lease),
            Some(Fault::WorkerKilled) => {
                self.kill(worker).await;
                return Ran::Died(lease);
            }
            _ => {}
        }
        let dies_after_build = {
            let mut faults = self.faults.lock().expect("faults");
            match faults.get(&Breakpoint::Built) {
                Some(f @ (Fault::WorkerDies | Fault::WorkerKilled)) => {
                    let f = f.clone();
                    faults.remove(&Breakpoint::Built);
                    Some(f)
                }
                _ => None,
            }
        };
        let result = self.build(&lease).await;
        if let Some(f) = dies_after_build {
            if f == Fault::WorkerKilled {
                self.kill(worker).await;
            }
            return Ran::Died(lease);
        }
        let outcome = self.settle(&lease, result).await;
        Ran::Ended {
            environment_id: lease.environment_id,
            outcome,
        }
    }

    /// Runs the production batch ([`crate::batch::publish_batch`]) over `leases`, claimed by
    /// `worker`, stopping at `breakpoints` if given; the pipeline's injected faults do not apply.
    /// `shutdown` is the worker's shutdown signal. Returns each environment's outcome, in the
    /// order settled.
    pub async fn publish_batch(
        &self,
        worker: &str,
        leases: Vec<Lease>,
        breakpoints: Option<crate::Breakpoints>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Vec<(i64, PublishOutcome)> {
        let session_lost = match self.sessions.lock().await.get(worker) {
            Some(s) => s.lost(),
            // Killed: the session is gone, as a dead process's is.
            None => tokio::sync::watch::channel(true).1,
        };
        let cfg = WorkerConfig {
            breakpoints,
            ..self.cfg.clone()
        };
        let ctx = crate::batch::BatchContext {
            store: &self.store,
            cfg: &cfg,
            publications: &self.publications,
            finishing: &Finishing::alone(),
        };
        crate::batch::publish_batch(&ctx, leases, shutdown, session_lost)
            .await
            .into_iter()
            .map(|(lease, outcome, _)| (lease.environment_id, outcome))
            .collect()
    }

    /// Runs publishes for `worker` until nothing is due (at most `max` of them).
    pub async fn drain(&self, worker: &str, max: usize) -> Vec<Ran> {
        let mut ran = Vec::new();
        for _ in 0..max {
            match self.run(worker).await {
                Ran::NothingDue => break,
                r => ran.push(r),
            }
        }
        ran
    }

    /// The queue and the publish log as text, times relative to the clock's start: what the
    /// test snapshots at each step.
    pub async fn snapshot(&self) -> String {
        let mut tx = self.store.read().await.expect("read");
        let jobs = queue::jobs(&mut tx, None, flagstone_store::PageRequest::new(1, 1000))
            .await
            .expect("jobs");
        let revisions: Vec<(i64, i64)> = sql!(&mut tx, |c| {
            sqlx::query_as("SELECT id, revision FROM environments ORDER BY id")
                .fetch_all(c)
                .await
                .expect("revisions")
        });
        let published = document::published_revisions(&mut tx)
            .await
            .expect("published");
        let log = queue::publish_log(&mut tx, None, 1000).await.expect("log");
        let t = |ms: i64| format!("t+{}ms", ms - self.start);
        let mut out = format!("now {}\n", t(self.store.clock().now_ms()));
        out.push_str("environments:\n");
        for (id, revision) in revisions {
            let served = published
                .iter()
                .find(|(e, _)| *e == id)
                .map(|(_, r)| format!("r{r}"))
                .unwrap_or_else(|| "nothing".into());
            let _ = writeln!(out, "  env {id}: revision r{revision}, serving {served}");
        }
        out.push_str("publish_jobs:\n");
        if jobs.results.is_empty() {
            out.push_str("  (none)\n");
        }
        for j in jobs.results {
            let _ = write!(
                out,
                "  env {}: {} wanted r{} attempts {}",
                j.environment_id, j.state, j.wanted_revision, j.attempts
            );
            match j.state {
                JobState::Pending => {
                    let _ = write!(out, " due {}", t(j.run_after));
                }
                JobState::Running => {
                    let _ = write!(
                        out,
                        " lease {} until {}",
                        j.lease_owner.as_deref().unwrap_or("?"),
                        j.lease_until.map(t).unwrap_or_default()
                    );
                }
                JobState::Parked => {
                    let reason = j.park_reason.map(|r| r.as_str()).unwrap_or("?");
                    let _ = write!(out, " reason {reason}");
                }
            }
            if let Some(e) = &j.last_error {
                let _ = write!(out, "\n    last error: {e}");
            }
            out.push('\n');
        }
        out.push_str("publish_log:\n");
        if log.is_empty() {
            out.push_str("  (empty)\n");
        }
        for e in log {
            let _ = write!(
                out,
                "  env {} r{} {} by {} at {}",
                e.environment_id,
                e.revision,
                e.outcome,
                e.worker,
                t(e.finished_at)
            );
            if let Some(d) = &e.detail {
                let _ = write!(out, ": {d}");
            }
            out.push('\n');
        }
        out
    }
}
