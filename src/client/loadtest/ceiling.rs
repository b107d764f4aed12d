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
}

/// The engine's delivery client settings (`deliver::client_builder`): rustls, no redirects,
/// the delivery timeout, sanhook's User-Agent. Copied, not shared, because the load test must
/// not reach into `deliver`; keep the two in step.
pub fn delivery_like_client(timeout: Duration) -> Result<reqwest::Client, String> {
    crate::deliver::install_crypto_provider();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(crate::deliver::user_agent())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
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
    }
}
