//! `sanhook import-sanplex --db URL`: the real binary against a running server, reading a
//! Sanplex database created per test (see `sanplex_db::TestDb`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::sanplex_db::TestDb;
use crate::support::TestServer;

const TOKEN: &str = "import-test-token";

/// A server that requires a token, and a config file the binary can use to reach it.
async fn server() -> (TestServer, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = crate::support::test_config(dir.path(), "");
    cfg.server.token = TOKEN.into();
    let s = TestServer::start_with(cfg, dir).await;
    let listen = s.base.trim_start_matches("http://").to_string();
    let config = s.dir.path().join("client.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"{listen}\"\ntoken = \"{TOKEN}\"\n"),
    )
    .expect("write config");
    (s, config)
}

/// Runs `sanhook import-sanplex`; returns the exit code, stdout and stderr.
async fn import(config: &Path, db: &str) -> (i32, String, String) {
    let (config, db) = (config.to_path_buf(), db.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sanhook"))
            .args(["import-sanplex", "--db", &db, "--config"])
            .arg(&config)
            .output()
            .expect("run sanhook import-sanplex")
    })
    .await
    .expect("join");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The summary line's counts: created, updated, unchanged, skipped, failed.
fn summary(stdout: &str) -> [usize; 5] {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    [n[0], n[1], n[2], n[3], n[4]]
}

/// The line of the summary that starts with `outcome` and mentions `what`.
fn line<'a>(stdout: &'a str, outcome: &str, what: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(outcome) && l.contains(what))
        .unwrap_or_else(|| panic!("no {outcome:?} line for {what:?} in:\n{stdout}"))
}

/// One webhook of each of the seven types, a deleted one, bindings and trigger settings.
async fn sanplex_with_every_type(db: &TestDb) {
    db.exec(&[
        r#"INSERT INTO zt_webhook (id, type, name, url, domain, secret, contentType, sendType, products, executions, params, `desc`, deleted) VALUES
        (1, 'default', 'Ops JSON', 'http://hooks.example.com/sanplex', 'http://pm.example.com', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'application/json', 'async', ',1,2,', '5', 'objectType,objectID,actor,text', 'for ops', '0'),
        (2, 'dinggroup', 'Dev group', 'https://oapi.dingtalk.com/robot/send?access_token=AT1', '', 'SECding', 'application/json', 'async', '', '', 'text', '', '0'),
        (3, 'dinguser', 'Ding work', '', '', '{"agentId":"123456","appKey":"dingkey","appSecret":"dingsecret"}', 'application/json', 'sync', '1', '', 'text', '', '0'),
        (4, 'wechatgroup', 'WeCom group', 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K1', '', '', 'application/json', 'sync', '', '', 'text', '', '0'),
        (5, 'wechatuser', 'WeCom app', '', '', '{"agentId":"1000002","appKey":"wwcorp","appSecret":"corpsecret"}', 'application/json', 'sync', '', '', 'text', '', '0'),
        (6, 'feishugroup', 'Lark group', 'https://open.feishu.cn/open-apis/bot/v2/hook/H1', '', 'SEClark', 'application/json', 'sync', '', '', 'text', '', '0'),
        (7, 'feishuuser', 'Lark app', '', '', '{"appId":"cli_a1","appSecret":"larksecret"}', 'application/json', 'sync', '', '', 'text', '', '0'),
        (8, 'default', 'Old', 'http://old.example.com', '', '', 'application/json', 'sync', '', '', 'text', '', '1')"#,
        "INSERT INTO zt_oauth (account, openID, providerType, providerID) VALUES \
         ('alice', 'ding-alice', 'webhook', 3), ('bob', 'ding-bob', 'webhook', 3), \
         ('alice', 'wx-alice', 'webhook', 5), ('carol', 'ou_carol', 'webhook', 7), \
         ('dave', 'ding-dave', 'webhook', 8), ('erin', 'sso-erin', 'ldap', 3), \
         ('zed', 'ding-zed', 'webhook', 99)",
        r#"INSERT INTO zt_config (vision, owner, module, section, `key`, value) VALUES
        ('rnd', 'system', 'message', '', 'setting', '{"mail":{"setting":{"bug":["opened"]}},"webhook":{"setting":{"bug":["opened","resolved"],"task":["assigned","finished"]}}}'),
        ('rnd', 'system', 'common', '', 'version', '18.8')"#,
    ])
    .await;
}

/// Webhooks by `sanplexId`.
async fn by_sanplex_id(s: &TestServer) -> std::collections::BTreeMap<u64, Value> {
    let (status, v) = s.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(status, 200, "{v}");
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|w| (w["sanplexId"].as_u64().expect("sanplexId"), w))
        .collect()
}

#[actix_rt::test]
async fn import_sanplex_brings_every_type_bindings_and_triggers_and_is_safe_to_rerun() {
    let Some(db) = TestDb::create(
        "import_sanplex_brings_every_type_bindings_and_triggers_and_is_safe_to_rerun",
    )
    .await
    else {
        return;
    };
    sanplex_with_every_type(&db).await;
    let (s, config) = server().await;

    let (code, out, err) = import(&config, &db.url).await;
    println!("{out}");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // 7 webhooks and 3 binding sets created; the trigger settings replaced the defaults;
    // the deleted row, its binding and a binding of no row skipped.
    assert_eq!(summary(&out), [10, 1, 0, 3, 0], "{out}");
    assert!(line(&out, "skipped", "webhook 8 \"Old\"").contains("deleted in Sanplex"));
    assert!(line(&out, "created", "webhook 2 \"Dev group\"").contains("async imported as sync"));
    assert!(line(&out, "skipped", "binding(s) of webhook 99").contains("no zt_webhook row"));
    assert!(
        !out.contains("dingsecret") && !out.contains("SECding"),
        "secrets printed:\n{out}"
    );

    let hooks = by_sanplex_id(&s).await;
    assert_eq!(
        hooks.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6, 7]
    );
    let types: Vec<&str> = hooks
        .values()
        .map(|w| w["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        vec![
            "default",
            "dinggroup",
            "dinguser",
            "wechatgroup",
            "wechatuser",
            "feishugroup",
            "feishuuser"
        ]
    );
    let ops = &hooks[&1];
    assert_eq!(ops["name"], "Ops JSON");
    assert_eq!(ops["url"], "http://hooks.example.com/sanplex");
    assert_eq!(ops["domain"], "http://pm.example.com");
    assert_eq!(ops["sendType"], "async");
    assert_eq!(ops["products"], json!([1, 2]));
    assert_eq!(ops["executions"], json!([5]));
    assert_eq!(
        ops["params"],
        json!(["objectType", "objectID", "actor", "text"])
    );
    assert_eq!(ops["desc"], "for ops");
    assert_eq!(ops["secret"], "******");
    assert_eq!(hooks[&2]["sendType"], "sync");
    // Secrets arrive in clear (the API only shows them masked).
    let real = |sid: u64| {
        s.engine
            .webhook(hooks[&sid]["id"].as_u64().expect("id"))
            .expect("stored")
    };
    assert_eq!(real(1).secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(real(2).secret, "SECding");
    let ding = real(3);
    assert_eq!(
        (
            ding.agent_id.as_str(),
            ding.app_key.as_str(),
            ding.app_secret.as_str()
        ),
        ("123456", "dingkey", "dingsecret")
    );
    let wecom = real(5);
    assert_eq!(
        (
            wecom.wechat_agent_id.as_str(),
            wecom.wechat_corp_id.as_str(),
            wecom.wechat_corp_secret.as_str()
        ),
        ("1000002", "wwcorp", "corpsecret")
    );
    let lark = real(7);
    assert_eq!(
        (lark.feishu_app_id.as_str(), lark.feishu_app_secret.as_str()),
        ("cli_a1", "larksecret")
    );
    assert_eq!(real(6).secret, "SEClark");
    let bindings = |sid: u64| {
        let path = format!("/api/v1/webhooks/{}/bindings", hooks[&sid]["id"]);
        let s = &s;
        async move {
            let (status, v) = s.call("GET", &path, None).await;
            assert_eq!(status, 200, "{v}");
            v
        }
    };
    assert_eq!(
        bindings(3).await,
        json!([{"account": "alice", "userid": "ding-alice"}, {"account": "bob", "userid": "ding-bob"}])
    );
    assert_eq!(
        bindings(5).await,
        json!([{"account": "alice", "userid": "wx-alice"}])
    );
    assert_eq!(
        bindings(7).await,
        json!([{"account": "carol", "userid": "ou_carol"}])
    );
    let (_, triggers) = s.call("GET", "/api/v1/settings/triggers", None).await;
    assert_eq!(
        triggers,
        json!({"bug": ["opened", "resolved"], "task": ["assigned", "finished"]})
    );

    // A sanhook-only change survives re-imports.
    let wecom_id = hooks[&4]["id"].as_u64().expect("id");
    let mut disabled = hooks[&4].clone();
    disabled["enabled"] = json!(false);
    let (status, v) = s
        .call(
            "PUT",
            &format!("/api/v1/webhooks/{wecom_id}"),
            Some(disabled),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // The same database again: nothing new, nothing changed.
    let (code, out, err) = import(&config, &db.url).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(summary(&out), [0, 0, 11, 3, 0], "{out}");
    assert_eq!(by_sanplex_id(&s).await, hooks_with_disabled(&hooks, 4));

    // Sanplex changes: a renamed webhook with another product, a re-bound user.
    db.exec(&[
        "UPDATE zt_webhook SET name = 'Ops JSON v2', products = '3' WHERE id = 1",
        "UPDATE zt_oauth SET openID = 'ding-bob-2' WHERE account = 'bob' AND providerID = 3",
    ])
    .await;
    let (code, out, err) = import(&config, &db.url).await;
    println!("{out}");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(summary(&out), [0, 2, 9, 3, 0], "{out}");
    assert!(line(&out, "updated", "webhook 1 \"Ops JSON v2\"").contains("name, products changed"));
    assert!(line(&out, "updated", "binding(s) of webhook 3").contains("1 re-bound"));
    let after = by_sanplex_id(&s).await;
    assert_eq!(after.len(), 7);
    assert_eq!(after[&1]["id"], hooks[&1]["id"], "updated in place");
    assert_eq!(after[&1]["products"], json!([3]));
    assert_eq!(after[&4]["enabled"], false);
    assert_eq!(real(1).secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_eq!(
        bindings(3).await,
        json!([{"account": "alice", "userid": "ding-alice"}, {"account": "bob", "userid": "ding-bob-2"}])
    );
    s.stop().await;
}

fn hooks_with_disabled(
    hooks: &std::collections::BTreeMap<u64, Value>,
    sid: u64,
) -> std::collections::BTreeMap<u64, Value> {
    let mut h = hooks.clone();
    if let Some(w) = h.get_mut(&sid) {
        w["enabled"] = json!(false);
    }
    h
}

#[actix_rt::test]
async fn import_sanplex_reports_rows_it_cannot_import_and_exits_1() {
    let Some(db) = TestDb::create("import_sanplex_reports_rows_it_cannot_import_and_exits_1").await
    else {
        return;
    };
    db.exec(&[
        r#"INSERT INTO zt_webhook (id, type, name, url, secret, params) VALUES
        (1, 'dinguser', 'Broken creds', '', '{"agentId": "1", "appKey": "k", topsecret', 'text'),
        (2, 'default', 'No url', '', '', 'text'),
        (3, 'slack', 'Unknown', 'http://x.example.com', '', 'text'),
        (4, 'default', 'Fine', 'http://fine.example.com', '', 'text'),
        (5, 'dingding', 'Old ding', 'https://oapi.dingtalk.com/robot/send?access_token=OLD', 'SECold', 'text'),
        (6, 'bearychat', 'Gone', 'https://hook.bearychat.com/x', '', 'text')"#,
    ])
    .await;
    let (s, config) = server().await;
    let (code, out, err) = import(&config, &db.url).await;
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(summary(&out), [2, 0, 0, 2, 3], "{out}");
    // Legacy names: dingding is the DingTalk group bot, bearychat's service is gone.
    assert!(line(&out, "created", "webhook 5 \"Old ding\"").contains("imported as dinggroup"));
    assert!(line(&out, "skipped", "webhook 6 \"Gone\"").contains("BearyChat"));
    assert!(line(&out, "failed", "webhook 1 \"Broken creds\"").contains("JSON credentials"));
    assert!(!out.contains("topsecret"), "the secret was printed:\n{out}");
    assert!(line(&out, "failed", "webhook 2 \"No url\"").contains("url is required"));
    assert!(line(&out, "failed", "webhook 3 \"Unknown\"").contains("unknown type"));
    line(&out, "created", "webhook 4 \"Fine\"");
    // No trigger settings saved in Sanplex: sanhook's defaults stay.
    assert!(line(&out, "skipped", "trigger settings").contains("defaults"));
    let imported = by_sanplex_id(&s).await;
    assert_eq!(imported.keys().copied().collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(imported[&5]["type"], "dinggroup");
    s.stop().await;
}

#[actix_rt::test]
async fn import_sanplex_exits_2_without_a_server_or_a_readable_database() {
    // No server on this port.
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .expect("write");
    let (code, out, err) = import(&config, "mysql://root@127.0.0.1:1/zentao").await;
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("no server answers at"), "{err}");

    // A server, but the database does not answer.
    let (s, config) = server().await;
    let (code, out, err) = import(&config, "mysql://root@127.0.0.1:1/zentao").await;
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("Sanplex's database mysql://root@127.0.0.1:1/zentao"),
        "{err}"
    );

    // A server that refuses the token.
    let bad = s.dir.path().join("bad-token.toml");
    let listen = s.base.trim_start_matches("http://");
    std::fs::write(
        &bad,
        format!("[server]\nlisten = \"{listen}\"\ntoken = \"wrong\"\n"),
    )
    .expect("write");
    let (code, _, err) = import(&bad, "mysql://root@127.0.0.1:1/zentao").await;
    assert_eq!(code, 2);
    assert!(err.contains("refused the token"), "{err}");
    assert!(by_sanplex_id(&s).await.is_empty());
    s.stop().await;
}
