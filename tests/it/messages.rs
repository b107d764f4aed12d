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
