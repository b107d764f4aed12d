//! `[[tail]]`: real files in a temp dir, followed by a running engine (and by the real binary,
//! killed with SIGKILL), plus a property test of the tailer against a model of file rotation.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::binary::{free_port, Sanhook};
use crate::support::receiver::Receiver;
use crate::support::{event, eventually, eventually_value, test_config, Api, TestServer};

const WAIT: Duration = Duration::from_secs(20);

/// One NDJSON line for event `id` (object `id`, so each is its own FIFO).
fn line(id: u64) -> String {
    format!("{}\n", event(id, id, "opened"))
}

fn lines(ids: impl IntoIterator<Item = u64>) -> String {
    ids.into_iter().map(line).collect()
}

fn append(path: &Path, s: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(s.as_bytes()).expect("append to log");
}

/// A server tailing `<dir>/logs/*.ndjson*` (plus `extra` keys in the `[[tail]]` entry).
async fn tailing_server(extra: &str) -> (TestServer, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let cfg = test_config(
        dir.path(),
        &format!(
            "[[tail]]\npath = \"{}/*.ndjson*\"\n{extra}\n",
            logs.display()
        ),
    );
    (TestServer::start_with(cfg, dir).await, logs)
}

/// Every delivery of a webhook, paging through the log, oldest first.
async fn all_deliveries(s: &TestServer, wh: u64) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/v1/deliveries?webhook={wh}&limit=1000&before={b}"),
            None => format!("/api/v1/deliveries?webhook={wh}&limit=1000"),
        };
        let (st, v) = s.call("GET", &path, None).await;
        assert_eq!(st, 200, "{v}");
        let page = v.as_array().cloned().unwrap_or_default();
        let Some(last) = page.last().and_then(|d| d["id"].as_u64()) else {
            break;
        };
        out.extend(page);
        before = Some(last);
    }
    out.reverse();
    out
}

/// The event ids of the webhook's deliveries in ingestion order (delivery ids grow with it).
async fn delivered_ids(s: &TestServer, wh: u64) -> Vec<u64> {
    all_deliveries(s, wh)
        .await
        .iter()
        .filter_map(|d| d["eventId"].as_u64())
        .collect()
}

/// Waits until the webhook has deliveries for exactly `want` (in this order, each once).
async fn wait_ingested(s: &TestServer, wh: u64, want: &[u64]) {
    let got = eventually_value(WAIT, &format!("{} deliveries", want.len()), || async {
        let got = delivered_ids(s, wh).await;
        if got.len() >= want.len() {
            Ok(got)
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    assert_eq!(got, want, "deliveries in ingestion order");
}

async fn quarantine(s: &TestServer) -> Vec<Value> {
    let (st, v) = s.call("GET", "/api/v1/quarantine?limit=100", None).await;
    assert_eq!(st, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

#[actix_rt::test]
async fn tail_appended_lines_are_delivered() {
    let r = Receiver::fixed(200);
    let (s, logs) = tailing_server("").await;
    let wh = s.webhook(json!({"name": "tail", "url": r.url})).await;
    let log = logs.join("actions.ndjson");
    append(&log, &lines(1..=3));
    wait_ingested(&s, wh, &[1, 2, 3]).await;
    append(&log, &lines(4..=5));
    wait_ingested(&s, wh, &[1, 2, 3, 4, 5]).await;
    s.wait_deliveries(wh, WAIT, "all delivered", |d| {
        d.len() == 5 && d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
    assert_eq!(r.received().len(), 5);
}

#[actix_rt::test]
async fn tail_partial_line_is_not_read_until_its_newline() {
    let r = Receiver::fixed(200);
    let (s, logs) = tailing_server("").await;
    let wh = s.webhook(json!({"name": "tail", "url": r.url})).await;
    let a = logs.join("a.ndjson");
    let full = line(2);
    let (head, rest) = full.split_at(full.len() / 2);
    append(&a, &line(1));
    append(&a, head);
    // A later line in another file: once it is in, the tailer has read past the partial one.
    append(&logs.join("b.ndjson"), &line(3));
    let got = eventually_value(WAIT, "the line in b.ndjson", || async {
        let got = delivered_ids(&s, wh).await;
        if got.contains(&3) {
            Ok(got)
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    assert_eq!(got, vec![1, 3], "the partial line must wait");
    assert!(quarantine(&s).await.is_empty());
    append(&a, rest);
    wait_ingested(&s, wh, &[1, 3, 2]).await;
    assert!(quarantine(&s).await.is_empty());
}

#[actix_rt::test]
async fn tail_rename_rotation_loses_and_repeats_nothing() {
    let r = Receiver::fixed(200);
    let (s, logs) = tailing_server("").await;
    let wh = s.webhook(json!({"name": "tail", "url": r.url})).await;
    let log = logs.join("actions.ndjson");
    append(&log, &lines(1..=50));
    wait_ingested(&s, wh, &(1..=50).collect::<Vec<_>>()).await;
    // Lines the tailer has most likely not read yet go with the renamed file.
    append(&log, &lines(51..=60));
    std::fs::rename(&log, logs.join("actions.ndjson.1")).expect("rotate");
    append(&log, &lines(61..=80));
    wait_ingested(&s, wh, &(1..=80).collect::<Vec<_>>()).await;
    // A second rotation, the old generation kept.
    std::fs::rename(logs.join("actions.ndjson.1"), logs.join("actions.ndjson.2")).expect("shift");
    std::fs::rename(&log, logs.join("actions.ndjson.1")).expect("rotate");
    append(&log, &lines(81..=90));
    wait_ingested(&s, wh, &(1..=90).collect::<Vec<_>>()).await;
}

#[actix_rt::test]
async fn tail_copy_truncate_loses_and_repeats_nothing() {
    let r = Receiver::fixed(200);
    let (s, logs) = tailing_server("").await;
    let wh = s.webhook(json!({"name": "tail", "url": r.url})).await;
    let log = logs.join("actions.ndjson");
    append(&log, &lines(1..=50));
    wait_ingested(&s, wh, &(1..=50).collect::<Vec<_>>()).await;
    append(&log, &lines(51..=60));
    std::fs::copy(&log, logs.join("actions.ndjson.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    append(&log, &lines(61..=80));
    wait_ingested(&s, wh, &(1..=80).collect::<Vec<_>>()).await;
    append(&log, &lines(81..=85));
    wait_ingested(&s, wh, &(1..=85).collect::<Vec<_>>()).await;
}

#[actix_rt::test]
async fn tail_bad_lines_are_quarantined_and_later_lines_flow() {
    let r = Receiver::fixed(200);
    let (s, logs) = tailing_server("max_line = \"1KiB\"").await;
    let wh = s.webhook(json!({"name": "tail", "url": r.url})).await;
    let log = logs.join("actions.ndjson");
    let mut long = event(4, 4, "opened");
    long["comment"] = "x".repeat(10_000).into();
    let bad = [
        line(1),
        "{not json\n".to_string(),
        "{\"id\":3,\"objectID\":3}\n".to_string(),
        format!("{long}\n"),
        line(5),
    ];
    let mut offsets = vec![];
    let mut at = 0u64;
    for l in &bad {
        offsets.push(at);
        at += l.len() as u64;
    }
    append(&log, &bad.concat());
    wait_ingested(&s, wh, &[1, 5]).await;
    let mut q = quarantine(&s).await;
    q.reverse();
    assert_eq!(q.len(), 3, "{}", Value::Array(q.clone()));
    for (item, i) in q.iter().zip([1usize, 2, 3]) {
        assert_eq!(item["source"], "tail");
        assert_eq!(item["file"], log.display().to_string());
        assert_eq!(item["offset"], offsets[i], "{item}");
        assert!(!item["reason"].as_str().unwrap_or("").is_empty(), "{item}");
    }
    assert_eq!(q[0]["raw"], "{not json");
    let long_reason = q[2]["reason"].as_str().unwrap_or("");
    assert!(long_reason.contains("max_line"), "{long_reason}");
    let raw = q[2]["raw"].as_str().unwrap_or("");
    assert!(raw.len() <= 4096 && raw.starts_with("{\"id\":4"), "{raw}");
    let (_, metrics) = s.call_text("GET", "/metrics", None).await;
    assert!(
        metrics.contains("sanhook_quarantined_total{source=\"tail\"} 3"),
        "{metrics}"
    );
    // And the lines after them keep flowing.
    append(&log, &line(6));
    wait_ingested(&s, wh, &[1, 5, 6]).await;
}

/// Issue 8: a symbolic link in the watched folder (here to a file of secrets and an event) is
/// never followed: none of its lines reaches the quarantine or the outbox, and the real log
/// beside it flows.
#[actix_rt::test]
async fn issue8_tail_does_not_follow_symlinks() {
    let r = Receiver::fixed(200);
    let (s, logs) = tailing_server("").await;
    let wh = s.webhook(json!({"name": "tail", "url": r.url})).await;
    let outside = tempfile::tempdir().expect("dir");
    let secret = outside.path().join("secrets.ndjson");
    append(&secret, &format!("password=hunter2\n{}", line(900)));
    std::os::unix::fs::symlink(&secret, logs.join("evil.ndjson")).expect("symlink");
    let log = logs.join("actions.ndjson");
    append(&log, &line(1));
    wait_ingested(&s, wh, &[1]).await;
    // More scans see the link again; still nothing of it.
    append(&log, &line(2));
    wait_ingested(&s, wh, &[1, 2]).await;
    append(&secret, &line(901));
    append(&log, &line(3));
    wait_ingested(&s, wh, &[1, 2, 3]).await;
    let q = quarantine(&s).await;
    assert!(q.is_empty(), "{}", Value::Array(q));
}

#[actix_rt::test]
async fn tail_start_at_end_skips_what_was_already_there() {
    let r = Receiver::fixed(200);
    let dir = tempfile::tempdir().expect("dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let log = logs.join("actions.ndjson");
    // Two old lines and a line being written.
    let third = line(3);
    let (head, rest) = third.split_at(20);
    append(&log, &lines(1..=2));
    append(&log, head);
    let glob = format!("{}/*.ndjson", logs.display());
    let cfg = test_config(
        dir.path(),
        &format!("[[tail]]\npath = \"{glob}\"\nstart_at = \"end\"\n"),
    );
    let s = TestServer::start_with(cfg, dir).await;
    let wh = s.webhook(json!({"name": "tail", "url": r.url})).await;
    // The first scan commits where it starts; only then is it safe to append.
    let key = sanhook::ingest::tail::checkpoint_key(&glob);
    eventually(WAIT, "the first checkpoint", || async {
        s.engine.store().checkpoint(&key).ok().flatten().is_some()
    })
    .await;
    append(&log, rest);
    append(&log, &lines(4..=5));
    wait_ingested(&s, wh, &[3, 4, 5]).await;
    // A file that appears later is read from its beginning.
    append(&logs.join("later.ndjson"), &lines(6..=7));
    wait_ingested(&s, wh, &[3, 4, 5, 6, 7]).await;
}

#[actix_rt::test]
async fn tail_resumes_after_a_restart_without_repeating() {
    let r = Receiver::fixed(200);
    let dir = tempfile::tempdir().expect("dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let extra = format!("[[tail]]\npath = \"{}/*.ndjson*\"\n", logs.display());
    let s = TestServer::start_with(test_config(dir.path(), &extra), dir).await;
    let wh = s.webhook(json!({"name": "tail", "url": r.url})).await;
    let log = logs.join("actions.ndjson");
    append(&log, &lines(1..=10));
    wait_ingested(&s, wh, &(1..=10).collect::<Vec<_>>()).await;
    let dir = s.stop().await;
    append(&log, &lines(11..=12));
    std::fs::rename(&log, logs.join("actions.ndjson.1")).expect("rotate");
    append(&log, &lines(13..=14));
    let s = TestServer::start_with(test_config(dir.path(), &extra), dir).await;
    wait_ingested(&s, wh, &(1..=14).collect::<Vec<_>>()).await;
}

// ---------------------------------------------------------------------------------------------
// The real binary, SIGKILLed while it tails a file being written.

#[actix_rt::test]
async fn tail_sigkill_while_tailing_ingests_every_line_exactly_once() {
    const LINES: u64 = 3000;
    const KILLS: usize = 3;
    let r = Receiver::fixed(200);
    let dir = tempfile::tempdir().expect("dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[delivery]\nretry_schedule = [{}]\n[[tail]]\npath = \"{}/*.ndjson*\"\n",
            dir.path().join("data/sanhook.redb").display(),
            vec!["\"200ms\""; 20].join(", "),
            logs.display()
        ),
    )
    .expect("write config");
    let api = Api::new(&base, "");
    let mut child = Sanhook::serve(&config, &dir.path().join("run0.log"), &base).await;
    let wh = api
        .webhook(json!({"name": "tail", "url": r.url, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
        .await;

    // The writer: bursts of lines, one rename rotation half way.
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, done, logs) = (written.clone(), done.clone(), logs.clone());
        std::thread::spawn(move || {
            let log = logs.join("actions.ndjson");
            let mut id = 1;
            while id <= LINES {
                let end = (id + 24).min(LINES);
                append(&log, &lines(id..=end));
                written.store(end, Ordering::SeqCst);
                id = end + 1;
                if id == LINES / 2 + 1 {
                    std::fs::rename(&log, logs.join("actions.ndjson.1")).expect("rotate");
                }
                // The writer's pace (the behaviour: lines keep coming while sanhook is
                // killed), not a wait for anything.
                std::thread::sleep(Duration::from_millis(20));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    for k in 1..=KILLS {
        // Kill while lines are flowing: after the writer has moved on a bit.
        let mark = k as u64 * LINES / (KILLS as u64 + 1);
        eventually(
            Duration::from_secs(30),
            &format!("{mark} lines written"),
            || async { written.load(Ordering::SeqCst) >= mark },
        )
        .await;
        println!(
            "SIGKILL {k} with {} of {LINES} lines written",
            written.load(Ordering::SeqCst)
        );
        child.sigkill();
        child = Sanhook::serve(&config, &dir.path().join(format!("run{k}.log")), &base).await;
    }
    eventually(Duration::from_secs(60), "the writer done", || async {
        done.load(Ordering::SeqCst)
    })
    .await;
    writer.join().expect("writer");
    // Every line reaches the receiver (deduplicated by webhook-id).
    let by_webhook_id = eventually_value(
        Duration::from_secs(60),
        "every line at the receiver",
        || async {
            let mut by_id: HashMap<String, String> = HashMap::new();
            for g in r.received() {
                if let Some(id) = g.header("webhook-id") {
                    let obj = g.json()["objectID"].as_str().unwrap_or("").to_string();
                    by_id.insert(id.to_string(), obj);
                }
            }
            let events: HashSet<String> = by_id.values().cloned().collect();
            let missing: Vec<u64> = (1..=LINES)
                .filter(|i| !events.contains(&i.to_string()))
                .collect();
            if missing.is_empty() {
                Ok(by_id)
            } else {
                Err(format!(
                    "{} lines never reached the receiver, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(10)]
                ))
            }
        },
    )
    .await;
    assert_eq!(by_webhook_id.len() as u64, LINES, "one webhook-id per line");
    // And the delivery log holds exactly one delivery per line.
    let mut counts: HashMap<u64, usize> = HashMap::new();
    let mut before: Option<u64> = None;
    loop {
        let mut path = format!("/api/v1/deliveries?webhook={wh}&limit=1000");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let (status, page) = api.call("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().cloned().unwrap_or_default();
        let Some(last) = page.last().and_then(|d| d["id"].as_u64()) else {
            break;
        };
        for d in &page {
            *counts
                .entry(d["eventId"].as_u64().unwrap_or(0))
                .or_default() += 1;
        }
        before = Some(last);
    }
    drop(child);
    let repeated: Vec<(u64, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, n)| (*k, *n))
        .collect();
    assert!(repeated.is_empty(), "lines ingested twice: {repeated:?}");
    assert_eq!(counts.len() as u64, LINES, "one delivery per line");
}

// ---------------------------------------------------------------------------------------------
// Property test: the tailer against a model of appends, rotations, truncations and restarts.

mod model {
    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet};
    use std::future::Future;
    use std::path::Path;
    use std::rc::Rc;

    use proptest::prelude::*;
    use sanhook::config::{StartAt, TailConfig};
    use sanhook::event::ActionEvent;
    use sanhook::ingest::tail::{Sink, Tailer};
    use sanhook::ingest::IngestSummary;
    use sanhook::store::{Checkpoint, QuarantineItem};
    use sanhook::Error;

    /// A sink that keeps what it is given in memory and can be told to fail a commit.
    #[derive(Clone, Default)]
    struct MemSink(Rc<RefCell<Mem>>);

    #[derive(Default)]
    struct Mem {
        ingested: Vec<u64>,
        quarantined: Vec<QuarantineItem>,
        checkpoints: HashMap<String, Vec<u8>>,
        fail_next: bool,
    }

    impl Sink for MemSink {
        fn submit(
            &self,
            events: Vec<ActionEvent>,
            checkpoint: Checkpoint,
            quarantine: Vec<QuarantineItem>,
        ) -> impl Future<Output = Result<IngestSummary, Error>> + 'static {
            let mem = self.0.clone();
            async move {
                let mut m = mem.borrow_mut();
                if std::mem::take(&mut m.fail_next) {
                    return Err(Error::Upstream("commit failed (test)".into()));
                }
                m.ingested.extend(events.iter().filter_map(|e| e.id));
                m.quarantined.extend(quarantine);
                m.checkpoints.insert(checkpoint.key, checkpoint.value);
                Ok(IngestSummary {
                    accepted: events.len(),
                    ..IngestSummary::default()
                })
            }
        }

        fn checkpoint(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.0.borrow().checkpoints.get(key).cloned())
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Append `n` lines; with `split`, the last one in two writes with a poll between.
        Append { n: u64, split: bool },
        /// One tailer step.
        Poll,
        /// `mv app.log app.log.N`, then a new empty `app.log`.
        RenameRotate,
        /// `cp app.log app.log.N`, `lost` lines appended in between, `truncate app.log`.
        CopyTruncate { lost: u64 },
        /// Drop the tailer (as a crash would) and start a new one from the checkpoint.
        Restart,
        /// The next commit fails (the tailer must rewind, then read the same lines again).
        FailCommit,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..12u64, any::<bool>()).prop_map(|(n, split)| Op::Append { n, split }),
            4 => Just(Op::Poll),
            1 => Just(Op::RenameRotate),
            1 => (0..3u64).prop_map(|lost| Op::CopyTruncate { lost }),
            1 => Just(Op::Restart),
            1 => Just(Op::FailCommit),
        ]
    }

    fn line(id: u64) -> String {
        // Varying lengths, so fingerprints cover one line, several, or part of one.
        let pad = "x".repeat((id as usize * 37) % 300);
        format!(
            "{{\"id\":{id},\"objectType\":\"bug\",\"objectID\":{id},\"actor\":\"alice\",\"action\":\"opened\",\"date\":\"2026-11-20 09:00:35\",\"comment\":\"{pad}\"}}\n"
        )
    }

    fn append(path: &Path, s: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(s.as_bytes()).expect("write");
    }

    struct Sim {
        dir: tempfile::TempDir,
        cfg: TailConfig,
        sink: MemSink,
        tailer: Tailer<MemSink>,
        next_id: u64,
        rotations: u64,
        written: Vec<u64>,
        lost: HashSet<u64>,
        /// The file generation each line was written to (a rotation starts a new one).
        generation: HashMap<u64, u64>,
        current: u64,
    }

    impl Sim {
        fn new() -> Sim {
            let dir = tempfile::tempdir().expect("dir");
            let cfg = TailConfig {
                path: format!("{}/app.log*", dir.path().display()),
                start_at: StartAt::Beginning,
                max_line: 1 << 20,
            };
            let sink = MemSink::default();
            let tailer = Sim::tailer(&cfg, &sink);
            Sim {
                dir,
                cfg,
                sink,
                tailer,
                next_id: 1,
                rotations: 0,
                written: vec![],
                lost: HashSet::new(),
                generation: HashMap::new(),
                current: 0,
            }
        }

        fn tailer(cfg: &TailConfig, sink: &MemSink) -> Tailer<MemSink> {
            let mut t = Tailer::new(cfg, sink.clone()).expect("tailer");
            // Small batches, so reads interleave with the file changes.
            t.set_batch_limits(5, 1 << 20);
            t
        }

        fn log(&self) -> std::path::PathBuf {
            self.dir.path().join("app.log")
        }

        async fn poll(&mut self) {
            // A failed commit is expected after FailCommit; the tailer rewinds.
            let _ = self.tailer.step().await;
        }

        async fn apply(&mut self, op: &Op) {
            match op {
                Op::Append { n, split } => {
                    let ids: Vec<u64> = (self.next_id..self.next_id + n).collect();
                    self.next_id += n;
                    let mut text: String = ids.iter().map(|i| line(*i)).collect();
                    for i in &ids {
                        self.written.push(*i);
                        self.generation.insert(*i, self.current);
                    }
                    if *split {
                        let last = line(*ids.last().unwrap_or(&0));
                        let cut = text.len() - last.len() / 2;
                        let rest = text.split_off(cut);
                        append(&self.log(), &text);
                        self.poll().await;
                        append(&self.log(), &rest);
                    } else {
                        append(&self.log(), &text);
                    }
                }
                Op::Poll => self.poll().await,
                Op::RenameRotate => {
                    self.rotations += 1;
                    let to = self.dir.path().join(format!("app.log.{}", self.rotations));
                    if self.log().exists() {
                        std::fs::rename(self.log(), to).expect("rename");
                    }
                    append(&self.log(), "");
                    self.current += 1;
                }
                Op::CopyTruncate { lost } => {
                    self.rotations += 1;
                    let to = self.dir.path().join(format!("app.log.{}", self.rotations));
                    append(&self.log(), "");
                    std::fs::copy(self.log(), &to).expect("copy");
                    let ids: Vec<u64> = (self.next_id..self.next_id + lost).collect();
                    self.next_id += lost;
                    append(
                        &self.log(),
                        &ids.iter().map(|i| line(*i)).collect::<String>(),
                    );
                    self.written.extend(&ids);
                    self.lost.extend(&ids);
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(self.log())
                        .and_then(|f| f.set_len(0))
                        .expect("truncate");
                    self.current += 1;
                }
                Op::Restart => self.tailer = Sim::tailer(&self.cfg, &self.sink),
                Op::FailCommit => self.sink.0.borrow_mut().fail_next = true,
            }
        }

        /// Polls until nothing more is read.
        async fn drain(&mut self) {
            self.sink.0.borrow_mut().fail_next = false;
            let mut quiet = 0;
            for _ in 0..10_000 {
                match self.tailer.step().await {
                    Ok(s) if s.lines == 0 && !s.committed => quiet += 1,
                    _ => quiet = 0,
                }
                if quiet == 2 {
                    return;
                }
            }
            panic!("the tailer never went quiet");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn tail_ingests_every_written_line_once(ops in proptest::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            // The tailer sends its commits as local tasks (as under actix): a LocalSet.
            let local = tokio::task::LocalSet::new();
            rt.block_on(local.run_until(async {
                let mut sim = Sim::new();
                for op in &ops {
                    sim.apply(op).await;
                }
                sim.drain().await;
                let mem = sim.sink.0.borrow();
                let got = &mem.ingested;
                let mut seen = HashSet::new();
                let repeated: Vec<u64> = got.iter().filter(|i| !seen.insert(**i)).copied().collect();
                prop_assert!(repeated.is_empty(), "ingested twice: {:?}", repeated);
                let want: Vec<u64> = sim.written.iter().filter(|i| !sim.lost.contains(i)).copied().collect();
                let missing: Vec<u64> = want.iter().filter(|i| !seen.contains(i)).copied().collect();
                prop_assert!(missing.is_empty(), "never ingested: {:?}", missing);
                let extra: Vec<u64> = got.iter().filter(|i| sim.lost.contains(i)).copied().collect();
                prop_assert!(extra.is_empty(), "lines the model says are lost were ingested: {:?}", extra);
                prop_assert!(mem.quarantined.is_empty(), "quarantined: {:?}", mem.quarantined);
                // Within one file generation, lines come in the order they were written.
                let mut last: HashMap<u64, u64> = HashMap::new();
                for id in got {
                    let g = sim.generation[id];
                    if let Some(prev) = last.insert(g, *id) {
                        prop_assert!(prev < *id, "generation {}: {} after {}", g, id, prev);
                    }
                }
                Ok(())
            }))?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `sanhook replay`: the real binary against a running server.

/// Runs `sanhook replay FILES --config <file pointing at base>`; returns (exit code, stdout, stderr).
async fn replay(base: &str, token: &str, files: &[PathBuf]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let listen = base.trim_start_matches("http://");
    let config = dir.path().join("client.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"{listen}\"\ntoken = \"{token}\"\n"),
    )
    .expect("write config");
    let files = files.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sanhook"))
            .arg("replay")
            .args(&files)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run sanhook replay")
    })
    .await
    .expect("join");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_rt::test]
async fn replay_reports_rejected_lines_with_their_numbers() {
    let r = Receiver::fixed(200);
    let s = TestServer::start("").await;
    let wh = s.webhook(json!({"name": "replay", "url": r.url})).await;
    let file = s.dir.path().join("backfill.ndjson");
    let text = [
        line(1),
        "\n".to_string(),
        "{bad\n".to_string(),
        line(2),
        line(1),
        "{\"id\":9,\"objectID\":9}\n".to_string(),
        line(3).trim_end().to_string(),
    ]
    .concat();
    std::fs::write(&file, text).expect("write");
    let (code, out, err) = replay(&s.base, "", std::slice::from_ref(&file)).await;
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let name = file.display().to_string();
    assert!(
        out.contains("6 lines: 3 events accepted, 1 duplicates"),
        "{out}"
    );
    assert!(out.contains("2 rejected"), "{out}");
    assert!(out.contains(&format!("{name}:3 (")), "{out}");
    assert!(out.contains(&format!("{name}:6 (")), "{out}");
    assert!(err.contains(&format!("{name}:3: rejected: ")), "{err}");
    assert!(err.contains(&format!("{name}:6: rejected: ")), "{err}");
    // The last line, without a newline, counted; every good line queued exactly once.
    wait_ingested(&s, wh, &[1, 2, 3]).await;
}

#[actix_rt::test]
async fn replay_twice_accepts_then_counts_duplicates_and_exits_0() {
    let s = TestServer::start("").await;
    let a = s.dir.path().join("a.ndjson");
    let b = s.dir.path().join("b.ndjson");
    std::fs::write(&a, lines(1..=1500)).expect("write");
    std::fs::write(&b, lines(1501..=1600)).expect("write");
    let files = [a, b];
    let (code, out, err) = replay(&s.base, "", &files).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("2 files, 1600 lines: 1600 events accepted, 0 duplicates"),
        "{out}"
    );
    assert!(out.contains("0 rejected"), "{out}");
    let (code, out, _) = replay(&s.base, "", &files).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1600 lines: 0 events accepted, 1600 duplicates"),
        "{out}"
    );
}

#[actix_rt::test]
async fn replay_splits_bodies_the_server_finds_too_large() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = test_config(dir.path(), "");
    cfg.server.max_body = 4096;
    let s = TestServer::start_with(cfg, dir).await;
    let file = s.dir.path().join("big.ndjson");
    let mut long = event(99, 99, "opened");
    long["comment"] = "y".repeat(5000).into();
    let text = format!("{}{long}\n{}", lines(1..=40), lines(41..=60));
    std::fs::write(&file, text).expect("write");
    // The client's config keeps the default max_body: the server's 413s make it split.
    let (code, out, err) = replay(&s.base, "", std::slice::from_ref(&file)).await;
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("61 lines: 60 events accepted"), "{out}");
    assert!(out.contains(&format!("{}:41 (", file.display())), "{out}");
}

#[actix_rt::test]
async fn replay_without_a_server_or_with_a_wrong_token_exits_2() {
    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), line(1)).expect("write");
    let files = [file.path().to_path_buf()];
    let base = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = replay(&base, "", &files).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no server answers at"), "{err}");

    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = test_config(dir.path(), "");
    cfg.server.token = "right-token".into();
    let s = TestServer::start_with(cfg, dir).await;
    let (code, _, err) = replay(&s.base, "wrong-token", &files).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refused the token"), "{err}");
    let (code, out, err) = replay(&s.base, "right-token", &files).await;
    assert_eq!(code, 0, "{out} {err}");
}
