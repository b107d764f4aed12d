//! Test support: a running engine on a real socket, and fake receivers.

#![allow(dead_code)]

pub mod api;
pub mod binary;
pub mod fakes;
pub mod proxy;
pub mod receiver;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use sanhook::engine::StartOptions;
use sanhook::{Config, Engine};
use serde_json::Value;

pub use api::Api;

/// An engine serving its API on 127.0.0.1 with a store in a temp dir. Derefs to its [`Api`]
/// client (`s.call(..)`, `s.webhook(..)`, `s.wait_deliveries(..)`, `s.base`).
pub struct TestServer {
    pub engine: Engine,
    pub api: Api,
    pub dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The config every test starts from: short retries, a temp store, no auth.
pub fn test_config(dir: &std::path::Path, extra: &str) -> Config {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
path = "{}"
[delivery]
timeout = "3s"
async_interval = "1h"
retry_schedule = ["100ms", "100ms", "100ms"]
{extra}
"#,
        dir.join("sanhook.redb").display()
    );
    let cfg = Config::from_toml_str(&toml).expect("test config parses");
    cfg.validate().expect("test config is valid");
    cfg
}

impl TestServer {
    /// Starts with the default test config plus `extra` TOML (which may repeat sections only
    /// when they are not in the base: pass whole sections).
    pub async fn start(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = test_config(dir.path(), extra);
        Self::start_with(cfg, dir).await
    }

    /// Starts with a prepared config and dir.
    pub async fn start_with(cfg: Config, dir: tempfile::TempDir) -> TestServer {
        Self::start_full(cfg, dir, StartOptions::default()).await
    }

    /// Starts with a prepared config and dir, and the given start options (clock, faults).
    pub async fn start_with_options(
        cfg: Config,
        dir: tempfile::TempDir,
        opts: StartOptions,
    ) -> TestServer {
        Self::start_full(cfg, dir, opts).await
    }

    /// Starts on a store whose writes fail while `faults` say so.
    pub async fn start_with_faults(
        extra: &str,
        faults: std::sync::Arc<sanhook::store::Faults>,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = test_config(dir.path(), extra);
        let opts = StartOptions {
            faults: Some(faults),
            ..StartOptions::default()
        };
        Self::start_full(cfg, dir, opts).await
    }

    async fn start_full(cfg: Config, dir: tempfile::TempDir, opts: StartOptions) -> TestServer {
        let token = cfg.server.token.clone();
        // `stop` closes the store before it returns, so a restart opens it at once.
        let started = Engine::start_with(cfg.clone(), opts).await;
        let engine = started.unwrap_or_else(|e| panic!("engine starts: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = sanhook::api::serve(engine.clone(), listener).expect("serve");
        let handle = server.handle();
        actix_rt::spawn(server);
        TestServer {
            engine,
            api: Api::new(&base, &token),
            dir,
            handle,
        }
    }

    /// Stops the server and the engine (the store stays in `dir`).
    pub async fn stop(self) -> tempfile::TempDir {
        self.handle.stop(true).await;
        self.engine.shutdown().await;
        self.dir
    }
}

/// A minimal valid event.
pub fn event(id: u64, object_id: u64, action: &str) -> Value {
    serde_json::json!({
        "id": id, "objectType": "bug", "objectID": object_id, "product": ",1,",
        "execution": 5, "actor": "alice", "actorName": "Alice", "action": action,
        "date": "2026-11-20 09:00:35", "objectName": "Login fails"
    })
}

/// The first pause between two looks of the `eventually` helpers; it doubles up to
/// [`POLL_MAX`], so that what is quick is seen at once and what is slow is not asked too often.
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(50);

/// Waits until `probe` gives `Ok(found)` and returns `found`; while it gives `Err(seen)`, looks
/// again after a short pause. After `timeout`, panics naming `what` and the last `seen`.
///
/// Every test waits for what it needs through this (or [`eventually`] and
/// [`eventually_blocking`]): the one poll loop of the tests.
pub async fn eventually_value<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let until = Instant::now() + timeout;
    let mut pause = POLL_FIRST;
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(seen) => assert!(
                Instant::now() < until,
                "timed out after {timeout:?} waiting for {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// Waits until `cond` holds, polling; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_value(timeout, what, || {
        let holds = cond();
        async move {
            if holds.await {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        }
    })
    .await
}

/// [`eventually`] for a plain thread (no async runtime): blocks it between looks.
pub fn eventually_blocking(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    let mut pause = POLL_FIRST;
    while !cond() {
        assert!(
            Instant::now() < until,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(POLL_MAX);
    }
}
