//! The queue's rules as pure functions: given what a job has been through, decide what happens
//! next — claim or park, retry or park, follow up or finish, hand back. No I/O, no clock, no
//! randomness (callers pass `now` and the [`Jitter`]), so every rule is unit-tested here and the
//! store only writes the resulting [`Decision`] or [`ClaimDecision`].
//!
//! Nothing here is specific to publishing: any durable queue with the same claim / lease /
//! backoff / park discipline (webhook deliveries, say) calls the same functions with its own
//! [`Rules`]. Entry points: [`on_claim`], [`after_success`], [`after_failure`], [`on_shutdown`].
//!
//! How a dead claimant is *detected* (its claim session ended, or — the backstop — its lease
//! expired) is the store's business: it reports a [`Claimant::Lapsed`] with its [`Lapse`] and
//! the rule here is the same either way — the lapsed attempt counts, and `max_attempts` lapses
//! park the job.

use flagstone_store::queue::{ClaimDecision, Claimant, Decision, DueJob, Lapse, ParkReason};

/// The tunables of one queue. Defaults suit the publish queue in production; tests shorten them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// How long a claim is valid without a heartbeat.
    pub lease_ms: i64,
    /// Failed or crashed attempts before a job is parked.
    pub max_attempts: i64,
    /// First retry delay; doubles per attempt up to `backoff_cap_ms`, scaled by the jitter.
    pub backoff_base_ms: i64,
    pub backoff_cap_ms: i64,
    /// How long claims must keep lapsing through ended sessions (and `max_attempts` times)
    /// before the job is parked. A session ends both when its worker dies and when its
    /// connection is cut; only a poison environment keeps killing workers for this long, while a
    /// database failover or a flapping network ends many sessions within seconds and must not
    /// park every environment being built at the time.
    pub session_lapse_window_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            lease_ms: 30_000,
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 5 * 60_000,
            session_lapse_window_ms: 30_000,
        }
    }
}

/// The random factor in `[0.5, 1]` that spreads retries of jobs that failed together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter(f64);

impl Jitter {
    /// No spreading: the full backoff (what deterministic tests use).
    pub const NONE: Jitter = Jitter(1.0);

    /// `factor`, clamped into `[0.5, 1]`.
    pub fn new(factor: f64) -> Jitter {
        Jitter(if factor.is_nan() {
            1.0
        } else {
            factor.clamp(0.5, 1.0)
        })
    }

    pub fn random() -> Jitter {
        use rand::Rng;
        Jitter(rand::thread_rng().gen_range(0.5..=1.0))
    }

    pub fn factor(self) -> f64 {
        self.0
    }
}

/// How an attempt failed, as far as the queue is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying (a timeout, an unexplained error): backoff, park after `max_attempts`.
    Transient,
    /// The database could not be reached (connection cut, failover, pool exhausted): nobody's
    /// fault, least of all the environment's. Retried after the base backoff without counting
    /// an attempt, so an outage never parks environments — once the database is back they
    /// publish on their own, without waiting for another change.
    StoreUnavailable,
    /// Trying the same input again fails the same way: park now, unless newer input arrived
    /// (it may be the fix).
    Permanent(ParkReason),
}

/// A failed attempt, as the policy needs to know it.
#[derive(Clone, Copy, Debug)]
pub struct Failed<'a> {
    /// Attempts recorded before this one (the job row's `attempts` while the lease held).
    pub attempts_before: i64,
    pub failure: Failure,
    /// The job was requested again with newer input while this attempt ran (publishing: the
    /// environment's revision moved past the one being built).
    pub newer_input: bool,
    pub error: &'a str,
}

/// When a lease taken or renewed at `now` runs out.
pub fn lease_until(rules: &Rules, now: i64) -> i64 {
    now + rules.lease_ms
}

/// A claimant found `due`. It takes the job under a lease — counting a lapsed claim as an
/// attempt, since the claimant may have died of this very job — or, once claimants have lapsed
/// `max_attempts` times, parks it instead of handing it out again.
pub fn on_claim(rules: &Rules, due: &DueJob, now: i64) -> ClaimDecision {
    match &due.claimant {
        Claimant::Unclaimed => ClaimDecision::Take {
            attempts: due.attempts,
            lease_until: lease_until(rules, now),
            note: None,
        },
        Claimant::Lapsed { owner, cause } => {
            let attempts = due.attempts + 1;
            let lapsing_long_enough = match cause {
                // Each expired lease already took `lease_ms`: repeated, they are a pattern.
                Lapse::LeaseExpired => true,
                Lapse::SessionEnded { waiting_since } => {
                    now - waiting_since >= rules.session_lapse_window_ms
                }
            };
            if attempts >= rules.max_attempts && lapsing_long_enough {
                ClaimDecision::Park {
                    reason: ParkReason::WorkersDied,
                    attempts,
                    message: format!(
                        "claims lapsed {attempts} times (last held by worker {owner}): \
                         workers died or stalled while building this environment (crash, \
                         kill -9, out of memory)"
                    ),
                }
            } else {
                let how = match cause {
                    Lapse::SessionEnded { .. } => {
                        "its session ended mid-build (process died or lost \
                                            its database connection)"
                    }
                    Lapse::LeaseExpired => "its lease expired mid-build (crashed or stalled)",
                };
                ClaimDecision::Take {
                    attempts,
                    lease_until: lease_until(rules, now),
                    note: Some(format!("worker {owner}: {how}; reclaimed")),
                }
            }
        }
    }
}

/// The attempt succeeded. If newer input arrived meanwhile the job runs once more after
/// `follow_up_delay_ms` with fresh attempts (one follow-up however much arrived); otherwise it
/// is done.
pub fn after_success(newer_input: bool, now: i64, follow_up_delay_ms: i64) -> Decision {
    if newer_input {
        Decision::FollowUp {
            run_after: now + follow_up_delay_ms,
        }
    } else {
        Decision::Done
    }
}

/// The delay before retry number `attempts`: `min(cap, base * 2^(attempts-1))`, scaled by the
/// jitter so jobs that failed together do not retry together.
pub fn backoff_ms(rules: &Rules, attempts: i64, jitter: Jitter) -> i64 {
    let exp = (attempts - 1).clamp(0, 30) as u32;
    let full = rules
        .backoff_base_ms
        .saturating_mul(1i64 << exp)
        .min(rules.backoff_cap_ms);
    (full as f64 * jitter.factor()) as i64
}

/// The attempt failed:
/// - a permanent failure parks at once with its reason, unless newer input arrived, in which
///   case the job retries after `newer_input_delay_ms` (the input may be the fix);
/// - a transient failure retries after [`backoff_ms`];
/// - an unreachable store retries after the base backoff, uncounted, and never parks;
/// - either way, the `max_attempts`-th failure parks (transient ones as
///   [`ParkReason::TooManyFailures`], with the last error kept in the message).
pub fn after_failure(
    rules: &Rules,
    failed: &Failed<'_>,
    now: i64,
    newer_input_delay_ms: i64,
    jitter: Jitter,
) -> Decision {
    let attempts = failed.attempts_before + 1;
    let park = |reason: ParkReason| {
        let message = if reason == ParkReason::TooManyFailures {
            format!("failed {attempts} times; last error: {}", failed.error)
        } else {
            failed.error.to_string()
        };
        Decision::Park {
            reason,
            attempts,
            message,
        }
    };
    match failed.failure {
        Failure::Permanent(reason) if !failed.newer_input => park(reason),
        Failure::Permanent(reason) if attempts >= rules.max_attempts => park(reason),
        Failure::Transient if attempts >= rules.max_attempts => park(ParkReason::TooManyFailures),
        Failure::Permanent(_) => Decision::Retry {
            attempts,
            run_after: now + newer_input_delay_ms,
            error: failed.error.to_string(),
        },
        Failure::Transient => Decision::Retry {
            attempts,
            run_after: now + backoff_ms(rules, attempts, jitter),
            error: failed.error.to_string(),
        },
        Failure::StoreUnavailable => Decision::Retry {
            attempts: failed.attempts_before,
            run_after: now + backoff_ms(rules, 1, jitter),
            error: failed.error.to_string(),
        },
    }
}

/// The worker is shutting down before the attempt finished: the job is handed back, due now,
/// and the attempt is not counted (the worker did not fail; it was asked to stop).
pub fn on_shutdown(now: i64) -> Decision {
    Decision::HandBack { run_after: now }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            lease_ms: 1_000,
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_cap_ms: 350,
            session_lapse_window_ms: 2_000,
        }
    }

    fn due(attempts: i64, claimant: Claimant) -> DueJob {
        DueJob {
            environment_id: 7,
            wanted_revision: 12,
            attempts,
            claimant,
        }
    }

    fn lapsed() -> Claimant {
        Claimant::Lapsed {
            owner: "w-dead".into(),
            cause: Lapse::LeaseExpired,
        }
    }

    fn failed(attempts_before: i64, failure: Failure, newer_input: bool) -> Failed<'static> {
        Failed {
            attempts_before,
            failure,
            newer_input,
            error: "db timeout",
        }
    }

    #[test]
    fn an_unclaimed_job_is_taken_under_a_lease_without_counting_an_attempt() {
        assert_eq!(
            on_claim(&rules(), &due(1, Claimant::Unclaimed), 5_000),
            ClaimDecision::Take {
                attempts: 1,
                lease_until: 6_000,
                note: None
            }
        );
    }

    #[test]
    fn a_lapsed_claim_counts_as_an_attempt_and_says_whose_it_was() {
        let ClaimDecision::Take {
            attempts,
            lease_until,
            note,
        } = on_claim(&rules(), &due(0, lapsed()), 5_000)
        else {
            panic!("expected a claim");
        };
        assert_eq!((attempts, lease_until), (1, 6_000));
        assert_eq!(
            note.as_deref(),
            Some("worker w-dead: its lease expired mid-build (crashed or stalled); reclaimed")
        );
        // A claim whose session ended lapses the same way, and says so.
        let dead = Claimant::Lapsed {
            owner: "w-dead".into(),
            cause: Lapse::SessionEnded {
                waiting_since: 4_000,
            },
        };
        let ClaimDecision::Take { attempts, note, .. } = on_claim(&rules(), &due(0, dead), 5_000)
        else {
            panic!("expected a claim");
        };
        assert_eq!(attempts, 1);
        assert!(note.unwrap().contains("its session ended mid-build"));
    }

    #[test]
    fn claimants_that_keep_dying_get_the_job_parked() {
        match on_claim(&rules(), &due(2, lapsed()), 5_000) {
            ClaimDecision::Park {
                reason, attempts, ..
            } => assert_eq!((reason, attempts), (ParkReason::WorkersDied, 3)),
            other => panic!("expected parking, got {other:?}"),
        }
        // A job that only failed before (no lapse now) is still handed out.
        assert!(matches!(
            on_claim(&rules(), &due(2, Claimant::Unclaimed), 0),
            ClaimDecision::Take { attempts: 2, .. }
        ));
    }

    #[test]
    fn ended_sessions_park_only_when_they_keep_ending_for_the_window() {
        let ended = |waiting_since| Claimant::Lapsed {
            owner: "w-cut".into(),
            cause: Lapse::SessionEnded { waiting_since },
        };
        // The third lapse, 1.5 s into the job's wait (window 2 s): a flapping connection, taken.
        assert!(matches!(
            on_claim(&rules(), &due(2, ended(3_500)), 5_000),
            ClaimDecision::Take { attempts: 3, .. }
        ));
        // The same once the lapses have gone on for the window: workers keep dying on it.
        assert!(matches!(
            on_claim(&rules(), &due(2, ended(3_000)), 5_000),
            ClaimDecision::Park {
                reason: ParkReason::WorkersDied,
                attempts: 3,
                ..
            }
        ));
    }

    #[test]
    fn success_finishes_or_follows_up_once() {
        assert_eq!(after_success(false, 100, 50), Decision::Done);
        assert_eq!(
            after_success(true, 100, 50),
            Decision::FollowUp { run_after: 150 }
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens_it() {
        let r = rules();
        let full: Vec<i64> = (1..=5).map(|a| backoff_ms(&r, a, Jitter::NONE)).collect();
        assert_eq!(full, vec![100, 200, 350, 350, 350]);
        assert_eq!(backoff_ms(&r, 2, Jitter::new(0.5)), 100);
        assert_eq!(backoff_ms(&r, 2, Jitter::new(0.1)), 100, "clamped to 0.5");
        assert_eq!(backoff_ms(&r, 0, Jitter::NONE), 100, "never below the base");
        assert_eq!(backoff_ms(&r, i64::MAX, Jitter::NONE), 350, "no overflow");
        for _ in 0..100 {
            let b = backoff_ms(&r, 3, Jitter::random());
            assert!((175..=350).contains(&b), "{b}");
        }
    }

    #[test]
    fn transient_failures_retry_with_backoff_then_park() {
        let r = rules();
        assert_eq!(
            after_failure(
                &r,
                &failed(0, Failure::Transient, false),
                1_000,
                50,
                Jitter::NONE
            ),
            Decision::Retry {
                attempts: 1,
                run_after: 1_100,
                error: "db timeout".into()
            }
        );
        assert_eq!(
            after_failure(
                &r,
                &failed(1, Failure::Transient, true),
                1_000,
                50,
                Jitter::NONE
            ),
            Decision::Retry {
                attempts: 2,
                run_after: 1_200,
                error: "db timeout".into()
            },
            "newer input does not shorten a transient backoff"
        );
        assert_eq!(
            after_failure(
                &r,
                &failed(2, Failure::Transient, false),
                1_000,
                50,
                Jitter::NONE
            ),
            Decision::Park {
                reason: ParkReason::TooManyFailures,
                attempts: 3,
                message: "failed 3 times; last error: db timeout".into()
            }
        );
    }

    #[test]
    fn an_unreachable_store_retries_uncounted_and_never_parks() {
        let r = rules();
        // Far past `max_attempts` failures of other kinds: still a retry at the base backoff.
        for before in [0, 2, 50] {
            assert_eq!(
                after_failure(
                    &r,
                    &failed(before, Failure::StoreUnavailable, false),
                    1_000,
                    50,
                    Jitter::NONE
                ),
                Decision::Retry {
                    attempts: before,
                    run_after: 1_100,
                    error: "db timeout".into()
                }
            );
        }
    }

    #[test]
    fn a_permanent_failure_parks_at_once_unless_newer_input_may_fix_it() {
        let r = rules();
        let too_large = Failure::Permanent(ParkReason::DocumentTooLarge);
        assert_eq!(
            after_failure(&r, &failed(0, too_large, false), 1_000, 50, Jitter::NONE),
            Decision::Park {
                reason: ParkReason::DocumentTooLarge,
                attempts: 1,
                message: "db timeout".into()
            }
        );
        assert_eq!(
            after_failure(&r, &failed(0, too_large, true), 1_000, 50, Jitter::NONE),
            Decision::Retry {
                attempts: 1,
                run_after: 1_050,
                error: "db timeout".into()
            },
            "retried after the debounce, not the backoff"
        );
        assert!(matches!(
            after_failure(&r, &failed(2, too_large, true), 1_000, 50, Jitter::NONE),
            Decision::Park {
                reason: ParkReason::DocumentTooLarge,
                attempts: 3,
                ..
            }
        ));
    }

    #[test]
    fn shutdown_hands_the_job_back_due_now() {
        assert_eq!(on_shutdown(42), Decision::HandBack { run_after: 42 });
        assert_eq!(
            on_shutdown(42).next_state(),
            Some(flagstone_store::queue::JobState::Pending)
        );
    }
}
