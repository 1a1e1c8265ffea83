//! Rate limits on failures: sign-in attempts per email and per client address, and failed
//! authentications (keys, tokens, sessions) per client address. Only failures count; once a
//! key has `max` failures within `window`, it is blocked until that window ends, and the
//! caller answers 429 with `Retry-After`.
//!
//! State is in memory, per process (several API processes each apply the limits), and bounded:
//! at most `MAX_KEYS` keys are tracked; expired windows are dropped first, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;

/// Keys tracked per limit at most.
pub const MAX_KEYS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Window {
    start_ms: i64,
    failures: u32,
}

/// A fixed-window failure counter per key.
#[derive(Debug)]
pub struct Throttle {
    max: u32,
    window_ms: i64,
    windows: Mutex<HashMap<String, Window>>,
}

/// A key is blocked: try again after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl Throttle {
    pub fn new(max: u32, window_ms: i64) -> Self {
        Throttle {
            max: max.max(1),
            window_ms: window_ms.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn retry_after(&self, w: &Window, now: i64) -> RetryAfter {
        let ms = (w.start_ms + self.window_ms - now).max(1);
        RetryAfter(((ms + 999) / 1000) as u64)
    }

    /// Whether `key` is blocked now.
    pub fn blocked(&self, key: &str, now: i64) -> Option<RetryAfter> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.get(key)?;
        (now < w.start_ms + self.window_ms && w.failures >= self.max)
            .then(|| self.retry_after(w, now))
    }

    /// Counts a failure of `key`; returns the wait if `key` is now blocked.
    pub fn fail(&self, key: &str, now: i64) -> Option<RetryAfter> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if !windows.contains_key(key) && windows.len() >= MAX_KEYS {
            let window = self.window_ms;
            windows.retain(|_, w| now < w.start_ms + window);
            if windows.len() >= MAX_KEYS {
                if let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, w)| w.start_ms)
                    .map(|(k, _)| k.clone())
                {
                    windows.remove(&oldest);
                }
            }
        }
        let w = windows.entry(key.to_string()).or_insert(Window {
            start_ms: now,
            failures: 0,
        });
        if now >= w.start_ms + self.window_ms {
            *w = Window {
                start_ms: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
        let w = *w;
        (w.failures >= self.max).then(|| self.retry_after(&w, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_ends() {
        let t = Throttle::new(3, 60_000);
        assert_eq!(t.fail("a", 0), None);
        assert_eq!(t.fail("a", 1_000), None);
        assert_eq!(t.blocked("a", 1_000), None);
        assert_eq!(t.fail("a", 2_000), Some(RetryAfter(58)));
        assert_eq!(t.blocked("a", 30_500), Some(RetryAfter(30)));
        assert_eq!(t.blocked("b", 30_500), None, "other keys are not affected");
        assert_eq!(t.blocked("a", 60_000), None, "lifted when the window ends");
        assert_eq!(t.fail("a", 60_000), None, "a new window starts");
    }
}
