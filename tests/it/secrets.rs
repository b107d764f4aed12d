//! Secrets (issue 8): a masked secret never follows a webhook to another place, URL credentials
//! are masked in every answer, and no secret shows anywhere the binary writes or answers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::binary::{free_port, Sanhook};
use crate::support::fakes::{DingTalkFake, FeishuFake, WeComFake};
use crate::support::proxy::Proxy;
use crate::support::receiver::Receiver;
use crate::support::{eventually_value, Api, TestServer};

const MASK: &str = "******";

fn wecom_app(base: &str) -> Value {
    json!({
        "name": "wecom app", "type": "wechatuser", "apiBase": base,
        "wechatCorpId": "corp1", "wechatCorpSecret": "corp-secret-1", "wechatAgentId": "1000002",
    })
}

/// The webhook as GET shows it, with `changes` applied: what an admin UI sends back on PUT.
async fn edited(s: &TestServer, id: u64, changes: Value) -> Value {
    let (status, mut v) = s.call("GET", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    if let (Some(o), Value::Object(c)) = (v.as_object_mut(), changes) {
        o.extend(c);
    }
    v
}

#[actix_rt::test]
async fn a_masked_app_secret_is_not_walked_out_to_a_new_api_base() {
    let wc = WeComFake::start();
    wc.app("corp1", "corp-secret-1", 1000002);
    wc.set_directory(&[(1, "Corp", 0)], &[("zhangsan", "张三", &[1])]);
    // Where a PUT would send the stored secret: it must never be asked anything.
    let thief = Receiver::fixed(200);
    let s = TestServer::start("").await;
    let wh = s.webhook(wecom_app(&wc.base)).await;
    let path = format!("/api/v1/webhooks/{wh}");

    // A new apiBase with the secret masked: 400 naming the secret.
    let new_base = thief.url.trim_end_matches("/hook");
    let body = edited(&s, wh, json!({"apiBase": new_base})).await;
    assert_eq!(body["wechatCorpSecret"], MASK);
    let (status, v) = s.call("PUT", &path, Some(body)).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "wechatCorpSecret", "{v}");
    let msg = v["error"].as_str().unwrap_or("");
    assert!(
        msg.contains("send the secret again") && msg.contains("apiBase"),
        "{msg}"
    );
    // Nor with another corp id, nor another type.
    let body = edited(&s, wh, json!({"wechatCorpId": "corp2"})).await;
    let (status, v) = s.call("PUT", &path, Some(body)).await;
    assert_eq!(
        (status, v["field"].clone()),
        (400, json!("wechatCorpSecret"))
    );
    let body = edited(
        &s,
        wh,
        json!({"type": "dinguser", "agentId": "1", "appKey": "k", "appSecret": MASK}),
    )
    .await;
    let (status, v) = s.call("PUT", &path, Some(body)).await;
    assert_eq!(
        (status, v["field"].clone()),
        (400, json!("appSecret")),
        "{v}"
    );

    // Nothing changed: the directory still comes from the old place, and the new one was
    // never asked anything.
    let (status, v) = s.call("GET", &format!("{path}/remote-users"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v[0]["userid"], "zhangsan");
    assert!(thief.received().is_empty(), "{:?}", thief.received());
    assert_eq!(s.engine.webhook(wh).expect("stored").api_base, wc.base);

    // The same place with the secret masked keeps it; the secret sent again moves it.
    let body = edited(&s, wh, json!({"name": "renamed"})).await;
    let (status, v) = s.call("PUT", &path, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    let stored = s.engine.webhook(wh).expect("stored");
    assert_eq!(stored.wechat_corp_secret, "corp-secret-1");
    let body = edited(
        &s,
        wh,
        json!({"apiBase": new_base, "wechatCorpSecret": "corp-secret-2"}),
    )
    .await;
    let (status, v) = s.call("PUT", &path, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        s.engine.webhook(wh).expect("stored").wechat_corp_secret,
        "corp-secret-2"
    );
    s.stop().await;
}

#[actix_rt::test]
async fn signing_secrets_stay_when_the_url_changes_and_url_credentials_show_masked() {
    let s = TestServer::start("").await;
    let url = "https://oapi.dingtalk.com/robot/send?access_token=AT-secret-1";
    let wh = s
        .webhook(json!({"name": "ding", "type": "dinggroup", "url": url, "secret": "SEC-sign-1"}))
        .await;
    let path = format!("/api/v1/webhooks/{wh}");
    for (status, v) in [
        s.call("GET", &path, None).await,
        s.call("GET", "/api/v1/webhooks", None).await,
    ] {
        assert_eq!(status, 200, "{v}");
        let text = v.to_string();
        assert!(
            !text.contains("AT-secret-1") && !text.contains("SEC-sign-1"),
            "{text}"
        );
        assert!(text.contains("access_token=******"), "{text}");
    }

    // Sent back as shown, the URL and the signing secret keep their stored values.
    let body = edited(&s, wh, json!({"desc": "edited"})).await;
    let (status, v) = s.call("PUT", &path, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    let stored = s.engine.webhook(wh).expect("stored");
    assert_eq!(
        (stored.url.as_str(), stored.secret.as_str()),
        (url, "SEC-sign-1")
    );

    // A new URL with the signing secret masked: the secret stays (it never leaves sanhook).
    let moved = "https://oapi.dingtalk.com/robot/send?access_token=AT-secret-2";
    let body = edited(&s, wh, json!({"url": moved})).await;
    let (status, v) = s.call("PUT", &path, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    let stored = s.engine.webhook(wh).expect("stored");
    assert_eq!(
        (stored.url.as_str(), stored.secret.as_str()),
        (moved, "SEC-sign-1")
    );

    // A different URL that still holds a masked token cannot be completed: 400.
    let body = edited(
        &s,
        wh,
        json!({"url": "https://other.example.com/robot/send?access_token=******"}),
    )
    .await;
    let (status, v) = s.call("PUT", &path, Some(body)).await;
    assert_eq!((status, v["field"].clone()), (400, json!("url")), "{v}");
    assert_eq!(s.engine.webhook(wh).expect("stored").url, moved);
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The class: the binary with every secret set to a marker, driven through every endpoint.

/// Every secret below holds this, so that one search finds any of them, whole or in part.
const MARK: &str = "SEKRIT";
const SERVER_TOKEN: &str = "SEKRIT-server-token-1";

/// The API of a child, every answer kept for the search.
struct Recorded {
    api: Api,
    answers: std::cell::RefCell<Vec<String>>,
}

impl Recorded {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.api.call_text(method, path, body.as_ref()).await;
        self.answers
            .borrow_mut()
            .push(format!("{method} {path} -> {status} {text}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn created(&self, body: Value) -> u64 {
        let (status, v) = self.call("POST", "/api/v1/webhooks", Some(body)).await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_u64().expect("id")
    }
}

/// An event by alice for bob (app types), mentioning a phone (group bots).
fn marked_event(id: u64) -> Value {
    json!({
        "id": id, "objectType": "bug", "objectID": id, "product": ",1,",
        "actor": "alice", "actorName": "Alice", "action": "opened",
        "date": "2026-11-20 09:00:35", "objectName": "Login fails",
        "toList": ["bob"], "mentions": ["13800000001"],
    })
}

fn run_check_config(config: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sanhook"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SANHOOK_") {
            c.env_remove(k);
        }
    }
    let out = c
        .args(["check-config", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .expect("run check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[actix_rt::test]
async fn no_secret_shows_in_any_log_line_or_answer() {
    let ok = Receiver::fixed(200);
    let gone = Receiver::fixed(410);
    let flaky = Receiver::fixed(503);
    let dt = DingTalkFake::start();
    let wc = WeComFake::start();
    let fs = FeishuFake::start();
    let proxy = Proxy::start();
    let ding_bot = dt.bot("SEKRIT-ding-at-20", Some("SEKRIT-ding-sign-21"));
    let wecom_bot = wc.bot("SEKRIT-wecom-key-22");
    let wecom_dead = format!(
        "{}/cgi-bin/webhook/send?key=SEKRIT-wecom-deadkey-23",
        wc.base
    );
    let lark_bot = fs.bot("SEKRIT-lark-hook-24", Some("SEKRIT-lark-sign-25"));
    dt.app("dk1", "SEKRIT-ding-appsecret-30", 2800123);
    dt.set_directory(&[], &[("u-bob", "Bob", &[1])]);
    wc.app("corp1", "SEKRIT-wecom-corpsecret-31", 1000002);
    wc.set_directory(&[(1, "Root", 0)], &[("u-bob", "Bob", &[1])]);
    fs.app("cli_1", "SEKRIT-lark-appsecret-32");
    fs.set_directory(&[], &[("ou_bob", "Bob", &["0"])]);

    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let proxy_url = proxy
        .url
        .replace("http://", "http://squid:SEKRIT-proxy-pw-3@");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:{port}"
token = "{SERVER_TOKEN}"
[storage]
path = "{}"
[sanplex]
base_url = "http://pm:SEKRIT-base-pw-2@127.0.0.1:9/zentao"
[delivery]
timeout = "3s"
retry_schedule = ["100ms", "100ms"]
proxy = "{proxy_url}"
[platforms]
dingtalk = "{}"
wecom = "{}"
feishu = "http://127.0.0.1:9"
[sanplex_db]
url = "mysql://reader:SEKRIT-db-pw-4@127.0.0.1:1/zentao"
"#,
            dir.path().join("data/sanhook.redb").display(),
            dt.base,
            wc.base,
        ),
    )
    .expect("write config");
    let log = dir.path().join("sanhook.log");
    let _child = Sanhook::serve_with(&config, &log, &base, &[("SANHOOK_LOG", "trace")]).await;
    let api = Recorded {
        api: Api::new(&base, SERVER_TOKEN),
        answers: Default::default(),
    };

    // Every type, each with its secrets.
    let json_url = format!(
        "{}?token=SEKRIT-url-token-10&apikey=SEKRIT-url-apikey-11&X-Amz-Signature=SEKRIT-amz-12",
        ok.url
    );
    let hooks = [
        json!({"name": "json", "url": json_url, "secret": "SEKRIT-sign-secret-13"}),
        json!({"name": "gone", "url": format!("{}?sig=SEKRIT-url-sig-14", gone.url)}),
        json!({"name": "flaky", "url": format!("{}?password=SEKRIT-url-pw-15", flaky.url)}),
        json!({"name": "ding bot", "type": "dinggroup", "url": ding_bot, "secret": "SEKRIT-ding-sign-21"}),
        json!({"name": "wecom bot", "type": "wechatgroup", "url": wecom_bot}),
        json!({"name": "wecom dead", "type": "wechatgroup", "url": wecom_dead}),
        json!({"name": "lark bot", "type": "feishugroup", "url": lark_bot, "secret": "SEKRIT-lark-sign-25"}),
        json!({"name": "ding app", "type": "dinguser", "agentId": "2800123", "appKey": "dk1", "appSecret": "SEKRIT-ding-appsecret-30"}),
        json!({"name": "wecom app", "type": "wechatuser", "wechatCorpId": "corp1", "wechatCorpSecret": "SEKRIT-wecom-corpsecret-31", "wechatAgentId": "1000002"}),
        json!({"name": "lark app", "type": "feishuuser", "feishuAppId": "cli_1", "feishuAppSecret": "SEKRIT-lark-appsecret-32", "apiBase": fs.base}),
    ];
    let mut ids = vec![];
    for h in hooks {
        ids.push(api.created(h).await);
    }
    let (gone_id, flaky_id, ding_bot_id, wecom_dead_id, wecom_app_id) =
        (ids[1], ids[2], ids[3], ids[5], ids[8]);
    let apps = [
        (ids[7], "u-bob"),
        (wecom_app_id, "u-bob"),
        (ids[9], "ou_bob"),
    ];
    for id in &ids {
        let (status, v) = api
            .call("GET", &format!("/api/v1/webhooks/{id}"), None)
            .await;
        assert_eq!(status, 200, "{v}");
    }
    api.call("GET", "/api/v1/webhooks", None).await;
    // Sent back as shown: kept. Moved with the secret masked: refused.
    let (_, shown) = api
        .call("GET", &format!("/api/v1/webhooks/{ding_bot_id}"), None)
        .await;
    let (status, v) = api
        .call(
            "PUT",
            &format!("/api/v1/webhooks/{ding_bot_id}"),
            Some(shown),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, mut shown) = api
        .call("GET", &format!("/api/v1/webhooks/{wecom_app_id}"), None)
        .await;
    shown["apiBase"] = json!(ok.url);
    let (status, v) = api
        .call(
            "PUT",
            &format!("/api/v1/webhooks/{wecom_app_id}"),
            Some(shown),
        )
        .await;
    assert_eq!(status, 400, "{v}");

    // A secret of the wrong shape is refused without being echoed.
    let (status, v) = api
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "bad", "url": ok.url, "appSecret": ["SEKRIT-wrong-shape-7"]})),
        )
        .await;
    assert_eq!(
        (status, v["field"].clone()),
        (400, json!("appSecret")),
        "{v}"
    );

    for (id, user) in apps {
        let path = format!("/api/v1/webhooks/{id}");
        let (status, v) = api
            .call(
                "PUT",
                &format!("{path}/bindings"),
                Some(json!({ "bob": user })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        api.call("GET", &format!("{path}/bindings"), None).await;
        let (status, v) = api.call("GET", &format!("{path}/remote-users"), None).await;
        assert_eq!(status, 200, "{v}");
    }
    for id in &ids {
        let path = format!("/api/v1/webhooks/{id}");
        let (status, v) = api
            .call("POST", &format!("{path}/preview"), Some(marked_event(900)))
            .await;
        assert_eq!(status, 200, "{v}");
        let (status, v) = api
            .call("POST", &format!("{path}/test"), Some(marked_event(901)))
            .await;
        assert_eq!(status, 200, "{v}");
    }

    // One event for all of them: delivered, or dead (410, WeCom's unknown bot key, 503 after
    // its retries).
    let (status, v) = api
        .call("POST", "/api/v1/events", Some(marked_event(1)))
        .await;
    assert_eq!(status, 202, "{v}");
    let finals = eventually_value(Duration::from_secs(30), "every delivery ended", || async {
        let (_, d) = api.call("GET", "/api/v1/deliveries?limit=100", None).await;
        let d = d.as_array().cloned().unwrap_or_default();
        let ended = d.len() == ids.len()
            && d.iter()
                .all(|x| x["status"] == "delivered" || x["status"] == "dead");
        if ended {
            Ok(d)
        } else {
            Err(format!("{d:?}"))
        }
    })
    .await;
    let mut dead: Vec<u64> = finals
        .iter()
        .filter(|x| x["status"] == "dead")
        .filter_map(|x| x["webhookId"].as_u64())
        .collect();
    dead.sort_unstable();
    assert_eq!(dead, [gone_id, flaky_id, wecom_dead_id], "{finals:?}");
    // The test send, then the delivery tried and retried twice.
    assert_eq!(flaky.received().len(), 4);
    let gone_delivery = finals
        .iter()
        .find(|x| x["webhookId"] == gone_id)
        .and_then(|x| x["id"].as_u64())
        .expect("gone's delivery");
    let (status, v) = api
        .call(
            "POST",
            &format!("/api/v1/deliveries/{gone_delivery}/retry"),
            None,
        )
        .await;
    assert!(status < 300, "{v}");
    for id in &ids {
        api.call("GET", &format!("/api/v1/deliveries?webhook={id}"), None)
            .await;
    }
    for path in [
        "/api/v1/stats",
        "/api/v1/quarantine",
        "/api/v1/webhooks/999",
        "/api/v1/settings/triggers",
    ] {
        api.call("GET", path, None).await;
    }
    for path in ["/healthz", "/metrics"] {
        api.call("GET", path, None).await;
    }
    let wrong = api.api.with_token("wrong-token");
    let (status, text) = wrong.call_text("GET", "/api/v1/webhooks", None).await;
    assert_eq!(status, 401);
    api.answers.borrow_mut().push(text);

    // Wait for what is logged last: the dead retry and the database source's pause.
    let logged = eventually_value(
        Duration::from_secs(30),
        "the dead retry and the database source's pause logged",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let retried_dead = text.matches("delivery dead").count() >= 4;
            if retried_dead && text.contains("Sanplex database source paused") {
                Ok(text)
            } else {
                Err(format!("the log so far:\n{text}"))
            }
        },
    )
    .await;

    // check-config: the same file, URL passwords from the environment, and a refused proxy.
    let mut printed = vec![];
    let (code, text) = run_check_config(
        &config,
        &[(
            "SANHOOK_PLATFORMS_FEISHU",
            "http://u:SEKRIT-platform-pw-5@127.0.0.1:9",
        )],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("proxy = \"http://squid:******@127.0.0.1:"),
        "{text}"
    );
    printed.push(text);
    let (code, text) = run_check_config(
        &config,
        &[(
            "SANHOOK_DELIVERY_PROXY",
            "socks5://u:SEKRIT-proxy-pw-6@127.0.0.1:1",
        )],
    );
    assert_eq!(code, Some(2), "{text}");
    printed.push(text);

    // The markers were really used: the receivers got them, the proxy carried everything.
    assert!(ok.received()[0].query.contains("SEKRIT-url-token-10"));
    assert!(
        proxy.asked().iter().all(|a| a.auth.is_some()),
        "{:?}",
        proxy.asked()
    );
    let mut secrets: Vec<String> = vec![MARK.to_string()];
    for fake_tokens in [dt.issued_tokens(), wc.issued_tokens(), fs.issued_tokens()] {
        assert!(!fake_tokens.is_empty(), "an access token was issued");
        secrets.extend(fake_tokens);
    }
    // The dead bot's WARN line names its destination, masked.
    assert!(
        logged.contains("bot:wechatgroup:") && logged.contains("key=******"),
        "{logged}"
    );
    let answers = api.answers.borrow();
    for secret in &secrets {
        if let Some(at) = logged.find(secret.as_str()) {
            let line = logged[..at].rsplit('\n').next().unwrap_or("");
            let rest = logged[at..].split('\n').next().unwrap_or("");
            panic!("{secret} in the log: {line}{rest}");
        }
        for text in answers.iter().chain(&printed) {
            assert!(!text.contains(secret.as_str()), "{secret} in: {text}");
        }
    }
}
