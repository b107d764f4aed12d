//! API validation, auth, intake atomicity and dedupe.

use serde_json::{json, Value};

use crate::support::receiver::Receiver;
use crate::support::{event, TestServer};

#[actix_rt::test]
async fn webhook_validation_names_the_field() {
    let s = TestServer::start("").await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"type": "default", "url": "http://x/"}),
            "name",
            "name is required",
        ),
        (
            json!({"name": "a", "type": "default"}),
            "url",
            "url is required",
        ),
        (
            json!({"name": "a", "type": "slack", "url": "http://x/"}),
            "type",
            "slack",
        ),
        (
            json!({"name": "a", "type": "dinggroup", "url": "http://x/", "sendType": "async"}),
            "sendType",
            "always sync",
        ),
        (
            json!({"name": "a", "type": "dinguser", "appKey": "k", "appSecret": "s"}),
            "agentId",
            "agentId is required",
        ),
        (
            json!({"name": "a", "type": "wechatuser", "wechatCorpId": "c", "wechatAgentId": "1"}),
            "wechatCorpSecret",
            "required",
        ),
        (
            json!({"name": "a", "type": "feishuuser", "feishuAppId": "c"}),
            "feishuAppSecret",
            "required",
        ),
        (
            json!({"name": "a", "type": "default", "url": "ftp://x/"}),
            "url",
            "http",
        ),
        (
            json!({"name": "a", "type": "default", "url": "http://x/", "params": ["bogus"]}),
            "params",
            "bogus",
        ),
    ];
    for (body, field, msg) in cases {
        let (status, v) = s.call("POST", "/api/v1/webhooks", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {v}");
        let err = v["error"].as_str().unwrap_or("");
        assert!(
            err.contains(msg),
            "{body}: error {err:?} should contain {msg:?}"
        );
        if field != "type" || v.get("field").is_some() {
            assert_eq!(v["field"], field, "{body} → {v}");
        }
    }
    let (status, v) = s
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "a", "actions": {"bug": "opened"}, "url": "http://x/"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("actions.bug"),
        "{v}"
    );
    let (status, v) = s
        .post_raw("/api/v1/webhooks", "application/json", "{not json".into())
        .await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().unwrap_or("").contains("invalid JSON"),
        "{v}"
    );
}

#[actix_rt::test]
async fn secrets_are_masked_and_kept_on_put() {
    let r = Receiver::fixed(200);
    let s = TestServer::start("").await;
    let id = s
        .webhook(json!({"name": "signed", "url": r.url, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
        .await;
    let (status, v) = s.call("GET", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(v["secret"], "******");
    assert_eq!(v["type"], "default");
    let mut put = v.clone();
    put["name"] = json!("renamed");
    let (status, v) = s
        .call("PUT", &format!("/api/v1/webhooks/{id}"), Some(put))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], "renamed");
    let stored = s.engine.webhook(id).expect("exists");
    assert_eq!(stored.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let (status, list) = s.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(|a| a.len()), Some(1));
    assert!(
        !list.to_string().contains("MfKQ9r8"),
        "secret leaked: {list}"
    );
    let (status, _) = s
        .call("DELETE", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = s.call("GET", &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 404);
}

#[actix_rt::test]
async fn bearer_token_is_required_when_set() {
    let s = TestServer::start("").await;
    drop(s);
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = crate::support::test_config(dir.path(), "");
    cfg.server.token = "s3cret".into();
    let s = TestServer::start_with(cfg, dir).await;
    let anon = s.with_token("");
    let (status, _) = anon.call_text("GET", "/api/v1/webhooks", None).await;
    assert_eq!(status, 401);
    let (status, _) = s
        .with_token("wrong")
        .call_text("GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = s.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(status, 200);
    // Health and metrics need no token.
    let (status, _) = anon.call_text("GET", "/healthz", None).await;
    assert_eq!(status, 200);
    let (_, text) = anon.call_text("GET", "/metrics", None).await;
    // The samples docs/reference.md §4 names, present at zero before anything happened.
    for sample in [
        "sanhook_events_ingested_total{source=\"http\"} ",
        "sanhook_deliveries_total{status=\"delivered\"} ",
        "sanhook_attempts_total{outcome=\"retry\"} ",
        "sanhook_queue_depth ",
        "sanhook_quarantined_total{source=\"tail\"} ",
        "sanhook_delivery_seconds_count ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(sample)),
            "missing {sample} in\n{text}"
        );
    }
    assert!(text.contains("# TYPE sanhook_delivery_seconds histogram"));
}

#[actix_rt::test]
async fn intake_is_atomic_and_dedupes() {
    let r = Receiver::fixed(200);
    let s = TestServer::start("").await;
    let wh = s.webhook(json!({"name": "all", "url": r.url})).await;
    // A bad element at index 2: nothing is queued.
    let body = json!([event(1, 10, "opened"), event(2, 11, "opened"), {"objectType": "bug"}]);
    let (status, v) = s.call("POST", "/api/v1/events", Some(body)).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["index"], 2, "{v}");
    assert!(v.get("key").is_some(), "{v}");
    assert!(s.deliveries(wh).await.is_empty());
    // NDJSON with a bad line 3.
    let nd = format!(
        "{}\n{}\nnot json\n",
        event(1, 10, "opened"),
        event(2, 11, "opened")
    );
    let (status, v) = s
        .post_raw("/api/v1/events", "application/x-ndjson", nd)
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["line"], 3, "{v}");
    assert!(s.deliveries(wh).await.is_empty());
    // Good: a repeat inside the body and across bodies counts as a duplicate ("1050" == 1050).
    let mut e3 = event(1050, 12, "resolved");
    e3["id"] = json!("1050");
    let body = json!([event(1050, 12, "resolved"), e3, event(1051, 12, "closed")]);
    let (status, v) = s.call("POST", "/api/v1/events", Some(body)).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v, json!({"accepted": 2, "duplicates": 1, "deliveries": 2}));
    let (status, v) = s
        .call("POST", "/api/v1/events", Some(event(1051, 12, "closed")))
        .await;
    assert_eq!(status, 202);
    assert_eq!(v, json!({"accepted": 0, "duplicates": 1, "deliveries": 0}));
    // An event no trigger covers is accepted with no delivery.
    let (status, v) = s
        .call("POST", "/api/v1/events", Some(event(1052, 12, "deleted")))
        .await;
    assert_eq!(status, 202);
    assert_eq!(v, json!({"accepted": 1, "duplicates": 0, "deliveries": 0}));
    s.wait_deliveries(wh, std::time::Duration::from_secs(10), "2 delivered", |d| {
        d.len() == 2 && d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
}

#[actix_rt::test]
async fn oversized_body_gets_413() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = crate::support::test_config(dir.path(), "");
    cfg.server.max_body = 2048;
    let s = TestServer::start_with(cfg, dir).await;
    let big: Vec<String> = (0..50).map(|i| event(i, i, "opened").to_string()).collect();
    let (status, v) = s
        .post_raw("/api/v1/events", "application/x-ndjson", big.join("\n"))
        .await;
    assert_eq!(status, 413, "{v}");
}

#[actix_rt::test]
async fn trigger_settings_and_per_webhook_actions() {
    let r = Receiver::fixed(200);
    let s = TestServer::start("").await;
    let (status, t) = s.call("GET", "/api/v1/settings/triggers", None).await;
    assert_eq!(status, 200);
    assert!(
        t["bug"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("resolved"))),
        "{t}"
    );
    let global = s.webhook(json!({"name": "global", "url": r.url})).await;
    let own = s
        .webhook(json!({"name": "own", "url": r.url, "actions": {"bug": ["deleted"]}}))
        .await;
    let (status, _) = s
        .call(
            "PUT",
            "/api/v1/settings/triggers",
            Some(json!({"bug": ["closed"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, v) = s
        .call(
            "POST",
            "/api/v1/events",
            Some(json!([
                event(1, 1, "resolved"),
                event(2, 1, "closed"),
                event(3, 1, "deleted")
            ])),
        )
        .await;
    assert_eq!(v["deliveries"], 2, "{v}");
    let g = s.deliveries(global).await;
    let o = s.deliveries(own).await;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0]["eventId"], 2);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0]["eventId"], 3);
}

#[actix_rt::test]
async fn wrong_field_types_name_the_field() {
    let s = TestServer::start("").await;
    let (status, v) = s
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "a", "url": "http://x/", "products": "1,2"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "products", "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("\"1,2\""), "{v}");
}

#[actix_rt::test]
async fn delivery_log_filters_and_pages_backwards() {
    let ok = Receiver::fixed(200);
    let gone = Receiver::fixed(410);
    let s = TestServer::start("").await;
    let a = s.webhook(json!({"name": "a", "url": ok.url})).await;
    let b = s.webhook(json!({"name": "b", "url": gone.url})).await;
    let events: Vec<Value> = (1..=5).map(|i| event(i, i, "opened")).collect();
    s.call("POST", "/api/v1/events", Some(Value::Array(events)))
        .await;
    s.wait_deliveries(a, std::time::Duration::from_secs(10), "a delivered", |d| {
        d.len() == 5 && d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
    s.wait_deliveries(b, std::time::Duration::from_secs(10), "b dead", |d| {
        d.len() == 5 && d.iter().all(|x| x["status"] == "dead")
    })
    .await;
    let (status, all) = s.call("GET", "/api/v1/deliveries?limit=4", None).await;
    assert_eq!(status, 200);
    let ids: Vec<u64> = all
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let before = ids[3];
    let (_, page2) = s
        .call(
            "GET",
            &format!("/api/v1/deliveries?limit=100&before={before}"),
            None,
        )
        .await;
    let ids2: Vec<u64> = page2
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["id"].as_u64())
        .collect();
    assert_eq!(ids2.len(), 6, "10 in all, 4 on the first page");
    assert!(ids2.iter().all(|i| *i < before));
    let (_, dead) = s.call("GET", "/api/v1/deliveries?status=dead", None).await;
    let dead = dead.as_array().expect("array");
    assert_eq!(dead.len(), 5);
    assert!(dead
        .iter()
        .all(|d| d["webhookId"] == b && d["lastError"].as_str().is_some()));
    let (status, v) = s.call("GET", "/api/v1/deliveries?status=lost", None).await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap_or("").contains("lost"), "{v}");
    let d = &dead[0];
    assert_eq!(d["request"]["url"], gone.url.as_str());
    assert_eq!(d["response"]["status"], 410);
}
