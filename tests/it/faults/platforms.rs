//! The chat platforms in the middle of a burst, against the real binary and the strict fakes:
//! each group bot's throttle (DingTalk `130101`, WeCom `45009`, Lark's flood answer), Lark's
//! app-message `429` (`99991400`), and each app type's token expiring part-way (DingTalk
//! `40014`, WeCom `42001`, Lark `99991663`). Every message reaches every recipient exactly once,
//! each object's events in order.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{all, Bin};
use crate::support::fakes::{DingTalkFake, Fake, FeishuFake, HasCore, Message, WeComFake};

const WAIT: Duration = Duration::from_secs(40);
/// A port nothing listens on: `[platforms]` bases that must not be used.
const NOWHERE: &str = "http://127.0.0.1:9";

/// Events `1..=n` about `objects` objects in turn; event k is named `n=k` (it shows in the
/// message: `[#12::n=7]`), sent to `to`.
fn burst(n: u64, objects: u64, to: &[&str]) -> Vec<Value> {
    (1..=n)
        .map(|k| {
            json!({
                "id": k, "objectType": "bug", "objectID": 100 + k % objects, "product": ",1,",
                "actor": "alice", "actorName": "Alice", "action": "edited",
                "date": "2026-11-20 09:00:35", "objectName": format!("n={k}"), "toList": to,
            })
        })
        .collect()
}

/// `(object, event)` of every `[#<object>::n=<event>]` in a message, in order.
fn marks(m: &Message) -> Vec<(u64, u64)> {
    let text = m.text();
    text.split("[#")
        .skip(1)
        .filter_map(|rest| {
            let (object, rest) = rest.split_once("::n=")?;
            let event: String = rest.chars().take_while(char::is_ascii_digit).collect();
            Some((object.parse().ok()?, event.parse().ok()?))
        })
        .collect()
}

/// Every (recipient, event) exactly once, and per (recipient, object) in event order.
/// `recipients` of a bot message: the bot alone (`""`).
fn check_once_in_order(got: &[Message], events: u64, recipients: &[&str]) {
    let mut count: HashMap<(String, u64), usize> = HashMap::new();
    let mut last: HashMap<(String, u64), u64> = HashMap::new();
    for m in got {
        let to: Vec<String> = if m.to.is_empty() {
            vec![String::new()]
        } else {
            m.to.clone()
        };
        for (object, event) in marks(m) {
            for r in &to {
                *count.entry((r.clone(), event)).or_default() += 1;
                let prev = last.insert((r.clone(), object), event);
                assert!(
                    prev.is_none_or(|p| p < event),
                    "{r:?}: bug {object} event {event} arrived after event {prev:?}"
                );
            }
        }
    }
    for r in recipients {
        for e in 1..=events {
            let n = count.get(&(r.to_string(), e)).copied().unwrap_or(0);
            assert_eq!(n, 1, "{r:?} got event {e} {n} times");
        }
    }
    assert_eq!(
        count.len(),
        recipients.len() * events as usize,
        "stray messages"
    );
}

/// A burst through a group bot whose platform window (5 a second) is tighter than sanhook's
/// (`limits`): the platform refuses with `code` part-way; everything is delivered once, in
/// order. With `pause`, nothing reaches the bot for that long after each refusal.
async fn bot_burst<S: HasCore>(
    fake: &Fake<S>,
    kind: &str,
    url: &str,
    code: i64,
    delivery: &str,
    limits: &str,
    pause: Option<Duration>,
) {
    fake.set_window(5, Duration::from_secs(1));
    let b = Bin::start("200ms", 8, delivery, limits).await;
    let wh = b
        .webhook(json!({"name": kind, "type": kind, "url": url}))
        .await;
    const N: u64 = 40;
    b.post_events(burst(N, 4, &[])).await;
    let d = b
        .wait_deliveries(wh, WAIT, "the burst delivered", |d| {
            all(d, N as usize, "delivered")
        })
        .await;
    let got = fake.received();
    check_once_in_order(&got, N, &[""]);
    let refusals = fake.refusals();
    let throttled: Vec<Instant> = refusals
        .iter()
        .filter(|r| r.code == code)
        .map(|r| r.at)
        .collect();
    assert!(!throttled.is_empty(), "the platform never throttled");
    assert_eq!(refusals.len(), throttled.len(), "{refusals:?}");
    let most = d.iter().filter_map(|x| x["attempts"].as_u64()).max();
    if let Some(pause) = pause {
        // The bot waits out the pause: the next request of any kind comes that much later.
        let mut all_at: Vec<Instant> = got.iter().map(|m| m.at).chain(throttled.clone()).collect();
        all_at.sort();
        for t in &throttled {
            if let Some(next) = all_at.iter().find(|a| *a > t) {
                let waited = next.duration_since(*t);
                assert!(
                    waited >= pause - Duration::from_millis(50),
                    "a request {waited:?} after the platform said to pause {pause:?}"
                );
            }
        }
    }
    println!(
        "{kind}: {N} events in {} messages, {} refusals ({code}), at most {most:?} attempts",
        got.len(),
        throttled.len()
    );
}

#[actix_rt::test]
async fn dingtalk_bot_throttled_mid_burst_pauses_and_delivers_all_in_order() {
    let dt = DingTalkFake::start();
    // DingTalk keeps a bot silent for a while after 130101 (10 minutes; here 500 ms), and
    // sanhook pauses it `limits.dingtalk_throttle`.
    dt.set_throttle(Duration::from_millis(500));
    let url = dt.bot("bot-tok", None);
    bot_burst(
        &dt,
        "dinggroup",
        &url,
        130101,
        "",
        "[limits]\ndinggroup = [\"30/1s\"]\ndingtalk_throttle = \"1s\"\n",
        Some(Duration::from_secs(1)),
    )
    .await;
}

#[actix_rt::test]
async fn wecom_bot_throttled_mid_burst_pauses_and_delivers_all_in_order() {
    let wc = WeComFake::start();
    let url = wc.bot("key-burst");
    // WeCom asks for a minute after 45009; `max_retry_after` cuts that to 1 s.
    bot_burst(
        &wc,
        "wechatgroup",
        &url,
        45009,
        "max_retry_after = \"1s\"",
        "[limits]\nwechatgroup = [\"30/1s\"]\n",
        Some(Duration::from_secs(1)),
    )
    .await;
}

/// Needs branch `hostile` (ac99379: a flooded Lark bot, `11232` or `9499` "too many request",
/// pauses instead of retrying each message into the flood); without it the burst's messages
/// use up their retries and end `dead`. Remove the `ignore` when that lands.
#[actix_rt::test]
async fn lark_bot_flooded_mid_burst_delivers_all_in_order() {
    let fs = FeishuFake::start();
    let url = fs.bot("hook-burst", None);
    // The fake answers a flooded bot as Lark does (see the fake); sanhook must neither drop
    // nor reorder what it refuses.
    fs.set_window(5, Duration::from_secs(1));
    let b = Bin::start(
        "200ms",
        8,
        "max_retry_after = \"1s\"",
        "[limits]\nfeishugroup = [\"30/1s\"]\n",
    )
    .await;
    let wh = b
        .webhook(json!({"name": "lark", "type": "feishugroup", "url": url}))
        .await;
    const N: u64 = 40;
    b.post_events(burst(N, 4, &[])).await;
    b.wait_deliveries(wh, WAIT, "the burst delivered", |d| {
        all(d, N as usize, "delivered")
    })
    .await;
    let got = fs.received();
    check_once_in_order(&got, N, &[""]);
    let refusals = fs.refusals();
    assert!(!refusals.is_empty(), "the platform never throttled");
    println!(
        "feishugroup: {N} events in {} messages, {} refusals ({:?})",
        got.len(),
        refusals.len(),
        refusals.first().map(|r| r.code)
    );
}

/// Three bound recipients; the fake's `(account, platform user)` pairs.
const PEOPLE: [(&str, &str); 3] = [("bob", "u-bob"), ("carol", "u-carol"), ("dave", "u-dave")];

async fn bind(b: &Bin, wh: u64, prefix: &str) {
    let pairs: serde_json::Map<String, Value> = PEOPLE
        .iter()
        .map(|(a, u)| (a.to_string(), json!(format!("{prefix}{u}"))))
        .collect();
    let (s, v) = b
        .call(
            "PUT",
            &format!("/api/v1/webhooks/{wh}/bindings"),
            Some(Value::Object(pairs)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

/// A burst of app messages to three people while the platform misbehaves part-way (set up on
/// the fake by `fault` before the burst): each person gets each event once, in order.
async fn app_burst<S: HasCore>(
    fake: &Fake<S>,
    platforms: &str,
    webhook: Value,
    prefix: &str,
    fault: impl FnOnce(),
) -> Vec<Value> {
    let b = Bin::start("200ms", 8, "max_retry_after = \"2s\"", platforms).await;
    let wh = b.webhook(webhook).await;
    bind(&b, wh, prefix).await;
    fault();
    const N: u64 = 30;
    let to: Vec<&str> = PEOPLE.iter().map(|p| p.0).collect();
    b.post_events(burst(N, 5, &to)).await;
    let d = b
        .wait_deliveries(wh, WAIT, "the burst delivered", |d| {
            all(d, N as usize, "delivered")
        })
        .await;
    let users: Vec<String> = PEOPLE.iter().map(|p| format!("{prefix}{}", p.1)).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    check_once_in_order(&fake.received(), N, &users);
    d
}

fn platforms(dingtalk: &str, wecom: &str, feishu: &str) -> String {
    format!("[platforms]\ndingtalk = \"{dingtalk}\"\nwecom = \"{wecom}\"\nfeishu = \"{feishu}\"\n")
}

#[actix_rt::test]
async fn dingtalk_work_message_token_expiring_mid_burst() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    app_burst(
        &dt,
        &platforms(&dt.base, NOWHERE, NOWHERE),
        json!({"name": "dt app", "type": "dinguser", "agentId": "2800123", "appKey": "key1", "appSecret": "sec1"}),
        "",
        || dt.invalidate_tokens_after(8),
    )
    .await;
    assert!(dt.refused(40014) > 0, "the token never expired");
    assert_eq!(dt.token_calls(), 2, "one refresh for every sender");
}

#[actix_rt::test]
async fn wecom_app_message_token_expiring_mid_burst() {
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    let users: Vec<(&str, &str, &[i64])> = PEOPLE.iter().map(|p| (p.1, p.0, &[1i64][..])).collect();
    wc.set_directory(&[(1, "Root", 0)], &users);
    app_burst(
        &wc,
        &platforms(NOWHERE, &wc.base, NOWHERE),
        json!({"name": "wc app", "type": "wechatuser", "wechatCorpId": "corp1", "wechatCorpSecret": "csec", "wechatAgentId": "1000002"}),
        "",
        || wc.invalidate_tokens_after(8),
    )
    .await;
    assert!(wc.refused(42001) > 0, "the token never expired");
    assert_eq!(wc.token_calls(), 2, "one refresh for every sender");
}

#[actix_rt::test]
async fn lark_app_message_token_expiring_mid_burst() {
    let fs = FeishuFake::start();
    fs.app("cli_1", "asec");
    let users: Vec<(String, &str)> = PEOPLE
        .iter()
        .map(|p| (format!("ou_{}", p.1), p.0))
        .collect();
    let users: Vec<(&str, &str, &[&str])> = users
        .iter()
        .map(|(u, n)| (u.as_str(), *n, &["0"][..]))
        .collect();
    fs.set_directory(&[], &users);
    app_burst(
        &fs,
        &platforms(NOWHERE, NOWHERE, NOWHERE),
        json!({"name": "lark app", "type": "feishuuser", "feishuAppId": "cli_1", "feishuAppSecret": "asec", "apiBase": fs.base}),
        "ou_",
        || fs.invalidate_tokens_after(20),
    )
    .await;
    assert!(fs.refused(99991663) > 0, "the token never expired");
    assert_eq!(fs.token_calls(), 2, "one refresh for every sender");
}

#[actix_rt::test]
async fn lark_app_message_rate_limited_mid_burst() {
    let fs = FeishuFake::start();
    fs.app("cli_1", "asec");
    let users: Vec<(String, &str)> = PEOPLE
        .iter()
        .map(|p| (format!("ou_{}", p.1), p.0))
        .collect();
    let users: Vec<(&str, &str, &[&str])> = users
        .iter()
        .map(|(u, n)| (u.as_str(), *n, &["0"][..]))
        .collect();
    fs.set_directory(&[], &users);
    let d = app_burst(
        &fs,
        &platforms(NOWHERE, NOWHERE, NOWHERE),
        json!({"name": "lark app", "type": "feishuuser", "feishuAppId": "cli_1", "feishuAppSecret": "asec", "apiBase": fs.base}),
        "ou_",
        // After 20 messages, 6 calls answer 429 with a reset of 1 s.
        || fs.rate_limit_after(20, 6, 1),
    )
    .await;
    assert_eq!(fs.limited_at().len(), 6);
    // The deliveries that met a 429 were tried again (its reset honoured: platforms.rs).
    let waited: Vec<&Value> = d
        .iter()
        .filter(|x| x["attempts"].as_u64() > Some(1))
        .collect();
    assert!(!waited.is_empty(), "no delivery met the 429");
}
