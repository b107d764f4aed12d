//! The time the engine reads: the system clock in production, a manual one in tests.
//!
//! Dispatch (retry schedules, rate-limit windows, platform pauses, async flushes) and the
//! endpoint-health watch (`delivery.failing_after`, `delivery.disable_after`) take every "now"
//! and every wait from the [`Clock`] in their context, never from `Instant::now()` or the wall
//! clock directly. A [`Clock::manual`] stands still until a test moves it with
//! [`Clock::advance`], so a test can check that a retry goes out at exactly 5,000 ms and not at
//! 4,999, or disable a webhook after five days, without waiting for either.
//!
//! Only scheduling reads this clock. Timeouts of I/O (HTTP attempts, request bodies) stay on real
//! time: they bound what the outside world does, not what the engine decides.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The system wall clock in Unix milliseconds, for timestamps outside scheduling (commit times,
/// file scans, outages).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A handle on the engine's clock. Cheap to clone; clones of a manual clock move together.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    /// The instant the manual clock started at.
    base: Instant,
    /// Wall-clock milliseconds (Unix) at `base`.
    base_wall_ms: i64,
    /// Milliseconds moved since `base`; receivers wake when it changes.
    offset_ms: watch::Sender<u64>,
}

/// A future that completes when the clock reaches an instant.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

impl Clock {
    /// The system clock: monotonic time for waits, the wall clock for timestamps.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that starts at `wall_ms` (Unix milliseconds) and moves only by
    /// [`Clock::advance`].
    pub fn manual(wall_ms: i64) -> Clock {
        let (offset_ms, _) = watch::channel(0);
        // Dispatch keeps due times as whole milliseconds since its own origin (rounded up):
        // start on a whole millisecond of that origin, so that "due now" is not a fraction of a
        // millisecond in the future of a clock that only moves when told.
        let epoch = crate::dispatch::epoch();
        let since = Instant::now().saturating_duration_since(epoch);
        let base = epoch + Duration::from_millis(u64::try_from(since.as_millis()).unwrap_or(0) + 1);
        Clock {
            manual: Some(Arc::new(Manual {
                base,
                base_wall_ms: wall_ms,
                offset_ms,
            })),
        }
    }

    /// Now, as a monotonic instant.
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => m.base + Duration::from_millis(*m.offset_ms.borrow()),
        }
    }

    /// Now, as Unix milliseconds.
    pub fn wall_ms(&self) -> i64 {
        match &self.manual {
            None => now_ms(),
            Some(m) => m
                .base_wall_ms
                .saturating_add(i64::try_from(*m.offset_ms.borrow()).unwrap_or(i64::MAX)),
        }
    }

    /// Moves a manual clock forward by `d` (whole milliseconds) and wakes whatever waits for a
    /// time it has now reached. The system clock cannot be moved: returns false.
    pub fn advance(&self, d: Duration) -> bool {
        let Some(m) = &self.manual else {
            return false;
        };
        let add = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        m.offset_ms.send_modify(|o| *o = o.saturating_add(add));
        true
    }

    /// Completes once the clock has reached `at`.
    pub fn sleep_until(&self, at: Instant) -> Sleep {
        match &self.manual {
            None => Box::pin(tokio::time::sleep_until(at.into())),
            Some(m) => {
                let m = m.clone();
                let mut rx = m.offset_ms.subscribe();
                Box::pin(async move {
                    loop {
                        let now = m.base + Duration::from_millis(*rx.borrow_and_update());
                        if now >= at {
                            return;
                        }
                        // The sender lives in `m`, which this future holds: `changed` only
                        // fails if it is dropped, which cannot happen while we wait.
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                })
            }
        }
    }

    /// Completes once `d` has passed on this clock.
    pub fn sleep(&self, d: Duration) -> Sleep {
        self.sleep_until(crate::dispatch::later(self.now(), d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_told_and_wakes_sleepers_exactly_on_time() {
        let c = Clock::manual(1_000_000);
        let t0 = c.now();
        assert_eq!(c.wall_ms(), 1_000_000);
        let mut sleep = c.sleep(Duration::from_millis(5_000));
        let poll = |s: &mut Sleep| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            s.as_mut().poll(&mut cx).is_ready()
        };
        assert!(!poll(&mut sleep));
        assert!(c.advance(Duration::from_millis(4_999)));
        assert!(!poll(&mut sleep), "woke 1 ms early");
        assert_eq!(c.wall_ms(), 1_004_999);
        c.clone().advance(Duration::from_millis(1));
        assert!(poll(&mut sleep));
        assert_eq!(c.now() - t0, Duration::from_millis(5_000));
        assert_eq!(c.wall_ms(), 1_005_000);
    }

    #[tokio::test]
    async fn the_system_clock_cannot_be_moved() {
        let c = Clock::system();
        assert!(!c.advance(Duration::from_secs(1)));
        let before = c.now();
        c.sleep(Duration::from_millis(1)).await;
        assert!(c.now() > before);
    }
}
