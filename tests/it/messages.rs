//! Issue 10's messages through the HTTP API: templates checked at save time (line and column)
//! and applied at send time (a failing one ends the delivery `dead` with why), `details`,
//! `ignoreActors`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fakes::DingTalkFake;
use crate::support::receiver::Receiver;
use crate::support::{event, TestServer};

const WAIT: Duration = Duration::from_secs(20);

async fn post_events(s: &TestServer, events: Value) {
    let (st, v) = s.call("POST", "/api/v1/events", Some(events)).await;
    assert_eq!(st, 202, "{v}");
}

#[actix_rt::test]
async fn templates_are_checked_when_saved() {
    let s = TestServer::start("").await;
    let cases = [
        (
            json!({"name": "t", "type": "dinggroup", "url": "http://127.0.0.1:9/x",
                   "template": {"text": "Hello\n  {{ objectName | nosuchfilter }}"}}),
            "template.text",
            "template.text: line 2, column ",
        ),
        (
            json!({"name": "t", "type": "feishugroup", "url": "http://127.0.0.1:9/x",
                   "template": {"title": "{% if %}"}}),
            "template.title",
            "template.title: line 1, column ",
        ),
        (
            json!({"name": "t", "url": "http://127.0.0.1:9/x",
                   "template": {"body": "{\"text\": {{ title }}}"}}),
            "template.body",
            "not JSON",
        ),
        (
            json!({"name": "t", "type": "wechatgroup", "url": "http://127.0.0.1:9/x",
                   "template": {"body": "{}"}}),
            "template.body",
            "applies to type default",
        ),
        (
            json!({"name": "t", "url": "http://127.0.0.1:9/x", "template": {"text": "x"}}),
            "template.text",
            "applies to the chat types",
        ),
        (
            json!({"name": "t", "url": "http://127.0.0.1:9/x", "ignoreActors": ["system", " "]}),
            "ignoreActors",
            "ignoreActors[1] is empty",
        ),
    ];
    for (body, field, says) in cases {
        let (st, v) = s.call("POST", "/api/v1/webhooks", Some(body.clone())).await;
        assert_eq!(st, 400, "{body} → {v}");
        let error = v["error"].as_str().unwrap_or("");
        assert!(error.contains(says), "{body} → {error}");
        assert_eq!(v["field"], field, "{body} → {v}");
    }
    // A good one is stored and shown as sent.
    let template = json!({"title": "{{ actorName }}", "text": "{{ text }}"});
    let (st, v) = s
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(
                json!({"name": "ok", "type": "dinggroup", "url": "http://127.0.0.1:9/x",
                        "template": template, "details": true, "ignoreActors": ["system"]}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["template"], template);
    assert_eq!(
        (v["details"].clone(), v["ignoreActors"].clone()),
        (json!(true), json!(["system"]))
    );
    s.stop().await;
}

/// A `default` body shaped for another tool (a Slack-style `{"text": ...}`), with a quote in a
/// title that must not break the JSON; a webhook without a template still gets Sanplex's body.
#[actix_rt::test]
async fn a_body_template_shapes_the_default_payload() {
    let r = Receiver::fixed(200);
    let s = TestServer::start("").await;
    let slack = s
        .webhook(json!({"name": "slack", "url": r.url,
            "template": {"body": "{\"text\": \"{{ actorName }} {{ label }} <{{ url }}|{{ objectName }}>\", \"id\": {{ objectID }}, \"changed\": {{ changes | map(attribute='field') | list }}}"}}))
        .await;
    let mut ev = event(1, 12, "resolved");
    ev["objectName"] = json!("Say \"hi\"\nthen");
    ev["changes"] = json!([{"field": "status", "old": "active", "new": "resolved"}]);
    post_events(&s, json!([ev])).await;
    s.wait_deliveries(slack, WAIT, "delivered", |d| {
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    let got = r.received();
    assert_eq!(
        got[0].json(),
        json!({"text": "Alice resolved <http://localhost/bug-view-12.html|Say \"hi\"\nthen>", "id": 12, "changed": ["status"]})
    );
    r.stop().await;
    s.stop().await;
}

/// A template that renders the sample event but not this one ends the delivery `dead` with the
/// line and column; so does a body that does not come out as JSON. Other webhooks are unharmed.
#[actix_rt::test]
async fn a_template_failing_at_send_time_ends_the_delivery_dead_with_why() {
    let r = Receiver::fixed(200);
    let dt = DingTalkFake::start();
    let s = TestServer::start("").await;
    let bot = s
        .webhook(
            json!({"name": "bot", "type": "dinggroup", "url": dt.bot("t", None),
            "template": {"text": "{{ text }}\n{{ changes[2].field }}"}}),
        )
        .await;
    let body = s
        .webhook(json!({"name": "body", "url": r.url,
            "template": {"body": "{\"n\": {{ extra or 1 }}}"}}))
        .await;
    let plain = s.webhook(json!({"name": "plain", "url": r.url})).await;
    let mut ev = event(1, 12, "resolved");
    ev["extra"] = json!("not json");
    post_events(&s, json!([ev])).await;
    let dead = |d: &[Value]| d.len() == 1 && d[0]["status"] == "dead";
    let d = s.wait_deliveries(bot, WAIT, "dead", dead).await;
    let why = d[0]["lastError"].as_str().unwrap_or("");
    assert!(why.starts_with("template.text: line 2, column "), "{why}");
    let d = s.wait_deliveries(body, WAIT, "dead", dead).await;
    let why = d[0]["lastError"].as_str().unwrap_or("");
    assert!(
        why.starts_with("template.body rendered text that is not JSON"),
        "{why}"
    );
    s.wait_deliveries(plain, WAIT, "delivered", |d| {
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    assert!(dt.received().is_empty());
    assert_eq!(r.received().len(), 1, "only the plain webhook's request");
    r.stop().await;
    s.stop().await;
}

/// DingTalk markdown with a title template, a text template listing the changes, and the
/// comment appended by `details` (HTML stripped).
#[actix_rt::test]
async fn chat_templates_and_details_reach_the_bot() {
    let dt = DingTalkFake::start();
    let s = TestServer::start("").await;
    let wh = s
        .webhook(json!({"name": "dt", "type": "dinggroup", "url": dt.bot("t", Some("SECx")), "secret": "SECx",
            "details": true,
            "template": {
                "title": "[{{ typeLabel }}] {{ objectName }}",
                "text": "### {{ actorName }} {{ label }} [{{ typeLabel }} #{{ objectID }}]({{ url }})"
            }}))
        .await;
    let mut ev = event(1, 12, "resolved");
    ev["objectName"] = json!("Login fails");
    ev["comment"] = json!("<p>Fixed in <b>r42</b></p>");
    ev["changes"] = json!([{"field": "status", "old": "active", "new": "resolved"},
                           {"field": "pri", "old": 3, "new": 1}]);
    post_events(&s, json!([ev])).await;
    s.wait_deliveries(wh, WAIT, "delivered", |d| {
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    let got = dt.received();
    assert!(got[0].signed);
    assert_eq!(got[0].body["markdown"]["title"], "[Bug] Login fails");
    assert_eq!(
        got[0].text(),
        "### Alice resolved [Bug #12](http://localhost/bug-view-12.html)\n\n\
         - **Status**: active → resolved\n- **Priority**: 3 → 1\n\n> Fixed in r42"
    );
    s.stop().await;
}

/// `ignoreActors` keeps the listed accounts' actions from firing the webhook (not from others).
#[actix_rt::test]
async fn ignored_actors_do_not_fire_the_webhook() {
    let r = Receiver::fixed(200);
    let s = TestServer::start("").await;
    let quiet = s
        .webhook(json!({"name": "quiet", "url": r.url, "ignoreActors": ["system"]}))
        .await;
    let all = s.webhook(json!({"name": "all", "url": r.url})).await;
    let mut by_system = event(1, 12, "edited");
    by_system["actor"] = json!("system");
    let (st, v) = s
        .call(
            "POST",
            "/api/v1/events",
            Some(json!([by_system, event(2, 12, "edited")])),
        )
        .await;
    assert_eq!((st, v["deliveries"].clone()), (202, json!(3)), "{v}");
    s.wait_deliveries(all, WAIT, "both", |d| {
        d.len() == 2 && d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
    let d = s
        .wait_deliveries(quiet, WAIT, "alice's", |d| {
            d.len() == 1 && d[0]["status"] == "delivered"
        })
        .await;
    assert_eq!(d[0]["eventId"], 2);
    r.stop().await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// preview and test

fn platforms(dingtalk: &str, wecom: &str, feishu: &str) -> String {
    format!("[platforms]\ndingtalk = \"{dingtalk}\"\nwecom = \"{wecom}\"\nfeishu = \"{feishu}\"\n")
}

/// A preview is exactly what the receiver then gets for the same event (a `default` webhook and
/// a DingTalk bot), credentials masked; with no body it shows the sample event; nothing is sent.
#[actix_rt::test]
async fn preview_is_what_the_receiver_then_gets() {
    let r = Receiver::fixed(200);
    let dt = DingTalkFake::start();
    let s = TestServer::start("").await;
    let json_hook = s
        .webhook(
            json!({"name": "j", "url": r.url, "contentType": "application/json; charset=utf-8"}),
        )
        .await;
    let bot = s
        .webhook(json!({"name": "b", "type": "dinggroup", "url": dt.bot("tok-secret-1", None), "details": true}))
        .await;
    let mut ev = event(7, 12, "resolved");
    ev["objectName"] = json!("Crash on \"save\"");
    ev["changes"] = json!([{"field": "status", "old": "active", "new": "resolved"}]);
    let mut previews = vec![];
    for wh in [json_hook, bot] {
        let (st, v) = s
            .call(
                "POST",
                &format!("/api/v1/webhooks/{wh}/preview"),
                Some(ev.clone()),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        previews.push(v["request"].clone());
    }
    assert!(
        r.received().is_empty() && dt.received().is_empty(),
        "a preview sends nothing"
    );
    assert!(
        s.deliveries(json_hook).await.is_empty(),
        "nor logs anything"
    );
    post_events(&s, json!([ev])).await;
    for wh in [json_hook, bot] {
        s.wait_deliveries(wh, WAIT, "delivered", |d| {
            d.len() == 1 && d[0]["status"] == "delivered"
        })
        .await;
    }
    let got = r.received();
    assert_eq!(
        previews[0]["body"].as_str(),
        std::str::from_utf8(&got[0].body).ok()
    );
    assert_eq!(previews[0]["url"], r.url.as_str());
    assert_eq!(
        previews[0]["headers"]["content-type"],
        "application/json; charset=utf-8"
    );
    let sent = serde_json::to_string(&dt.received()[0].body).expect("json");
    assert_eq!(previews[1]["body"].as_str(), Some(sent.as_str()));
    let url = previews[1]["url"].as_str().unwrap_or("");
    assert!(
        !url.contains("tok-secret-1") && url.contains("access_token=******"),
        "{url}"
    );

    // No body: the sample event.
    let (st, v) = s
        .call(
            "POST",
            &format!("/api/v1/webhooks/{json_hook}/preview"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let body: Value =
        serde_json::from_str(v["request"]["body"].as_str().unwrap_or("")).expect("JSON");
    assert_eq!(body["objectID"], "12");
    assert_eq!(body["action"], "resolved");
    // A bad event names its key; an unknown webhook is a 404.
    let (st, v) = s
        .call(
            "POST",
            &format!("/api/v1/webhooks/{json_hook}/preview"),
            Some(json!({"objectType": "bug"})),
        )
        .await;
    assert_eq!((st, v["key"].clone()), (400, json!("objectID")), "{v}");
    let (st, _) = s.call("POST", "/api/v1/webhooks/999/preview", None).await;
    assert_eq!(st, 404);
    r.stop().await;
    s.stop().await;
}

/// An app type's preview is its first message call, recipients from `toList` through the
/// bindings, the token masked (it is not fetched); nobody bound is a 400 that says so.
#[actix_rt::test]
async fn preview_of_an_app_message_shows_the_message_call() {
    let wc = crate::support::fakes::WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    let s = TestServer::start(&platforms(
        "http://127.0.0.1:9",
        &wc.base,
        "http://127.0.0.1:9",
    ))
    .await;
    let wh = s
        .webhook(json!({"name": "wc", "type": "wechatuser", "wechatCorpId": "corp1", "wechatCorpSecret": "csec", "wechatAgentId": "1000002"}))
        .await;
    let mut ev = event(1, 12, "resolved");
    ev["toList"] = json!(["bob", "carol"]);
    let (st, v) = s
        .call(
            "POST",
            &format!("/api/v1/webhooks/{wh}/preview"),
            Some(ev.clone()),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("nothing would be sent"),
        "{v}"
    );
    let (st, v) = s
        .call(
            "PUT",
            &format!("/api/v1/webhooks/{wh}/bindings"),
            Some(json!({"bob": "u-bob"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s
        .call("POST", &format!("/api/v1/webhooks/{wh}/preview"), Some(ev))
        .await;
    assert_eq!(st, 200, "{v}");
    let url = v["request"]["url"].as_str().unwrap_or("");
    assert!(
        url.starts_with(&format!("{}/cgi-bin/message/send?access_token=", wc.base)),
        "{url}"
    );
    assert!(!url.contains("csec"), "{url}");
    let body: Value =
        serde_json::from_str(v["request"]["body"].as_str().unwrap_or("")).expect("JSON");
    assert_eq!(
        (body["touser"].clone(), body["agentid"].clone()),
        (json!("u-bob"), json!(1000002))
    );
    assert!(wc.received().is_empty());
    s.stop().await;
}

/// `test` sends now and says what the platform said, in words; nothing enters the delivery log.
#[actix_rt::test]
async fn test_sends_now_and_classifies_the_answer() {
    let dt = DingTalkFake::start();
    let fs = crate::support::fakes::FeishuFake::start();
    let wc = crate::support::fakes::WeComFake::start();
    wc.app("corp1", "csec", 1000002);
    let s = TestServer::start(&platforms(
        "http://127.0.0.1:9",
        &wc.base,
        "http://127.0.0.1:9",
    ))
    .await;
    let good = s
        .webhook(json!({"name": "good", "type": "dinggroup", "url": dt.bot("t1", Some("SECgood")), "secret": "SECgood"}))
        .await;
    let bad_sig = s
        .webhook(json!({"name": "bad", "type": "dinggroup", "url": dt.bot("t2", Some("SECgood")), "secret": "SECwrong"}))
        .await;
    let lark_sig = s
        .webhook(json!({"name": "lark", "type": "feishugroup", "url": fs.bot("h1", Some("lsec")), "secret": "wrong"}))
        .await;
    let bad_creds = s
        .webhook(json!({"name": "wc", "type": "wechatuser", "wechatCorpId": "corp1", "wechatCorpSecret": "nope", "wechatAgentId": "1000002"}))
        .await;
    let (st, v) = s
        .call(
            "PUT",
            &format!("/api/v1/webhooks/{bad_creds}/bindings"),
            Some(json!({"bob": "u-bob"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let test = |wh: u64, body: Option<Value>| {
        let s = &s;
        async move {
            let (st, v) = s
                .call("POST", &format!("/api/v1/webhooks/{wh}/test"), body)
                .await;
            assert_eq!(st, 200, "{v}");
            v
        }
    };
    let v = test(good, None).await;
    assert_eq!(
        (v["ok"].clone(), v["status"].clone()),
        (json!(true), json!("delivered")),
        "{v}"
    );
    assert_eq!(v["lastError"], Value::Null);
    assert_eq!(dt.received().len(), 1);
    assert!(
        dt.received()[0]
            .text()
            .contains("Login fails with \"quotes\""),
        "the sample event"
    );

    let v = test(bad_sig, None).await;
    assert_eq!(
        (v["ok"].clone(), v["status"].clone()),
        (json!(false), json!("dead")),
        "{v}"
    );
    let why = v["lastError"].as_str().unwrap_or("");
    assert!(why.contains("310000") && why.contains("secret"), "{why}");
    assert_eq!(v["response"]["status"], 200);

    let v = test(lark_sig, None).await;
    let why = v["lastError"].as_str().unwrap_or("");
    assert_eq!(v["ok"], false, "{v}");
    assert!(why.contains("19021"), "{why}");

    let mut ev = event(1, 12, "resolved");
    ev["toList"] = json!(["bob"]);
    let v = test(bad_creds, Some(ev)).await;
    let why = v["lastError"].as_str().unwrap_or("");
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        why.contains("40001") && why.contains("wechatCorpSecret"),
        "{why}"
    );

    for wh in [good, bad_sig, lark_sig, bad_creds] {
        assert!(
            s.deliveries(wh).await.is_empty(),
            "webhook {wh} logged a test"
        );
    }
    s.stop().await;
}

/// A test takes a slot of the bot's windows; when they are spent it is a 429 with Retry-After
/// and nothing is sent.
#[actix_rt::test]
async fn test_is_refused_when_the_windows_are_spent() {
    let dt = DingTalkFake::start();
    let s = TestServer::start("[limits]\ndinggroup = [\"1/60s\"]\n").await;
    let wh = s
        .webhook(json!({"name": "b", "type": "dinggroup", "url": dt.bot("t", None)}))
        .await;
    let (st, v) = s
        .call("POST", &format!("/api/v1/webhooks/{wh}/test"), None)
        .await;
    assert_eq!((st, v["ok"].clone()), (200, json!(true)), "{v}");
    let reply = s
        .send("POST", &format!("/api/v1/webhooks/{wh}/test"), None)
        .await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    let after: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((50..=75).contains(&after), "{after}");
    assert_eq!(dt.received().len(), 1);
    s.stop().await;
}
