//! The engine under test: this same binary as `sanhook serve`, a child process with a store in a
//! temporary directory.
//!
//! A separate process rather than an engine in this one, so that its CPU time and peak RSS
//! (read from `/proc`) are the engine's alone, not the producers' or the sink's, and so that it
//! runs exactly as in production: durable redb, the real HTTP intake, its own threads.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::api::Api;

/// How long the engine may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Per API request: a batch commits in milliseconds, so this only catches a hung engine.
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Lines of the engine's log shown when it dies.
const LOG_TAIL_LINES: usize = 20;

/// Engine knobs written into the child's config, each only when given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Knobs {
    /// `[delivery] workers`.
    pub workers: Option<u32>,
    /// `[delivery] max_in_flight`.
    pub max_in_flight: Option<u32>,
}

/// A temporary directory removed when dropped (the store can be hundreds of MB).
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory under the system's temp dir.
    pub fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("sanhook-loadtest-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(TempDir(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The running engine. Dropping it kills it (SIGKILL) and reaps it, on every exit path.
pub struct Engine {
    child: Child,
    /// Its API, at `http://127.0.0.1:PORT`.
    pub api: Api,
    log: PathBuf,
}

impl Engine {
    /// Writes the config into `dir`, starts `sanhook serve` and waits until it is healthy.
    pub async fn start(dir: &Path, knobs: Knobs) -> Result<Engine, String> {
        let port = free_port().map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))?;
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml(dir, port, knobs))
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let log = dir.join("engine.log");
        let log_file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program's own path to start the engine: {e}"))?;
        let mut cmd = Command::new(&exe);
        cmd.args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        // The caller's SANHOOK_* overrides (a storage path, a listen address) must not reach it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SANHOOK_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("SANHOOK_LOG", "warn");
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the engine if this
        // process dies first (Ctrl-C, a crash), so no engine outlives its load test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the engine ({} serve): {e}", exe.display()))?;
        let mut engine = Engine {
            child,
            api: Api::new(&format!("http://127.0.0.1:{port}"), "", API_TIMEOUT)?,
            log,
        };
        engine.wait_healthy().await?;
        Ok(engine)
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let until = Instant::now() + START_TIMEOUT;
        loop {
            self.check_alive()?;
            let last = match self.api.healthy().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() > until {
                return Err(format!(
                    "the engine did not answer within {}s: {last}{}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails with the tail of its log if the engine has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("the engine exited ({status}){}", self.log_tail())),
            Ok(None) => Ok(()),
            Err(e) => Err(format!("cannot check on the engine: {e}")),
        }
    }

    /// Its process id, for `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills and reaps it now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its log, as `": ...lines"` (empty when there is no log).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            return String::new();
        }
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        let mut s = format!("; last lines of its log ({}):", self.log.display());
        for l in &lines[from..] {
            let _ = write!(s, "\n  {l}");
        }
        s
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The child's config: loopback, no token, a durable store in `dir`, and the knobs given.
fn config_toml(dir: &Path, port: u16, knobs: Knobs) -> String {
    let store = dir.join("sanhook.redb");
    let mut s = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"\"\n\n[storage]\npath = {}\n",
        toml_string(&store.to_string_lossy())
    );
    if knobs.workers.is_some() || knobs.max_in_flight.is_some() {
        s.push_str("\n[delivery]\n");
        if let Some(w) = knobs.workers {
            let _ = writeln!(s, "workers = {w}");
        }
        if let Some(m) = knobs.max_in_flight {
            let _ = writeln!(s, "max_in_flight = {m}");
        }
    }
    s
}

/// A TOML basic string (the temp path could hold a quote or a backslash).
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// CPU time (user + system) a process has used, in µs, from `/proc/<pid>/stat`.
pub fn cpu_us(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path} has no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime), counting from 1; `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("{path}: field {i} is not a tick count"))
    };
    let total = ticks(14)? + ticks(15)?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Ok(total * 1_000_000 / hz)
}

/// Peak resident set size of a process in bytes (`VmHWM` in `/proc/<pid>/status`).
pub fn peak_rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("{path} has no VmHWM line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_a_peak_rss() {
        let pid = std::process::id();
        assert!(cpu_us(pid).is_ok());
        assert!(peak_rss_bytes(pid).expect("VmHWM") > 0);
    }

    #[test]
    fn knobs_are_written_only_when_given() {
        let plain = config_toml(Path::new("/tmp/x"), 9, Knobs::default());
        assert!(!plain.contains("[delivery]"), "{plain}");
        let cfg: toml::Value = toml::from_str(&config_toml(
            Path::new("/tmp/a\"b"),
            9,
            Knobs {
                workers: Some(2),
                max_in_flight: None,
            },
        ))
        .expect("valid TOML");
        assert_eq!(cfg["delivery"]["workers"].as_integer(), Some(2));
        assert!(cfg["delivery"].get("max_in_flight").is_none());
        assert_eq!(
            cfg["storage"]["path"].as_str(),
            Some("/tmp/a\"b/sanhook.redb")
        );
    }
}
