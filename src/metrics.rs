//! Prometheus counters, kept with atomics and rendered by hand: every family is present from the
//! start, and nothing here holds a secret.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::store::Status;

/// Upper bounds (seconds) of the `sanhook_delivery_seconds` buckets.
const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
    3600.0,
];

/// Attempt outcomes counted in `sanhook_attempts_total{outcome}`.
pub const OUTCOMES: [&str; 4] = ["delivered", "retry", "dead", "skipped"];

/// Every metric of one engine.
#[derive(Debug, Default)]
pub struct Metrics {
    ingested: Mutex<BTreeMap<String, u64>>,
    quarantined: Mutex<BTreeMap<String, u64>>,
    deliveries: [AtomicU64; 5],
    attempts: [AtomicU64; 4],
    queue_depth: AtomicI64,
    hist: [AtomicU64; 16],
    hist_count: AtomicU64,
    /// Sum in microseconds, so it fits an atomic integer.
    hist_sum_us: AtomicU64,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str, n: u64) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key.to_string()).or_default() += n;
    }
}

impl Metrics {
    /// Metrics with the known label values present at zero.
    pub fn new() -> Metrics {
        let m = Metrics::default();
        for s in ["http", "tail", "db"] {
            bump(&m.ingested, s, 0);
            bump(&m.quarantined, s, 0);
        }
        m
    }

    /// `n` events ingested from `source` (`http`, `tail`, `db`).
    pub fn ingested(&self, source: &str, n: u64) {
        bump(&self.ingested, source, n);
    }

    /// `n` inputs quarantined from `source`.
    pub fn quarantined(&self, source: &str, n: u64) {
        bump(&self.quarantined, source, n);
    }

    /// A delivery reached `status` (created deliveries count as `pending`).
    pub fn delivery(&self, status: Status, n: u64) {
        let i = Status::ALL.iter().position(|s| *s == status).unwrap_or(0);
        self.deliveries[i].fetch_add(n, Ordering::Relaxed);
    }

    /// One attempt ended with `outcome` (one of [`OUTCOMES`]).
    pub fn attempt(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.attempts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Deliveries waiting (queued or retrying) changed by `delta`.
    pub fn queue(&self, delta: i64) {
        self.queue_depth.fetch_add(delta, Ordering::Relaxed);
    }

    /// The current queue depth.
    pub fn queue_depth(&self) -> i64 {
        self.queue_depth.load(Ordering::Relaxed)
    }

    /// Event committed → destination answered 2xx.
    pub fn delivered_after(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.hist[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.hist_count.fetch_add(1, Ordering::Relaxed);
        self.hist_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut o,
            "sanhook_events_ingested_total",
            "counter",
            "New action events committed, by source.",
        );
        if let Ok(m) = self.ingested.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(o, "sanhook_events_ingested_total{{source=\"{k}\"}} {v}");
            }
        }
        family(
            &mut o,
            "sanhook_deliveries_total",
            "counter",
            "Deliveries that reached each status.",
        );
        for (i, s) in Status::ALL.iter().enumerate() {
            let _ = writeln!(
                o,
                "sanhook_deliveries_total{{status=\"{}\"}} {}",
                s.as_str(),
                self.deliveries[i].load(Ordering::Relaxed)
            );
        }
        family(
            &mut o,
            "sanhook_attempts_total",
            "counter",
            "Send attempts, by outcome.",
        );
        for (i, name) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                o,
                "sanhook_attempts_total{{outcome=\"{name}\"}} {}",
                self.attempts[i].load(Ordering::Relaxed)
            );
        }
        family(
            &mut o,
            "sanhook_queue_depth",
            "gauge",
            "Deliveries queued or waiting to retry.",
        );
        let _ = writeln!(o, "sanhook_queue_depth {}", self.queue_depth());
        family(
            &mut o,
            "sanhook_quarantined_total",
            "counter",
            "Inputs that could not be ingested, by source.",
        );
        if let Ok(m) = self.quarantined.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(o, "sanhook_quarantined_total{{source=\"{k}\"}} {v}");
            }
        }
        family(
            &mut o,
            "sanhook_delivery_seconds",
            "histogram",
            "Time from the event's commit to the destination's 2xx.",
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "sanhook_delivery_seconds_bucket{{le=\"{b}\"}} {}",
                self.hist[i].load(Ordering::Relaxed)
            );
        }
        let count = self.hist_count.load(Ordering::Relaxed);
        let _ = writeln!(o, "sanhook_delivery_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            o,
            "sanhook_delivery_seconds_sum {}",
            self.hist_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "sanhook_delivery_seconds_count {count}");
        o
    }
}
