//! Capped exponential backoff: how long to wait before trying again after a failure.
//!
//! Every retry loop in sanhook that waits longer after each failure uses this one type: the
//! database source between reconnects, the tailer between failed commits, the CLI's API client
//! between tries of a request. Each keeps its own numbers (a reconnect may wait half a minute,
//! a load-test batch a second), the rule is the same: `initial`, then `factor` times longer after
//! each failure up to `max`, and `initial` again after a success ([`Backoff::reset`]).

use std::time::Duration;

/// The waits of one retry loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: u32,
    /// The wait the next failure gets.
    next: Duration,
    /// Failures since the last reset.
    failures: u32,
}

impl Backoff {
    /// Waits `initial`, then twice as long after each failure, never longer than `max` (a `max`
    /// below `initial` is taken as `initial`: the waits then stay at `initial`).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            factor: 2,
            next: initial,
            failures: 0,
        }
    }

    /// The same, growing `factor` times per failure instead of twice (1 = a constant wait).
    pub fn with_factor(self, factor: u32) -> Backoff {
        Backoff {
            factor: factor.max(1),
            ..self
        }
    }

    /// Counts a failure: returns how long to wait before the next try, and lengthens the wait
    /// after that.
    pub fn next_delay(&mut self) -> Duration {
        let wait = self.next;
        self.next = self
            .next
            .checked_mul(self.factor)
            .map_or(self.max, |d| d.min(self.max));
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// The wait the next failure will get, without counting one.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Whether a failure has been counted since the last reset (the loop is in an outage).
    pub fn is_backing_off(&self) -> bool {
        self.failures > 0
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn waits(b: &mut Backoff, n: usize) -> Vec<Duration> {
        (0..n).map(|_| b.next_delay()).collect()
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let mut b = Backoff::new(ms(500), ms(3000));
        assert_eq!(b.peek(), ms(500));
        assert_eq!(
            waits(&mut b, 6),
            [ms(500), ms(1000), ms(2000), ms(3000), ms(3000), ms(3000)]
        );
    }

    #[test]
    fn a_reset_starts_over_and_ends_the_outage() {
        let mut b = Backoff::new(ms(100), ms(1000));
        assert!(!b.is_backing_off());
        waits(&mut b, 3);
        assert!(b.is_backing_off());
        assert_eq!(b.peek(), ms(800));
        b.reset();
        assert!(!b.is_backing_off());
        assert_eq!(waits(&mut b, 2), [ms(100), ms(200)]);
    }

    #[test]
    fn other_factors_and_odd_limits() {
        let mut b = Backoff::new(ms(10), ms(1000)).with_factor(3);
        assert_eq!(waits(&mut b, 5), [ms(10), ms(30), ms(90), ms(270), ms(810)]);
        // A factor of 0 would wait nothing after the first failure: it is taken as 1.
        let mut b = Backoff::new(ms(10), ms(1000)).with_factor(0);
        assert_eq!(waits(&mut b, 3), [ms(10), ms(10), ms(10)]);
        // A cap below the first wait keeps the first wait.
        let mut b = Backoff::new(ms(50), ms(10));
        assert_eq!(waits(&mut b, 2), [ms(50), ms(50)]);
        // Growth that would overflow a Duration stops at the cap.
        let mut b = Backoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        b.next_delay();
        b.next_delay();
        assert_eq!(b.peek(), Duration::MAX);
        assert!(b.is_backing_off());
    }
}
