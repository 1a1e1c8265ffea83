//! Password hashing for the API: Argon2id (`flagstone_access::password`) on the blocking
//! pool, at most one hash per core at a time (each holds ~19 MiB), and a dummy hash so that
//! signing in with an unknown email costs the same as with a wrong password.

use std::sync::{Arc, Mutex};

use flagstone_access::password::{self, Cost};
use tokio::sync::Semaphore;

/// The dummy hash for a cost, made once per process (it takes as long as a real one).
fn dummy_hash(cost: Cost) -> String {
    static DUMMIES: Mutex<Vec<(Cost, String)>> = Mutex::new(Vec::new());
    let mut dummies = DUMMIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, h)) = dummies.iter().find(|(c, _)| *c == cost) {
        return h.clone();
    }
    let h = password::hash(&flagstone_access::secrets::random_alphanumeric(24), cost);
    dummies.push((cost, h.clone()));
    h
}

pub struct Passwords {
    cost: Cost,
    permits: Arc<Semaphore>,
    /// A hash of a random password with the current cost, verified against when the email is
    /// unknown (the result is always false).
    dummy: String,
}

impl Passwords {
    pub fn new(cost: Cost) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords {
            cost,
            permits: Arc::new(Semaphore::new(cores)),
            dummy: dummy_hash(cost),
        }
    }

    pub fn cost(&self) -> Cost {
        self.cost
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self.permits.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(f)
            .await
            .expect("password hashing does not panic")
    }

    pub async fn hash(&self, plain: String) -> String {
        let cost = self.cost;
        self.blocking(move || password::hash(&plain, cost)).await
    }

    /// Verifies `plain` against `stored`, or against the dummy hash when there is none (then
    /// the answer is false, after the same work).
    pub async fn verify(&self, plain: String, stored: Option<String>) -> bool {
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (self.dummy.clone(), false),
        };
        let ok = self.blocking(move || password::verify(&plain, &hash)).await;
        ok && real
    }
}
