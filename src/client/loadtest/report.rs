//! What a load test prints: aligned lines for people, the same figures as JSON for scripts.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::ceiling::Ceiling;
use super::child::Knobs;

/// Event → sink latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `us` (sorted in place); `None` when there are none.
    pub fn from_micros(us: &mut [u32]) -> Option<Latency> {
        if us.is_empty() {
            return None;
        }
        us.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: the smallest value with at least q of the samples at or below it.
            let rank = (q * us.len() as f64).ceil() as usize;
            f64::from(us[rank.clamp(1, us.len()) - 1]) / 1000.0
        };
        Some(Latency {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        })
    }
}

/// The engine run's figures (absent with `--ceiling-only`).
#[derive(Debug, Clone)]
pub struct EngineRun {
    pub events: u64,
    pub webhooks: u64,
    pub objects: u64,
    pub batch: u64,
    pub producers: u64,
    pub rate: Option<f64>,
    /// Distinct deliveries that arrived (own sink) or that the engine counts as delivered.
    pub deliveries: u64,
    /// Deliveries that arrived twice; unknown with `--target`.
    pub duplicates: Option<u64>,
    pub intake_events_per_s: f64,
    pub deliveries_per_s: f64,
    /// Unknown with `--target` (the markers are read by the own sink).
    pub latency: Option<Latency>,
    pub engine_cpu_us_per_delivery: f64,
    pub engine_peak_rss_bytes: u64,
    pub knobs: Knobs,
    pub seconds: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// `None`: the own sink.
    pub target: Option<String>,
    pub run: Option<EngineRun>,
    pub ceiling: Ceiling,
}

impl Report {
    /// Deliveries/s ÷ ceiling requests/s.
    pub fn ratio(&self) -> Option<f64> {
        let run = self.run.as_ref()?;
        (self.ceiling.requests_per_s > 0.0)
            .then(|| run.deliveries_per_s / self.ceiling.requests_per_s)
    }

    /// The human summary: one aligned line per figure.
    pub fn text(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![(
            "sink",
            self.target.clone().unwrap_or_else(|| "built-in".into()),
        )];
        if let Some(r) = &self.run {
            rows.extend(load_rows(r));
        }
        let c = &self.ceiling;
        rows.push((
            "ceiling",
            format!(
                "{:.0} requests/s ({}, {} in flight, {} requests, {} errors)",
                c.requests_per_s, c.client, c.concurrency, c.requests, c.errors
            ),
        ));
        if let Some(ratio) = self.ratio() {
            rows.push(("ratio", format!("{:.1} % of the ceiling", ratio * 100.0)));
        }
        if let Some(r) = &self.run {
            rows.extend(engine_rows(r));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut s = String::from("loadtest:\n");
        for (k, v) in rows {
            let _ = writeln!(s, "  {k:<width$}  {v}");
        }
        s
    }

    /// The same figures as a JSON object (rates per second, latency in ms, RSS in bytes).
    pub fn json(&self) -> Value {
        let c = &self.ceiling;
        let mut v = json!({
            "target": self.target,
            "ceiling_requests_per_s": round1(c.requests_per_s),
            "ceiling_concurrency": c.concurrency,
            "ceiling_client": c.client,
            "ceiling_requests": c.requests,
            "ceiling_errors": c.errors,
        });
        if let Some(r) = &self.run {
            let latency = r.latency.map(|l| {
                json!({"p50_ms": l.p50_ms, "p99_ms": l.p99_ms, "p999_ms": l.p999_ms, "max_ms": l.max_ms})
            });
            let extra = json!({
                "events": r.events,
                "webhooks": r.webhooks,
                "objects": r.objects,
                "batch": r.batch,
                "producers": r.producers,
                "rate": r.rate,
                "deliveries": r.deliveries,
                "duplicates": r.duplicates,
                "intake_events_per_s": round1(r.intake_events_per_s),
                "deliveries_per_s": round1(r.deliveries_per_s),
                "ratio": self.ratio(),
                "latency": latency,
                "engine_cpu_us_per_delivery": round1(r.engine_cpu_us_per_delivery),
                "engine_peak_rss_bytes": r.engine_peak_rss_bytes,
                "workers": r.knobs.workers,
                "max_in_flight": r.knobs.max_in_flight,
                "seconds": round1(r.seconds),
            });
            if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
                v.extend(extra);
            }
        }
        v
    }
}

/// The summary's rows about the load and what the engine took and delivered.
fn load_rows(r: &EngineRun) -> Vec<(&'static str, String)> {
    let paced = r
        .rate
        .map(|x| format!(", paced at {x:.0} events/s"))
        .unwrap_or_default();
    vec![
        ("events", r.events.to_string()),
        ("webhooks", r.webhooks.to_string()),
        (
            "load",
            format!(
                "{} objects, batches of {}, {} producers{paced}",
                r.objects, r.batch, r.producers
            ),
        ),
        ("deliveries", r.deliveries.to_string()),
        (
            "duplicates",
            r.duplicates
                .map_or("unknown (external sink)".into(), |d| d.to_string()),
        ),
        ("intake", format!("{:.0} events/s", r.intake_events_per_s)),
        (
            "delivered",
            format!("{:.0} deliveries/s", r.deliveries_per_s),
        ),
    ]
}

/// The summary's rows about latency, the engine's costs and settings, and the run's length.
fn engine_rows(r: &EngineRun) -> Vec<(&'static str, String)> {
    let latency = r.latency.map_or("unknown (external sink)".into(), |l| {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms, max {:.1} ms (event sent → delivery received)",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
        )
    });
    let knob = |v: Option<u32>| v.map_or("default".to_string(), |v| v.to_string());
    vec![
        ("latency", latency),
        (
            "engine CPU",
            format!("{:.1} µs per delivery", r.engine_cpu_us_per_delivery),
        ),
        (
            "engine RSS",
            format!("{:.0} MB peak", r.engine_peak_rss_bytes as f64 / 1e6),
        ),
        (
            "engine",
            format!(
                "workers {}, max_in_flight {}",
                knob(r.knobs.workers),
                knob(r.knobs.max_in_flight)
            ),
        ),
        ("took", format!("{:.1} s", r.seconds)),
    ]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut us: Vec<u32> = (1..=1000).rev().map(|i| i * 1000).collect();
        let l = Latency::from_micros(&mut us).expect("samples");
        assert_eq!(l.p50_ms, 500.0);
        assert_eq!(l.p99_ms, 990.0);
        assert_eq!(l.p999_ms, 999.0);
        assert_eq!(l.max_ms, 1000.0);
        assert!(Latency::from_micros(&mut []).is_none());
        let one = Latency::from_micros(&mut [7000]).expect("one");
        assert_eq!((one.p50_ms, one.p999_ms), (7.0, 7.0));
    }
}
