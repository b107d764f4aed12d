//! Address checks and the proxy (issue 8, docs/reference.md §2 and §5), end to end with loopback
//! targets only: what must not be reached is checked as a unit (`deliver::addr`), here only
//! that loopback is refused with `allow_private = false`, for every kind of destination, also
//! through a proxy, and that `HTTP(S)_PROXY` variables are ignored.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::binary::{free_port, write_config, Sanhook};
use crate::support::fakes::{DingTalkFake, WeComFake};
use crate::support::proxy::Proxy;
use crate::support::receiver::Receiver;
use crate::support::{event, eventually, Api, TestServer};

const WAIT: Duration = Duration::from_secs(20);

fn wecom_app(base: &str) -> Value {
    json!({
        "name": "wecom app", "type": "wechatuser", "apiBase": base,
        "wechatCorpId": "corp1", "wechatCorpSecret": "corp-secret-1", "wechatAgentId": "1000002",
    })
}

#[actix_rt::test]
async fn api_base_platforms_and_bots_are_checked_like_urls() {
    let wc = WeComFake::start();
    wc.app("corp1", "corp-secret-1", 1000002);
    let bot = wc.bot("bot-key-1");
    let dt = DingTalkFake::start();
    dt.app("key1", "sec1", 2800123);
    let s = TestServer::start(&format!(
        "allow_private = false\n[platforms]\ndingtalk = \"{}\"\n",
        dt.base
    ))
    .await;
    let by_api_base = s.webhook(wecom_app(&wc.base)).await;
    let by_platforms = s
        .webhook(json!({"name": "ding", "type": "dinguser", "agentId": "2800123", "appKey": "key1", "appSecret": "sec1"}))
        .await;
    for wh in [by_api_base, by_platforms] {
        let (status, v) = s
            .call("GET", &format!("/api/v1/webhooks/{wh}/remote-users"), None)
            .await;
        assert_eq!(status, 502, "{v}");
        let e = v["error"].as_str().unwrap_or("");
        assert!(
            e.contains("127.0.0.1 is a loopback address") && e.contains("allow_private"),
            "{e}"
        );
    }
    let group = s
        .webhook(json!({"name": "bot", "type": "wechatgroup", "url": bot}))
        .await;
    s.call("POST", "/api/v1/events", Some(event(1, 1, "opened")))
        .await;
    let d = s
        .wait_deliveries(group, WAIT, "refused", |d| {
            d.len() == 1 && d[0]["attempts"].as_u64() >= Some(1)
        })
        .await;
    let e = d[0]["lastError"].as_str().unwrap_or("");
    assert!(e.contains("allow_private"), "{e}");
    assert_eq!((wc.token_calls(), dt.token_calls()), (0, 0));
    assert!(wc.received().is_empty() && wc.refusals().is_empty());
    s.stop().await;
}

#[actix_rt::test]
async fn urls_and_api_bases_must_be_http() {
    let s = TestServer::start("").await;
    for (field, body) in [
        ("apiBase", wecom_app("file:///etc/passwd")),
        ("apiBase", wecom_app("gopher://127.0.0.1:70/_x")),
        ("apiBase", wecom_app("ftp://h/")),
        ("url", json!({"name": "x", "url": "file:///etc/passwd"})),
        (
            "url",
            json!({"name": "x", "url": "gopher://127.0.0.1:70/_x"}),
        ),
    ] {
        let (status, v) = s.call("POST", "/api/v1/webhooks", Some(body)).await;
        assert_eq!((status, v["field"].clone()), (400, json!(field)), "{v}");
        assert!(v["error"].as_str().unwrap_or("").contains("http://"), "{v}");
    }
    let (_, v) = s.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(v, json!([]));
    s.stop().await;
}

#[actix_rt::test]
async fn an_internal_service_answer_does_not_leak_through_api_errors() {
    // A service on loopback (allowed: allow_private = true by default) at a wrong apiBase.
    let internal = Receiver::start(|r, _| {
        let body = if r.path.ends_with("/gettoken") && r.query.contains("corp1") {
            r#"{"errcode": 0, "access_token": "t", "expires_in": 7200}"#.to_string()
        } else {
            "<html>internal admin page: db_password=hunter2</html>".to_string()
        };
        let status = if body.starts_with('{') { 200 } else { 404 };
        (status, vec![], body)
    });
    let base = internal.url.trim_end_matches("/hook").to_string();
    let s = TestServer::start("").await;
    let wh = s.webhook(wecom_app(&base)).await;
    let (status, v) = s
        .call("GET", &format!("/api/v1/webhooks/{wh}/remote-users"), None)
        .await;
    assert_eq!(status, 502, "{v}");
    let e = v["error"].as_str().unwrap_or("");
    assert!(e.contains("WeCom: HTTP 404"), "{e}");
    assert!(
        !e.contains("internal admin") && !e.contains("hunter2"),
        "{e}"
    );
    assert!(internal.received().len() >= 2, "it was asked");
    s.stop().await;
}

#[actix_rt::test]
async fn every_request_goes_through_delivery_proxy() {
    let proxy = Proxy::start();
    let r = Receiver::fixed(200);
    let wc = WeComFake::start();
    wc.app("corp1", "corp-secret-1", 1000002);
    wc.set_directory(&[(1, "Corp", 0)], &[("zhangsan", "张三", &[1])]);
    let s = TestServer::start(&format!("proxy = \"{}\"\n", proxy.url)).await;
    let wh = s.webhook(json!({"name": "json", "url": r.url})).await;
    s.call("POST", "/api/v1/events", Some(event(1, 1, "opened")))
        .await;
    s.wait_deliveries(wh, WAIT, "delivered", |d| {
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    let app = s.webhook(wecom_app(&wc.base)).await;
    let (status, v) = s
        .call("GET", &format!("/api/v1/webhooks/{app}/remote-users"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    let lines: Vec<String> = proxy.asked().into_iter().map(|a| a.line).collect();
    let sent = format!("POST {} HTTP/1.1", r.url);
    assert!(lines.contains(&sent), "{lines:?}");
    let token = format!("GET {}/cgi-bin/gettoken?", wc.base);
    assert!(lines.iter().any(|l| l.starts_with(&token)), "{lines:?}");
    assert_eq!(r.received().len(), 1);
    s.stop().await;
}

#[actix_rt::test]
async fn with_a_proxy_the_destination_is_checked_before_the_proxy_is_asked() {
    let proxy = Proxy::start();
    let r = Receiver::fixed(200);
    let s = TestServer::start(&format!(
        "allow_private = false\nproxy = \"{}\"\n",
        proxy.url
    ))
    .await;
    let literal = s.webhook(json!({"name": "literal", "url": r.url})).await;
    let by_name = r.url.replace("127.0.0.1", "localhost");
    let named = s.webhook(json!({"name": "name", "url": by_name})).await;
    s.call("POST", "/api/v1/events", Some(event(1, 1, "opened")))
        .await;
    for wh in [literal, named] {
        let d = s
            .wait_deliveries(wh, WAIT, "refused", |d| {
                d.len() == 1 && d[0]["attempts"].as_u64() >= Some(1)
            })
            .await;
        let e = d[0]["lastError"].as_str().unwrap_or("");
        assert!(e.contains("loopback") && e.contains("allow_private"), "{e}");
    }
    assert!(proxy.asked().is_empty(), "{:?}", proxy.asked());
    assert!(r.received().is_empty());
    s.stop().await;
}

#[actix_rt::test]
async fn proxy_environment_variables_are_ignored() {
    let proxy = Proxy::start();
    let r = Receiver::fixed(200);
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = write_config(dir.path(), port, "100ms", 3);
    let base = format!("http://127.0.0.1:{port}");
    let mut env = vec![("SANHOOK_LOG", "warn"), ("NO_PROXY", ""), ("no_proxy", "")];
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        env.push((var, proxy.url.as_str()));
    }
    let _child = Sanhook::serve_with(&config, &dir.path().join("log"), &base, &env).await;
    let api = Api::new(&base, "");
    api.webhook(json!({"name": "json", "url": r.url})).await;
    api.post_events(vec![event(1, 1, "opened")]).await;
    eventually(WAIT, "the delivery", || async { !r.received().is_empty() }).await;
    assert!(proxy.asked().is_empty(), "{:?}", proxy.asked());
}
