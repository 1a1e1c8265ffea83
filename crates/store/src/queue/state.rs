//! The queue's vocabulary as stored: a job's [`JobState`], why it was parked ([`ParkReason`]) and
//! how a build ended in the publish log ([`BuildOutcome`]). Each is a TEXT column read and written
//! through these enums (never compared as strings), serialised the same way in the API, logs and
//! metric labels. The rules that choose between them live in `flagstone_tasks::policy`.

use std::fmt;
use std::str::FromStr;

/// A stored value that is not one of the enum's names (a newer version wrote it, or a hand edit).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// Declares a string enum stored as TEXT: `as_str`, `ALL`, `FromStr`, `Display`, serde in
/// snake_case, and sqlx encoding for both backends.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order (metrics register one series each).
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(s.parse::<$name>()?)
            }
        }
    };
}

text_enum! {
    /// Where a job is in its life. A job that is done has no row at all.
    JobState, "job state" {
        /// Waiting for `run_after` (debounce, backoff, or a follow-up).
        Pending = "pending",
        /// Claimed by a worker whose lease runs until `lease_until`.
        Running = "running",
        /// Stopped: an operator (or a new change, which may be the fix) must act.
        Parked = "parked",
    }
}

text_enum! {
    /// Why a job was parked: shown in the API, `flagstone status`, logs, metrics and tests.
    ParkReason, "park reason" {
        /// The document would pass the project's `max_document_bytes` budget.
        DocumentTooLarge = "document_too_large",
        /// Stored data could not be turned into a document.
        InvalidData = "invalid_data",
        /// Transient failures (database errors, timeouts) `max_attempts` times in a row.
        TooManyFailures = "too_many_failures",
        /// Claimants died `max_attempts` times: they crashed or stalled while working on it.
        WorkersDied = "workers_died",
        /// A webhook receiver answered with a client error (4xx other than 408 and 429):
        /// sending the same request again would be refused the same way.
        ReceiverRefused = "receiver_refused",
        /// A webhook's URL resolved to an address deliveries may not reach (SSRF rules).
        AddressRefused = "address_refused",
        /// A scheduled change could not be applied at its time (its feature was deleted, a
        /// value or allocation is no longer valid): applying it again would be refused too.
        ChangeRefused = "change_refused",
        /// A committed change request's scheduled change was due, but what it changes was
        /// changed since it was opened: it is not applied over that change.
        ChangeRequestStale = "change_request_stale",
    }
}

text_enum! {
    /// How one build ended, as the publish log records it.
    BuildOutcome, "build outcome" {
        /// The document was stored and is now served.
        Published = "published",
        /// Built, but an equal or newer document was already published.
        Superseded = "superseded",
        /// Failed; the job will be retried after backoff.
        Failed = "failed",
        /// Failed (or its workers kept dying) and the job was parked.
        Parked = "parked",
    }
}

pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_text() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for r in ParkReason::ALL {
            assert_eq!(r.as_str().parse::<ParkReason>().unwrap(), *r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for o in BuildOutcome::ALL {
            assert_eq!(o.as_str().parse::<BuildOutcome>().unwrap(), *o);
        }
        let e = "stuck".parse::<JobState>().unwrap_err();
        assert_eq!(e.to_string(), "unknown job state \"stuck\"");
    }
}

/// What happens to a job a worker held, decided by `flagstone_tasks::policy` and written by
/// [`super::apply`]. Times are Unix milliseconds on the store's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing left to do: the job's row is deleted.
    Done,
    /// Done, but newer input arrived meanwhile: due once more at `run_after`, with fresh
    /// attempts (however many changes came in, one follow-up).
    FollowUp { run_after: i64 },
    /// Failed; due again at `run_after`. `attempts` counts this failure.
    Retry {
        attempts: i64,
        run_after: i64,
        error: String,
    },
    /// Stop: the job waits for an operator (or for new input, which may be the fix).
    Park {
        reason: ParkReason,
        attempts: i64,
        message: String,
    },
    /// Not attempted (the worker is shutting down): due again at `run_after`, no attempt counted.
    HandBack { run_after: i64 },
}

impl Decision {
    /// The state the job is in after this decision (`None`: it no longer exists).
    pub fn next_state(&self) -> Option<JobState> {
        match self {
            Decision::Done => None,
            Decision::FollowUp { .. } | Decision::Retry { .. } | Decision::HandBack { .. } => {
                Some(JobState::Pending)
            }
            Decision::Park { .. } => Some(JobState::Parked),
        }
    }
}

/// What a claimant does with the due job it locked, decided by `flagstone_tasks::policy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Take the job: it runs under a lease until `lease_until`. `note` (why an earlier claim
    /// was taken over) is kept as the job's last error.
    Take {
        attempts: i64,
        lease_until: i64,
        note: Option<String>,
    },
    /// Do not hand it out again: park it (its claimants keep dying).
    Park {
        reason: ParkReason,
        attempts: i64,
        message: String,
    },
}

impl ClaimDecision {
    /// The job's [`Decision`] when the claim parks it (`None` for a take).
    pub fn parked(&self) -> Option<Decision> {
        match self {
            ClaimDecision::Park {
                reason,
                attempts,
                message,
            } => Some(Decision::Park {
                reason: *reason,
                attempts: *attempts,
                message: message.clone(),
            }),
            ClaimDecision::Take { .. } => None,
        }
    }
}
