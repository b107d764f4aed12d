//! The real binary, killed with SIGKILL again and again while events flow to ten webhooks at
//! full speed: nothing is lost and each object's events reach each webhook in order. A send in
//! flight (or awaiting its commit) at a kill may arrive twice, with the same `webhook-id`.
//!
//! [`run`] is the loop itself, also used by `faults::kill` with a receiver that fails some of
//! its requests.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;

use crate::support::binary::{free_port, write_config, Sanhook};
use crate::support::{eventually, eventually_value, Api};

/// Events posted: `SANHOOK_TEST_KILL_EVENTS`, default 5,000 (50,000 deliveries); `.ci/run` runs
/// it again on the release build with 50,000 (500,000 deliveries).
fn events() -> u64 {
    std::env::var("SANHOOK_TEST_KILL_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// One request the sink got.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The webhook's index (the last segment of the path).
    pub hook: u8,
    pub object: u32,
    /// The event's number (its `comment`, `n=...`).
    pub n: u32,
    /// Whether the sink answered 2xx.
    pub ok: bool,
    /// The delivery id in its `webhook-id` (`msg_<instance>_<id>`; 0 when unsigned).
    pub msg: u64,
}

/// What a [`Sink`] got: every arrival, and the (webhook, event) pairs answered 2xx so far (kept
/// as they come, so that waiting for them all is cheap to ask).
#[derive(Default)]
pub struct Got {
    pub arrivals: Vec<Arrival>,
    ok: HashSet<(u8, u32)>,
}

/// A receiver that keeps only what the checks need (a 500k-delivery run stays small), and
/// answers `500` to `fail_percent` % of requests, at random.
pub struct Sink {
    pub url: String,
    pub got: Arc<Mutex<Got>>,
    handle: actix_web::dev::ServerHandle,
}

impl Sink {
    pub fn start(fail_percent: u32) -> Sink {
        let got: Arc<Mutex<Got>> = Arc::default();
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
                    let msg: u64 = req
                        .headers()
                        .get("webhook-id")
                        .and_then(|h| h.to_str().ok())
                        .and_then(|s| s.rsplit('_').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let ok = fail_percent == 0 || rand::random_range(0..100) >= fail_percent;
                    let mut got = g.lock().expect("sink lock");
                    got.arrivals.push(Arrival {
                        hook,
                        object,
                        n,
                        ok,
                        msg,
                    });
                    if ok {
                        got.ok.insert((hook, n));
                    }
                    drop(got);
                    if ok {
                        HttpResponse::Ok().body("ok")
                    } else {
                        HttpResponse::InternalServerError().body("flaky")
                    }
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

    pub fn count(&self) -> usize {
        self.got.lock().expect("sink lock").arrivals.len()
    }

    /// How many distinct (webhook, event) were answered 2xx.
    fn distinct_ok(&self) -> usize {
        self.got.lock().expect("sink lock").ok.len()
    }
}

/// Posts events `from..to` (event n about object `n % objects + 1`, comment `n=<n>`) in NDJSON
/// batches of 1,000, each until it gets its `202` (a batch the engine did not answer is posted
/// again: ids dedupe it), for at most 30 s a batch.
pub async fn post_events(api: &Api, from: u64, to: u64, objects: u64) {
    let mut next = from;
    while next < to {
        let end = (next + 1000).min(to);
        let body: Vec<String> = (next..end)
            .map(|n| {
                json!({
                    "id": n + 1, "objectType": "bug", "objectID": n % objects + 1, "product": ",1,",
                    "execution": 5, "actor": "alice", "action": "edited",
                    "date": "2026-11-20 09:00:35", "objectName": "Login fails",
                    "comment": format!("n={n}")
                })
                .to_string()
            })
            .collect();
        let body = body.join("\n");
        let body = &body;
        eventually(
            Duration::from_secs(30),
            &format!("a 202 for events {next}..{end}"),
            move || async move {
                let sent = api
                    .request(reqwest::Method::POST, "/api/v1/events")
                    .header("content-type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await;
                sent.is_ok_and(|r| r.status().as_u16() == 202)
            },
        )
        .await;
        next = end;
    }
}

/// One kill loop.
pub struct Run {
    pub webhooks: usize,
    pub objects: u64,
    pub events: u64,
    pub kills: usize,
    /// The receiver answers 500 to this share of requests.
    pub fail_percent: u32,
    /// Webhooks with a secret: requests carry `webhook-id`, checked stable across repeats.
    pub signed: bool,
    /// The retry schedule: `retries` times `retry`.
    pub retry: &'static str,
    pub retries: usize,
    /// How long the deliveries may take after the last post.
    pub finish: Duration,
}

/// What a kill loop came to (the checks of order and ids have passed).
pub struct Report {
    pub arrivals: usize,
    /// Arrivals answered 500.
    pub failed: usize,
    /// Expected (webhook, event) pairs never answered 2xx.
    pub lost: usize,
    /// 2xx answers beyond the first for a (webhook, event).
    pub repeats: usize,
    pub wall: Duration,
}

/// Posts `run.events` in `run.kills + 1` parts, killing the engine with SIGKILL (and starting
/// it again) after each of the first `kills` parts while its deliveries flow; then waits for
/// every (webhook, event) to be answered 2xx. Checks, per webhook and object, that first
/// arrivals and first 2xx arrivals come in posting order, and (signed) that every request of an
/// event carries one `webhook-id`.
pub async fn run(run: Run) -> Report {
    sanhook::tls::install_crypto_provider();
    let started = Instant::now();
    let total = run.events;
    let sink = Sink::start(run.fail_percent);
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(dir.path(), port, run.retry, run.retries);
    let api = Api::new(&base, "");
    let mut child = Sanhook::serve(&config, &dir.path().join("run0.log"), &base).await;
    for i in 0..run.webhooks {
        let mut wh = json!({"name": format!("kill{i}"), "url": format!("{}/hook/{i}", sink.url)});
        if run.signed {
            wh["secret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        }
        api.webhook(wh).await;
    }

    // Post in parts; kill the engine after each (while the deliveries of what was posted are
    // still flowing), start it again, and go on.
    let per_kill = total / (run.kills as u64 + 1);
    // Kill once this many more requests arrived after a part was posted (or 10 s passed).
    let step = ((per_kill as usize * run.webhooks) / 2).clamp(1, 2000);
    for k in 1..=run.kills {
        let (from, to) = (per_kill * (k as u64 - 1), per_kill * k as u64);
        post_events(&api, from, to, run.objects).await;
        // Not a wait for the engine but the pacing of the kill (the pause is the behaviour):
        // let deliveries flow until `step` more arrived or 10 s passed, whichever is first;
        // `step` more need not ever arrive (much of the part may have arrived while it was
        // posted), and then the 10 s are the pacing. Either way the kill lands mid-flow.
        let want = sink.count() + step;
        let until = Instant::now() + Duration::from_secs(10);
        while sink.count() < want && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.sigkill();
        child = Sanhook::serve(&config, &dir.path().join(format!("run{k}.log")), &base).await;
    }
    post_events(&api, per_kill * run.kills as u64, total, run.objects).await;

    let expected = total as usize * run.webhooks;
    // Within `run.finish`, and never 60 s without a new arrival.
    let mut last = (0, Instant::now());
    eventually_value(run.finish, "every (webhook, event) answered 2xx", || {
        let distinct = sink.distinct_ok();
        let n = sink.count();
        if n != last.0 {
            last = (n, Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(60),
            "stalled: {distinct} of {expected} distinct deliveries arrived"
        );
        std::future::ready(if distinct >= expected {
            Ok(())
        } else {
            Err(format!(
                "{distinct} of {expected} distinct deliveries arrived"
            ))
        })
    })
    .await;
    drop(child);
    sink.handle.stop(false).await;

    let got = sink.got.lock().expect("sink lock").arrivals.clone();
    let mut first_any: HashMap<(u8, u32), u32> = HashMap::new();
    let mut first_ok: HashMap<(u8, u32), u32> = HashMap::new();
    let mut seen = HashSet::new();
    let mut seen_ok = HashSet::new();
    let mut ids: HashMap<(u8, u32), u64> = HashMap::new();
    let mut repeats = 0usize;
    for a in &got {
        let msg = *ids.entry((a.hook, a.n)).or_insert(a.msg);
        assert_eq!(
            msg, a.msg,
            "webhook {}, event n={}: sent again with another webhook-id",
            a.hook, a.n
        );
        if seen.insert((a.hook, a.n)) {
            let last = first_any.entry((a.hook, a.object)).or_insert(0);
            assert!(
                a.n >= *last,
                "webhook {}, bug {}: event n={} first sent after n={last}",
                a.hook,
                a.object,
                a.n
            );
            *last = a.n;
        }
        if !a.ok {
            continue;
        }
        if !seen_ok.insert((a.hook, a.n)) {
            repeats += 1;
            continue;
        }
        let last = first_ok.entry((a.hook, a.object)).or_insert(0);
        assert!(
            a.n >= *last,
            "webhook {}, bug {}: event n={} delivered after n={last}",
            a.hook,
            a.object,
            a.n
        );
        *last = a.n;
    }
    if run.signed {
        assert!(
            ids.values().all(|m| *m != 0),
            "a request without webhook-id"
        );
    }
    let report = Report {
        arrivals: got.len(),
        failed: got.iter().filter(|a| !a.ok).count(),
        lost: expected - seen_ok.len().min(expected),
        repeats,
        wall: started.elapsed(),
    };
    println!(
        "kill loop: {total} events x {} webhooks, {} kills, receiver failing {} %: {} arrivals ({} answered 500), {} lost, {} repeated, {:.1} s",
        run.webhooks,
        run.kills,
        run.fail_percent,
        report.arrivals,
        report.failed,
        report.lost,
        report.repeats,
        report.wall.as_secs_f64()
    );
    report
}

#[actix_rt::test]
async fn five_kills_under_full_load_lose_nothing_and_keep_order() {
    let report = run(Run {
        webhooks: 10,
        objects: 500,
        events: events(),
        kills: 5,
        fail_percent: 0,
        signed: false,
        retry: "200ms",
        retries: 20,
        finish: Duration::from_secs(600),
    })
    .await;
    assert_eq!(report.lost, 0);
}
