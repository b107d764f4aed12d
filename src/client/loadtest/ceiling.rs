//! The raw ceiling: the same HTTP client the engine delivers with, straight at the same sink.
//!
//! Every deliveries/s figure is divided by this, so it must be the best this client can do on
//! this machine: C requests in flight (the engine's `max_in_flight`), each task posting a
//! ~300-byte JSON body in a loop, until a fixed count or a time limit. The engine is stopped
//! before it runs, so the two never compete for the CPU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A body shaped like a `default` delivery (about 300 bytes).
const BODY: &str = r#"{"objectType":"bug","objectID":"1042","product":",3,","project":"5","execution":"5","action":"resolved","actor":"alice","date":"2026-11-20 09:00:35","comment":"","text":"Alice Wang resolved Bug [#1042::Login fails on Safari after the session expires](http://localhost/bug-view-1042.html)"}"#;

/// What the ceiling phase measured.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    /// Successful (2xx) requests per second.
    pub requests_per_s: f64,
    pub requests: u64,
    /// Requests that failed or got a non-2xx answer.
    pub errors: u64,
    pub concurrency: u64,
    /// What measured it: `wrk` (the C load generator) or `reqwest` (the delivery client).
    pub client: &'static str,
}

/// Posts `count` requests to `url` with `concurrency` in flight, or for `limit`, whichever ends
/// first.
pub async fn measure(
    client: &reqwest::Client,
    url: &str,
    concurrency: u64,
    count: u64,
    limit: Duration,
) -> Ceiling {
    let issued = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + limit;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url) = (client.clone(), url.to_string());
        let (issued, ok, errors) = (issued.clone(), ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while issued.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < until {
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(BODY)
                    .send()
                    .await;
                // The body is read to the end, as the engine does, so the connection is reused.
                let good = match sent {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    let ok = ok.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    Ceiling {
        requests_per_s: ok as f64 / secs,
        requests: ok + errors,
        errors,
        concurrency,
        client: "reqwest",
    }
}

/// Whether `wrk` is on the PATH.
pub fn wrk_available() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// The ceiling as a C load generator sees it: `wrk` with `concurrency` connections on two
/// threads, POSTing the same body to `url` for `limit`. This is the figure the issue divides
/// by: a Rust client (reqwest, hyper) costs several times wrk's CPU per request, so a ceiling
/// measured with it would flatter every ratio.
pub fn measure_wrk(
    url: &str,
    concurrency: u64,
    limit: Duration,
    dir: &std::path::Path,
) -> Result<Ceiling, String> {
    let script = dir.join("post.lua");
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{BODY}'\n"
    );
    std::fs::write(&script, lua).map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let out = std::process::Command::new("wrk")
        .arg("-t2")
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{}s", limit.as_secs().max(1)))
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text, concurrency).ok_or_else(|| {
        format!(
            "could not read wrk's output (exit {}): {}{}",
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Reads `N requests in Xs`, `Non-2xx or 3xx responses: E` and `Requests/sec: R` from wrk.
fn parse_wrk(text: &str, concurrency: u64) -> Option<Ceiling> {
    let mut requests = None;
    let mut errors = 0u64;
    let mut rate = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rate = rest.trim().parse::<f64>().ok();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap_or(0);
        } else if line.contains(" requests in ") {
            requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
        }
    }
    let requests = requests?;
    let rate = rate?;
    let good = requests.saturating_sub(errors);
    Some(Ceiling {
        requests_per_s: if requests == 0 {
            0.0
        } else {
            rate * good as f64 / requests as f64
        },
        requests,
        errors,
        concurrency,
        client: "wrk",
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_wrk_output() {
        let text = "Running 3s test @ http://127.0.0.1:1/ceiling\n  2 threads and 64 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.01ms  349.68us  12.48ms   88.09%\n    Req/Sec    31.95k     1.80k   35.42k    73.33%\n  190871 requests in 3.00s, 13.47MB read\nRequests/sec:  63559.07\nTransfer/sec:      4.49MB\n";
        let c = super::parse_wrk(text, 64).expect("parsed");
        assert_eq!(c.requests, 190_871);
        assert_eq!(c.errors, 0);
        assert!((c.requests_per_s - 63_559.07).abs() < 0.01);
        assert_eq!(c.client, "wrk");
        let bad = format!("{text}  Non-2xx or 3xx responses: 190871\n");
        assert_eq!(
            super::parse_wrk(&bad, 64).expect("parsed").requests_per_s,
            0.0
        );
        assert!(super::parse_wrk("wrk: command failed", 64).is_none());
    }
}
