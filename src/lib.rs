//! sanhook: a webhook dispatch engine for Sanplex (ZenTao) action logs.
//!
//! It takes action events ("alice resolved bug #12"), decides which webhooks fire, and delivers
//! JSON notifications to generic endpoints and chat platforms: durably, in order per object,
//! signed, with retries.
//!
//! # Layout
//! An event travels one way: **ingest → route → dispatch → deliver**, with **store** underneath.
//! - [`event`]: the typed action event and its tolerant parsing.
//! - [`ingest`]: sources (HTTP intake, ...); each ends in [`ingest::Intake::submit`].
//! - [`route`]: trigger settings and the rule index (pure) plus the router actor.
//! - [`dispatch`]: per-destination actors: ordering, retry timing, async flushes.
//! - [`deliver`]: bodies, signatures, sending, classifying replies.
//! - [`store`]: redb; the only code that touches it.
//! - [`sanplex`]: Sanplex's database schema, shared by the database source and the importer.
//! - [`api`]: the HTTP API; [`engine`]: wiring; [`config`]: configuration.
//! - [`mask`]: what counts as a credential and how it is shown (logs, API, `Debug`).
//! - [`tls`]: the process's one TLS setup (rustls' crypto provider); [`backoff`]: the waits of
//!   every retry loop.
//!
//! # Embedding
//! ```no_run
//! # async fn demo() -> Result<(), sanhook::Error> {
//! let cfg = sanhook::Config::load(None).map_err(|e| sanhook::Error::Config(e.to_string()))?;
//! let engine = sanhook::Engine::start(cfg).await?; // inside an actix System
//! engine.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod api;
pub mod backoff;
pub mod client;
pub mod clock;
pub mod config;
pub mod cut;
pub mod deliver;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod event;
pub mod ingest;
pub mod mask;
pub mod metrics;
pub mod operator;
pub mod route;
pub mod sanplex;
pub mod store;
pub mod tls;
pub mod webhook;

pub use config::Config;
pub use engine::Engine;
pub use error::Error;
pub use event::ActionEvent;
pub use webhook::Webhook;

/// Keeps glibc from handing freed heap back to the kernel after every batch.
///
/// Each parsed batch frees thousands of small strings at once; by default glibc then trims the
/// heap and the next batch page-faults it all back in (measured: NDJSON parsing 0.8M → 1.08M
/// events/s with this). The threshold is 32 MiB: a 16 MiB request body and its parse fit under
/// it, while a backlog's resident memory is not padded with a quarter gigabyte of freed heap.
/// The binary calls it at start; embedders may.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before heavy allocation and
    // its failure (return 0) leaves the defaults in place.
    unsafe {
        const M_TRIM_THRESHOLD: libc::c_int = -1;
        const M_MMAP_THRESHOLD: libc::c_int = -3;
        const M_ARENA_MAX: libc::c_int = -8;
        // One arena per thread (glibc's default, up to 8 per core) keeps each thread's freed
        // memory apart, where no other thread can reuse it; two are enough for a few threads.
        libc::mallopt(M_ARENA_MAX, 2);
        libc::mallopt(M_TRIM_THRESHOLD, 32 << 20);
        libc::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    }
}

/// Hands freed heap back to the kernel, in every arena (glibc's `malloc_trim`). The engine
/// calls it now and then: freed memory in the middle of the heap (a parsed request, a page of
/// the resumed outbox) is otherwise kept, and a backlog's resident memory grows with it.
pub fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; it is safe at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
