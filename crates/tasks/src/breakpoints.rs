//! Named points in a publish where a test can stop the worker — after it claimed a job, after it
//! built the document — instead of slowing builds down and polling the clock (meilisearch's
//! `Breakpoint`). [`Breakpoints::stepped`] hands each stop to the test, which resumes it;
//! [`Breakpoints::hold_at`] stops there for good (a child process the test will kill).

use std::fmt;
use std::str::FromStr;

use tokio::sync::{mpsc, oneshot};

/// Where a publish can be stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Breakpoint {
    /// The job is claimed (running, under a lease kept alive by the heartbeat); nothing built.
    Claimed,
    /// The document is built; nothing stored yet.
    Built,
}

impl Breakpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Breakpoint::Claimed => "claimed",
            Breakpoint::Built => "built",
        }
    }
}

impl fmt::Display for Breakpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Breakpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "claimed" => Ok(Breakpoint::Claimed),
            "built" => Ok(Breakpoint::Built),
            _ => Err(format!("unknown breakpoint {s:?} (claimed, built)")),
        }
    }
}

/// A worker stopped at a breakpoint. Dropping it without [`Paused::resume`] leaves the worker
/// stopped until it shuts down or loses its lease.
#[derive(Debug)]
pub struct Paused {
    pub at: Breakpoint,
    pub environment_id: i64,
    resume: oneshot::Sender<()>,
}

impl Paused {
    pub fn resume(self) {
        let _ = self.resume.send(());
    }
}

#[derive(Clone, Debug)]
enum Mode {
    Stepped(mpsc::UnboundedSender<Paused>),
    HoldAt(Breakpoint),
}

/// The worker's side of the test hook (in `WorkerConfig::breakpoints`).
#[derive(Clone, Debug)]
pub struct Breakpoints(Mode);

impl Breakpoints {
    /// Every breakpoint stops the worker and is handed to the returned receiver.
    pub fn stepped() -> (Breakpoints, mpsc::UnboundedReceiver<Paused>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Breakpoints(Mode::Stepped(tx)), rx)
    }

    /// The worker stops at `at` and never goes on.
    pub fn hold_at(at: Breakpoint) -> Breakpoints {
        Breakpoints(Mode::HoldAt(at))
    }

    /// Called by the worker at `at`; returns when the test lets it go on.
    pub(crate) async fn reached(&self, at: Breakpoint, environment_id: i64) {
        match &self.0 {
            Mode::HoldAt(hold) if *hold == at => {
                tracing::warn!(environment = environment_id, breakpoint = %at, "held at a test breakpoint");
                std::future::pending::<()>().await
            }
            Mode::HoldAt(_) => {}
            Mode::Stepped(tx) => {
                let (resume, resumed) = oneshot::channel();
                let paused = Paused {
                    at,
                    environment_id,
                    resume,
                };
                if tx.send(paused).is_ok() && resumed.await.is_err() {
                    // Dropped without resuming: stay here.
                    std::future::pending::<()>().await
                }
            }
        }
    }
}
