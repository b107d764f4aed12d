//! Bursts to rate-limited group bots: never over the platform's window, nothing lost, per-object
//! order kept, digests when the budget is short.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::receiver::{Received, Receiver};
use crate::support::{event, TestServer};

/// Test windows: 20 per 3 s (the real default is 20 per 60 s).
const COUNT: usize = 20;
const WINDOW: Duration = Duration::from_secs(3);

/// The platform side of a bot: a strict sliding window answering the platform's own
/// "too fast" code when exceeded.
struct Window {
    sends: VecDeque<Instant>,
    violations: usize,
}

fn windowed_bot(too_fast: Value) -> (Receiver, Arc<Mutex<Window>>) {
    let w = Arc::new(Mutex::new(Window {
        sends: VecDeque::new(),
        violations: 0,
    }));
    let w2 = w.clone();
    let r = Receiver::start(move |req: &Received, _| {
        let mut w = w2.lock().expect("lock");
        let now = req.at;
        while w
            .sends
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            w.sends.pop_front();
        }
        if w.sends.len() >= COUNT {
            w.violations += 1;
            return (200, vec![], too_fast.to_string());
        }
        w.sends.push_back(now);
        (
            200,
            vec![],
            json!({"errcode": 0, "errmsg": "ok"}).to_string(),
        )
    });
    (r, w)
}

/// Every `#<objectID>` mentioned in a message, in order, with the line it is on.
fn mentions(body: &Value) -> Vec<(u64, String)> {
    let text = body["markdown"]["text"]
        .as_str()
        .or_else(|| body["markdown"]["content"].as_str())
        .or_else(|| body["text"]["content"].as_str())
        .unwrap_or("");
    let mut out = vec![];
    for line in text.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("[#") {
            let digits: String = rest[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse() {
                out.push((n, line.to_string()));
            }
            rest = &rest[i + 2..];
        }
    }
    out
}

/// 190 distinct objects plus 10 more events about object 1, in a known order of actions.
fn burst() -> (Vec<Value>, Vec<&'static str>) {
    let repeats = [
        "edited",
        "commented",
        "assigned",
        "confirmed",
        "resolved",
        "closed",
        "activated",
        "edited",
        "commented",
        "resolved",
    ];
    let mut events = vec![event(1, 1, "opened")];
    for i in 2..=190u64 {
        events.push(event(i, i, "opened"));
        if i % 19 == 0 {
            let k = (i / 19 - 1) as usize;
            events.push(event(1000 + i, 1, repeats[k]));
        }
    }
    let mut order = vec!["opened"];
    order.extend_from_slice(&repeats);
    (events, order)
}

async fn run_burst(kind: &str, too_fast: Value, two_webhooks: bool) {
    let (bot, window) = windowed_bot(too_fast);
    // A short throttle pause too, so a violation fails fast instead of waiting 10 minutes.
    let limits = format!(
        "[limits]\n{kind} = [\"{COUNT}/{}s\"]\ndingtalk_throttle = \"1s\"\n",
        WINDOW.as_secs()
    );
    let s = TestServer::start(&limits).await;
    let url = format!("{}?access_token=tok&key=k", bot.url);
    let a = s
        .webhook(json!({"name": "a", "type": kind, "url": url}))
        .await;
    let b = if two_webhooks {
        Some(
            s.webhook(json!({"name": "b", "type": kind, "url": url, "products": [1]}))
                .await,
        )
    } else {
        None
    };
    let (events, order) = burst();
    let n = events.len();
    let (status, v) = s
        .call("POST", "/api/v1/events", Some(Value::Array(events)))
        .await;
    assert_eq!(status, 202, "{v}");
    let expect = n * if two_webhooks { 2 } else { 1 };
    assert_eq!(v["deliveries"], expect);
    let wait = WINDOW * 8;
    s.wait_deliveries(a, wait, "all delivered", |d| {
        d.len() == n && d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
    if let Some(b) = b {
        s.wait_deliveries(b, wait, "all delivered (b)", |d| {
            d.len() == n && d.iter().all(|x| x["status"] == "delivered")
        })
        .await;
    }
    let got = bot.received();
    let w = window.lock().expect("lock");
    assert_eq!(w.violations, 0, "the bot's window was exceeded");
    // Within two windows' budget: 2 × COUNT messages at most carry the whole burst.
    assert!(
        got.len() <= 2 * COUNT,
        "{} messages for {expect} deliveries",
        got.len()
    );
    let mut seen: Vec<(u64, String)> = vec![];
    for g in &got {
        seen.extend(mentions(&g.json()));
    }
    let mut ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, (1..=190).collect::<Vec<_>>(), "every object arrives");
    // Object 1's events arrive in ingestion order (per webhook: the first copy of each).
    let one: Vec<&String> = seen
        .iter()
        .filter(|(id, _)| *id == 1)
        .map(|(_, l)| l)
        .collect();
    let labels: Vec<&str> = one
        .iter()
        .map(|l| {
            order
                .iter()
                .copied()
                .find(|a| l.contains(&format!(" {a} ")))
                .unwrap_or("?")
        })
        .collect();
    let per_webhook = if two_webhooks { 2 } else { 1 };
    assert_eq!(labels.len(), order.len() * per_webhook, "{labels:?}");
    if !two_webhooks {
        assert_eq!(labels, order);
    }
}

#[actix_rt::test]
async fn dingtalk_bot_burst_stays_within_the_window() {
    run_burst(
        "dinggroup",
        json!({"errcode": 130101, "errmsg": "send too fast"}),
        false,
    )
    .await;
}

#[actix_rt::test]
async fn wecom_bot_burst_stays_within_the_window() {
    run_burst(
        "wechatgroup",
        json!({"errcode": 45009, "errmsg": "api freq out of limit"}),
        false,
    )
    .await;
}

#[actix_rt::test]
async fn two_webhooks_on_one_bot_share_its_budget() {
    run_burst(
        "dinggroup",
        json!({"errcode": 130101, "errmsg": "send too fast"}),
        true,
    )
    .await;
}

#[actix_rt::test]
async fn the_send_budget_survives_a_restart() {
    let (bot, window) = windowed_bot(json!({"errcode": 130101, "errmsg": "send too fast"}));
    let limits = format!(
        "[limits]\ndinggroup = [\"{COUNT}/{}s\"]\ndingtalk_throttle = \"1s\"\n",
        WINDOW.as_secs()
    );
    let s = TestServer::start(&limits).await;
    let wh = s
        .webhook(json!({"name": "a", "type": "dinggroup", "url": bot.url}))
        .await;
    // Spend the whole budget: one message per event while slots remain.
    let events: Vec<Value> = (1..=COUNT as u64).map(|i| event(i, i, "opened")).collect();
    s.call("POST", "/api/v1/events", Some(Value::Array(events)))
        .await;
    s.wait_deliveries(wh, WINDOW * 4, "first budget", |d| {
        d.len() == COUNT && d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
    let first_round = bot.received().len();
    assert_eq!(
        first_round, COUNT,
        "one message per event while the budget lasts"
    );
    let dir = s.stop().await;
    // A fresh process would start with an empty budget and send at once: this one must wait.
    let cfg = crate::support::test_config(dir.path(), &limits);
    let s = TestServer::start_with(cfg, dir).await;
    s.call("POST", "/api/v1/events", Some(event(1000, 1000, "opened")))
        .await;
    s.wait_deliveries(wh, WINDOW * 4, "after restart", |d| {
        d.len() == COUNT + 1 && d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
    assert_eq!(
        window.lock().expect("lock").violations,
        0,
        "the restart reset the budget"
    );
    assert_eq!(bot.received().len(), first_round + 1);
}
