//! Durable intake throughput through `POST /api/v1/events`: NDJSON batches of 1,000 realistic
//! events, several requests in flight (so commits are shared), each event matching one of 10
//! webhooks. The webhooks are async with a long interval, so no sends compete with intake: this
//! measures parse + route + durable commit, with the load client in the same process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sanhook::{Config, Engine};

const BATCH: usize = 1000;
const IN_FLIGHT: usize = 8;

fn samples() -> Vec<serde_json::Value> {
    include_str!("../fixtures/actions.ndjson")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Starts an engine with its API in a thread of its own; returns the base URL.
fn start_server(dir: &std::path::Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.join("bench.redb");
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut cfg =
                Config::from_toml_str("[delivery]\nasync_interval = \"1h\"\n").expect("config");
            cfg.storage.path = path;
            let engine = Engine::start(cfg).await.expect("engine");
            for p in 1..=10u64 {
                let wh = sanhook::Webhook {
                    name: format!("product {p}"),
                    url: "http://127.0.0.1:9/hook".into(),
                    send_type: sanhook::webhook::SendType::Async,
                    products: vec![p],
                    ..Default::default()
                };
                engine.create_webhook(wh).await.expect("webhook");
            }
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let server = sanhook::api::serve(engine, listener).expect("serve");
            tx.send(base).expect("send");
            let _ = server.await;
        });
    });
    rx.recv().expect("server started")
}

fn intake(c: &mut Criterion) {
    sanhook::tune_allocator();
    let dir = tempfile::tempdir().expect("dir");
    let base = start_server(dir.path());
    let samples = samples();
    let next_id = AtomicU64::new(1);
    // Every event gets a fresh id and a single product 1..=10, so it matches exactly one webhook
    // (the action is one the default triggers list).
    let make_body = |n: usize| -> String {
        let mut out = String::with_capacity(n * 400);
        for i in 0..n {
            let mut e = samples[i % samples.len()].clone();
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            e["id"] = id.into();
            e["product"] = format!(",{},", id % 10 + 1).into();
            e["action"] = "edited".into();
            // `edited` is a trigger of every type below; anything else becomes a bug.
            let t = e["objectType"].as_str().unwrap_or("");
            if ![
                "bug",
                "task",
                "story",
                "case",
                "productplan",
                "product",
                "project",
                "testtask",
                "todo",
                "doc",
                "release",
                "kanbancard",
            ]
            .contains(&t)
            {
                e["objectType"] = "bug".into();
            }
            out.push_str(&e.to_string());
            out.push('\n');
        }
        out
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/events");
    let mut g = c.benchmark_group("intake");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements((BATCH * IN_FLIGHT) as u64));
    g.bench_function("ndjson_1000x8_concurrent_durable", |b| {
        b.iter_custom(|iters| {
            let bodies: Vec<Vec<String>> = (0..iters)
                .map(|_| (0..IN_FLIGHT).map(|_| make_body(BATCH)).collect())
                .collect();
            rt.block_on(async {
                let start = Instant::now();
                for round in bodies {
                    let posts = round.into_iter().map(|body| {
                        let client = client.clone();
                        let url = url.clone();
                        async move {
                            let r = client
                                .post(url)
                                .header("content-type", "application/x-ndjson")
                                .body(body)
                                .send()
                                .await
                                .expect("post");
                            assert_eq!(r.status().as_u16(), 202);
                            let v: serde_json::Value = r.json().await.expect("json");
                            assert_eq!(v["deliveries"].as_u64(), Some(BATCH as u64), "{v}");
                        }
                    });
                    futures_util::future::join_all(posts).await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, intake);
criterion_main!(benches);
