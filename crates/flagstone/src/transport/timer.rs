//! A per-connection hyper timer that tells the first request head from the following ones.
//!
//! hyper has one timer for "waiting for a request head" (`header_read_timeout`), started as
//! soon as the connection is ready for the next request. For a new connection that is the header
//! timeout; for a kept-alive connection between requests it is also the idle timeout. hyper
//! asks for a fresh sleep for each head it waits for, so the first one gets the deadline hyper
//! computed from the header timeout and every later one gets `now + idle`.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use hyper_util::rt::TokioTimer;

pub(super) struct ConnTimer {
    inner: TokioTimer,
    heads: AtomicU64,
    idle: Duration,
}

impl ConnTimer {
    pub(super) fn new(idle: Duration) -> ConnTimer {
        ConnTimer {
            inner: TokioTimer::new(),
            heads: AtomicU64::new(0),
            idle,
        }
    }

    fn head_deadline(&self, header_deadline: Instant) -> Instant {
        if self.heads.fetch_add(1, Ordering::Relaxed) == 0 {
            header_deadline
        } else {
            self.inner.now() + self.idle
        }
    }
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.inner.sleep(duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.inner.sleep_until(self.head_deadline(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        self.inner.reset(sleep, self.head_deadline(new_deadline))
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }
}
