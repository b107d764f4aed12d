//! Prometheus metrics (docs/reference.md §4 `GET /metrics`) on `prometheus-client`, the Prometheus
//! project's own Rust library: it escapes label values and writes the OpenMetrics text format,
//! which Prometheus scrapes as it is. Every family and every known label value is registered at
//! start, so a scrape shows them at zero before anything happened. Nothing here holds a secret.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::Status;

/// Upper bounds (seconds) of the `sanhook_delivery_seconds` buckets.
const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
    3600.0,
];

/// Attempt outcomes counted in `sanhook_attempts_total{outcome}`.
pub const OUTCOMES: [&str; 4] = ["delivered", "retry", "dead", "skipped"];

/// The media type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Source {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByStatus {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByOutcome {
    outcome: &'static str,
}

/// Minutes of per-status counts kept for the dashboard ([`Metrics::minutes`]).
pub const MINUTES: usize = 60;

/// Deliveries that reached each status (in [`Status::ALL`]'s order) during one minute.
pub type MinuteCounts = [u64; Status::ALL.len()];

/// Every metric of one engine.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ingested: Family<Source, Counter>,
    quarantined: Family<Source, Counter>,
    deliveries: Family<ByStatus, Counter>,
    attempts: Family<ByOutcome, Counter>,
    queue_depth: Gauge,
    latency: Histogram,
    /// The last [`MINUTES`] minutes of [`Metrics::delivery`], oldest first: (Unix minute, counts).
    recent: Mutex<VecDeque<(i64, MinuteCounts)>>,
    /// When these metrics started counting (Unix ms): the process's start.
    started_at: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics with every family registered and the known label values present at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let ingested = Family::<Source, Counter>::default();
        let quarantined = Family::<Source, Counter>::default();
        let deliveries = Family::<ByStatus, Counter>::default();
        let attempts = Family::<ByOutcome, Counter>::default();
        let queue_depth = Gauge::default();
        let latency = Histogram::new(BUCKETS);
        // Counters get `_total` appended by the encoder: `sanhook_events_ingested_total`.
        registry.register(
            "sanhook_events_ingested",
            "New action events committed, by source",
            ingested.clone(),
        );
        registry.register(
            "sanhook_deliveries",
            "Deliveries that reached each status",
            deliveries.clone(),
        );
        registry.register(
            "sanhook_attempts",
            "Send attempts, by outcome",
            attempts.clone(),
        );
        registry.register(
            "sanhook_queue_depth",
            "Deliveries queued or waiting to retry",
            queue_depth.clone(),
        );
        registry.register(
            "sanhook_quarantined",
            "Inputs that could not be ingested, by source",
            quarantined.clone(),
        );
        registry.register(
            "sanhook_delivery_seconds",
            "Time from the event's commit to the destination's 2xx",
            latency.clone(),
        );
        for s in ["http", "tail", "db"] {
            let _ = ingested.get_or_create(&Source { source: s.into() });
            let _ = quarantined.get_or_create(&Source { source: s.into() });
        }
        for s in Status::ALL {
            let _ = deliveries.get_or_create(&ByStatus { status: s.as_str() });
        }
        for outcome in OUTCOMES {
            let _ = attempts.get_or_create(&ByOutcome { outcome });
        }
        Metrics {
            registry,
            ingested,
            quarantined,
            deliveries,
            attempts,
            queue_depth,
            latency,
            recent: Mutex::new(VecDeque::with_capacity(MINUTES + 1)),
            started_at: crate::clock::now_ms(),
        }
    }

    /// When counting started (Unix ms): what "since the start" means for every counter here.
    pub fn started_at(&self) -> i64 {
        self.started_at
    }

    /// `n` events ingested from `source` (`http`, `tail`, `db`).
    pub fn ingested(&self, source: &str, n: u64) {
        self.ingested
            .get_or_create(&Source {
                source: source.into(),
            })
            .inc_by(n);
    }

    /// `n` inputs quarantined from `source`.
    pub fn quarantined(&self, source: &str, n: u64) {
        self.quarantined
            .get_or_create(&Source {
                source: source.into(),
            })
            .inc_by(n);
    }

    /// A delivery reached `status` (created deliveries count as `pending`).
    pub fn delivery(&self, status: Status, n: u64) {
        self.deliveries
            .get_or_create(&ByStatus {
                status: status.as_str(),
            })
            .inc_by(n);
        self.count_minute(crate::clock::now_ms(), status, n);
    }

    fn count_minute(&self, now_ms: i64, status: Status, n: u64) {
        let minute = now_ms.div_euclid(60_000);
        let Some(i) = Status::ALL.iter().position(|s| *s == status) else {
            return;
        };
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        match recent.back_mut() {
            Some((m, counts)) if *m == minute => counts[i] += n,
            // A clock stepped back: counted in the newest minute rather than reordered.
            Some((m, counts)) if *m > minute => counts[i] += n,
            _ => {
                let mut counts = MinuteCounts::default();
                counts[i] = n;
                recent.push_back((minute, counts));
                while recent.len() > MINUTES {
                    recent.pop_front();
                }
            }
        }
    }

    /// Deliveries that reached each status in each of the last [`MINUTES`] minutes up to the
    /// one holding `now_ms`, oldest first, quiet minutes at zero: (minute start in Unix ms,
    /// counts in [`Status::ALL`]'s order). Since this process started (kept in memory only).
    pub fn minutes(&self, now_ms: i64) -> Vec<(i64, MinuteCounts)> {
        let current = now_ms.div_euclid(60_000);
        let recent = self.recent.lock().map(|r| r.clone()).unwrap_or_default();
        (current - MINUTES as i64 + 1..=current)
            .map(|m| {
                let counts = recent
                    .iter()
                    .find(|(at, _)| *at == m)
                    .map(|(_, c)| *c)
                    .unwrap_or_default();
                (m * 60_000, counts)
            })
            .collect()
    }

    /// One attempt ended with `outcome` (one of [`OUTCOMES`]; others are not counted).
    pub fn attempt(&self, outcome: &str) {
        if let Some(outcome) = OUTCOMES.iter().find(|o| **o == outcome) {
            self.attempts.get_or_create(&ByOutcome { outcome }).inc();
        }
    }

    /// Deliveries waiting (queued or retrying) changed by `delta`.
    pub fn queue(&self, delta: i64) {
        self.queue_depth.inc_by(delta);
    }

    /// The current queue depth.
    pub fn queue_depth(&self) -> i64 {
        self.queue_depth.get()
    }

    /// Event committed → destination answered 2xx.
    pub fn delivered_after(&self, d: Duration) {
        self.latency.observe(d.as_secs_f64());
    }

    /// The exposition, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would only be a bug in a metric.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "rendering metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_there_from_the_start_with_its_contract_name() {
        let text = Metrics::new().render();
        for line in [
            "sanhook_events_ingested_total{source=\"http\"} 0",
            "sanhook_quarantined_total{source=\"db\"} 0",
            "sanhook_deliveries_total{status=\"dead\"} 0",
            "sanhook_attempts_total{outcome=\"retry\"} 0",
            "sanhook_queue_depth 0",
            "sanhook_delivery_seconds_bucket{le=\"0.005\"} 0",
            "sanhook_delivery_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn counts_add_up_and_label_values_are_escaped() {
        let m = Metrics::new();
        m.ingested("http", 3);
        m.ingested("tail\"\n{x}", 1);
        m.delivery(Status::Delivered, 2);
        m.attempt("dead");
        m.attempt("no such outcome");
        m.queue(5);
        m.queue(-2);
        m.delivered_after(Duration::from_millis(20));
        let text = m.render();
        assert!(text.contains("sanhook_events_ingested_total{source=\"http\"} 3"));
        assert!(text.contains("sanhook_events_ingested_total{source=\"tail\\\"\\n{x}\"} 1"));
        assert!(text.contains("sanhook_deliveries_total{status=\"delivered\"} 2"));
        assert!(text.contains("sanhook_attempts_total{outcome=\"dead\"} 1"));
        assert!(text.contains("sanhook_queue_depth 3"));
        assert_eq!(m.queue_depth(), 3);
        assert!(text.contains("sanhook_delivery_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("sanhook_delivery_seconds_bucket{le=\"0.01\"} 0"));
        // Every sample line is `name{labels} value` or `name value`: no raw newline from a label.
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("sanhook_")));
    }

    #[test]
    fn minutes_count_by_status_and_keep_the_last_hour() {
        let m = Metrics::new();
        let t0 = 1_767_603_600_000; // 2026-01-05T09:00:00Z, a minute's start
        m.count_minute(t0 + 1_000, Status::Delivered, 2);
        m.count_minute(t0 + 59_999, Status::Dead, 1);
        m.count_minute(t0 + 60_000, Status::Delivered, 1);
        m.count_minute(t0 + 5 * 60_000, Status::Pending, 7);
        let mins = m.minutes(t0 + 5 * 60_000 + 10);
        assert_eq!(mins.len(), MINUTES);
        let last = mins.len() - 1;
        assert_eq!(mins[last], (t0 + 5 * 60_000, [7, 0, 0, 0, 0]));
        // Status::ALL: pending, retrying, delivered, dead, skipped.
        assert_eq!(mins[last - 5], (t0, [0, 0, 2, 1, 0]));
        assert_eq!(mins[last - 4], (t0 + 60_000, [0, 0, 1, 0, 0]));
        assert_eq!(mins[last - 3].1, [0; 5], "a quiet minute is zero");
        // An hour later the first minutes have gone.
        m.count_minute(t0 + 64 * 60_000, Status::Skipped, 1);
        let mins = m.minutes(t0 + 64 * 60_000);
        assert_eq!(mins[0].0, t0 + 5 * 60_000);
        assert_eq!(mins[0].1, [7, 0, 0, 0, 0]);
        assert_eq!(
            mins.iter().map(|(_, c)| c.iter().sum::<u64>()).sum::<u64>(),
            8
        );
        assert!(m.recent.lock().map(|r| r.len() <= MINUTES).unwrap_or(false));
    }
}
