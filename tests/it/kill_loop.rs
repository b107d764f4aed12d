//! The real binary, killed with SIGKILL again and again while events flow to ten webhooks at
//! full speed: nothing is lost and each object's events reach each webhook in order. A send in
//! flight (or awaiting its commit) at a kill may arrive twice, with the same `webhook-id`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;

use crate::support::binary::{free_port, write_config, Sanhook};

const WEBHOOKS: usize = 10;
const OBJECTS: u64 = 500;
const KILLS: usize = 5;

/// Events posted: `SANHOOK_TEST_KILL_EVENTS`, default 5,000 (50,000 deliveries); `.ci/run` runs
/// it again on the release build with 50,000 (500,000 deliveries).
fn events() -> u64 {
    std::env::var("SANHOOK_TEST_KILL_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// One arrival: (webhook index, object id, event number).
type Arrival = (u8, u32, u32);

/// A receiver that keeps only what the checks need (a 500k-delivery run stays small).
struct Sink {
    url: String,
    got: Arc<Mutex<Vec<Arrival>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Sink {
    fn start() -> Sink {
        let got: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let g = got.clone();
        let server = HttpServer::new(move || {
            let g = g.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let g = g.clone();
                async move {
                    let hook: u8 = req
                        .path()
                        .rsplit('/')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(u8::MAX);
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let object: u32 = v["objectID"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let n: u32 = v["comment"]
                        .as_str()
                        .and_then(|s| s.strip_prefix("n="))
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    g.lock().expect("sink lock").push((hook, object, n));
                    HttpResponse::Ok().body("ok")
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Sink { url, got, handle }
    }

    fn count(&self) -> usize {
        self.got.lock().expect("sink lock").len()
    }
}

/// Posts events `from..to` in NDJSON batches of 1,000, each until it gets its `202` (a batch
/// the engine did not answer is posted again: ids dedupe it), for at most 30 s a batch.
async fn post_events(client: &reqwest::Client, base: &str, from: u64, to: u64) {
    let mut next = from;
    while next < to {
        let end = (next + 1000).min(to);
        let body: Vec<String> = (next..end)
            .map(|n| {
                json!({
                    "id": n + 1, "objectType": "bug", "objectID": n % OBJECTS + 1, "product": ",1,",
                    "execution": 5, "actor": "alice", "action": "edited",
                    "date": "2026-11-20 09:00:35", "objectName": "Login fails",
                    "comment": format!("n={n}")
                })
                .to_string()
            })
            .collect();
        let body = body.join("\n");
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let sent = client
                .post(format!("{base}/api/v1/events"))
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                break;
            }
            assert!(
                Instant::now() < until,
                "events {next}..{end} got no 202 in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        next = end;
    }
}

#[actix_rt::test]
async fn five_kills_under_full_load_lose_nothing_and_keep_order() {
    sanhook::deliver::install_crypto_provider();
    let total = events();
    let sink = Sink::start();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(dir.path(), port, "200ms", 20);
    let client = reqwest::Client::new();
    let mut child = Sanhook::serve(&config, &dir.path().join("run0.log"), &base).await;
    for i in 0..WEBHOOKS {
        let resp = client
            .post(format!("{base}/api/v1/webhooks"))
            .json(&json!({"name": format!("kill{i}"), "url": format!("{}/hook/{i}", sink.url)}))
            .send()
            .await
            .expect("create webhook");
        assert_eq!(resp.status().as_u16(), 201);
    }

    // Post in batches of 1,000; kill the engine after every fifth of the events (while the
    // deliveries of what was posted are still flowing), start it again, and go on.
    let per_kill = total / KILLS as u64;
    for run in 1..=KILLS {
        post_events(
            &client,
            &base,
            per_kill * (run as u64 - 1),
            per_kill * run as u64,
        )
        .await;
        // Let deliveries get going, then kill mid-stream.
        let want = sink.count() + 2000;
        let until = Instant::now() + Duration::from_secs(10);
        while sink.count() < want && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.sigkill();
        child = Sanhook::serve(&config, &dir.path().join(format!("run{run}.log")), &base).await;
    }
    post_events(&client, &base, per_kill * KILLS as u64, total).await;

    let expected = total as usize * WEBHOOKS;
    let until = Instant::now() + Duration::from_secs(600);
    let mut last = (0, Instant::now());
    loop {
        let n = sink.count();
        let got: std::collections::HashSet<(u8, u32)> = sink
            .got
            .lock()
            .expect("sink lock")
            .iter()
            .map(|(h, _, n)| (*h, *n))
            .collect();
        if got.len() >= expected {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        assert!(
            Instant::now() < until && last.1.elapsed() < Duration::from_secs(60),
            "stalled: {} of {expected} distinct deliveries arrived",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(child);
    sink.handle.stop(false).await;

    // Per (webhook, object): first arrivals in posting order; repeats only of what came before.
    let got = sink.got.lock().expect("sink lock").clone();
    let mut seen: HashMap<(u8, u32), u32> = HashMap::new();
    let mut distinct = std::collections::HashSet::new();
    let mut repeats = 0usize;
    for (hook, object, n) in &got {
        if !distinct.insert((*hook, *n)) {
            repeats += 1;
            continue;
        }
        let last = seen.entry((*hook, *object)).or_insert(0);
        assert!(
            *n >= *last,
            "webhook {hook}, bug {object}: event n={n} arrived after n={last}"
        );
        *last = *n;
    }
    let lost = expected - distinct.len();
    println!(
        "kill loop: {} events x {WEBHOOKS} webhooks, {KILLS} kills: {} arrivals, {lost} lost, {repeats} repeated",
        total,
        got.len()
    );
    assert_eq!(lost, 0);
}
