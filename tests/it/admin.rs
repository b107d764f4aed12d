//! The web admin (issue 9, docs/reference.md §4 `GET /`): the page and its assets come from the
//! binary itself, with a strict Content-Security-Policy, and speak both languages.

use crate::support::TestServer;

async fn get(s: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = s
        .client
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[actix_rt::test]
async fn the_page_and_its_assets_are_served_without_a_token() {
    // With a token set: the page itself needs none (it asks for the token when the API does).
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = crate::support::test_config(dir.path(), "");
    cfg.server.token = "s3cret-admin".into();
    let s = TestServer::start_with(cfg, dir).await;
    let (status, h, body) = get(&s, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(header(&h, "content-type").starts_with("text/html"), "{h:?}");
    let csp = header(&h, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&h, "cache-control"), "no-cache");
    assert!(body.contains("/admin/app.js") && body.contains("/admin/app.css"));
    // No inline script or style (the CSP would block them) and nothing from elsewhere.
    assert!(!body.contains("<script>") && !body.contains("<style") && !body.contains("style="));
    assert!(!body.contains("http://") && !body.contains("https://"));
    // The footer links to the API's description.
    assert!(
        body.contains(r#"href="/api/v1/openapi.json""#),
        "no OpenAPI link"
    );

    for (path, kind) in [
        ("/admin/app.js", "text/javascript"),
        ("/admin/app.css", "text/css"),
    ] {
        let (status, h, body) = get(&s, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            header(&h, "content-type").starts_with(kind),
            "{path}: {h:?}"
        );
        assert!(header(&h, "content-security-policy").contains("default-src 'self'"));
        assert!(!body.is_empty());
    }
    let (status, _, _) = get(&s, "/admin/nope.js").await;
    assert_eq!(status, 404);

    // The API still wants the token.
    let (status, _, _) = get(&s, "/api/v1/webhooks").await;
    assert_eq!(status, 401);
}

#[actix_rt::test]
async fn the_script_speaks_english_and_chinese() {
    let s = TestServer::start("").await;
    let (_, _, js) = get(&s, "/admin/app.js").await;
    for needle in [
        "'zh-cn'",
        "navigator.language",
        "sessionStorage",
        "Authorization",
        "application/json",
        "Delivery log",
        "发送日志",
        "触发设置",
        "用户绑定",
        // The API the pages build on (docs/reference.md §4).
        "/api/v1/preview",
        "/api/v1/stats/minutes",
        "departmentNames",
        "boundTo",
    ] {
        assert!(js.contains(needle), "app.js lacks {needle}");
    }
    // Every webhook type has its form.
    for ty in [
        "default",
        "dinggroup",
        "dinguser",
        "wechatgroup",
        "wechatuser",
        "feishugroup",
        "feishuuser",
    ] {
        assert!(
            js.contains(&format!("t_{ty}")),
            "app.js has no label for {ty}"
        );
    }
}

#[actix_rt::test]
async fn the_catalog_lists_sanplex_triggers_with_both_languages() {
    let s = TestServer::start("").await;
    let (status, h, body) = get(&s, "/admin/catalog.json").await;
    assert_eq!(status, 200, "{body}");
    assert!(header(&h, "content-type").starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let bug = v["triggers"]["bug"].as_array().expect("bug actions");
    assert!(bug.iter().any(|a| a == "resolved"), "{body}");
    assert_eq!(v["labels"]["action"]["resolved"]["zh-cn"], "解决了");
}
