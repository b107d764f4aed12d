//! A model-based test of one destination: random events about a few objects, each with a random
//! script of receiver answers (2xx, 500, 410, 429 with `Retry-After`; 2xx once it runs out),
//! graceful restarts and retries by hand (`POST /deliveries/{id}/retry`), against the in-process
//! engine.
//!
//! The receiver keeps the model: each request is checked when it arrives, and the answer it
//! gives decides what the model expects next. Checked:
//! - no send of a delivery the model has ended (`delivered` or `dead`) unless it was re-queued
//!   by hand;
//! - per object, a delivery is sent only once every earlier one of that object has ended (those
//!   re-queued by hand aside: they go back into the queue behind a send in flight);
//! - `Retry-After` (1 s, cut to `max_retry_after` = 300 ms) and the schedule (100 ms ±20 %)
//!   are waited out;
//! - at the end, every delivery is in the state the model predicts (delivered, or dead after a
//!   410 or its last retry) with exactly the attempts the receiver saw: nothing lost, nothing
//!   repeated (graceful restarts finish what is in flight).
//!
//! `SANHOOK_TEST_MODEL_CASES` sets the number of cases (default 8).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::support::receiver::Receiver;
use crate::support::{eventually_value, test_config, TestServer};

const EXTRA: &str = "max_retry_after = \"300ms\"\n";
/// `test_config`'s schedule: three retries.
const RETRIES: u32 = 3;
const OBJECTS: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    Fail,
    Gone,
    Later,
}

#[derive(Debug, Clone)]
enum Op {
    /// An event about this object, and how the receiver answers its requests in turn.
    Post(u8, Vec<Answer>),
    Restart,
    /// Retry by hand the n-th (modulo) ended delivery, if any.
    Retry(u8),
    /// Wait until everything has ended.
    Settle,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    Open,
    Delivered,
    Dead,
}

#[derive(Debug)]
struct Ev {
    object: u8,
    script: VecDeque<Answer>,
    st: St,
    attempts: u32,
    requeued: bool,
    last: Option<(Answer, Instant)>,
}

#[derive(Default)]
struct Model {
    events: BTreeMap<u64, Ev>,
    violations: Vec<String>,
    arrivals: usize,
}

impl Model {
    /// A request for event `seq` arrived: check it, pick the answer, update the model.
    fn arrive(&mut self, seq: u64) -> Answer {
        self.arrivals += 1;
        let now = Instant::now();
        let Some(e) = self.events.get(&seq) else {
            self.violations
                .push(format!("a request for unknown event {seq}"));
            return Answer::Ok;
        };
        let object = e.object;
        if e.st != St::Open {
            self.violations
                .push(format!("event {seq} sent again after it ended {:?}", e.st));
        }
        match e.last {
            Some((Answer::Later, t)) if now - t < Duration::from_millis(250) => {
                self.violations.push(format!(
                    "event {seq} tried again {:?} after Retry-After (300 ms)",
                    now - t
                ))
            }
            Some((Answer::Fail, t)) if now - t < Duration::from_millis(70) => {
                self.violations.push(format!(
                    "event {seq} tried again {:?} after a 500 (schedule 100 ms)",
                    now - t
                ))
            }
            _ => {}
        }
        for (d, x) in self.events.range(..seq) {
            if x.object == object && x.st == St::Open && !x.requeued {
                self.violations.push(format!(
                    "event {seq} sent while event {d} of the same object was still open"
                ));
            }
        }
        let Some(e) = self.events.get_mut(&seq) else {
            return Answer::Ok;
        };
        let answer = e.script.pop_front().unwrap_or(Answer::Ok);
        e.attempts += 1;
        e.last = Some((answer, now));
        e.st = match answer {
            Answer::Ok => St::Delivered,
            Answer::Gone => St::Dead,
            Answer::Fail | Answer::Later if e.attempts > RETRIES => St::Dead,
            Answer::Fail | Answer::Later => St::Open,
        };
        answer
    }

    fn all_ended(&self) -> bool {
        self.events.values().all(|e| e.st != St::Open)
    }
}

fn status_of(st: St) -> &'static str {
    match st {
        St::Open => "open",
        St::Delivered => "delivered",
        St::Dead => "dead",
    }
}

/// Waits until the engine's log has `n` deliveries, all ended, and the model agrees.
async fn settle(s: &TestServer, wh: u64, model: &Arc<Mutex<Model>>, n: usize) -> Vec<Value> {
    eventually_value(Duration::from_secs(30), "everything to end", || async {
        let d = s.deliveries(wh).await;
        let ended = d.len() == n
            && d.iter()
                .all(|x| x["status"] == "delivered" || x["status"] == "dead");
        let m = model.lock().expect("model");
        if ended && m.all_ended() {
            return Ok(d);
        }
        Err(format!(
            "log {:?}; model {:?}",
            d.iter()
                .map(|x| (
                    x["eventId"].clone(),
                    x["status"].clone(),
                    x["attempts"].clone()
                ))
                .collect::<Vec<_>>(),
            m.events
        ))
    })
    .await
}

/// Posts event `seq` about `object` (the receiver answers its requests as `script` says, then
/// 2xx) and adds it to the model.
async fn post(
    s: &TestServer,
    model: &Arc<Mutex<Model>>,
    seq: u64,
    object: u8,
    script: Vec<Answer>,
) {
    model.lock().expect("model").events.insert(
        seq,
        Ev {
            object,
            script: script.into(),
            st: St::Open,
            attempts: 0,
            requeued: false,
            last: None,
        },
    );
    let ev = json!({
        "id": seq, "objectType": "bug", "objectID": u64::from(object) + 1,
        "product": ",1,", "actor": "alice", "action": "edited",
        "date": "2026-11-20 09:00:35", "objectName": "x", "comment": format!("e{seq}"),
    });
    let (status, v) = s.call("POST", "/api/v1/events", Some(ev)).await;
    assert_eq!(status, 202, "{v}");
}

async fn run_case(ops: Vec<Op>) {
    let model: Arc<Mutex<Model>> = Arc::default();
    let m = model.clone();
    let r = Receiver::start(move |req, _| {
        let seq: u64 = req.json()["comment"]
            .as_str()
            .and_then(|c| c.strip_prefix('e'))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        match m.lock().expect("model").arrive(seq) {
            Answer::Ok => (200, vec![], "ok".into()),
            Answer::Fail => (500, vec![], "boom".into()),
            Answer::Gone => (410, vec![], "gone".into()),
            Answer::Later => (
                429,
                vec![("Retry-After".into(), "1".into())],
                "later".into(),
            ),
        }
    });
    let mut s = TestServer::start(EXTRA).await;
    let wh = s.webhook(json!({"name": "model", "url": r.url})).await;
    let mut posted = 0u64;
    for op in ops {
        match op {
            Op::Post(object, script) => {
                posted += 1;
                post(&s, &model, posted, object, script).await;
            }
            Op::Restart => {
                let dir = s.stop().await;
                s = TestServer::start_with(test_config(dir.path(), EXTRA), dir).await;
            }
            Op::Retry(k) => {
                let ended: Vec<u64> = {
                    let m = model.lock().expect("model");
                    m.events
                        .iter()
                        .filter(|(_, e)| e.st != St::Open)
                        .map(|(seq, _)| *seq)
                        .collect()
                };
                if ended.is_empty() {
                    continue;
                }
                let seq = ended[k as usize % ended.len()];
                // The receiver has answered; wait for the engine to record the end.
                let d = s
                    .wait_deliveries(wh, Duration::from_secs(10), "the outcome recorded", |d| {
                        d.iter().any(|x| {
                            x["eventId"] == seq
                                && (x["status"] == "delivered" || x["status"] == "dead")
                        })
                    })
                    .await;
                let id = d
                    .iter()
                    .find(|x| x["eventId"] == seq)
                    .and_then(|x| x["id"].as_u64())
                    .expect("delivery id");
                {
                    let mut m = model.lock().expect("model");
                    if let Some(e) = m.events.get_mut(&seq) {
                        e.st = St::Open;
                        e.requeued = true;
                        // A retry by hand is sent at once: the schedule's wait after the
                        // delivery's last 500 or 429 no longer applies.
                        e.last = None;
                    }
                }
                let (status, v) = s
                    .call("POST", &format!("/api/v1/deliveries/{id}/retry"), None)
                    .await;
                assert_eq!(status, 202, "retry of delivery {id}: {v}");
            }
            Op::Settle => {
                settle(&s, wh, &model, posted as usize).await;
            }
        }
    }
    settle(&s, wh, &model, posted as usize).await;
    // Nothing more is sent once everything ended: one more event about each object, answered
    // 2xx at once. An object's next delivery is sent only once its earlier ones have ended, so
    // anything the engine still had for an object reaches the receiver before that object's
    // marker; once every marker has ended, the requests since the end are the markers alone.
    let arrivals = model.lock().expect("model").arrivals;
    for object in 0..OBJECTS {
        posted += 1;
        post(&s, &model, posted, object, vec![]).await;
    }
    let d = settle(&s, wh, &model, posted as usize).await;
    let problems = check_end(
        &model.lock().expect("model"),
        &d,
        arrivals + usize::from(OBJECTS),
    );
    s.stop().await;
    r.stop().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What the end state shows against the model: the violations seen on the way, requests
/// beyond the `arrivals` expected, and each delivery's status and attempts.
fn check_end(m: &Model, d: &[Value], arrivals: usize) -> Vec<String> {
    let mut problems = m.violations.clone();
    if m.arrivals != arrivals {
        problems.push(format!(
            "{} request(s) where {arrivals} were expected: sent after everything ended",
            m.arrivals
        ));
    }
    for x in d {
        let seq = x["eventId"].as_u64().unwrap_or(0);
        let Some(e) = m.events.get(&seq) else {
            problems.push(format!("a delivery for unknown event {seq}"));
            continue;
        };
        if x["status"] != status_of(e.st) || x["attempts"] != e.attempts {
            problems.push(format!(
                "event {seq}: the log says {} after {} attempts, the receiver saw {} and {:?}",
                x["status"], x["attempts"], e.attempts, e.st
            ));
        }
    }
    problems
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => Just(Answer::Ok),
        4 => Just(Answer::Fail),
        1 => Just(Answer::Gone),
        1 => Just(Answer::Later),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..OBJECTS, proptest::collection::vec(answer(), 0..6))
            .prop_map(|(o, s)| Op::Post(o, s)),
        1 => Just(Op::Restart),
        2 => any::<u8>().prop_map(Op::Retry),
        1 => Just(Op::Settle),
    ]
}

fn cases() -> u32 {
    std::env::var("SANHOOK_TEST_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn one_destination_keeps_order_loses_nothing_and_stops_at_dead(
        ops in proptest::collection::vec(op(), 3..14),
    ) {
        actix_rt::System::new().block_on(run_case(ops));
    }
}
