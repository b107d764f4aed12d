//! Hostile input (issue 8): what a receiver, a producer or a file can send that must not hurt
//! the engine — huge waits, floods of mentions, too many events, slow bodies, symlinks.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::receiver::Receiver;
use crate::support::{event, TestServer};

const WAIT: Duration = Duration::from_secs(20);

fn all(d: &[Value], n: usize, status: &str) -> bool {
    d.len() == n && d.iter().all(|x| x["status"] == status)
}

/// The largest `Retry-After` a receiver can write: it used to overflow `Instant + Duration` and
/// panic the bot's actor, leaving its deliveries stuck until a restart.
const HUGE: &str = "18446744073709551615";

/// A bot (one lane, paused by the platform's wait) answers 429 with the largest `Retry-After`,
/// then 200: the pause is cut to `max_retry_after`, the delivery goes out, and the bot and the
/// engine go on working.
#[actix_rt::test]
async fn issue8_huge_retry_after_is_cut_to_max_retry_after() {
    let bot = Receiver::start(|_, n| {
        if n == 0 {
            (429, vec![("Retry-After".into(), HUGE.into())], "{}".into())
        } else {
            (
                200,
                vec![],
                json!({"errcode": 0, "errmsg": "ok"}).to_string(),
            )
        }
    });
    let plain = Receiver::start(|_, n| {
        if n == 0 {
            (
                503,
                vec![("Retry-After".into(), HUGE.into())],
                "busy".into(),
            )
        } else {
            (200, vec![], "ok".into())
        }
    });
    // `extra` lands in [delivery]; the retry schedule (100 ms) is shorter than the cap, so a
    // wait of ~2 s can only be the header's, cut.
    let s = TestServer::start("max_retry_after = \"2s\"").await;
    let url = format!("{}?key=k", bot.url);
    let wb = s
        .webhook(json!({"name": "bot", "type": "wechatgroup", "url": url}))
        .await;
    let wd = s.webhook(json!({"name": "plain", "url": plain.url})).await;
    let (st, v) = s
        .call("POST", "/api/v1/events", Some(event(1, 1, "opened")))
        .await;
    assert_eq!(st, 202, "{v}");

    for wh in [wb, wd] {
        let d = s
            .wait_deliveries(wh, WAIT, "delivered after the cut wait", |d| {
                all(d, 1, "delivered")
            })
            .await;
        assert_eq!(d[0]["attempts"], 2, "{}", d[0]);
    }
    for r in [&bot, &plain] {
        let got = r.received();
        assert_eq!(got.len(), 2, "one refusal, one retry");
        let waited = got[1].at.duration_since(got[0].at);
        // Not before the (cut) wait: the header was honoured, not dropped for the schedule.
        assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    }

    // The bot's actor is alive: a new event about another object goes out too.
    let (st, v) = s
        .call("POST", "/api/v1/events", Some(event(2, 2, "opened")))
        .await;
    assert_eq!(st, 202, "{v}");
    s.wait_deliveries(wb, WAIT, "the bot still sends", |d| all(d, 2, "delivered"))
        .await;
    s.stop().await;
}

/// The same through Lark's own header on a Lark bot.
#[actix_rt::test]
async fn issue8_huge_lark_ratelimit_reset_is_cut() {
    let bot = Receiver::start(|_, n| {
        if n == 0 {
            (
                429,
                vec![("x-ogw-ratelimit-reset".into(), HUGE.into())],
                json!({"code": 99991400, "msg": "request trigger frequency limit"}).to_string(),
            )
        } else {
            (
                200,
                vec![],
                json!({"code": 0, "msg": "success"}).to_string(),
            )
        }
    });
    let s = TestServer::start("max_retry_after = \"1s\"").await;
    let wh = s
        .webhook(json!({"name": "lark", "type": "feishugroup", "url": bot.url}))
        .await;
    s.call("POST", "/api/v1/events", Some(event(1, 1, "opened")))
        .await;
    s.wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    assert_eq!(bot.received().len(), 2);
    s.stop().await;
}
