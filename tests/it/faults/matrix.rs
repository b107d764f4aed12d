//! The receiver fault matrix against the real binary: one webhook per row, each row a receiver
//! behaviour and what the delivery log and the receiver must show at the end (docs/reference.md §5).
//!
//! The child runs with `delivery.timeout = "1s"`, three retries 500 ms apart (±20 %) and
//! `max_retry_after = "3s"`. Rows run side by side (each webhook fires only for its own product).

use std::ops::RangeInclusive;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::{peak_rss, Act, Bin, Hit, Raw};
use crate::support::binary::free_port;
use crate::support::eventually_value;

const TIMEOUT: f64 = 1.0;
/// Added to every upper bound: a loaded machine (the other tests, a slow fsync) delays a retry,
/// never hastens it. The lower bounds are the contract; the upper ones only tell the waits
/// apart (the schedule's 0.5 s, a 2 s `Retry-After`, the 3 s cap, not an hour).
const SLACK: f64 = 2.0;
/// Gaps between attempts (seconds, at the receiver) that the schedule allows: 500 ms ±20 %.
const SCHED: (f64, f64) = (0.38, 0.6 + SLACK);
/// After an attempt that ran into the timeout: the timeout, then the schedule.
const AFTER_TIMEOUT: (f64, f64) = (TIMEOUT + 0.3, TIMEOUT + 0.6 + SLACK);
/// `Retry-After: 2`: never shortened by jitter.
const RA2: (f64, f64) = (1.95, 2.0 + SLACK);
/// `Retry-After` as a date 3 s ahead (whole seconds: 2..3 s from the answer).
const DATE: (f64, f64) = (1.9, 3.0 + SLACK);
/// `Retry-After: 3600` cut to `max_retry_after` (3 s).
const CAPPED: (f64, f64) = (2.95, 3.0 + SLACK);
/// How long a hung or trickling answer keeps its connection: the timeout runs from the send's
/// start, a moment before the receiver has read the request.
const HELD: (f64, f64) = (TIMEOUT - 0.5, TIMEOUT + 1.0);
/// How many events the 10 MB row gets (each a distinct object: all in flight at once).
const HUGE_EVENTS: usize = 20;
const HUGE: usize = 10 * 1024 * 1024;
/// The `comment` of the events posted once everything has ended (see "nothing more arrives").
const MARKER: &str = "quiet marker";

fn is_marker(h: &Hit) -> bool {
    h.json()["comment"] == MARKER
}

/// What a raw receiver got, the end markers left out.
fn hits_before_marker(raw: &Option<Raw>) -> Vec<Hit> {
    raw.as_ref()
        .map(Raw::hits)
        .unwrap_or_default()
        .into_iter()
        .filter(|h| !is_marker(h))
        .collect()
}

/// Where a row's webhook points.
enum Target {
    /// A [`Raw`] receiver with this script.
    Script(Box<dyn FnMut(usize) -> Act + Send>),
    /// A port nothing listens on; with `true` a receiver answering 200 comes up there after the
    /// first attempt was refused.
    Refused(bool),
}

struct Row {
    name: &'static str,
    target: Target,
    /// Final status of every delivery of the row.
    status: &'static str,
    attempts: RangeInclusive<u64>,
    /// Words the final `lastError` holds (dead rows), lower case.
    error: &'static [&'static str],
    /// Allowed gaps between consecutive requests, in seconds.
    gaps: (f64, f64),
}

/// `n < k`: `first`, then 200.
fn then_ok(k: usize, first: Act) -> Box<dyn FnMut(usize) -> Act + Send> {
    Box::new(move |n| {
        if n < k {
            first.clone()
        } else {
            Act::status(200)
        }
    })
}

fn always(act: Act) -> Box<dyn FnMut(usize) -> Act + Send> {
    Box::new(move |_| act.clone())
}

fn rows(elsewhere: &str) -> Vec<Row> {
    let redirect =
        |status: u16| Act::with_header(status, "location", &format!("{elsewhere}?moved=1"));
    let trickle = Act::Trickle {
        every: Duration::from_millis(150),
    };
    vec![
        Row {
            name: "500 twice, then healthy",
            target: Target::Script(then_ok(2, Act::status(500))),
            status: "delivered",
            attempts: 3..=3,
            error: &[],
            gaps: SCHED,
        },
        Row {
            name: "500 always",
            target: Target::Script(always(Act::status(500))),
            status: "dead",
            attempts: 4..=4,
            error: &["gave up after 4 attempts", "http 500"],
            gaps: SCHED,
        },
        Row {
            name: "503 + Retry-After: 2, then healthy",
            target: Target::Script(then_ok(1, Act::with_header(503, "retry-after", "2"))),
            status: "delivered",
            attempts: 2..=2,
            error: &[],
            gaps: RA2,
        },
        Row {
            name: "503 + Retry-After: 2 always",
            target: Target::Script(always(Act::with_header(503, "retry-after", "2"))),
            status: "dead",
            attempts: 4..=4,
            error: &["http 503"],
            gaps: RA2,
        },
        Row {
            name: "429 + Retry-After as an HTTP date, then healthy",
            target: Target::Script(Box::new(|n| {
                if n == 0 {
                    let at = SystemTime::now() + Duration::from_secs(3);
                    Act::with_header(429, "retry-after", &httpdate::fmt_http_date(at))
                } else {
                    Act::status(200)
                }
            })),
            status: "delivered",
            attempts: 2..=2,
            error: &[],
            gaps: DATE,
        },
        Row {
            name: "429 + Retry-After: 3600 (cut to max_retry_after), then healthy",
            target: Target::Script(then_ok(1, Act::with_header(429, "retry-after", "3600"))),
            status: "delivered",
            attempts: 2..=2,
            error: &[],
            gaps: CAPPED,
        },
        Row {
            name: "no answer (timeout), then healthy",
            target: Target::Script(then_ok(1, Act::Hang)),
            status: "delivered",
            attempts: 2..=2,
            error: &[],
            gaps: AFTER_TIMEOUT,
        },
        Row {
            name: "no answer (timeout) always",
            target: Target::Script(always(Act::Hang)),
            status: "dead",
            attempts: 4..=4,
            error: &["timed out"],
            gaps: AFTER_TIMEOUT,
        },
        Row {
            name: "connection refused always",
            target: Target::Refused(false),
            status: "dead",
            attempts: 4..=4,
            error: &["connection failed", "refused"],
            gaps: SCHED,
        },
        Row {
            name: "connection refused, then a receiver comes up",
            target: Target::Refused(true),
            status: "delivered",
            attempts: 2..=4,
            error: &[],
            gaps: SCHED,
        },
        Row {
            name: "reset mid-body, then healthy",
            target: Target::Script(then_ok(1, Act::Cut { keep: 300 })),
            status: "delivered",
            attempts: 2..=2,
            error: &[],
            gaps: SCHED,
        },
        Row {
            name: "reset mid-body always",
            target: Target::Script(always(Act::Cut { keep: 300 })),
            status: "dead",
            attempts: 4..=4,
            error: &["reset by peer"],
            gaps: SCHED,
        },
        Row {
            name: "reset mid-headers always",
            target: Target::Script(always(Act::Cut { keep: 40 })),
            status: "dead",
            attempts: 4..=4,
            error: &["reset by peer"],
            gaps: SCHED,
        },
        Row {
            name: "slow body (a byte every 150 ms), then healthy",
            target: Target::Script(then_ok(1, trickle.clone())),
            status: "delivered",
            attempts: 2..=2,
            error: &[],
            gaps: AFTER_TIMEOUT,
        },
        Row {
            name: "slow body always",
            target: Target::Script(always(trickle)),
            status: "dead",
            attempts: 4..=4,
            error: &["timed out"],
            gaps: AFTER_TIMEOUT,
        },
        Row {
            name: "410, then healthy (not asked again)",
            target: Target::Script(then_ok(1, Act::status(410))),
            status: "dead",
            attempts: 1..=1,
            error: &["410 gone"],
            gaps: SCHED,
        },
        Row {
            name: "301, then healthy",
            target: Target::Script(then_ok(1, redirect(301))),
            status: "delivered",
            attempts: 2..=2,
            error: &[],
            gaps: SCHED,
        },
        Row {
            name: "302 always",
            target: Target::Script(always(redirect(302))),
            status: "dead",
            attempts: 4..=4,
            error: &["http 302", "not followed"],
            gaps: SCHED,
        },
        Row {
            name: "10 MB answer (x20 at once)",
            // Then 200: what the markers get.
            target: Target::Script(Box::new(|n| {
                if n < HUGE_EVENTS {
                    Act::Huge(HUGE)
                } else {
                    Act::status(200)
                }
            })),
            status: "delivered",
            attempts: 1..=1,
            error: &[],
            gaps: (0.0, 60.0),
        },
    ]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[actix_rt::test]
async fn receiver_faults_end_as_contract_5_says() {
    let b = Bin::start("500ms", 3, "timeout = \"1s\"\nmax_retry_after = \"3s\"", "").await;
    let elsewhere = Raw::start(|_| Act::status(200)).await;
    let mut rows = rows(&elsewhere.url);
    // Each row: its receiver (or refused port) and webhook.
    let mut raws: Vec<Option<Raw>> = vec![];
    let mut ports: Vec<Option<u16>> = vec![];
    let mut hooks = vec![];
    for (i, row) in rows.iter_mut().enumerate() {
        let (url, raw, port) = match std::mem::replace(&mut row.target, Target::Refused(false)) {
            Target::Script(s) => {
                let r = Raw::start(s).await;
                (r.url.clone(), Some(r), None)
            }
            Target::Refused(up) => {
                let p = free_port();
                row.target = Target::Refused(up);
                (format!("http://127.0.0.1:{p}/hook"), None, Some(p))
            }
        };
        let wh = b
            .webhook(json!({"name": row.name, "url": url, "products": [i + 1],
                            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
            .await;
        raws.push(raw);
        ports.push(port);
        hooks.push(wh);
    }
    let huge_row = rows.len() - 1;
    let pid = b.child.pid();
    let rss_before = peak_rss(pid);

    let mut events = vec![];
    // Each row's objects (one per event).
    let mut objects: Vec<Vec<u64>> = vec![];
    let mut id = 0u64;
    for (i, _) in rows.iter().enumerate() {
        let n = if i == huge_row { HUGE_EVENTS } else { 1 };
        let mut mine = vec![];
        for _ in 0..n {
            id += 1;
            mine.push(id);
            events.push(json!({
                "id": id, "objectType": "bug", "objectID": id, "product": format!(",{},", i + 1),
                "actor": "alice", "action": "opened", "date": "2026-11-20 09:00:35",
                "objectName": "Login fails"
            }));
        }
        objects.push(mine);
    }
    let started = Instant::now();
    b.post_events(events).await;

    // Bring the refused port's receiver up once its first attempt was refused.
    for (i, row) in rows.iter().enumerate() {
        if let (Target::Refused(true), Some(p)) = (&row.target, ports[i]) {
            b.wait_deliveries(
                hooks[i],
                Duration::from_secs(60),
                "the first attempt",
                |d| d.first().is_some_and(|x| x["attempts"].as_u64() >= Some(1)),
            )
            .await;
            raws[i] = Some(Raw::start_on(p, |_| Act::status(200)).await);
        }
    }
    // Wait until every row's deliveries have ended.
    let logs: Vec<Vec<Value>> =
        eventually_value(Duration::from_secs(60), "the matrix to end", || async {
            let mut logs = vec![];
            let mut open = vec![];
            for (i, row) in rows.iter().enumerate() {
                let want = if i == huge_row { HUGE_EVENTS } else { 1 };
                let d = b.deliveries(hooks[i]).await;
                let ended = d.len() == want
                    && d.iter()
                        .all(|x| x["status"] == "delivered" || x["status"] == "dead");
                if !ended {
                    let x = d.first().cloned().unwrap_or(Value::Null);
                    open.push(format!(
                        "{:<60} {} attempts={} {}",
                        row.name, x["status"], x["attempts"], x["lastError"]
                    ));
                }
                logs.push(d);
            }
            if open.is_empty() {
                Ok(logs)
            } else {
                Err(format!("not ended:\n{}", open.join("\n")))
            }
        })
        .await;
    let ended = started.elapsed();
    let counts: Vec<usize> = raws
        .iter()
        .map(|r| r.as_ref().map_or(0, Raw::count))
        .collect();
    // Nothing more arrives anywhere once everything has ended (a dead delivery is not sent
    // again; a 410 is not asked twice). The marker: one more event about each object of each
    // row with a receiver. An object's next delivery is sent only once its earlier ones have
    // ended, so anything the engine still had for an object reaches the receiver before that
    // object's marker: once every marker is in, what is not a marker was all there is.
    let mut markers = vec![];
    for (i, objs) in objects.iter().enumerate() {
        if raws[i].is_none() {
            continue;
        }
        for o in objs {
            id += 1;
            markers.push(json!({
                "id": id, "objectType": "bug", "objectID": o, "product": format!(",{},", i + 1),
                "actor": "alice", "action": "edited", "date": "2026-11-20 09:00:35",
                "objectName": "Login fails", "comment": MARKER
            }));
        }
    }
    b.post_events(markers).await;
    eventually_value(Duration::from_secs(30), "every marker", || async {
        let waiting: Vec<&str> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                raws[*i].as_ref().is_some_and(|r| {
                    r.hits().iter().filter(|h| is_marker(h)).count() < objects[*i].len()
                })
            })
            .map(|(_, row)| row.name)
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!("no marker yet at {waiting:?}"))
        }
    })
    .await;

    let mut failures = vec![];
    for (i, row) in rows.iter().enumerate() {
        let mut fail = |what: String| failures.push(format!("{}: {what}", row.name));
        let hits = hits_before_marker(&raws[i]);
        if hits.len() != counts[i] {
            fail(format!(
                "{} more request(s) after the end (before the marker)",
                hits.len() - counts[i]
            ));
        }
        let mut gaps = vec![];
        for d in &logs[i] {
            if d["status"] != row.status {
                fail(format!("status {} (want {}): {d}", d["status"], row.status));
            }
            let attempts = d["attempts"].as_u64().unwrap_or(0);
            if !row.attempts.contains(&attempts) {
                fail(format!("{attempts} attempts (want {:?})", row.attempts));
            }
            let err = d["lastError"].as_str().unwrap_or("").to_lowercase();
            for w in row.error {
                if !err.contains(w) {
                    fail(format!("lastError {err:?} does not say {w:?}"));
                }
            }
            if row.status == "delivered" && d["lastStatus"] != 200 {
                fail(format!("lastStatus {}", d["lastStatus"]));
            }
        }
        if i != huge_row {
            // One event: consecutive requests are its attempts.
            for w in hits.windows(2) {
                let gap = secs(w[1].at.duration_since(w[0].at));
                gaps.push(gap);
                if gap < row.gaps.0 || gap > row.gaps.1 {
                    fail(format!("{gap:.2} s between attempts (want {:?})", row.gaps));
                }
            }
            // Every request of an event carries its delivery's webhook-id.
            let ids: std::collections::HashSet<&str> =
                hits.iter().filter_map(|h| h.header("webhook-id")).collect();
            if ids.len() > 1 {
                fail(format!("several webhook-ids: {ids:?}"));
            }
            let attempts = logs[i]
                .first()
                .and_then(|d| d["attempts"].as_u64())
                .unwrap_or(0);
            if !matches!(row.target, Target::Refused(_)) && hits.len() as u64 != attempts {
                fail(format!(
                    "{} requests arrived for {attempts} attempts",
                    hits.len()
                ));
            }
        }
        // A hung or trickling answer is given up at the timeout, not later.
        for h in &hits {
            if let Some(c) = h.closed {
                let held = secs(c.duration_since(h.at));
                if i != huge_row && !(HELD.0..=HELD.1).contains(&held) {
                    fail(format!(
                        "the connection was held {held:.2} s (want {HELD:?})"
                    ));
                }
            }
        }
        let last = logs[i].first().cloned().unwrap_or(Value::Null);
        println!(
            "{:<62} {:<9} attempts={} gaps={:?} lastError={}",
            row.name,
            last["status"].as_str().unwrap_or("?"),
            last["attempts"],
            gaps.iter().map(|g| format!("{g:.2}")).collect::<Vec<_>>(),
            last["lastError"]
        );
    }
    // Redirects are not followed: their target never hears of them.
    if elsewhere.count() != 0 {
        failures.push(format!(
            "the redirect target got {} request(s)",
            elsewhere.count()
        ));
    }
    // The 10 MB answers: read up to the limit only. The log keeps a few KB of the body.
    let huge = hits_before_marker(&raws[huge_row]);
    let unread = huge.iter().filter(|h| h.written < HUGE).count();
    for d in &logs[huge_row] {
        let body = d["response"]["body"].as_str().unwrap_or("");
        if body.len() > 8 * 1024 || !body.contains("[cut,") {
            failures.push(format!(
                "10 MB row: the log keeps {} bytes of the body",
                body.len()
            ));
        }
    }
    let rss_after = peak_rss(pid);
    let grew = rss_after.saturating_sub(rss_before);
    println!(
        "matrix ended in {:.1} s; 10 MB answers: {} of {HUGE_EVENTS} left unread by the client; peak RSS {} MB -> {} MB",
        secs(ended),
        unread,
        rss_before >> 20,
        rss_after >> 20
    );
    // Twenty 10 MB answers at once would take 200 MB if they were buffered.
    if grew > 64 << 20 {
        failures.push(format!(
            "peak RSS grew by {} MB during the matrix",
            grew >> 20
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
