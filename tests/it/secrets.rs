//! Secrets (issue 8): URL credentials are masked in every answer, and no secret shows anywhere
//! the binary writes or answers.

use serde_json::{json, Value};

use crate::support::TestServer;

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
