//! Scheduling on a manual clock (`sanhook::clock::Clock`): retry schedules, rate-limit windows
//! and `delivery.disable_after` checked to the millisecond, and days of waiting done at once.
//!
//! The engine takes every "now" and every wait of scheduling from its clock; the manual one
//! moves only when the test says. So "not before 5,000 ms" is checked at 4,999 ms: had the
//! engine woken early, the send would follow the step at once. The short real pauses before
//! such checks bound how long an early send would take to arrive; they are not what makes the
//! clock reach a time.

use std::time::Duration;

use sanhook::clock::Clock;
use sanhook::engine::StartOptions;
use sanhook::Config;
use serde_json::{json, Value};

use crate::support::receiver::Receiver;
use crate::support::{event, eventually, TestServer};

/// 2027-01-15T08:00:00.000Z, where every test's clock starts.
const T0: i64 = 1_800_000_000_000;

/// Long enough for a send that was wrongly released by a clock step to reach the receiver.
const SETTLE: Duration = Duration::from_millis(300);

async fn start(delivery: &str, more: &str) -> (TestServer, Clock) {
    let dir = tempfile::tempdir().expect("temp dir");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[delivery]\ntimeout = \"3s\"\nasync_interval = \"1h\"\n{delivery}\n{more}\n",
        dir.path().join("sanhook.redb").display()
    );
    let cfg = Config::from_toml_str(&toml).expect("config");
    cfg.validate().expect("valid config");
    let clock = Clock::manual(T0);
    let opts = StartOptions {
        clock: clock.clone(),
        ..StartOptions::default()
    };
    (TestServer::start_with_options(cfg, dir, opts).await, clock)
}

fn at(ms: i64) -> Value {
    let t = chrono::DateTime::from_timestamp_millis(ms).expect("time");
    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

async fn post(s: &TestServer, events: Vec<Value>) {
    let (st, v) = s.call("POST", "/api/v1/events", Some(json!(events))).await;
    assert_eq!(st, 202, "{v}");
}

async fn received(r: &Receiver, n: usize, what: &str) {
    eventually(Duration::from_secs(3), what, || async {
        r.received().len() >= n
    })
    .await;
}

/// Milliseconds of an RFC 3339 time from the API.
fn ms(v: &Value) -> i64 {
    let t = v.as_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .timestamp_millis()
}

/// Waits for attempt `n` to be recorded as retrying; checks its wait lies within the ±20 %
/// jitter of `delay_ms`, from `since`; returns when the next attempt is due.
async fn retry_due(s: &TestServer, wh: u64, n: u64, since: i64, delay_ms: i64) -> i64 {
    let d = s
        .wait_deliveries(wh, Duration::from_secs(3), "a recorded retry", |d| {
            d.first()
                .is_some_and(|x| x["status"] == "retrying" && x["attempts"] == n)
        })
        .await;
    assert_eq!(d[0]["lastAttemptAt"], at(since), "{}", d[0]);
    let next = ms(&d[0]["nextAttemptAt"]);
    let wait = next - since;
    assert!(
        (delay_ms * 8 / 10..=delay_ms * 12 / 10).contains(&wait),
        "waits {wait} ms for a {delay_ms} ms step: {}",
        d[0]
    );
    next
}

#[actix_rt::test]
async fn retries_follow_the_schedule_to_the_millisecond() {
    let (s, clock) = start("retry_schedule = [\"5s\", \"30s\"]", "").await;
    let r = Receiver::fixed(500);
    let wh = s.webhook(json!({"name": "r", "url": r.url})).await;
    post(&s, vec![event(1, 1, "opened")]).await;
    received(&r, 1, "the first attempt").await;

    // Each retry goes when the recorded time comes: not a millisecond before.
    let mut now = T0;
    for (n, delay_ms) in [(1, 5_000), (2, 30_000)] {
        let next = retry_due(&s, wh, n, now, delay_ms).await;
        let early = u64::try_from(next - now - 1).expect("a wait ahead");
        clock.advance(Duration::from_millis(early));
        tokio::time::sleep(SETTLE).await;
        assert_eq!(r.received().len(), n as usize, "retry {n} went 1 ms early");
        clock.advance(Duration::from_millis(1));
        received(&r, n as usize + 1, "the retry on time").await;
        now = next;
    }
    let d = s
        .wait_deliveries(wh, Duration::from_secs(3), "dead", |d| {
            d.first().is_some_and(|x| x["status"] == "dead")
        })
        .await;
    assert_eq!(d[0]["attempts"], 3, "{}", d[0]);
    assert_eq!(d[0]["lastAttemptAt"], at(now), "{}", d[0]);
    // Dead is final: however far the clock moves, nothing more is sent.
    clock.advance(Duration::from_secs(86_400));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(r.received().len(), 3);
    s.stop().await;
}

#[actix_rt::test]
async fn a_full_window_frees_when_its_oldest_send_leaves_it() {
    // 20 messages per 60 s; a send stays counted 5 % of the window longer (3,000 ms), so the
    // 21st may go at 63,000 ms and not a millisecond sooner.
    let (s, clock) = start("", "[limits]\ndinggroup = [\"20/60s\"]").await;
    let bot = Receiver::start(|_, _| (200, vec![], r#"{"errcode":0,"errmsg":"ok"}"#.into()));
    s.webhook(json!({"name": "bot", "type": "dinggroup", "url": bot.url}))
        .await;
    post(&s, (1..=20).map(|i| event(i, i, "opened")).collect()).await;
    received(&bot, 20, "the window's 20 messages").await;
    post(&s, vec![event(21, 21, "opened")]).await;
    clock.advance(Duration::from_millis(62_999));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(bot.received().len(), 20, "a 21st message inside the window");
    clock.advance(Duration::from_millis(1));
    received(&bot, 21, "the 21st message once the window freed").await;
    let last = bot.received()[20].json().to_string();
    assert!(
        last.contains("#21"),
        "the 21st message is about object 21: {last}"
    );
    s.stop().await;
}

#[actix_rt::test]
async fn a_webhook_failing_for_disable_after_is_disabled_on_the_day() {
    let (s, clock) = start(
        "retry_schedule = [\"1s\"]\nfailing_after = \"1h\"\ndisable_after = \"5d\"",
        "",
    )
    .await;
    let r = Receiver::fixed(503);
    let wh = s.webhook(json!({"name": "down", "url": r.url})).await;
    post(&s, vec![event(1, 1, "opened")]).await;
    received(&r, 1, "the first attempt").await;
    // The retry is scheduled from the clock when the outcome is recorded: wait for that first.
    s.wait_deliveries(wh, Duration::from_secs(3), "retrying", |d| {
        d.first().is_some_and(|x| x["status"] == "retrying")
    })
    .await;
    // Past the one retry (1 s, jittered up to 1.2 s).
    clock.advance(Duration::from_secs(2));
    s.wait_deliveries(wh, Duration::from_secs(3), "dead", |d| {
        d.first().is_some_and(|x| x["status"] == "dead")
    })
    .await;
    // Failing since T0 (the clock is at T0 + 2 s). One millisecond short of five days: a look of
    // the health watch (as it makes every second) leaves it enabled.
    clock.advance(Duration::from_millis(5 * 86_400_000 - 2_000 - 1));
    sanhook::operator::Watch::default().look(&s.engine).await;
    let (_, v) = s.call("GET", &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!(v["enabled"], true, "disabled before disable_after: {v}");
    clock.advance(Duration::from_millis(1));
    let get = || async {
        let (_, v) = s.call("GET", &format!("/api/v1/webhooks/{wh}"), None).await;
        v
    };
    eventually(Duration::from_secs(5), "the webhook disabled", || async {
        get().await["enabled"] == false
    })
    .await;
    let last = get().await;
    let reason = last["disabledReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("since 2027-01-15T08:00:00") && reason.contains("disable_after = 5d"),
        "{reason}"
    );
    s.stop().await;
}
