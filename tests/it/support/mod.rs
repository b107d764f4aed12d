//! Test support: a running engine on a real socket, and fake receivers.

#![allow(dead_code)]

pub mod binary;
pub mod fakes;
pub mod proxy;
pub mod receiver;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use sanhook::engine::StartOptions;
use sanhook::{Config, Engine};
use serde_json::Value;

/// An engine serving its API on 127.0.0.1 with a store in a temp dir.
pub struct TestServer {
    pub engine: Engine,
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    pub dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
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
        sanhook::tls::install_crypto_provider();
        TestServer {
            engine,
            base,
            client: reqwest::Client::new(),
            token,
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

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if self.token.is_empty() {
            r
        } else {
            r.bearer_auth(&self.token)
        }
    }

    /// Sends a JSON request; returns status and parsed body (Null when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.req(m, path);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// Posts a raw body with a content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: String) -> (u16, Value) {
        let resp = self
            .req(reqwest::Method::POST, path)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let v = resp.json().await.unwrap_or(Value::Null);
        (status, v)
    }

    /// Creates a webhook; panics unless 201.
    pub async fn webhook(&self, body: Value) -> u64 {
        let (s, v) = self.call("POST", "/api/v1/webhooks", Some(body)).await;
        assert_eq!(s, 201, "create webhook: {v}");
        v["id"].as_u64().expect("id")
    }

    /// The delivery log for one webhook.
    pub async fn deliveries(&self, webhook: u64) -> Vec<Value> {
        let (s, v) = self
            .call(
                "GET",
                &format!("/api/v1/deliveries?webhook={webhook}&limit=1000"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Waits until `pred` holds for the webhook's deliveries (panics after `timeout`).
    pub async fn wait_deliveries(
        &self,
        webhook: u64,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let until = Instant::now() + timeout;
        loop {
            let d = self.deliveries(webhook).await;
            if pred(&d) {
                return d;
            }
            if Instant::now() > until {
                let mut by_status = std::collections::BTreeMap::<String, usize>::new();
                for x in &d {
                    let st = x["status"].as_str().unwrap_or("?").to_string();
                    *by_status.entry(st).or_default() += 1;
                }
                let mut odd = d
                    .iter()
                    .find(|x| x["status"] != "delivered")
                    .cloned()
                    .unwrap_or(Value::Null);
                if let Some(o) = odd.as_object_mut() {
                    o.remove("request");
                }
                panic!(
                    "timed out waiting for {what}; {} deliveries {by_status:?}; e.g. {odd}",
                    d.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// Waits until `cond` holds, polling; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
