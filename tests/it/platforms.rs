//! The six chat types against strict fakes of DingTalk, WeCom and Lark (issue 3's acceptance):
//! signed bodies, platform codes in `lastError`, mentions, token caching and refresh, the
//! directory, bindings, skipped deliveries, rejected recipients, and Lark's 429.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fakes::{DingTalkFake, FeishuFake, WeComFake};
use crate::support::TestServer;

const WAIT: Duration = Duration::from_secs(20);

/// A port nothing listens on: a `[platforms]` base that must not be used.
const NOWHERE: &str = "http://127.0.0.1:9";

fn platforms(dingtalk: &str, wecom: &str, feishu: &str) -> String {
    format!("[platforms]\ndingtalk = \"{dingtalk}\"\nwecom = \"{wecom}\"\nfeishu = \"{feishu}\"\n")
}

/// A bug event by alice about object `object` with recipients and mentions.
fn ev(id: u64, object: u64, to: &[&str], mentions: &[&str]) -> Value {
    json!({
        "id": id, "objectType": "bug", "objectID": object, "product": ",1,",
        "actor": "alice", "actorName": "Alice", "action": "opened",
        "date": "2026-11-20 09:00:35", "objectName": "Login fails",
        "toList": to, "mentions": mentions,
    })
}

async fn post_events(s: &TestServer, events: Vec<Value>) {
    let (status, v) = s
        .call("POST", "/api/v1/events", Some(Value::Array(events)))
        .await;
    assert_eq!(status, 202, "{v}");
}

fn all(d: &[Value], n: usize, status: &str) -> bool {
    d.len() == n && d.iter().all(|x| x["status"] == status)
}

fn err_of(d: &Value) -> String {
    d["lastError"].as_str().unwrap_or("").to_string()
}

async fn bind(s: &TestServer, wh: u64, pairs: Value) {
    let (status, v) = s
        .call(
            "PUT",
            &format!("/api/v1/webhooks/{wh}/bindings"),
            Some(pairs),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

/// The stored progress of a delivery (not part of the API's JSON).
async fn progress(s: &TestServer, delivery: &Value) -> Value {
    let id = delivery["id"].as_u64().expect("delivery id");
    let rec = s.engine.delivery(id).await.expect("delivery");
    rec.state.progress.clone().unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Group bots

#[actix_rt::test]
async fn dinggroup_signed_markdown_with_mentions_arrives() {
    let dt = DingTalkFake::start();
    let url = dt.bot("bot-tok-1", Some("SEC000000000000000000000"));
    let s = TestServer::start("").await;
    let wh = s
        .webhook(json!({"name": "dt", "type": "dinggroup", "url": url, "secret": "SEC000000000000000000000"}))
        .await;
    post_events(&s, vec![ev(1, 12, &[], &["13800000001", "13900000004"])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    let got = dt.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].signed, "the fake checked the signature");
    assert_eq!(
        got[0].body,
        json!({
            "msgtype": "markdown",
            "markdown": {
                "title": "Alice opened Bug",
                "text": "Alice opened Bug [#12::Login fails](http://localhost/bug-view-12.html) @13800000001 @13900000004",
            },
            "at": {"atMobiles": ["13800000001", "13900000004"], "isAtAll": false},
        })
    );
    // The log masks the bot's token and the signature.
    let logged = d[0]["request"]["url"].as_str().unwrap_or("");
    assert!(
        !logged.contains("bot-tok-1") && logged.contains("timestamp="),
        "{logged}"
    );
    assert_eq!(d[0]["response"]["body"], r#"{"errcode":0,"errmsg":"ok"}"#);
}

#[actix_rt::test]
async fn dinggroup_wrong_secret_is_dead_with_310000() {
    let dt = DingTalkFake::start();
    let url = dt.bot("bot-tok-2", Some("SEC-right"));
    let s = TestServer::start("").await;
    let wh = s
        .webhook(json!({"name": "dt", "type": "dinggroup", "url": url, "secret": "SEC-wrong"}))
        .await;
    post_events(&s, vec![ev(1, 12, &[], &[])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "dead", |d| all(d, 1, "dead"))
        .await;
    let e = err_of(&d[0]);
    assert!(e.contains("DingTalk errcode 310000: sign not match"), "{e}");
    assert_eq!(d[0]["attempts"], 1, "permanent: no retries");
    assert!(dt.received().is_empty());
    assert_eq!(dt.refusals()[0].code, 310000);
}

#[actix_rt::test]
async fn wechatgroup_markdown_and_text_with_mentions() {
    let wc = WeComFake::start();
    let url = wc.bot("key-1");
    let s = TestServer::start("").await;
    let wh = s
        .webhook(json!({"name": "wc", "type": "wechatgroup", "url": url}))
        .await;
    post_events(
        &s,
        vec![ev(1, 12, &[], &[]), ev(2, 12, &[], &["13800000001"])],
    )
    .await;
    s.wait_deliveries(wh, WAIT, "delivered", |d| all(d, 2, "delivered"))
        .await;
    let got = wc.received();
    assert_eq!(got.len(), 2);
    let text = "Alice opened Bug [#12::Login fails](http://localhost/bug-view-12.html)";
    assert_eq!(
        got[0].body,
        json!({"msgtype": "markdown", "markdown": {"content": text}})
    );
    assert_eq!(
        got[1].body,
        json!({"msgtype": "text", "text": {"content": text, "mentioned_mobile_list": ["13800000001"]}})
    );
}

#[actix_rt::test]
async fn wechatgroup_bad_key_is_dead_with_93000() {
    let wc = WeComFake::start();
    let s = TestServer::start("").await;
    let url = format!("{}/cgi-bin/webhook/send?key=no-such-key", wc.base);
    let wh = s
        .webhook(json!({"name": "wc", "type": "wechatgroup", "url": url}))
        .await;
    post_events(&s, vec![ev(1, 12, &[], &[])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "dead", |d| all(d, 1, "dead"))
        .await;
    let e = err_of(&d[0]);
    assert!(e.contains("WeCom errcode 93000"), "{e}");
    assert!(!d[0]["request"]["url"]
        .as_str()
        .unwrap_or("")
        .contains("no-such-key"));
}

#[actix_rt::test]
async fn feishugroup_signed_card_arrives() {
    let fs = FeishuFake::start();
    let url = fs.bot("hook-1", Some("test-secret"));
    let s = TestServer::start("").await;
    let wh = s
        .webhook(
            json!({"name": "lark", "type": "feishugroup", "url": url, "secret": "test-secret"}),
        )
        .await;
    post_events(&s, vec![ev(1, 12, &[], &[])]).await;
    s.wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    let got = fs.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].signed);
    let b = &got[0].body;
    assert!(b["timestamp"].is_string(), "{b}");
    assert_eq!(b["msg_type"], "interactive");
    assert_eq!(
        b["card"],
        json!({
            "header": {"title": {"tag": "plain_text", "content": "Alice opened Bug"}, "template": "blue"},
            "elements": [{"tag": "markdown", "content": "Alice opened Bug [#12::Login fails](http://localhost/bug-view-12.html)"}],
        })
    );
}

#[actix_rt::test]
async fn feishugroup_wrong_secret_is_dead_with_19021() {
    let fs = FeishuFake::start();
    let url = fs.bot("hook-2", Some("right"));
    let s = TestServer::start("").await;
    let wh = s
        .webhook(json!({"name": "lark", "type": "feishugroup", "url": url, "secret": "wrong"}))
        .await;
    post_events(&s, vec![ev(1, 12, &[], &[])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "dead", |d| all(d, 1, "dead"))
        .await;
    let e = err_of(&d[0]);
    assert!(e.contains("Feishu code 19021"), "{e}");
    assert!(fs.received().is_empty());
}

/// Issue 8: a flooded Lark bot answers HTTP 400 with `9499` "too many request". That is its rate
/// limit, not a bad request: the bot pauses and every message arrives, in order.
#[actix_rt::test]
async fn issue8_feishugroup_flood_9499_is_retried_not_dead() {
    let fs = FeishuFake::start();
    let url = fs.bot("hook-flood", None);
    // The platform allows 1 message a second; sanhook's own windows allow far more, so the
    // platform's flood answer is what holds it back. The pause is cut to 1.5 s.
    fs.set_window(1, Duration::from_secs(1));
    let s =
        TestServer::start("max_retry_after = \"1500ms\"\n[limits]\nfeishugroup = [\"50/1s\"]\n")
            .await;
    let wh = s
        .webhook(json!({"name": "lark", "type": "feishugroup", "url": url}))
        .await;
    post_events(&s, (1..=3).map(|i| ev(i, i, &[], &[])).collect()).await;
    let d = s
        .wait_deliveries(wh, WAIT, "all delivered", |d| all(d, 3, "delivered"))
        .await;
    assert!(fs.refused(9499) >= 1, "the fake never answered 9499");
    assert!(
        d.iter().any(|x| x["attempts"].as_u64() > Some(1)),
        "nothing was retried: {d:?}"
    );
    let ids: Vec<u64> = fs.received().iter().flat_map(|m| m.object_ids()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

// ---------------------------------------------------------------------------------------------
// Work/app messages

fn dinguser(key: &str, secret: &str) -> Value {
    json!({"name": "dt app", "type": "dinguser", "agentId": "2800123", "appKey": key, "appSecret": secret})
}

fn wechatuser(corp: &str, secret: &str) -> Value {
    json!({"name": "wc app", "type": "wechatuser", "wechatCorpId": corp, "wechatCorpSecret": secret, "wechatAgentId": "1000002"})
}

fn feishuuser(base: &str, id: &str, secret: &str) -> Value {
    json!({"name": "lark app", "type": "feishuuser", "feishuAppId": id, "feishuAppSecret": secret, "apiBase": base})
}

#[actix_rt::test]
async fn dinguser_sends_to_bound_users_and_ends_with_the_date() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    let s = TestServer::start(&platforms(&dt.base, NOWHERE, NOWHERE)).await;
    let wh = s.webhook(dinguser("key1", "sec1")).await;
    bind(
        &s,
        wh,
        json!({"alice": "u-alice", "bob": "u-bob", "carol": "u-carol"}),
    )
    .await;
    // alice acts: she is not notified; dave is not bound.
    post_events(&s, vec![ev(1, 12, &["alice", "bob", "carol", "dave"], &[])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    let got = dt.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec!["u-bob", "u-carol"]);
    assert_eq!(
        got[0].body,
        json!({
            "agent_id": 2800123,
            "userid_list": "u-bob,u-carol",
            "msg": {"msgtype": "markdown", "markdown": {
                "title": "Alice opened Bug",
                "text": "Alice opened Bug [#12::Login fails](http://localhost/bug-view-12.html)\n\n2026-11-20 09:00:35",
            }},
        })
    );
    // The token never shows in the log.
    let logged = d[0]["request"]["url"].as_str().unwrap_or("");
    assert!(
        logged.contains("access_token=") && !logged.contains("dt-"),
        "{logged}"
    );
    assert_eq!(
        progress(&s, &d[0]).await["served"],
        json!(["u-bob", "u-carol"])
    );
}

#[actix_rt::test]
async fn dinguser_splits_recipients_in_chunks_of_100() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    let s = TestServer::start(&platforms(&dt.base, NOWHERE, NOWHERE)).await;
    let wh = s.webhook(dinguser("key1", "sec1")).await;
    let accounts: Vec<String> = (0..150).map(|i| format!("user{i:03}")).collect();
    let pairs: serde_json::Map<String, Value> = accounts
        .iter()
        .map(|a| (a.clone(), json!(format!("u-{a}"))))
        .collect();
    bind(&s, wh, Value::Object(pairs)).await;
    let to: Vec<&str> = accounts.iter().map(String::as_str).collect();
    post_events(&s, vec![ev(1, 12, &to, &[])]).await;
    s.wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    let sizes: Vec<usize> = dt.received().iter().map(|m| m.to.len()).collect();
    assert_eq!(sizes, vec![100, 50]);
    let everyone: HashSet<String> = dt.received().into_iter().flat_map(|m| m.to).collect();
    assert_eq!(everyone.len(), 150);
}

#[actix_rt::test]
async fn dinguser_token_is_cached_across_20_messages() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    let s = TestServer::start(&platforms(&dt.base, NOWHERE, NOWHERE)).await;
    let wh = s.webhook(dinguser("key1", "sec1")).await;
    bind(&s, wh, json!({"bob": "u-bob"})).await;
    let events: Vec<Value> = (1..=20).map(|i| ev(i, 100 + i, &["bob"], &[])).collect();
    post_events(&s, events).await;
    s.wait_deliveries(wh, WAIT, "20 delivered", |d| all(d, 20, "delivered"))
        .await;
    assert_eq!(dt.received().len(), 20);
    assert!(dt.token_calls() <= 2, "token calls: {}", dt.token_calls());
}

/// Sends 5 messages, invalidates every token, sends 5 more: all 10 arrive, once each, and the
/// token was fetched exactly twice.
async fn token_invalidated_mid_run(
    s: &TestServer,
    wh: u64,
    received: impl Fn() -> Vec<u64>,
    invalidate: impl Fn(),
    token_calls: impl Fn() -> usize,
) {
    post_events(s, (1..=5).map(|i| ev(i, 100 + i, &["bob"], &[])).collect()).await;
    s.wait_deliveries(wh, WAIT, "first 5", |d| all(d, 5, "delivered"))
        .await;
    assert_eq!(token_calls(), 1);
    invalidate();
    post_events(s, (6..=10).map(|i| ev(i, 100 + i, &["bob"], &[])).collect()).await;
    s.wait_deliveries(wh, WAIT, "all 10", |d| all(d, 10, "delivered"))
        .await;
    let mut objects = received();
    objects.sort_unstable();
    assert_eq!(
        objects,
        (101..=110).collect::<Vec<u64>>(),
        "each once, none lost"
    );
    assert_eq!(token_calls(), 2, "one refresh shared by every sender");
}

#[actix_rt::test]
async fn dinguser_token_invalidated_mid_run_is_refreshed() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    let s = TestServer::start(&platforms(&dt.base, NOWHERE, NOWHERE)).await;
    let wh = s.webhook(dinguser("key1", "sec1")).await;
    bind(&s, wh, json!({"bob": "u-bob"})).await;
    token_invalidated_mid_run(
        &s,
        wh,
        || dt.received().iter().flat_map(|m| m.object_ids()).collect(),
        || dt.invalidate_tokens(),
        || dt.token_calls(),
    )
    .await;
    assert!(dt.refused(40014) > 0);
}

#[actix_rt::test]
async fn wechatuser_token_invalidated_mid_run_is_refreshed() {
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    wc.set_directory(&[(1, "Root", 0)], &[("u-bob", "Bob", &[1])]);
    let s = TestServer::start(&platforms(NOWHERE, &wc.base, NOWHERE)).await;
    let wh = s.webhook(wechatuser("corp1", "csec")).await;
    bind(&s, wh, json!({"bob": "u-bob"})).await;
    token_invalidated_mid_run(
        &s,
        wh,
        || wc.received().iter().flat_map(|m| m.object_ids()).collect(),
        || wc.invalidate_tokens(),
        || wc.token_calls(),
    )
    .await;
    assert!(wc.refused(42001) > 0);
}

#[actix_rt::test]
async fn feishuuser_token_invalidated_mid_run_is_refreshed() {
    let fs = FeishuFake::start();
    fs.app("cli_1", "asec");
    fs.set_directory(&[], &[("ou_bob", "Bob", &["0"])]);
    // Lark beside Feishu: the webhook's apiBase wins over [platforms].
    let s = TestServer::start(&platforms(NOWHERE, NOWHERE, NOWHERE)).await;
    let wh = s.webhook(feishuuser(&fs.base, "cli_1", "asec")).await;
    bind(&s, wh, json!({"bob": "ou_bob"})).await;
    token_invalidated_mid_run(
        &s,
        wh,
        || fs.received().iter().flat_map(|m| m.object_ids()).collect(),
        || fs.invalidate_tokens(),
        || fs.token_calls(),
    )
    .await;
    assert!(fs.refused(99991663) > 0);
}

#[actix_rt::test]
async fn wechatuser_token_lifetime_comes_from_the_token_response() {
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    wc.set_directory(&[(1, "Root", 0)], &[("u-bob", "Bob", &[1])]);
    // A one-second token is cached for 0.9 s: the second message, 1.5 s later, needs a new one.
    wc.set_token_lifetime(1);
    let s = TestServer::start(&platforms(NOWHERE, &wc.base, NOWHERE)).await;
    let wh = s.webhook(wechatuser("corp1", "csec")).await;
    bind(&s, wh, json!({"bob": "u-bob"})).await;
    post_events(&s, vec![ev(1, 1, &["bob"], &[])]).await;
    s.wait_deliveries(wh, WAIT, "first", |d| all(d, 1, "delivered"))
        .await;
    // Time passing is the scenario (the one-second token runs out), not a wait for the engine.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    post_events(&s, vec![ev(2, 2, &["bob"], &[])]).await;
    s.wait_deliveries(wh, WAIT, "second", |d| all(d, 2, "delivered"))
        .await;
    assert_eq!(wc.token_calls(), 2);
    // Nothing was refused: the token was renewed before it ran out.
    assert!(wc.refusals().is_empty(), "{:?}", wc.refusals());
}

#[actix_rt::test]
async fn app_types_with_wrong_secrets_end_dead_with_the_platform_code() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    let fs = FeishuFake::start();
    fs.app("cli_1", "asec");
    let s = TestServer::start(&platforms(&dt.base, &wc.base, NOWHERE)).await;
    let whs = [
        (
            s.webhook(dinguser("key1", "nope")).await,
            "DingTalk errcode 40089",
        ),
        (
            s.webhook(wechatuser("corp1", "nope")).await,
            "WeCom errcode 40001",
        ),
        (
            s.webhook(feishuuser(&fs.base, "cli_1", "nope")).await,
            "Feishu code 10014",
        ),
    ];
    for (wh, _) in &whs {
        bind(&s, *wh, json!({"bob": "someone"})).await;
    }
    post_events(&s, vec![ev(1, 12, &["bob"], &[])]).await;
    for (wh, code) in whs {
        let d = s
            .wait_deliveries(wh, WAIT, "dead", |d| all(d, 1, "dead"))
            .await;
        let e = err_of(&d[0]);
        assert!(e.contains(code), "webhook {wh}: {e}");
        assert!(e.contains("access token"), "{e}");
        // The token request is logged with the secret masked.
        let req = d[0]["request"].to_string();
        assert!(!req.contains("nope"), "{req}");
    }
    assert!(dt.received().is_empty() && wc.received().is_empty() && fs.received().is_empty());
}

#[actix_rt::test]
async fn wechatuser_ip_not_whitelisted_is_explained() {
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    wc.deny_ip(true);
    let s = TestServer::start(&platforms(NOWHERE, &wc.base, NOWHERE)).await;
    let wh = s.webhook(wechatuser("corp1", "csec")).await;
    bind(&s, wh, json!({"bob": "u-bob"})).await;
    post_events(&s, vec![ev(1, 12, &["bob"], &[])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "dead", |d| all(d, 1, "dead"))
        .await;
    let e = err_of(&d[0]);
    assert!(
        e.contains("WeCom errcode 60020") && e.contains("IP whitelist"),
        "{e}"
    );
}

#[actix_rt::test]
async fn wechatuser_invaliduser_is_recorded_and_the_others_served() {
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    wc.set_directory(&[(1, "Root", 0)], &[("u-bob", "Bob", &[1])]);
    let s = TestServer::start(&platforms(NOWHERE, &wc.base, NOWHERE)).await;
    let wh = s.webhook(wechatuser("corp1", "csec")).await;
    bind(&s, wh, json!({"bob": "u-bob", "carol": "u-gone"})).await;
    post_events(&s, vec![ev(1, 12, &["bob", "carol"], &[])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    let got = wc.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec!["u-bob"]);
    assert_eq!(
        got[0].body,
        json!({"touser": "u-bob|u-gone", "msgtype": "markdown", "agentid": 1000002,
               "markdown": {"content": "Alice opened Bug [#12::Login fails](http://localhost/bug-view-12.html)"}})
    );
    let body = d[0]["response"]["body"].as_str().unwrap_or("");
    assert!(body.contains(r#""invaliduser":"u-gone""#), "{body}");
    let p = progress(&s, &d[0]).await;
    assert_eq!(p["served"], json!(["u-bob"]));
    assert_eq!(p["rejected"][0]["userid"], "u-gone");
}

#[actix_rt::test]
async fn wechatuser_holds_back_past_the_per_member_limit() {
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    wc.set_directory(&[(1, "Root", 0)], &[("u-bob", "Bob", &[1])]);
    // sanhook allows 2 per 2 s; the fake drops past 2 per 1.5 s: a margin for latency.
    wc.set_member_window(2, Duration::from_millis(1500));
    let extra = format!(
        "{}[limits]\nwechatuser_member = [\"2/2s\"]\n",
        platforms(NOWHERE, &wc.base, NOWHERE)
    );
    let s = TestServer::start(&extra).await;
    let wh = s.webhook(wechatuser("corp1", "csec")).await;
    bind(&s, wh, json!({"bob": "u-bob"})).await;
    post_events(&s, (1..=5).map(|i| ev(i, i, &["bob"], &[])).collect()).await;
    s.wait_deliveries(wh, WAIT, "5 delivered", |d| all(d, 5, "delivered"))
        .await;
    assert!(wc.dropped().is_empty(), "WeCom dropped {:?}", wc.dropped());
    let got = wc.received();
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|m| m.to == vec!["u-bob"]));
}

#[actix_rt::test]
async fn feishuuser_card_as_string_and_429_reset_honoured() {
    let fs = FeishuFake::start();
    fs.app("cli_1", "asec");
    fs.set_directory(&[], &[("ou_bob", "Bob", &["0"])]);
    fs.rate_limit(1, 1);
    let s = TestServer::start(&platforms(NOWHERE, NOWHERE, &fs.base)).await;
    let wh = s
        .webhook(json!({"name": "feishu app", "type": "feishuuser", "feishuAppId": "cli_1", "feishuAppSecret": "asec"}))
        .await;
    bind(&s, wh, json!({"bob": "ou_bob"})).await;
    post_events(&s, vec![ev(1, 12, &["bob"], &[])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    assert_eq!(d[0]["attempts"], 2, "{}", d[0]);
    let got = fs.received();
    assert_eq!(got.len(), 1);
    let limited = fs.limited_at();
    assert_eq!(limited.len(), 1);
    // The retry waited the reset Lark asked for (1 s), not the 100 ms schedule.
    assert!(
        got[0].at.duration_since(limited[0]) >= Duration::from_secs(1),
        "retried after {:?}",
        got[0].at.duration_since(limited[0])
    );
    let b = &got[0].body;
    assert_eq!(b["receive_id"], "ou_bob");
    assert_eq!(b["msg_type"], "interactive");
    let card: Value = serde_json::from_str(b["content"].as_str().expect("content is a string"))
        .expect("content is JSON");
    assert_eq!(card["header"]["title"]["content"], "Alice opened Bug");
}

#[actix_rt::test]
async fn feishuuser_rejected_recipient_is_recorded_without_failing_the_others() {
    let fs = FeishuFake::start();
    fs.app("cli_1", "asec");
    fs.set_directory(
        &[],
        &[("ou_bob", "Bob", &["0"]), ("ou_dave", "Dave", &["0"])],
    );
    let s = TestServer::start(&platforms(NOWHERE, NOWHERE, &fs.base)).await;
    let wh = s
        .webhook(json!({"name": "feishu app", "type": "feishuuser", "feishuAppId": "cli_1", "feishuAppSecret": "asec"}))
        .await;
    bind(
        &s,
        wh,
        json!({"bob": "ou_bob", "carol": "ou_gone", "dave": "ou_dave"}),
    )
    .await;
    post_events(&s, vec![ev(1, 12, &["bob", "carol", "dave"], &[])]).await;
    let d = s
        .wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    let to: Vec<String> = fs.received().into_iter().flat_map(|m| m.to).collect();
    assert_eq!(to, vec!["ou_bob", "ou_dave"]);
    let p = progress(&s, &d[0]).await;
    assert_eq!(p["served"], json!(["ou_bob", "ou_dave"]));
    assert_eq!(p["rejected"][0]["userid"], "ou_gone");
    assert_eq!(p["rejected"][0]["code"], 230001);
}

#[actix_rt::test]
async fn app_types_skip_when_nobody_is_bound() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    let fs = FeishuFake::start();
    fs.app("cli_1", "asec");
    let s = TestServer::start(&platforms(&dt.base, &wc.base, &fs.base)).await;
    let whs = [
        s.webhook(dinguser("key1", "sec1")).await,
        s.webhook(wechatuser("corp1", "csec")).await,
        s.webhook(feishuuser(&fs.base, "cli_1", "asec")).await,
    ];
    // bob is bound nowhere; alice is the actor.
    for wh in whs {
        bind(&s, wh, json!({"alice": "u-alice"})).await;
    }
    post_events(&s, vec![ev(1, 12, &["alice", "bob"], &[])]).await;
    for wh in whs {
        let d = s
            .wait_deliveries(wh, WAIT, "skipped", |d| all(d, 1, "skipped"))
            .await;
        let e = err_of(&d[0]);
        assert!(
            e.starts_with("no bound recipients:") && e.contains("bob"),
            "{e}"
        );
    }
    assert_eq!(dt.token_calls() + wc.token_calls() + fs.token_calls(), 0);
    assert!(dt.received().is_empty() && wc.received().is_empty() && fs.received().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Directory and bindings

/// `(userid, departments)` of a remote-users answer, sorted.
fn listed(v: &Value) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let mut depts: Vec<String> = u["departments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(String::from))
                .collect();
            depts.sort();
            (u["userid"].as_str().unwrap_or("").to_string(), depts)
        })
        .collect();
    out.sort();
    out
}

/// `(department id, department name)` of one user of a remote-users answer, sorted.
fn departments_of(v: &Value, userid: &str) -> Vec<(String, String)> {
    let u = v
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["userid"] == userid)
        .cloned()
        .unwrap_or_default();
    let strings = |k: &str| -> Vec<String> {
        u[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str().map(String::from))
            .collect()
    };
    let mut out: Vec<(String, String)> = strings("departments")
        .into_iter()
        .zip(strings("departmentNames"))
        .collect();
    out.sort();
    out
}

fn named(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(i, n)| (i.to_string(), n.to_string()))
        .collect()
}

fn pairs(v: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    v.iter()
        .map(|(u, d)| (u.to_string(), d.iter().map(|x| x.to_string()).collect()))
        .collect()
}

#[actix_rt::test]
async fn dingtalk_directory_across_departments_and_pages() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    dt.set_directory(
        &[(2, "R&D", 1), (3, "QA", 2), (4, "Ops", 1)],
        &[
            ("u1", "Ann", &[1]),
            ("u2", "Ben", &[2, 3]),
            ("u3", "Cid", &[2]),
            ("u4", "Dee", &[2]),
            ("u5", "Eve", &[3]),
            ("u6", "Fay", &[4]),
        ],
    );
    dt.set_page_cap(2);
    let s = TestServer::start(&platforms(&dt.base, NOWHERE, NOWHERE)).await;
    let wh = s.webhook(dinguser("key1", "sec1")).await;
    let (status, v) = s
        .call("GET", &format!("/api/v1/webhooks/{wh}/remote-users"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        listed(&v),
        pairs(&[
            ("u1", &["1"]),
            ("u2", &["2", "3"]),
            ("u3", &["2"]),
            ("u4", &["2"]),
            ("u5", &["3"]),
            ("u6", &["4"]),
        ])
    );
    assert_eq!(v[0]["name"], "Ann");
    // Departments by name too; the root (1) is not listed with one.
    assert_eq!(
        departments_of(&v, "u2"),
        named(&[("2", "R&D"), ("3", "QA")])
    );
    assert_eq!(departments_of(&v, "u1"), named(&[("1", "")]));
    bind(&s, wh, json!({"ann": "u1", "ben": "u2"})).await;
    let (_, v) = s
        .call(
            "GET",
            &format!("/api/v1/webhooks/{wh}/remote-users?unbound=true"),
            None,
        )
        .await;
    let ids: Vec<String> = listed(&v).into_iter().map(|(u, _)| u).collect();
    assert_eq!(ids, vec!["u3", "u4", "u5", "u6"]);
    assert_eq!(dt.token_calls(), 1);
}

#[actix_rt::test]
async fn wecom_directory_across_departments() {
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    wc.set_directory(
        &[(1, "Corp", 0), (2, "R&D", 1), (3, "QA", 2)],
        &[
            ("zhangsan", "张三", &[1, 2]),
            ("lisi", "李四", &[3]),
            ("wangwu", "王五", &[2]),
        ],
    );
    let s = TestServer::start(&platforms(NOWHERE, &wc.base, NOWHERE)).await;
    let wh = s.webhook(wechatuser("corp1", "csec")).await;
    let (status, v) = s
        .call("GET", &format!("/api/v1/webhooks/{wh}/remote-users"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        listed(&v),
        pairs(&[
            ("lisi", &["3"]),
            ("wangwu", &["2"]),
            ("zhangsan", &["1", "2"])
        ])
    );
    assert_eq!(
        departments_of(&v, "zhangsan"),
        named(&[("1", "Corp"), ("2", "R&D")])
    );
}

#[actix_rt::test]
async fn lark_directory_across_departments_and_pages() {
    let fs = FeishuFake::start();
    fs.app("cli_1", "asec");
    fs.set_directory(
        &[
            ("od-1", "R&D", "0"),
            ("od-2", "QA", "od-1"),
            ("od-3", "Ops", "0"),
            ("od-4", "Sales", "0"),
        ],
        &[
            ("ou_a", "Ann", &["0"]),
            ("ou_b", "Ben", &["od-1", "od-2"]),
            ("ou_c", "Cid", &["od-1"]),
            ("ou_d", "Dee", &["od-1"]),
            ("ou_e", "Eve", &["od-2"]),
            ("ou_f", "Fay", &["od-4"]),
        ],
    );
    fs.set_page_cap(2);
    let s = TestServer::start(&platforms(NOWHERE, NOWHERE, &fs.base)).await;
    let wh = s
        .webhook(json!({"name": "feishu app", "type": "feishuuser", "feishuAppId": "cli_1", "feishuAppSecret": "asec"}))
        .await;
    let (status, v) = s
        .call("GET", &format!("/api/v1/webhooks/{wh}/remote-users"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        listed(&v),
        pairs(&[
            ("ou_a", &["0"]),
            ("ou_b", &["od-1", "od-2"]),
            ("ou_c", &["od-1"]),
            ("ou_d", &["od-1"]),
            ("ou_e", &["od-2"]),
            ("ou_f", &["od-4"]),
        ])
    );
    assert_eq!(
        departments_of(&v, "ou_b"),
        named(&[("od-1", "R&D"), ("od-2", "QA")])
    );
    assert_eq!(departments_of(&v, "ou_a"), named(&[("0", "")]));
}

#[actix_rt::test]
async fn remote_users_errors_name_the_platform_code() {
    let wc = WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    wc.deny_ip(true);
    let s = TestServer::start(&platforms(NOWHERE, &wc.base, NOWHERE)).await;
    let wh = s.webhook(wechatuser("corp1", "csec")).await;
    let (status, v) = s
        .call("GET", &format!("/api/v1/webhooks/{wh}/remote-users"), None)
        .await;
    assert_eq!(status, 502, "{v}");
    let e = v["error"].as_str().unwrap_or("");
    assert!(e.contains("WeCom errcode 60020"), "{e}");
    // A group bot has no directory.
    let bot = s
        .webhook(json!({"name": "b", "type": "wechatgroup", "url": wc.bot("k")}))
        .await;
    let (status, _) = s
        .call("GET", &format!("/api/v1/webhooks/{bot}/remote-users"), None)
        .await;
    assert_eq!(status, 400);
}

#[actix_rt::test]
async fn bind_rebind_unbind_and_conflicts() {
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    let s = TestServer::start(&platforms(&dt.base, NOWHERE, NOWHERE)).await;
    let wh = s.webhook(dinguser("key1", "sec1")).await;
    let path = format!("/api/v1/webhooks/{wh}/bindings");
    bind(&s, wh, json!({"bob": "u1", "carol": "u2"})).await;
    // u1 belongs to bob: binding it to dave too is a conflict naming both.
    let (status, v) = s.call("PUT", &path, Some(json!({"dave": "u1"}))).await;
    assert_eq!(status, 409, "{v}");
    let e = v["error"].as_str().unwrap_or("");
    assert!(e.contains("bob") && e.contains("dave"), "{e}");
    assert_eq!(
        (&v["userid"], &v["boundTo"], &v["account"]),
        (&json!("u1"), &json!("bob"), &json!("dave")),
        "{v}"
    );
    // Re-bind bob: u1 is free for dave now.
    bind(&s, wh, json!({"bob": "u3"})).await;
    bind(&s, wh, json!({"dave": "u1"})).await;
    let (status, _) = s.call("DELETE", &format!("{path}/carol"), None).await;
    assert_eq!(status, 204);
    let (_, v) = s.call("GET", &path, None).await;
    assert_eq!(
        v,
        json!([{"account": "bob", "userid": "u3"}, {"account": "dave", "userid": "u1"}])
    );
    // Deliveries follow the bindings as they are now: bob → u3, carol is skipped.
    post_events(&s, vec![ev(1, 12, &["bob", "carol"], &[])]).await;
    s.wait_deliveries(wh, WAIT, "delivered", |d| all(d, 1, "delivered"))
        .await;
    assert_eq!(dt.received()[0].to, vec!["u3"]);
}

// ---------------------------------------------------------------------------------------------
// Digests (what the dispatcher's coalescing sends)

#[actix_rt::test]
async fn digests_are_signed_and_accepted_by_each_bot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = crate::support::test_config(dir.path(), "");
    let store = sanhook::store::Store::open(&dir.path().join("d.redb")).expect("store");
    let deliverer = sanhook::deliver::Deliverer::new(std::sync::Arc::new(cfg), store.instance())
        .expect("deliverer");
    let events: Vec<std::sync::Arc<sanhook::ActionEvent>> = (1..=3)
        .map(|i| {
            let mut e = sanhook::ActionEvent {
                id: Some(i),
                object_type: "bug".into(),
                object_id: 10 + i,
                actor: "alice".into(),
                actor_name: Some("Alice".into()),
                action: "opened".into(),
                object_name: Some("Login fails".into()),
                ..sanhook::ActionEvent::default()
            };
            if i == 2 {
                e.mentions = vec!["13800000001".into()];
            }
            std::sync::Arc::new(e)
        })
        .collect();
    let dt = DingTalkFake::start();
    let wc = WeComFake::start();
    let fs = FeishuFake::start();
    let hooks = [
        json!({"name": "d", "type": "dinggroup", "url": dt.bot("t", Some("SECx")), "secret": "SECx"}),
        json!({"name": "w", "type": "wechatgroup", "url": wc.bot("k")}),
        json!({"name": "f", "type": "feishugroup", "url": fs.bot("h", Some("sx")), "secret": "sx"}),
    ];
    for h in hooks {
        let wh: sanhook::Webhook = serde_json::from_value(h).expect("webhook");
        let attempt = deliverer.attempt_digest(&wh, &events, 1).await;
        assert_eq!(
            attempt.outcome,
            sanhook::deliver::Outcome::Delivered,
            "{}",
            wh.kind
        );
    }
    for (name, got) in [
        ("dingtalk", dt.received()),
        ("wecom", wc.received()),
        ("lark", fs.received()),
    ] {
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].object_ids(), vec![11, 12, 13], "{name}: newest last");
        assert!(
            got[0].text().starts_with("**3 updates**")
                || got[0].text().starts_with("3 updates")
                || fs.received()[0].body["card"]["header"]["title"]["content"] == "3 updates",
            "{name}: {}",
            got[0].text()
        );
    }
    assert!(dt.received()[0].signed && fs.received()[0].signed);
    assert_eq!(
        dt.received()[0].body["at"]["atMobiles"],
        json!(["13800000001"])
    );
    assert_eq!(
        wc.received()[0].body["msgtype"],
        "text",
        "a mention needs WeCom's text form"
    );
}
