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

/// An event with `n` mentions, recipients and products.
fn crowded_event(id: u64, object: u64, n: usize) -> Value {
    let mut e = event(id, object, "opened");
    e["mentions"] = json!((0..n).map(|i| format!("138{i:08}")).collect::<Vec<_>>());
    e["toList"] = json!((0..n).map(|i| format!("user{i}")).collect::<Vec<_>>());
    e["product"] = json!((1..=n as u64).collect::<Vec<_>>());
    e
}

/// Issue 8: one event with 40k mentions held up every destination (quadratic de-duplication on
/// the dispatch thread). More than 1,000 entries is now bad input, refused with the key named.
#[actix_rt::test]
async fn issue8_40k_mentions_are_refused_at_intake() {
    let s = TestServer::start("").await;
    let mut e = event(1, 1, "opened");
    e["mentions"] = json!((0..40_000)
        .map(|i| format!("138{i:08}"))
        .collect::<Vec<_>>());
    let (st, v) = s.call("POST", "/api/v1/events", Some(e)).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["key"], "mentions", "{v}");
    let msg = v["error"].as_str().unwrap_or("");
    assert!(
        msg.contains("40000 entries") && msg.contains("1000"),
        "{msg}"
    );

    // The same for a product list, in Sanplex's string form, inside an array body.
    let products = format!(
        ",{},",
        (1..=80_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut bad = event(3, 3, "opened");
    bad["product"] = json!(products);
    let body = json!([event(2, 2, "opened"), bad]);
    let (st, v) = s.call("POST", "/api/v1/events", Some(body)).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        (v["key"].as_str(), v["index"].as_u64()),
        (Some("product"), Some(1)),
        "{v}"
    );
    assert!(
        v["error"].as_str().unwrap_or("").contains("80000 entries"),
        "{v}"
    );
    // All or nothing: the good event before it was not queued.
    let (_, d) = s.call("GET", "/api/v1/deliveries?limit=10", None).await;
    assert_eq!(d, json!([]));
    s.stop().await;
}

/// At the cap, an event is routed and rendered whole: a DingTalk bot message @-mentions all
/// 1,000 people, and a webhook filtered on the last of 1,000 products fires.
#[actix_rt::test]
async fn issue8_1000_mentions_are_routed_and_rendered() {
    let bot = Receiver::start(|_, _| {
        (
            200,
            vec![],
            json!({"errcode": 0, "errmsg": "ok"}).to_string(),
        )
    });
    let s = TestServer::start("").await;
    let url = format!("{}?access_token=t", bot.url);
    let wh = s
        .webhook(json!({"name": "bot", "type": "dinggroup", "url": url, "products": [1000]}))
        .await;
    let (st, v) = s
        .call("POST", "/api/v1/events", Some(crowded_event(1, 1, 1000)))
        .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["deliveries"], 1, "{v}");
    s.wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    let got = bot.received();
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    let at = body["at"]["atMobiles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(at.len(), 1000);
    assert_eq!(at[999], "13800000999");
    let text = body["markdown"]["text"].as_str().unwrap_or("");
    assert!(text.contains("@13800000000") && text.contains("@13800000999"));
    s.stop().await;
}

/// A server whose `server.max_events` is `max` (the base test config has its own [server]).
async fn server_with_max_events(max: u64) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = crate::support::test_config(dir.path(), "");
    cfg.server.max_events = max;
    TestServer::start_with(cfg, dir).await
}

/// docs/reference.md §2 `server.max_events`: more events in one request is a 413 naming the limit, for
/// an array and for NDJSON; at the limit the request is accepted.
#[actix_rt::test]
async fn issue8_more_events_than_max_events_is_413() {
    let s = server_with_max_events(50).await;
    let events = |n: u64| (1..=n).map(|i| event(i, i, "opened")).collect::<Vec<_>>();

    let (st, v) = s
        .call("POST", "/api/v1/events", Some(Value::Array(events(51))))
        .await;
    assert_eq!(st, 413, "{v}");
    assert_eq!(
        (v["limit"].as_u64(), v["events"].as_u64()),
        (Some(50), Some(51))
    );
    let msg = v["error"].as_str().unwrap_or("");
    assert!(msg.contains("server.max_events (50)"), "{msg}");

    let ndjson: String = events(51).iter().map(|e| format!("{e}\n")).collect();
    let (st, v) = s
        .post_raw("/api/v1/events", "application/x-ndjson", ndjson)
        .await;
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["limit"], 50);

    // Nothing of either was queued; 50 go through.
    let (st, v) = s
        .call("POST", "/api/v1/events", Some(Value::Array(events(50))))
        .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["accepted"], 50, "{v}");
    s.stop().await;
}

/// The default (20,000) holds for a large array parsed event by event (a body over 1 MiB):
/// 20,001 events are refused, counted before any is parsed.
#[actix_rt::test]
async fn issue8_a_large_array_over_the_default_limit_is_413() {
    let s = TestServer::start("").await;
    assert_eq!(s.engine.config().server.max_events, 20_000);
    let one = r#"{"objectType":"bug","objectID":1,"actor":"a","action":"opened"}"#;
    let body = format!("[{}]", vec![one; 20_001].join(",\n"));
    assert!(body.len() > sanhook::event::WHOLE_MAX);
    let (st, v) = s.post_raw("/api/v1/events", "application/json", body).await;
    assert_eq!(st, 413, "{v}");
    assert_eq!(
        (v["limit"].as_u64(), v["events"].as_u64()),
        (Some(20_000), Some(20_001))
    );
    s.stop().await;
}

/// Reads from `stream` until the peer closes it (or `limit` passes); what arrived.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let outcome = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
    assert!(
        outcome.is_ok(),
        "the server kept the connection open for {limit:?}; got {:?}",
        String::from_utf8_lossy(&got)
    );
    String::from_utf8_lossy(&got).into_owned()
}

/// A client that sends a request head with a `Content-Length` and then nothing is answered 408
/// and disconnected once the body has stalled for `BODY_IDLE_TIMEOUT` (it used to stay open
/// for good); a client that never finishes its head is cut off after `HEAD_TIMEOUT`.
#[actix_rt::test]
async fn issue8_a_stalled_body_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start("").await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let bound = sanhook::api::BODY_IDLE_TIMEOUT + Duration::from_secs(20);

    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{\"objectType\""
    );
    c.write_all(head.as_bytes()).await.expect("send head");
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut c, bound).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("stalled"), "{answer}");
    assert!(started.elapsed() >= sanhook::api::BODY_IDLE_TIMEOUT - Duration::from_millis(100));

    // Half a head, then nothing.
    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    c.write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    let bound = sanhook::api::HEAD_TIMEOUT + Duration::from_secs(20);
    let answer = read_until_closed(&mut c, bound).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A request whose handler reads no body, with a body announced and never sent.
    let mut c = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head =
        format!("GET /api/v1/webhooks HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n");
    c.write_all(head.as_bytes()).await.expect("send head");
    let bound = sanhook::api::BODY_IDLE_TIMEOUT + Duration::from_secs(20);
    let answer = read_until_closed(&mut c, bound).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The server still answers.
    let (st, _) = s.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(st, 200);
    s.stop().await;
}
