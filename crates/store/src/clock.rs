//! Wall-clock time as Unix milliseconds, the unit every timestamp column uses, and the [`Clock`]
//! the publishing pipeline schedules by (the system clock in production; a manual one in tests,
//! so a lease can expire or a backoff pass without anyone sleeping).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where the queue reads "now" (debounce, leases, backoff, ages). Cheap to clone; clones of a
/// manual clock share its time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `start_ms` until [`Clock::advance`] moves it.
    pub fn manual(start_ms: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(start_ms))),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }

    /// Moves a manual clock forward by `ms` (no effect on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Some(t) = &self.manual {
            t.fetch_add(ms.max(0), Ordering::SeqCst);
        }
    }

    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }
}

/// RFC 3339 with microseconds and `Z`, as Flagsmith prints dates.
pub fn iso8601(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

/// A time given in a query (`?since=`): Unix milliseconds, or an ISO-8601 date-time with a
/// zone (what Flagstone's answers print); anything else is refused naming `field`.
pub fn parse_time(field: &str, text: &str) -> crate::Result<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            crate::StoreError::invalid(
                field,
                format!(
                    "{text:?} is neither Unix milliseconds nor an ISO-8601 date-time with a \
                     zone (such as 2026-12-07T09:00:00Z)"
                ),
            )
        })
}

/// Serde helpers that write a Unix-milliseconds field as an ISO-8601 string ([`iso8601`]), the
/// way Flagsmith's admin API prints every timestamp. Rows keep milliseconds; only the API shape
/// is a date string.
pub mod iso {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::iso8601(*ms))
    }

    /// The same for a timestamp that may be absent (`null`).
    pub mod option {
        use serde::Serializer;

        pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&super::super::iso8601(*ms)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_times_are_milliseconds_or_iso() {
        assert_eq!(
            super::parse_time("since", "1689350400123").unwrap(),
            1_689_350_400_123
        );
        assert_eq!(
            super::parse_time("since", "2023-07-14T16:00:00.123000Z").unwrap(),
            1_689_350_400_123
        );
        assert!(super::parse_time("since", "yesterday").is_err());
        assert!(super::parse_time("since", "2023-07-14T16:00:00").is_err());
    }

    #[test]
    fn formats_like_flagsmith() {
        assert_eq!(
            super::iso8601(1_689_350_400_123),
            "2023-07-14T16:00:00.123000Z"
        );
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = super::Clock::manual(1_000);
        let shared = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        shared.advance(250);
        assert_eq!(c.now_ms(), 1_250);
        assert!(super::Clock::system().now_ms() > 1_600_000_000_000);
    }
}
