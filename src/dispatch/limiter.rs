//! Sliding-window rate limits of one destination (a bot), e.g. `20/60s` or `5/1s` + `100/60s`.
//!
//! Kept as the times of recent sends, so that the budget can be saved and rebuilt after a restart:
//! a crash loop must not trip a platform's throttle.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::Window;

/// Extra time a send stays counted beyond its window (ms): requests do not arrive at the
/// platform exactly when they leave, so a send timed to the millisecond could land inside the
/// platform's window. 5 % of the window, at least 50 ms.
fn margin(per: Duration) -> i64 {
    (per.as_millis() as i64 / 20).max(50)
}

/// Send times (Unix milliseconds) of one destination, newest last, bounded by its windows.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    windows: Vec<Window>,
    sends: VecDeque<i64>,
}

impl Limiter {
    /// A limiter with these windows and past send times (any order; old ones are dropped).
    pub fn new(windows: Vec<Window>, mut past: Vec<i64>) -> Limiter {
        past.sort_unstable();
        let mut l = Limiter {
            windows,
            sends: past.into(),
        };
        l.trim(i64::MAX);
        l
    }

    /// Whether any window applies.
    pub fn is_limited(&self) -> bool {
        !self.windows.is_empty()
    }

    fn longest_ms(&self) -> i64 {
        self.windows
            .iter()
            .map(|w| w.per.as_millis() as i64)
            .max()
            .unwrap_or(0)
    }

    fn max_count(&self) -> usize {
        self.windows
            .iter()
            .map(|w| w.count as usize)
            .max()
            .unwrap_or(0)
    }

    /// Drops sends no window can see any more (and keeps at most the largest count).
    fn trim(&mut self, now: i64) {
        let horizon = now.saturating_sub(self.longest_ms());
        if now != i64::MAX {
            while self.sends.front().is_some_and(|t| *t <= horizon) {
                self.sends.pop_front();
            }
        }
        while self.sends.len() > self.max_count() {
            self.sends.pop_front();
        }
    }

    fn in_window(&self, now: i64, per: Duration) -> usize {
        let from = now - per.as_millis() as i64 - margin(per);
        self.sends.iter().rev().take_while(|t| **t > from).count()
    }

    /// How long until one more send is allowed (zero = now).
    pub fn wait(&self, now: i64) -> Duration {
        let mut wait = 0i64;
        for w in &self.windows {
            let n = self.in_window(now, w.per);
            if n >= w.count as usize {
                // The oldest send that must leave the window before one more fits.
                let idx = self.sends.len() - w.count as usize;
                let frees = self.sends[idx] + w.per.as_millis() as i64 + margin(w.per);
                wait = wait.max(frees - now);
            }
        }
        Duration::from_millis(wait.max(0) as u64)
    }

    /// How many sends are allowed right now, counting every window.
    pub fn remaining(&self, now: i64) -> usize {
        self.windows
            .iter()
            .map(|w| (w.count as usize).saturating_sub(self.in_window(now, w.per)))
            .min()
            .unwrap_or(usize::MAX)
    }

    /// Records a send at `now`.
    pub fn record(&mut self, now: i64) {
        self.sends.push_back(now);
        self.trim(now);
    }

    /// The send times to save.
    pub fn snapshot(&self) -> Vec<i64> {
        self.sends.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(count: u32, ms: u64) -> Window {
        Window {
            count,
            per: Duration::from_millis(ms),
        }
    }

    #[test]
    fn one_window() {
        let mut l = Limiter::new(vec![w(3, 1000)], vec![]);
        assert_eq!(l.remaining(0), 3);
        for t in [0, 100, 200] {
            assert_eq!(l.wait(t), Duration::ZERO);
            l.record(t);
        }
        assert_eq!(l.remaining(300), 0);
        // The send at 0 leaves the window after 1000 ms plus the 50 ms margin.
        assert_eq!(l.wait(300), Duration::from_millis(750));
        assert_eq!(l.remaining(1001), 0);
        assert_eq!(l.wait(1050), Duration::ZERO);
        assert_eq!(l.remaining(1050), 1);
    }

    #[test]
    fn two_windows_take_the_longer_wait() {
        // 2 per 100 ms and 3 per 1 s.
        let mut l = Limiter::new(vec![w(2, 100), w(3, 1000)], vec![]);
        l.record(0);
        l.record(10);
        assert_eq!(l.wait(20), Duration::from_millis(130));
        l.record(150);
        assert_eq!(l.remaining(300), 0);
        assert_eq!(l.wait(300), Duration::from_millis(750));
    }

    #[test]
    fn rebuilt_from_a_snapshot() {
        let mut l = Limiter::new(vec![w(2, 1000)], vec![]);
        l.record(5_000);
        l.record(5_500);
        let again = Limiter::new(vec![w(2, 1000)], l.snapshot());
        assert_eq!(again.remaining(5_600), 0);
        assert_eq!(again.wait(5_600), Duration::from_millis(450));
    }

    #[test]
    fn unlimited_without_windows() {
        let l = Limiter::new(vec![], vec![1, 2, 3]);
        assert!(!l.is_limited());
        assert_eq!(l.wait(0), Duration::ZERO);
        assert_eq!(l.remaining(0), usize::MAX);
    }
}
