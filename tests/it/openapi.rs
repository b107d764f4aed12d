//! `GET /api/v1/openapi.json` (docs/reference.md §4): served without a token, OpenAPI 3.1, every
//! endpoint of the reference described, and every described path served. That each answer
//! conforms to its schema is schemathesis's job in `.ci/run`. Also `POST /api/v1/preview`, the
//! preview of a webhook not saved yet.

use serde_json::{json, Value};

use crate::support::receiver::Receiver;
use crate::support::TestServer;

/// Every endpoint docs/reference.md §4 lists, as (method, path).
const REFERENCE: &[(&str, &str)] = &[
    ("post", "/api/v1/events"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{id}"),
    ("put", "/api/v1/webhooks/{id}"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("post", "/api/v1/webhooks/{id}/preview"),
    ("post", "/api/v1/preview"),
    ("post", "/api/v1/webhooks/{id}/test"),
    ("post", "/api/v1/webhooks/{id}/recover"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/stats/minutes"),
    ("get", "/api/v1/settings/triggers"),
    ("put", "/api/v1/settings/triggers"),
    ("get", "/api/v1/webhooks/{id}/remote-users"),
    ("get", "/api/v1/webhooks/{id}/bindings"),
    ("put", "/api/v1/webhooks/{id}/bindings"),
    ("delete", "/api/v1/webhooks/{id}/bindings/{account}"),
    ("get", "/api/v1/deliveries"),
    ("get", "/api/v1/deliveries/{id}"),
    ("post", "/api/v1/deliveries/{id}/retry"),
    ("post", "/api/v1/outbox/flush"),
    ("get", "/api/v1/quarantine"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/healthz"),
    ("head", "/healthz"),
    ("get", "/metrics"),
    ("head", "/metrics"),
];

async fn with_token() -> TestServer {
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = crate::support::test_config(dir.path(), "");
    cfg.server.token = "t0k3n".into();
    TestServer::start_with(cfg, dir).await
}

async fn document(s: &TestServer) -> Value {
    let reply = s
        .with_token("")
        .send("GET", "/api/v1/openapi.json", None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.json()
}

#[actix_rt::test]
async fn the_description_covers_every_endpoint_of_the_reference() {
    let s = with_token().await;
    let doc = document(&s).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut described = vec![];
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            described.push((method.clone(), path.clone()));
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path}: no success answer described"
            );
            if path.starts_with("/api/v1/") && path != "/api/v1/openapi.json" {
                assert!(
                    responses.contains_key("401") && op["security"].is_array(),
                    "{method} {path}: the token is not described"
                );
            }
        }
    }
    for (method, path) in REFERENCE {
        assert!(
            described.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is in the reference but not in the description"
        );
    }
    for (method, path) in &described {
        assert!(
            REFERENCE.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is described but not in the reference (docs/reference.md §4)"
        );
    }
    // The types the handlers answer with are there, with their fields.
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("Webhook", "wechatCorpSecret"),
        ("Delivery", "nextAttemptAt"),
        ("Stats", "lastSuccessAt"),
        ("IngestSummary", "duplicates"),
        ("ErrorBody", "error"),
        ("Event", "objectID"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "schema {schema} has no {field}: {}",
            schemas[schema]
        );
    }
}

/// Each described path is served: with a made-up id, an answer of the handler (401 without the
/// token, then its own 404 or 400), never the "no such endpoint" of an unrouted path.
#[actix_rt::test]
async fn every_described_path_is_served() {
    let s = with_token().await;
    let doc = document(&s).await;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{id}", "987654").replace("{account}", "alice");
        for method in item.as_object().expect("path item").keys() {
            let m = method.to_uppercase();
            let body = (m == "POST" || m == "PUT").then(|| json!({}));
            let reply = s.send(&m, &concrete, body.as_ref()).await;
            assert!(
                !reply.text.contains("no such endpoint"),
                "{m} {concrete}: not routed ({} {})",
                reply.status,
                reply.text
            );
            assert!(
                reply.status < 500,
                "{m} {concrete}: {} {}",
                reply.status,
                reply.text
            );
            if path.starts_with("/api/v1/") && path != "/api/v1/openapi.json" {
                let anonymous = s.with_token("").send(&m, &concrete, body.as_ref()).await;
                assert_eq!(anonymous.status, 401, "{m} {concrete} without the token");
            }
        }
    }
    // Uptime checks may use HEAD.
    for path in ["/healthz", "/metrics"] {
        let reply = s.send("HEAD", path, None).await;
        assert_eq!(reply.status, 200, "HEAD {path}");
        assert!(reply.text.is_empty(), "HEAD {path} has no body");
    }
    // A path segment that is not a number answers in the API's error shape.
    let (status, v) = s.call("GET", "/api/v1/webhooks/abc", None).await;
    assert_eq!(status, 404);
    assert!(v["error"].is_string(), "{v}");
}

/// The preview of a draft is what the preview of the same webhook, saved, then shows; an edit
/// of a saved webhook keeps its masked secret; a bad field is named.
#[actix_rt::test]
async fn a_draft_previews_as_it_will_be_sent() {
    let r = Receiver::start(|_, _| (200, vec![], "ok".into()));
    let s = TestServer::start("").await;
    let draft = json!({
        "name": "draft", "type": "default", "url": r.url, "secret": "whsec_c2VjcmV0",
        "template": {"body": "{\"said\": \"{{ comment }}\", \"who\": \"{{ actor }}\"}"},
    });
    let event = json!({
        "objectType": "bug", "objectID": 7, "actor": "alice", "action": "resolved",
        "date": "2026-11-20 09:00:35", "comment": "done \"now\"",
    });
    let (status, v) = s
        .call(
            "POST",
            "/api/v1/preview",
            Some(json!({"webhook": draft, "event": event})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let body: Value = serde_json::from_str(v["request"]["body"].as_str().expect("body"))
        .expect("the body is JSON");
    assert_eq!(body, json!({"said": "done \"now\"", "who": "alice"}));
    assert_eq!(v["request"]["url"], r.url.as_str());
    assert!(
        v["request"]["headers"]["webhook-signature"].is_string(),
        "{v}"
    );
    assert!(r.received().is_empty(), "a preview sends nothing");

    // Saved, the same: its own preview has the same body.
    let id = s.webhook(draft.clone()).await;
    let (_, saved) = s
        .call(
            "POST",
            &format!("/api/v1/webhooks/{id}/preview"),
            Some(event.clone()),
        )
        .await;
    assert_eq!(saved["request"]["body"], v["request"]["body"]);

    // An edit sends the secret back masked: the stored one stands for it.
    let mut edit = draft.clone();
    edit["secret"] = json!("******");
    let (status, v) = s
        .call(
            "POST",
            "/api/v1/preview",
            Some(json!({"webhook": edit, "id": id, "event": event})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // Without the id, "******" would be the secret itself: refused as a save would refuse it.
    let (status, _) = s
        .call("POST", "/api/v1/preview", Some(json!({"webhook": edit})))
        .await;
    assert_eq!(status, 400);

    // A template that does not compile is named with its line, as on save.
    let mut bad = draft.clone();
    bad["template"] = json!({"body": "{\"said\": \"{{ comment \"}"});
    let (status, v) = s
        .call("POST", "/api/v1/preview", Some(json!({"webhook": bad})))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("template")),
        "{v}"
    );
    // One that saves (the sample event renders JSON) but not for this event: named too.
    let mut picky = draft.clone();
    picky["template"] =
        json!({"body": "{% if comment == \"boom\" %}not json{% else %}{}{% endif %}"});
    let mut boom = event.clone();
    boom["comment"] = json!("boom");
    let (status, v) = s
        .call(
            "POST",
            "/api/v1/preview",
            Some(json!({"webhook": picky, "event": boom})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "template.body", "{v}");
    let (status, v) = s
        .call(
            "POST",
            "/api/v1/preview",
            Some(json!({"webhook": {"name": "x", "type": "nope"}})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "type", "{v}");
    assert!(r.received().is_empty(), "previews send nothing");
    s.stop().await;
    r.stop().await;
}
