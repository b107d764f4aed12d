//! The binary's commands: check-config, the token rule, graceful SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{eventually_blocking, eventually_value};

fn sanhook() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sanhook"));
    // A developer's own overrides must not leak into these tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("SANHOOK_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn check_config_prints_effective_values_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[server]\ntoken = \"t0psecret\"\n[delivery]\ntimeout = \"3s\"\n",
    )
    .expect("write");
    let out = sanhook()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .env("SANHOOK_SANPLEX_LANG", "zh-cn")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("timeout = \"3s\""), "{stdout}");
    assert!(stdout.contains("lang = \"zh-cn\""), "{stdout}");
    assert!(!stdout.contains("t0psecret"), "token leaked: {stdout}");
}

#[test]
fn check_config_names_the_bad_key_and_exits_2() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[delivery]\ntimeout = \"ten seconds\"\n").expect("write");
    let out = sanhook()
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("delivery.timeout"), "{stderr}");
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let out = sanhook()
        .args(["serve"])
        .env("SANHOOK_SERVER_LISTEN", "0.0.0.0:0")
        .env("SANHOOK_STORAGE_PATH", "/nonexistent/never-created.redb")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("token"), "{stderr}");
}

#[test]
fn sigterm_stops_gracefully() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let child = sanhook()
        .args(["serve"])
        .env("SANHOOK_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("SANHOOK_STORAGE_PATH", dir.path().join("s.redb"))
        .env("SANHOOK_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    eventually_blocking(Duration::from_secs(20), "the server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}

#[test]
fn loadtest_delivers_every_event_to_every_webhook_and_reports_json() {
    let dir = tempfile::tempdir().expect("dir");
    let json = dir.path().join("out.json");
    let out = sanhook()
        .args(["loadtest", "--events", "2000", "--webhooks", "2", "--json"])
        .arg(&json)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("deliveries/s"), "{stdout}");
    let text = std::fs::read_to_string(&json).expect("the --json file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["events"], 2000, "{v}");
    assert_eq!(v["deliveries"], 4000, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert!(v["ratio"].as_f64().is_some_and(|r| r > 0.0), "{v}");
    assert!(
        v["deliveries_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{v}"
    );
    assert!(
        v["engine_peak_rss_bytes"].as_u64().is_some_and(|r| r > 0),
        "{v}"
    );
    for p in ["p50_ms", "p99_ms", "p999_ms"] {
        assert!(
            v["latency"][p].as_f64().is_some(),
            "latency.{p} missing: {v}"
        );
    }
    assert!(v["latency"]["p50_ms"].as_f64() <= v["latency"]["p999_ms"].as_f64());
}

#[test]
fn loadtest_refuses_bad_arguments_with_exit_2() {
    let cases: [(&[&str], &str); 3] = [
        (&["--events", "0"], "--events"),
        (&["--target", "not a url"], "--target"),
        // Port 1 on loopback: nothing listens there.
        (
            &["--target", "http://127.0.0.1:1/hook"],
            "no server answers",
        ),
    ];
    for (args, says) in cases {
        let out = sanhook().arg("loadtest").args(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// Issue 11: a log written to a file or a pipe carries no colour escape codes.
#[actix_rt::test]
async fn logs_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let port = crate::support::binary::free_port();
    let config = crate::support::binary::write_config(dir.path(), port, "1s", 1);
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sanhook"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("SANHOOK_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start sanhook");
    let text = eventually_value(Duration::from_secs(30), "the start line", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("sanhook serving") {
            Ok(text)
        } else {
            Err(format!("no start line in:\n{text}"))
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a file log:\n{text:?}"
    );
    assert!(text.contains("INFO"), "{text}");
}

/// Issue 9: `--version` names the version and the commit it was built from.
#[test]
fn version_names_the_commit() {
    let out = sanhook().arg("--version").output().expect("run sanhook");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("sanhook {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "{text}");
    let commit = text.trim().trim_start_matches(&want).trim_end_matches(')');
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
}
