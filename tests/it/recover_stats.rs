//! `POST /api/v1/webhooks/{id}/recover` and `GET /api/v1/stats` through the HTTP API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::receiver::Receiver;
use crate::support::{event, eventually, test_config, TestServer};

const WAIT: Duration = Duration::from_secs(15);

/// An event whose payload says which it is (`comment` = "e<id>").
fn ev(id: u64, object: u64, action: &str) -> Value {
    let mut e = event(id, object, action);
    e["comment"] = json!(format!("e{id}"));
    e
}

fn count(d: &[Value], status: &str) -> usize {
    d.iter().filter(|x| x["status"] == status).count()
}

fn ms(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Waits until the wall clock is past `ms` (so that what is committed next is later).
async fn clock_past(ms: i64) {
    eventually(WAIT, &format!("the clock past {ms}"), || async {
        chrono::Utc::now().timestamp_millis() > ms
    })
    .await;
}

async fn post(s: &TestServer, events: Vec<Value>) {
    let (status, v) = s
        .call("POST", "/api/v1/events", Some(Value::Array(events)))
        .await;
    assert_eq!(status, 202, "{v}");
}

async fn flush(s: &TestServer) {
    let (status, v) = s.call("POST", "/api/v1/outbox/flush", None).await;
    assert_eq!(status, 202, "{v}");
}

/// One request the receiver answered: which webhook (its URL's query), which event, how.
#[derive(Debug, Clone, PartialEq)]
struct Answered {
    query: String,
    object: String,
    event: String,
    status: u16,
}

#[actix_rt::test]
async fn recover_resends_exactly_the_dead_since_then_in_order() {
    // Down (410: dead at once) until `healthy`, except for "commented" events, which it takes.
    let healthy = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let r = {
        let (healthy, log) = (healthy.clone(), log.clone());
        Receiver::start(move |req, _| {
            let v = req.json();
            let ok = healthy.load(Ordering::SeqCst) || v["action"] == "commented";
            let status = if ok { 200 } else { 410 };
            log.lock().expect("lock").push(Answered {
                query: req.query.clone(),
                object: v["objectID"].as_str().unwrap_or("").to_string(),
                event: v["comment"].as_str().unwrap_or("").to_string(),
                status,
            });
            (status, vec![], "gone or ok".into())
        })
    };
    let s = TestServer::start("").await;
    // Async: what is posted waits for a flush, so a newer delivery can be held pending while
    // older ones are recovered.
    let wh = s
        .webhook(json!({"name": "down", "url": r.url, "sendType": "async"}))
        .await;
    let other = s
        .webhook(json!({"name": "other", "url": format!("{}?other", r.url), "sendType": "async"}))
        .await;

    // Before `since`: e1 about bug 1 dies.
    post(&s, vec![ev(1, 1, "opened")]).await;
    flush(&s).await;
    let d = s
        .wait_deliveries(wh, WAIT, "e1 dead", |d| count(d, "dead") == 1)
        .await;
    let since = ms(&d[0]["createdAt"]) + 1;
    clock_past(since).await;

    // Since then: bugs 1, 2 and 3; e5 is taken, the others die (for both webhooks).
    post(&s, vec![ev(2, 1, "edited"), ev(3, 2, "opened")]).await;
    post(&s, vec![ev(4, 1, "resolved"), ev(5, 2, "commented")]).await;
    post(&s, vec![ev(6, 3, "opened"), ev(7, 2, "closed")]).await;
    flush(&s).await;
    let before = s
        .wait_deliveries(wh, WAIT, "6 dead, 1 delivered", |d| {
            count(d, "dead") == 6 && count(d, "delivered") == 1
        })
        .await;
    s.wait_deliveries(other, WAIT, "other: 6 dead", |d| count(d, "dead") == 6)
        .await;

    // Back up. A newer event about bug 1 waits for the flush (pending, not in flight).
    healthy.store(true, Ordering::SeqCst);
    post(&s, vec![ev(8, 1, "closed")]).await;
    let (status, v) = s
        .call(
            "POST",
            &format!("/api/v1/webhooks/{wh}/recover"),
            Some(json!({"since": rfc3339(since)})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v, json!({"requeued": 5}), "e2, e3, e4, e6, e7");
    // The 202 came after the move to pending was committed: none of them is dead any more.
    let after = s.deliveries(wh).await;
    let by_id = |d: &[Value], id: &Value| -> String {
        d.iter()
            .find(|x| &x["id"] == id)
            .map(|x| x["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    for x in &before {
        let now = by_id(&after, &x["id"]);
        let e1 = x["eventId"] == 1;
        match x["status"].as_str() {
            Some("dead") if !e1 => assert!(now == "pending" || now == "delivered", "{x}: {now}"),
            Some(was) => assert_eq!(now, was, "{x}"),
            None => panic!("{x}"),
        }
    }
    flush(&s).await;
    s.wait_deliveries(wh, WAIT, "all but e1 delivered", |d| {
        d.len() == 8 && count(d, "delivered") == 7 && count(d, "dead") == 1
    })
    .await;
    let d = s.deliveries(wh).await;
    let e1 = d.iter().find(|x| x["eventId"] == 1).expect("e1");
    assert_eq!(e1["status"], "dead", "before since: not re-sent");

    let log = log.lock().expect("lock").clone();
    let mine: Vec<&Answered> = log.iter().filter(|a| a.query.is_empty()).collect();
    let sent = |e: &str| mine.iter().filter(|a| a.event == e).count();
    // Each recovered one once more; e1 (before since) and e5 (delivered) never again.
    for (e, n) in [
        ("e1", 1),
        ("e2", 2),
        ("e3", 2),
        ("e4", 2),
        ("e5", 1),
        ("e6", 2),
        ("e7", 2),
        ("e8", 1),
    ] {
        assert_eq!(sent(e), n, "{e} sent {} times: {mine:?}", sent(e));
    }
    // Per object, what was taken came in delivery-id (event) order: the recovered bug-1
    // deliveries before the newer e8, which was waiting when they were re-queued.
    let mut taken: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in mine.iter().filter(|a| a.status == 200) {
        taken.entry(&a.object).or_default().push(&a.event);
    }
    assert_eq!(taken["1"], ["e2", "e4", "e8"], "{mine:?}");
    assert_eq!(taken["2"], ["e5", "e3", "e7"], "{mine:?}");
    assert_eq!(taken["3"], ["e6"], "{mine:?}");
    // The other webhook's dead deliveries were left alone.
    let theirs = s.deliveries(other).await;
    assert_eq!(count(&theirs, "dead"), 6, "{theirs:?}");
    let to_other: Vec<&str> = log
        .iter()
        .filter(|a| !a.query.is_empty())
        .map(|a| a.event.as_str())
        .collect();
    let mut once = to_other.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(
        to_other.len(),
        once.len(),
        "the other webhook got a repeat: {to_other:?}"
    );

    // Nothing left to recover: a second call re-queues nothing.
    let (status, v) = s
        .call(
            "POST",
            &format!("/api/v1/webhooks/{wh}/recover"),
            Some(json!({"since": rfc3339(since)})),
        )
        .await;
    assert_eq!((status, v), (202, json!({"requeued": 0})));
}

#[actix_rt::test]
async fn recover_refuses_an_unknown_webhook_and_a_bad_since() {
    let s = TestServer::start("").await;
    let wh = s
        .webhook(json!({"name": "w", "url": "http://127.0.0.1:9/hook"}))
        .await;
    let (status, v) = s
        .call(
            "POST",
            "/api/v1/webhooks/999/recover",
            Some(json!({"since": "2026-01-05T09:00:00Z"})),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    let path = format!("/api/v1/webhooks/{wh}/recover");
    for (body, names) in [
        (json!({}), "since"),
        (json!({"since": "yesterday"}), "yesterday"),
        (json!({"since": 1767603600}), "1767603600"),
        (
            json!({"since": "2026-01-05 09:00:00"}),
            "2026-01-05 09:00:00",
        ),
    ] {
        let (status, v) = s.call("POST", &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {v}");
        let msg = v["error"].as_str().unwrap_or("");
        assert!(
            msg.contains("since") && msg.contains(names),
            "{body}: {msg}"
        );
        assert_eq!(v["field"], "since", "{v}");
    }
    let (status, v) = s
        .post_raw(&path, "application/json", "{since:".into())
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("not JSON"),
        "{v}"
    );
    let (status, v) = s.call("POST", &path, None).await;
    assert_eq!(status, 400, "{v}");
}

/// The stats line of `webhook`, if listed.
fn line(stats: &Value, webhook: u64) -> Option<Value> {
    stats
        .as_array()
        .expect("an array")
        .iter()
        .find(|x| x["webhookId"] == webhook)
        .cloned()
}

#[actix_rt::test]
async fn stats_count_every_status_and_survive_a_restart() {
    // One receiver; the webhook's URL query says how it answers.
    let r = Receiver::start(|req, _| {
        let v = req.json();
        match req.query.as_str() {
            "dead" => (410, vec![], "gone".into()),
            "mixed" if v["objectID"] == "2" => (410, vec![], "gone".into()),
            "retry" => (
                429,
                vec![("Retry-After".into(), "3600".into())],
                "later".into(),
            ),
            _ => (200, vec![], "ok".into()),
        }
    });
    let s = TestServer::start("").await;
    let url = |q: &str| format!("{}?{q}", r.url);
    let ok = s.webhook(json!({"name": "ok", "url": url("ok")})).await;
    let mixed = s
        .webhook(json!({"name": "mixed", "url": url("mixed")}))
        .await;
    let dead = s.webhook(json!({"name": "dead", "url": url("dead")})).await;
    let retry = s
        .webhook(json!({"name": "retry", "url": url("retry")}))
        .await;
    let held = s
        .webhook(json!({"name": "held", "url": url("ok"), "sendType": "async"}))
        .await;
    // An app-message webhook with nobody to send to: skipped, without a call.
    let skip = s
        .webhook(
            json!({"name": "skip", "type": "wechatuser", "wechatCorpId": "c",
            "wechatCorpSecret": "s", "wechatAgentId": "1000002"}),
        )
        .await;
    let gone = s
        .webhook(json!({"name": "gone", "url": url("ok"), "sendType": "async"}))
        .await;
    let (status, v) = s.call("GET", "/api/v1/stats", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(7), "{v}");
    let zero = line(&v, ok).expect("listed");
    assert_eq!(
        zero,
        json!({"webhookId": ok, "name": "ok", "pending": 0, "retrying": 0, "delivered": 0,
            "dead": 0, "skipped": 0, "lastSuccessAt": null, "lastFailureAt": null, "lastError": null})
    );

    post(&s, vec![ev(1, 1, "opened"), ev(2, 2, "opened")]).await;
    post(&s, vec![ev(3, 3, "opened")]).await;
    // "gone" is deleted with its three deliveries pending: they end skipped, and it is no
    // longer listed.
    let (status, _) = s
        .call("DELETE", &format!("/api/v1/webhooks/{gone}"), None)
        .await;
    assert_eq!(status, 204);
    let settled = |status: &'static str, n: usize| move |d: &[Value]| count(d, status) == n;
    s.wait_deliveries(ok, WAIT, "3 delivered", settled("delivered", 3))
        .await;
    s.wait_deliveries(mixed, WAIT, "2 delivered, 1 dead", |d| {
        count(d, "delivered") == 2 && count(d, "dead") == 1
    })
    .await;
    s.wait_deliveries(dead, WAIT, "3 dead", settled("dead", 3))
        .await;
    s.wait_deliveries(retry, WAIT, "3 retrying", settled("retrying", 3))
        .await;
    s.wait_deliveries(skip, WAIT, "3 skipped", settled("skipped", 3))
        .await;
    s.wait_deliveries(gone, WAIT, "3 skipped", settled("skipped", 3))
        .await;
    let (status, stats) = s.call("GET", "/api/v1/stats", None).await;
    let asked = chrono::Utc::now().timestamp_millis();
    assert_eq!(status, 200, "{stats}");
    assert!(
        line(&stats, gone).is_none(),
        "a deleted webhook is not listed: {stats}"
    );
    let ids: Vec<u64> = stats
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|x| x["webhookId"].as_u64())
        .collect();
    assert_eq!(ids, [ok, mixed, dead, retry, held, skip], "by id");

    // The counts are exactly the delivery log's.
    for (wh, name, want) in [
        (ok, "ok", [0, 0, 3, 0, 0]),
        (mixed, "mixed", [0, 0, 2, 1, 0]),
        (dead, "dead", [0, 0, 0, 3, 0]),
        (retry, "retry", [0, 3, 0, 0, 0]),
        (held, "held", [3, 0, 0, 0, 0]),
        (skip, "skip", [0, 0, 0, 0, 3]),
    ] {
        let l = line(&stats, wh).expect("listed");
        assert_eq!(l["name"], name);
        let log = s.deliveries(wh).await;
        for (i, status) in ["pending", "retrying", "delivered", "dead", "skipped"]
            .into_iter()
            .enumerate()
        {
            assert_eq!(l[status], want[i], "{name} {status}: {l}");
            assert_eq!(
                count(&log, status) as u64,
                want[i],
                "{name} {status} in the log"
            );
        }
        // The latest success / failure: committed after the latest attempt of its kind in the
        // log, and before the stats were asked for.
        let latest = |statuses: &[&str]| {
            log.iter()
                .filter(|x| statuses.contains(&x["status"].as_str().unwrap_or("")))
                .map(|x| ms(&x["lastAttemptAt"]))
                .max()
        };
        for (key, statuses) in [
            ("lastSuccessAt", &["delivered"][..]),
            ("lastFailureAt", &["retrying", "dead"][..]),
        ] {
            match latest(statuses) {
                Some(attempt) => {
                    let at = ms(&l[key]);
                    assert!(attempt <= at && at <= asked, "{name} {key}: {l}");
                }
                None => assert!(l[key].is_null(), "{name} {key}: {l}"),
            }
        }
    }
    let err = |wh: u64| line(&stats, wh).expect("listed")["lastError"].clone();
    assert!(err(mixed).as_str().unwrap_or("").contains("410"), "{stats}");
    assert!(err(dead).as_str().unwrap_or("").contains("410"), "{stats}");
    assert!(err(retry).as_str().unwrap_or("").contains("429"), "{stats}");
    for wh in [ok, held, skip] {
        assert!(err(wh).is_null(), "{stats}");
    }

    // The same after a restart on the same store.
    let dir = s.stop().await;
    let cfg = test_config(dir.path(), "");
    let s = TestServer::start_with(cfg, dir).await;
    let (status, again) = s.call("GET", "/api/v1/stats", None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, stats);
    s.stop().await;
    r.stop().await;
}

/// `GET /api/v1/stats/minutes`: 60 minutes, oldest first, the newest holding what just happened
/// (created, retried, delivered, dead), in the minutes it happened in.
#[actix_rt::test]
async fn stats_by_minute_count_what_each_minute_saw() {
    // The first request of event 1 fails (500, then delivered); event 2 is gone (410: dead).
    let failed_once = AtomicBool::new(false);
    let r = Receiver::start(move |req, _| {
        if req.json()["comment"] == "e2" {
            (410, vec![], "gone".into())
        } else if !failed_once.swap(true, Ordering::SeqCst) {
            (500, vec![], "boom".into())
        } else {
            (200, vec![], "ok".into())
        }
    });
    let s = TestServer::start("").await;
    let wh = s.webhook(json!({"name": "m", "url": r.url})).await;
    let before = chrono::Utc::now().timestamp_millis();
    post(&s, vec![ev(1, 1, "edited"), ev(2, 2, "edited")]).await;
    s.wait_deliveries(wh, WAIT, "both ended", |d| {
        count(d, "delivered") == 1 && count(d, "dead") == 1
    })
    .await;
    let (status, v) = s.call("GET", "/api/v1/stats/minutes", None).await;
    assert_eq!(status, 200, "{v}");
    let rows = v.as_array().expect("rows");
    assert_eq!(rows.len(), 60, "{v}");
    let starts: Vec<i64> = rows.iter().map(|m| ms(&m["at"])).collect();
    assert!(
        starts.windows(2).all(|w| w[1] - w[0] == 60_000),
        "consecutive minutes, oldest first: {starts:?}"
    );
    // Everything happened in the minute of `before` or the next one (a minute may turn).
    let recent: Vec<&Value> = rows
        .iter()
        .filter(|m| ms(&m["at"]) >= before - before.rem_euclid(60_000))
        .collect();
    assert!(!recent.is_empty() && recent.len() <= 2, "{v}");
    let sum = |k: &str| {
        recent
            .iter()
            .map(|m| m[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(
        (
            sum("pending"),
            sum("retrying"),
            sum("delivered"),
            sum("dead"),
            sum("skipped")
        ),
        (2, 1, 1, 1, 0),
        "{v}"
    );
    let older: u64 = rows
        .iter()
        .filter(|m| ms(&m["at"]) < before - before.rem_euclid(60_000))
        .map(|m| {
            ["pending", "retrying", "delivered", "dead", "skipped"]
                .iter()
                .map(|k| m[*k].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
        .sum();
    assert_eq!(older, 0, "nothing before the test: {v}");
    s.stop().await;
    r.stop().await;
}
