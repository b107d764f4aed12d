//! Tail ingest throughput on a generated log of 1,000,000 realistic actions (~270 MiB, see
//! `examples/gen_actions.rs`).
//!
//! - `tail/durable_outbox`: a real engine tails the file from the beginning into a fresh store:
//!   every event matches exactly one of ten webhooks (async, long interval, so no sends compete),
//!   and the time runs from `Engine::start` until the last batch is durably committed with its
//!   deliveries and checkpoint. Between passes (untimed) the engine's teardown is awaited and
//!   the disk synced, so one pass's cleanup never runs into the next. The first pass prints the
//!   CPU seconds each thread used: where the time goes.
//! - `tail/read_parse`: the same file through a tailer whose sink drops the batches: the read
//!   and parse cost alone, on one thread.
//! - `stages/*`: the other per-batch costs, on 10,000 events: routing, serialising the batch
//!   record, and one durable commit of a batch (what the store's writer does).
//!
//! `cargo bench --bench tail` (each sample is one full pass over the file: allow a few minutes).

#[path = "../examples/gen_actions.rs"]
#[allow(dead_code)]
mod gen_actions;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use sanhook::config::{StartAt, TailConfig};
use sanhook::event::ActionEvent;
use sanhook::ingest::tail::{Sink, Tailer};
use sanhook::ingest::IngestSummary;
use sanhook::store::{Checkpoint, IngestBatch, QuarantineItem, Store};
use sanhook::webhook::{SendType, Webhook};
use sanhook::{Config, Engine, Error};

const ACTIONS: u64 = 1_000_000;

/// Events in the stage benchmarks (one tail batch).
const STAGE_EVENTS: usize = 10_000;

/// A sink that commits nothing.
#[derive(Clone)]
struct NullSink;

impl Sink for NullSink {
    fn submit(
        &self,
        events: Vec<ActionEvent>,
        _checkpoint: Checkpoint,
        _quarantine: Vec<QuarantineItem>,
    ) -> impl Future<Output = Result<IngestSummary, Error>> + 'static {
        let accepted = events.len();
        async move {
            Ok(IngestSummary {
                accepted,
                ..IngestSummary::default()
            })
        }
    }

    fn checkpoint(&self, _key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }
}

fn webhooks() -> Vec<Webhook> {
    (1..=gen_actions::PRODUCTS)
        .map(|p| Webhook {
            name: format!("product {p}"),
            url: "http://127.0.0.1:9/hook".into(),
            send_type: SendType::Async,
            products: vec![p],
            ..Default::default()
        })
        .collect()
}

fn config(store: &Path, tail: Option<&Path>) -> Config {
    let mut cfg = Config::from_toml_str("[delivery]\nasync_interval = \"1h\"\n").expect("config");
    cfg.storage.path = store.to_path_buf();
    if let Some(t) = tail {
        cfg.tail = vec![TailConfig {
            path: t.display().to_string(),
            start_at: StartAt::Beginning,
            max_line: 1 << 20,
        }];
    }
    cfg
}

fn tail_ingested(engine: &Engine) -> u64 {
    engine
        .metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("sanhook_events_ingested_total{source=\"tail\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One pass: a fresh store with the ten webhooks, then an engine tailing `log` until every
/// action is committed. Returns the time from the engine's start to the last commit.
fn durable_pass(log: &Path, scratch: &Path, report: bool) -> Duration {
    let dir = tempfile::tempdir_in(scratch).expect("dir");
    let store = dir.path().join("bench.redb");
    actix_rt::System::new().block_on(async {
        let engine = Engine::start(config(&store, None)).await.expect("engine");
        for wh in webhooks() {
            engine.create_webhook(wh).await.expect("webhook");
        }
        engine.shutdown().await;
    });
    let before = thread_cpu();
    let (took, after) = actix_rt::System::new().block_on(async {
        // The first engine's threads release the store a moment after its shutdown.
        let (start, engine) = loop {
            let start = Instant::now();
            match Engine::start(config(&store, Some(log))).await {
                Ok(e) => break (start, e),
                Err(e) if e.to_string().contains("already open") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("engine: {e}"),
            }
        };
        let until = Instant::now() + Duration::from_secs(600);
        while tail_ingested(&engine) < ACTIONS {
            assert!(Instant::now() < until, "tail did not finish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = start.elapsed();
        let after = thread_cpu();
        engine.shutdown().await;
        (took, after)
    });
    if report {
        print_cpu(&before, &after, took);
    }
    // The engine's threads tear down (freeing a million queued deliveries) after shutdown
    // returns: wait for that, so it does not run into the next pass.
    let until = Instant::now() + Duration::from_secs(60);
    while let Err(e) = Store::open(&store) {
        assert!(Instant::now() < until, "store not released: {e}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(dir);
    // Start every pass with the previous one's writes on disk, not competing for it.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    took
}

/// CPU seconds used so far by each thread of this process: (thread id, name, seconds).
fn thread_cpu() -> Vec<(u64, String, f64)> {
    let ticks = 100.0; // USER_HZ on Linux
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // After the name: state is field 0, utime 11, stime 12.
        let tid = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        out.push((tid, name, (num(11) + num(12)) / ticks));
    }
    out.sort_by_key(|t| t.0);
    out
}

/// Where one pass spent its CPU, by thread: the engine's arbiters start router first, then
/// dispatcher; the blocking pool reads and parses; `sanhook-store` commits.
fn print_cpu(before: &[(u64, String, f64)], after: &[(u64, String, f64)], took: Duration) {
    let mut arbiters = 0;
    let mut rows: Vec<(String, f64)> = Vec::new();
    for (tid, name, secs) in after {
        let was = before
            .iter()
            .find(|b| b.0 == *tid)
            .map(|b| b.2)
            .unwrap_or(0.0);
        let used = secs - was;
        let label = if name.starts_with("actix-rt|system") && !before.iter().any(|b| b.0 == *tid) {
            arbiters += 1;
            match arbiters {
                1 => "router (arbiter)".to_string(),
                2 => "dispatcher (arbiter)".to_string(),
                _ => name.clone(),
            }
        } else if name.starts_with("tokio") {
            "tail read+parse (blocking pool)".to_string()
        } else {
            name.clone()
        };
        match rows.iter_mut().find(|r| r.0 == label) {
            Some(r) => r.1 += used,
            None => rows.push((label, used)),
        }
    }
    eprintln!(
        "tail bench: one durable pass took {:.2} s; CPU seconds by thread:",
        took.as_secs_f64()
    );
    for (label, used) in rows.iter().filter(|r| r.1 >= 0.05) {
        eprintln!("  {label:<34} {used:>6.2}");
    }
}

fn read_parse_pass(log: &Path) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = TailConfig {
        path: log.display().to_string(),
        start_at: StartAt::Beginning,
        max_line: 1 << 20,
    };
    let mut tailer = Tailer::new(&cfg, NullSink).expect("tailer");
    rt.block_on(async {
        let start = Instant::now();
        let mut events = 0;
        while events < ACTIONS as usize {
            events += tailer.step().await.expect("step").events;
        }
        start.elapsed()
    })
}

fn tail(c: &mut Criterion) {
    sanhook::tune_allocator();
    let scratch = tempfile::tempdir().expect("dir");
    let log: PathBuf = scratch.path().join("actions.ndjson");
    let file = std::fs::File::create(&log).expect("create log");
    let bytes =
        gen_actions::write_actions(std::io::BufWriter::new(file), ACTIONS).expect("generate");
    eprintln!(
        "tail bench: {ACTIONS} actions, {:.1} MiB",
        bytes as f64 / (1 << 20) as f64
    );
    let mut g = c.benchmark_group("tail");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("read_parse", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| read_parse_pass(&log)).sum())
    });
    let reported = std::sync::atomic::AtomicBool::new(false);
    g.bench_function("durable_outbox", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let first = !reported.swap(true, std::sync::atomic::Ordering::Relaxed);
                    durable_pass(&log, scratch.path(), first)
                })
                .sum()
        })
    });
    g.finish();
}

/// Routing, batch-record serialisation and one durable batch commit, on 10,000 events.
fn stages(c: &mut Criterion) {
    let mut text = Vec::new();
    gen_actions::write_actions(&mut text, STAGE_EVENTS as u64).expect("generate");
    let events: Vec<ActionEvent> = text
        .split_mut(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| sanhook::event::parse_line(l, "2026-11-20 09:00:00").expect("parse"))
        .collect();
    let index = sanhook::route::RuleIndex::new(sanhook::route::default_triggers());
    for (i, mut wh) in webhooks().into_iter().enumerate() {
        wh.id = i as u64 + 1;
        index.upsert(Arc::new(wh));
    }
    let routes: Vec<Vec<u64>> = events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            index.route(e, &mut out);
            out
        })
        .collect();
    assert!(
        routes.iter().all(|r| r.len() == 1),
        "each event matches one webhook"
    );

    let mut g = c.benchmark_group("stages");
    g.sample_size(20);
    g.throughput(Throughput::Elements(STAGE_EVENTS as u64));
    g.bench_function("route_10k", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            for e in &events {
                out.clear();
                index.route(e, &mut out);
            }
            out.len()
        })
    });
    g.bench_function("serialize_10k", |b| {
        b.iter(|| serde_json::to_vec(&events).expect("json").len())
    });
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("stages.redb")).expect("store");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut next_id = 0u64;
    g.bench_function("commit_10k", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                // Fresh ids, or the dedupe index would drop the whole batch.
                let mut batch = events.clone();
                for e in &mut batch {
                    next_id += 1;
                    e.id = Some(next_id);
                }
                let start = Instant::now();
                let res = rt
                    .block_on(store.ingest(IngestBatch {
                        source: "bench".into(),
                        events: batch,
                        routes: routes.clone(),
                        checkpoint: Some(Checkpoint {
                            key: "tail:bench".into(),
                            value: vec![0; 200],
                        }),
                        quarantine: vec![],
                    }))
                    .expect("commit");
                took += start.elapsed();
                assert_eq!(res.deliveries.len(), STAGE_EVENTS);
            }
            took
        })
    });
    g.finish();
}

criterion_group!(benches, tail, stages);
criterion_main!(benches);
