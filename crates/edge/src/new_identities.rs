//! How many new identities one edge creates per environment and minute. The client key is
//! public by design, so without a bound anyone holding it could grow the store without limit by
//! sending identifiers it has never seen. Only requests that would *create* an identity count:
//! known identities, transient ones and evaluations (OFREP) never do.
//!
//! A token bucket per environment: a burst of up to the per-minute figure is admitted at once
//! (a launch, a migration's first page loads), then new identities are admitted at that rate;
//! past it the request is refused with 429, `Retry-After` and the limit's name, and nothing is
//! written. The bound is per edge process: with several edges the installation admits each
//! edge's share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The decision for one new identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Refused: a token frees up in this many seconds (at least 1).
    Refused {
        retry_after_secs: u64,
    },
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct NewIdentityLimiter {
    /// New identities per environment and minute; 0 admits every one.
    per_minute: u32,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl NewIdentityLimiter {
    pub fn new(per_minute: u32) -> Self {
        NewIdentityLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Whether one more new identity of `environment_id` may be created now.
    pub fn admit(&self, environment_id: i64) -> Admission {
        self.admit_at(environment_id, Instant::now())
    }

    fn admit_at(&self, environment_id: i64, now: Instant) -> Admission {
        if self.per_minute == 0 {
            return Admission::Admitted;
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().expect("new-identity buckets lock");
        let b = buckets.entry(environment_id).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Admission::Admitted
        } else {
            let wait = ((1.0 - b.tokens) / per_second).ceil().max(1.0);
            Admission::Refused {
                retry_after_secs: wait as u64,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_up_to_the_minute_figure_then_the_rate() {
        let l = NewIdentityLimiter::new(60);
        let t0 = Instant::now();
        for _ in 0..60 {
            assert_eq!(l.admit_at(1, t0), Admission::Admitted);
        }
        assert_eq!(
            l.admit_at(1, t0),
            Admission::Refused {
                retry_after_secs: 1
            }
        );
        // Other environments have their own bucket.
        assert_eq!(l.admit_at(2, t0), Admission::Admitted);
        // One a second comes back.
        let t1 = t0 + Duration::from_millis(1_000);
        assert_eq!(l.admit_at(1, t1), Admission::Admitted);
        assert!(matches!(l.admit_at(1, t1), Admission::Refused { .. }));
        // The bucket never holds more than a minute's worth.
        let later = t0 + Duration::from_secs(3_600);
        for _ in 0..60 {
            assert_eq!(l.admit_at(1, later), Admission::Admitted);
        }
        assert!(matches!(l.admit_at(1, later), Admission::Refused { .. }));
    }

    #[test]
    fn a_slow_rate_says_how_long_to_wait_and_zero_admits_everything() {
        let l = NewIdentityLimiter::new(2);
        let t0 = Instant::now();
        assert_eq!(l.admit_at(1, t0), Admission::Admitted);
        assert_eq!(l.admit_at(1, t0), Admission::Admitted);
        assert_eq!(
            l.admit_at(1, t0),
            Admission::Refused {
                retry_after_secs: 30
            }
        );
        let unlimited = NewIdentityLimiter::new(0);
        for _ in 0..10_000 {
            assert_eq!(unlimited.admit_at(1, t0), Admission::Admitted);
        }
    }
}
