//! Sliding-window rate limits of one destination (a bot), e.g. `20/60s` or `5/1s` + `100/60s`.
//!
//! Kept as the times of recent sends, so that the budget can be saved and rebuilt after a restart:
//! a crash loop must not trip a platform's throttle.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::config::Window;

/// Extra time a send stays counted beyond its window (ms): requests do not arrive at the
/// platform exactly when they leave, so a send timed to the millisecond could land inside the
/// platform's window. 5 % of the window, at least 50 ms.
fn margin(per: Duration) -> i64 {
    (per_ms(per) / 20).max(50)
}

/// A window's length in ms, saturating: the arithmetic below must not wrap on a window of
/// absurd length (the config allows any duration).
fn per_ms(per: Duration) -> i64 {
    i64::try_from(per.as_millis()).unwrap_or(i64::MAX)
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

    /// The windows it enforces.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Whether any window applies.
    pub fn is_limited(&self) -> bool {
        !self.windows.is_empty()
    }

    fn longest_ms(&self) -> i64 {
        self.windows
            .iter()
            .map(|w| per_ms(w.per))
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
        let from = now.saturating_sub(per_ms(per)).saturating_sub(margin(per));
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
                let frees = self.sends[idx]
                    .saturating_add(per_ms(w.per))
                    .saturating_add(margin(w.per));
                wait = wait.max(frees.saturating_sub(now));
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

    /// Whether no send counts in any window any more (nothing worth keeping).
    pub fn is_idle(&self, now: i64) -> bool {
        self.windows.iter().all(|w| self.in_window(now, w.per) == 0)
    }
}

/// One [`Limiter`] per key, all with the same windows: WeCom's "30 messages a minute to one
/// member per app", where each member of an app has a budget of its own. Saved and rebuilt
/// whole as `{key: [send times]}`.
#[derive(Debug, Clone, Default)]
pub struct Keyed {
    windows: Vec<Window>,
    by_key: FxHashMap<String, Limiter>,
}

impl Keyed {
    /// A keyed limiter with these windows and the send times saved by [`Keyed::snapshot`].
    pub fn new(windows: Vec<Window>, saved: HashMap<String, Vec<i64>>) -> Keyed {
        let by_key = saved
            .into_iter()
            .map(|(k, past)| (k, Limiter::new(windows.clone(), past)))
            .collect();
        Keyed { windows, by_key }
    }

    /// Takes a slot at `now` for each of `keys` that has one left under every window (a key
    /// listed twice takes two) and returns them; the others are returned with the time until
    /// their next slot.
    pub fn take(&mut self, keys: &[String], now: i64) -> (Vec<String>, Vec<(String, Duration)>) {
        let mut granted = vec![];
        let mut held = vec![];
        for k in keys {
            let l = self
                .by_key
                .entry(k.clone())
                .or_insert_with(|| Limiter::new(self.windows.clone(), vec![]));
            let wait = l.wait(now);
            if wait.is_zero() {
                l.record(now);
                granted.push(k.clone());
            } else {
                held.push((k.clone(), wait));
            }
        }
        (granted, held)
    }

    /// The send times to save; keys none of whose sends count any more are dropped.
    pub fn snapshot(&mut self, now: i64) -> HashMap<String, Vec<i64>> {
        self.by_key.retain(|_, l| !l.is_idle(now));
        self.by_key
            .iter()
            .map(|(k, l)| (k.clone(), l.snapshot()))
            .collect()
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

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keyed_holds_back_the_spent() {
        let mut l = Keyed::new(vec![w(2, 60_000)], HashMap::new());
        let (g, h) = l.take(&keys(&["a", "b"]), 0);
        assert_eq!((g.len(), h.len()), (2, 0));
        let (g, h) = l.take(&keys(&["a"]), 10_000);
        assert_eq!((g.len(), h.len()), (1, 0));
        // `a` has had 2 in the last minute: held until the first one leaves the window (plus
        // the 3 s margin of a 60 s window).
        let (g, h) = l.take(&keys(&["a", "b"]), 20_000);
        assert_eq!(g, vec!["b"]);
        assert_eq!(h, vec![("a".to_string(), Duration::from_millis(43_000))]);
        let (g, _) = l.take(&keys(&["a"]), 63_001);
        assert_eq!(g, vec!["a"]);
    }

    #[test]
    fn keyed_budget_round_trips_through_a_checkpoint() {
        let mut before = Keyed::new(vec![w(2, 60_000)], HashMap::new());
        before.take(&keys(&["a", "a", "b"]), 1_000_000);
        let saved = before.snapshot(1_005_000);
        assert_eq!(saved.get("a").map(|v| v.len()), Some(2));
        // What a restart reads back, 10 s later: the spent budget stays spent.
        let json = serde_json::to_vec(&saved).expect("encode");
        let back: HashMap<String, Vec<i64>> = serde_json::from_slice(&json).expect("decode");
        let mut after = Keyed::new(vec![w(2, 60_000)], back);
        let (g, h) = after.take(&keys(&["a"]), 1_010_000);
        assert!(g.is_empty(), "the restored budget is spent");
        assert_eq!(h[0].1, Duration::from_millis(53_000));
        // Members whose sends left every window are not saved again.
        assert_eq!(after.snapshot(1_200_000), HashMap::new());
    }

    #[test]
    fn unlimited_without_windows() {
        let l = Limiter::new(vec![], vec![1, 2, 3]);
        assert!(!l.is_limited());
        assert_eq!(l.wait(0), Duration::ZERO);
        assert_eq!(l.remaining(0), usize::MAX);
    }
}
