//! The real `sanhook` binary as a child process, for tests that kill it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A port free right now on 127.0.0.1 (for a child's `server.listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes `DIR/config.toml` for a child serving on 127.0.0.1:`port` with its store under
/// `DIR/data`, retrying `retries` times `retry` apart; returns its path.
pub fn write_config(dir: &Path, port: u16, retry: &str, retries: usize) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[delivery]\nretry_schedule = [{}]\n",
            dir.join("data/sanhook.redb").display(),
            vec![format!("\"{retry}\""); retries].join(", ")
        ),
    )
    .expect("write config");
    config
}

/// A `sanhook serve` child, killed when dropped (also when the test panics).
pub struct Sanhook(Child);

impl Sanhook {
    /// Starts `sanhook serve --config CONFIG`, logging to `log`, and waits until `base`
    /// answers `/healthz`.
    pub async fn serve(config: &Path, log: &Path, base: &str) -> Sanhook {
        Sanhook::serve_with(config, log, base, &[("SANHOOK_LOG", "warn")]).await
    }

    /// [`Sanhook::serve`] with these environment variables, stdout and stderr both to `log`.
    pub async fn serve_with(
        config: &Path,
        log: &Path,
        base: &str,
        env: &[(&str, &str)],
    ) -> Sanhook {
        sanhook::tls::install_crypto_provider();
        let log = std::fs::File::create(log).expect("log file");
        let out = log.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sanhook"))
            .args(["serve", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("start sanhook");
        let mut s = Sanhook(child);
        let client = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = s.0.try_wait() {
                panic!("sanhook exited early: {status}");
            }
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    return s;
                }
            }
            assert!(Instant::now() < until, "sanhook did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn sigkill(&mut self) {
        self.0.kill().expect("SIGKILL");
        let _ = self.0.wait();
    }
}

impl Drop for Sanhook {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client of a child's API: every answer kept whole, status and text.
pub struct Api {
    pub base: String,
    pub token: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Api {
        sanhook::tls::install_crypto_provider();
        Api {
            base: base.to_string(),
            token: token.to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// Sends a request (a JSON body when given); returns the status and the answer's text.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, String) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.client.request(m, format!("{}{path}", self.base));
        if !self.token.is_empty() {
            r = r.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }
}
