//! Secrets (issue 8): a masked secret never follows a webhook to another place, URL credentials
//! are masked in every answer, and no secret shows anywhere the binary writes or answers.

use serde_json::{json, Value};

use crate::support::fakes::WeComFake;
use crate::support::receiver::Receiver;
use crate::support::TestServer;

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
