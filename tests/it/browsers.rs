//! Browsers (issue 8, docs/reference.md §4): a web page elsewhere cannot drive the API: a foreign
//! `Origin` is a 403, a body that does not say it is JSON a 415; the API's own clients work.

use serde_json::{json, Value};

use crate::support::{event, TestServer};

/// Sends `body` as `content_type` with optional `Origin`; returns status and JSON answer.
async fn send(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    origin: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut r = s.request(method, path);
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    if let Some(c) = content_type {
        r = r.header("content-type", c);
    }
    let resp = r.body(body.to_string()).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn webhook_count(s: &TestServer) -> usize {
    let (status, v) = s.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(status, 200, "{v}");
    v.as_array().map_or(0, Vec::len)
}

#[actix_rt::test]
async fn a_web_page_elsewhere_cannot_drive_the_api() {
    let s = TestServer::start("").await;
    let post = reqwest::Method::POST;
    let hook = json!({"name": "from a page", "url": "http://127.0.0.1:9/x"}).to_string();

    // What a form or a no-cors fetch on another site sends: refused, nothing created.
    let (status, v) = send(
        &s,
        post.clone(),
        "/api/v1/webhooks",
        Some("http://evil.example"),
        Some("text/plain;charset=UTF-8"),
        &hook,
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("http://evil.example"),
        "{v}"
    );
    // Even JSON, and even a page on the same host at another port.
    let port: u16 = s
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    for origin in ["http://evil.example", other_port.as_str(), "null"] {
        let (status, v) = send(
            &s,
            post.clone(),
            "/api/v1/webhooks",
            Some(origin),
            Some("application/json"),
            &hook,
        )
        .await;
        assert_eq!(status, 403, "{origin}: {v}");
    }
    let (status, _) = send(
        &s,
        reqwest::Method::GET,
        "/api/v1/deliveries",
        Some("http://evil.example"),
        None,
        "",
    )
    .await;
    assert_eq!(status, 403);

    // Without an Origin, a body that is not JSON is a 415 naming what was sent.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let (status, v) = send(&s, post.clone(), "/api/v1/webhooks", None, ct, &hook).await;
        assert_eq!(status, 415, "{ct:?}: {v}");
        let e = v["error"].as_str().unwrap_or("");
        assert!(e.contains("application/json"), "{e}");
        if let Some(ct) = ct {
            assert!(e.contains(ct), "{e}");
        }
    }
    // NDJSON is for events only.
    let (status, _) = send(
        &s,
        post.clone(),
        "/api/v1/webhooks",
        None,
        Some("application/x-ndjson"),
        &hook,
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(webhook_count(&s).await, 0, "nothing was created");

    // The server's own page (same origin) and plain clients work.
    let (status, v) = send(
        &s,
        post.clone(),
        "/api/v1/webhooks",
        Some(&s.base),
        Some("application/json; charset=utf-8"),
        &hook,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let nd = format!("{}\n{}\n", event(1, 1, "opened"), event(2, 1, "edited"));
    for ct in ["application/x-ndjson", "application/jsonlines"] {
        let (status, v) = s.post_raw("/api/v1/events", ct, nd.clone()).await;
        assert_eq!(status, 202, "{ct}: {v}");
    }
    // No body, no Content-Type needed.
    let (status, v) = send(&s, post, "/api/v1/outbox/flush", None, None, "").await;
    assert!(status < 300, "{status} {v}");
    assert_eq!(webhook_count(&s).await, 1);
    s.stop().await;
}

#[actix_rt::test]
async fn a_foreign_origin_is_refused_even_with_the_token() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = crate::support::test_config(dir.path(), "");
    cfg.server.token = "t0ken".into();
    let s = TestServer::start_with(cfg, dir).await;
    let (status, v) = send(
        &s,
        reqwest::Method::GET,
        "/api/v1/webhooks",
        Some("http://evil.example"),
        None,
        "",
    )
    .await;
    assert_eq!(status, 403, "{v}");
    s.stop().await;
}
