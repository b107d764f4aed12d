//! The real `sanhook` binary as a child process, for tests that kill it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

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
        let health = super::Api::new(base, "");
        super::eventually(
            Duration::from_secs(30),
            "sanhook to answer /healthz",
            || {
                if let Ok(Some(status)) = s.0.try_wait() {
                    panic!("sanhook exited early: {status}");
                }
                let asked = health.request(reqwest::Method::GET, "/healthz").send();
                async move { asked.await.is_ok_and(|r| r.status().is_success()) }
            },
        )
        .await;
        s
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
