//! The `[sanplex_db]` source against a real MariaDB/MySQL: a fresh database per test holding
//! the Sanplex tables of `fixtures/sanplex/schema.sql`. Set `SANHOOK_TEST_MYSQL_URL` (e.g.
//! `mysql://root@127.0.0.1:3306/test`; `.ci/run` does) or these tests say they skip.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use sanhook::ingest::sanplex_db::Cursor;
use sanhook::store::DeliveryQuery;
use sanhook::ActionEvent;
use serde_json::json;

use crate::support::binary::{free_port, Sanhook};
use crate::support::fakes::DingTalkFake;
use crate::support::receiver::Receiver;
use crate::support::{eventually, eventually_value, Api, TestServer};

const WAIT: Duration = Duration::from_secs(20);

/// A database of its own for one test, dropped when the test ends (even when it fails).
pub struct TestDb {
    /// `mysql://.../sanhook_t_<random>`.
    pub url: String,
    pub name: String,
    admin_url: String,
}

/// `base` with its database replaced by `name` (query options kept).
fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let authority_start = head.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match head[authority_start..].find('/') {
        Some(i) => &head[..authority_start + i],
        None => head,
    };
    format!("{root}/{name}{query}")
}

impl TestDb {
    /// Creates the database and Sanplex's tables; `None` (after saying so) without
    /// `SANHOOK_TEST_MYSQL_URL`.
    pub async fn create(test: &str) -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("SANHOOK_TEST_MYSQL_URL") else {
            // Under CI a missing server is a failure, not a pass: only a developer's machine
            // may run without one.
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "{test}: SANHOOK_TEST_MYSQL_URL is not set but CI=true; CI must run the MariaDB tests"
            );
            println!("skipping {test}: SANHOOK_TEST_MYSQL_URL not set");
            return None;
        };
        let name = format!("sanhook_t_{:016x}", rand::random::<u64>());
        let url = with_database(&admin_url, &name);
        let mut admin = Conn::from_url(admin_url.as_str())
            .await
            .unwrap_or_else(|e| panic!("SANHOOK_TEST_MYSQL_URL={admin_url} does not answer: {e}"));
        admin
            .query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .expect("create database");
        let _ = admin.disconnect().await;
        let db = TestDb {
            url,
            name,
            admin_url,
        };
        let schema = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/sanplex/schema.sql"
        ))
        .expect("fixtures/sanplex/schema.sql");
        let mut conn = db.conn().await;
        for stmt in schema.split(";\n") {
            let code: String = stmt
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            if !code.trim().is_empty() {
                conn.query_drop(code.as_str())
                    .await
                    .unwrap_or_else(|e| panic!("schema statement failed: {e}\n{code}"));
            }
        }
        let _ = conn.disconnect().await;
        Some(db)
    }

    /// A new connection to the test database.
    pub async fn conn(&self) -> Conn {
        Conn::from_url(self.url.as_str()).await.expect("connect")
    }

    /// Runs statements on a new connection (autocommit).
    pub async fn exec(&self, sql: &[&str]) {
        let mut c = self.conn().await;
        for s in sql {
            c.query_drop(*s)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        let _ = c.disconnect().await;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with one of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut c) = Conn::from_url(url.as_str()).await {
                    let _ = c
                        .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                        .await;
                    let _ = c.disconnect().await;
                }
            });
        })
        .join();
    }
}

/// The `[sanplex_db]` section for a test database.
fn source_config(db: &TestDb, start_at: &str) -> String {
    format!(
        "[sanplex_db]\nurl = \"{}\"\npoll_interval = \"100ms\"\nstart_at = \"{start_at}\"\ngap_grace = \"5m\"\n",
        db.url
    )
}

/// Inserts a `zt_action` row (id assigned by MySQL) on `conn`.
async fn act(conn: &mut Conn, object_type: &str, object_id: u64, actor: &str, action: &str) {
    conn.exec_drop(
        "INSERT INTO zt_action (objectType, objectID, product, execution, actor, action, date, comment, extra) \
         VALUES (?, ?, ',1,', 5, ?, ?, '2026-01-05 18:35:21', '', '')",
        (object_type, object_id, actor, action),
    )
    .await
    .expect("insert action");
}

/// Events of the webhook's deliveries by event id, read through the engine's delivery log.
async fn logged(s: &TestServer, webhook: u64) -> BTreeMap<u64, Vec<ActionEvent>> {
    let recs = s
        .engine
        .deliveries(DeliveryQuery {
            webhook: Some(webhook),
            limit: 10_000,
            ..DeliveryQuery::default()
        })
        .await
        .expect("delivery log");
    let mut out: BTreeMap<u64, Vec<ActionEvent>> = BTreeMap::new();
    for r in recs {
        out.entry(r.event.id.unwrap_or(0))
            .or_default()
            .push((*r.event).clone());
    }
    out
}

/// Waits until the receiver has `n` requests.
async fn wait_received(r: &Receiver, n: usize, what: &str) {
    eventually_value(WAIT, what, || async {
        let got = r.received();
        if got.len() >= n {
            Ok(())
        } else {
            Err(format!(
                "received {:?}",
                got.iter()
                    .map(|x| x.json()["text"].clone())
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await;
}

/// Waits until the webhook's delivery log holds action `id`. Each poll's actions are committed
/// together, in the order of the polls: once `id` is in, everything the polls up to the one
/// that read it produced is in too (a repeat included).
async fn wait_logged(s: &TestServer, webhook: u64, id: u64) {
    eventually_value(
        WAIT,
        &format!("action {id} in the delivery log"),
        || async {
            let log = logged(s, webhook).await;
            if log.contains_key(&id) {
                Ok(())
            } else {
                Err(format!("{:?}", log.keys().collect::<Vec<_>>()))
            }
        },
    )
    .await;
}

/// Asserts that the delivery log holds exactly one delivery for each of `ids` and nothing else.
async fn assert_logged_once(s: &TestServer, webhook: u64, ids: &[u64]) {
    let log = logged(s, webhook).await;
    assert_eq!(log.keys().copied().collect::<Vec<_>>(), ids);
    assert!(
        log.values().all(|d| d.len() == 1),
        "one delivery per action: {log:?}"
    );
}

/// The `objectID`s the receiver got, sorted (objects are sent concurrently, so arrival
/// order between different objects is not fixed).
fn received_ids(r: &Receiver) -> Vec<u64> {
    let mut ids: Vec<u64> = r
        .received()
        .iter()
        .filter_map(|x| x.json()["objectID"].as_str().and_then(|s| s.parse().ok()))
        .collect();
    ids.sort_unstable();
    ids
}

#[actix_rt::test]
async fn db_source_enriches_bug_story_task_and_kanban_card_actions() {
    let Some(db) =
        TestDb::create("db_source_enriches_bug_story_task_and_kanban_card_actions").await
    else {
        return;
    };
    db.exec(&[
        "INSERT INTO zt_user (account, realname, mobile, deleted) VALUES \
         ('alice', 'Alice Smith', '13800000001', '0'), ('bob', 'Bob Li', '13900000002', '0'), \
         ('carol', 'Carol Wu', '13700000003', '0'), ('dave', 'Dave Gone', '13600000004', '1')",
        "INSERT INTO zt_bug (id, title, assignedTo, mailto) VALUES (12, 'Login fails', 'bob', ',alice,carol,,bob,')",
        "INSERT INTO zt_story (id, title, assignedTo, mailto) VALUES (7, 'Single sign-on', 'carol', 'bob')",
        "INSERT INTO zt_task (id, name, assignedTo, mailto) VALUES (30, 'Write the SSO adapter', 'alice', 'bob,dave')",
        "INSERT INTO zt_kanbancard (id, kanban, name, assignedTo) VALUES (3, 9, 'Release notes', 'carol,bob')",
    ])
    .await;
    let r = Receiver::fixed(200);
    let s = TestServer::start(&source_config(&db, "beginning")).await;
    let wh = s.webhook(json!({"name": "db", "url": r.url})).await;
    let mut c = db.conn().await;
    act(&mut c, "bug", 12, "alice", "resolved").await;
    act(&mut c, "story", 7, "bob", "reviewed").await;
    act(&mut c, "task", 30, "alice", "started").await;
    act(&mut c, "kanbancard", 3, "bob", "moved").await;
    wait_received(&r, 4, "four enriched actions").await;

    let mut texts: Vec<String> = r
        .received()
        .iter()
        .map(|x| x.json()["text"].as_str().unwrap_or("").to_string())
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec![
            "Alice Smith resolved Bug [#12::Login fails](http://localhost/bug-view-12.html)",
            "Alice Smith started Task [#30::Write the SSO adapter](http://localhost/task-view-30.html)",
            "Bob Li moved Kanban Card [#3::Release notes](http://localhost/kanban-view-9.html)",
            "Bob Li reviewed Story [#7::Single sign-on](http://localhost/story-view-7.html)",
        ]
    );
    let log = logged(&s, wh).await;
    let ev = |id: u64| log[&id][0].clone();
    assert_eq!(log.len(), 4);
    // Bug 12 by alice: assignee first; the actor, empties and repeats left out.
    assert_eq!(ev(1).to_list, vec!["bob", "carol"]);
    assert_eq!(ev(1).mentions, vec!["13900000002"]);
    assert_eq!(ev(1).product, vec![1]);
    assert_eq!(ev(1).execution, 5);
    assert_eq!(ev(1).url, None);
    // Story 7 by bob: carol (assignee); bob is the actor.
    assert_eq!(ev(2).to_list, vec!["carol"]);
    assert_eq!(ev(2).mentions, vec!["13700000003"]);
    // Task 30 by alice, assigned to herself: only mailto's bob (dave is deleted).
    assert_eq!(ev(3).to_list, vec!["bob"]);
    assert_eq!(ev(3).mentions, vec!["13800000001"]);
    assert_eq!(ev(3).object_name.as_deref(), Some("Write the SSO adapter"));
    assert_eq!(ev(3).actor_name.as_deref(), Some("Alice Smith"));
    // Kanban card 3 on board 9.
    assert_eq!(ev(4).kanban_id, Some(9));
    assert_eq!(ev(4).to_list, vec!["carol"]);
    assert_eq!(ev(4).mentions, vec!["13700000003", "13900000002"]);
    let _ = c.disconnect().await;
    s.stop().await;
}

/// Issue 10: an action's `zt_history` rows arrive as its `changes`, and a DingTalk bot with
/// `details: true` shows them (labels, HTML stripped from the comment); an edit without
/// history rows and without a comment (a no-op edit) fires the plain webhook only.
#[actix_rt::test]
async fn db_source_reads_changes_from_zt_history_into_a_dingtalk_message() {
    let Some(db) = TestDb::create("db_source_reads_changes_from_zt_history").await else {
        return;
    };
    db.exec(&[
        "INSERT INTO zt_user (account, realname) VALUES ('alice', 'Alice Smith')",
        "INSERT INTO zt_bug (id, title, assignedTo) VALUES (12, 'Login fails', 'bob')",
    ])
    .await;
    let dt = DingTalkFake::start();
    let r = Receiver::fixed(200);
    let s = TestServer::start(&source_config(&db, "beginning")).await;
    let bot = s
        .webhook(
            json!({"name": "dt", "type": "dinggroup", "url": dt.bot("tok", None), "details": true}),
        )
        .await;
    let plain = s.webhook(json!({"name": "plain", "url": r.url})).await;
    let mut c = db.conn().await;
    c.query_drop(
        "INSERT INTO zt_action (objectType, objectID, product, execution, actor, action, date, comment) \
         VALUES ('bug', 12, ',1,', 5, 'alice', 'resolved', '2026-01-05 18:35:21', '<p>Fixed &amp; tested</p>')",
    )
    .await
    .expect("insert action");
    c.query_drop(
        "INSERT INTO zt_history (action, field, old, new) VALUES \
         (1, 'status', 'active', 'resolved'), (1, 'resolution', '', 'fixed'), (1, 'assignedTo', 'bob', 'alice')",
    )
    .await
    .expect("insert history");
    // The no-op edit: no history rows, no comment.
    act(&mut c, "bug", 12, "alice", "edited").await;
    wait_received(&r, 2, "both actions at the plain webhook").await;
    s.wait_deliveries(bot, WAIT, "the details message", |d| {
        d.iter().any(|x| x["status"] == "delivered")
    })
    .await;
    let got = dt.received();
    assert_eq!(
        got.len(),
        1,
        "only the resolution reaches the details bot: {got:?}"
    );
    assert_eq!(
        got[0].text(),
        "Alice Smith resolved Bug [#12::Login fails](http://localhost/bug-view-12.html)\n\n\
         - **Status**: active → resolved\n- **Resolution**: (empty) → fixed\n\
         - **Assigned To**: bob → alice\n\n> Fixed & tested"
    );
    // Routing decided at intake: the edit made no delivery for the details bot at all.
    assert_eq!(
        logged(&s, bot).await.keys().copied().collect::<Vec<_>>(),
        vec![1]
    );
    let log = logged(&s, plain).await;
    let changes = |id: u64| log[&id][0].changes.clone();
    assert_eq!(changes(1).map(|c| c.len()), Some(3));
    assert_eq!(changes(2), Some(vec![]), "known to have changed nothing");
    let _ = c.disconnect().await;
    s.stop().await;
}

#[actix_rt::test]
async fn db_source_delivers_a_late_committing_id_once() {
    let Some(db) = TestDb::create("db_source_delivers_a_late_committing_id_once").await else {
        return;
    };
    let r = Receiver::fixed(200);
    let s = TestServer::start(&source_config(&db, "beginning")).await;
    let wh = s.webhook(json!({"name": "late", "url": r.url})).await;
    let mut c = db.conn().await;
    act(&mut c, "bug", 1, "alice", "opened").await;
    act(&mut c, "bug", 2, "alice", "opened").await;
    wait_received(&r, 2, "ids 1 and 2").await;

    // Id 3 is assigned inside a transaction that commits only after id 4 is visible.
    let mut slow = db.conn().await;
    slow.query_drop("START TRANSACTION").await.expect("begin");
    act(&mut slow, "bug", 3, "alice", "opened").await;
    let late_id: u64 = slow
        .query_first("SELECT LAST_INSERT_ID()")
        .await
        .expect("id")
        .expect("a row");
    assert_eq!(late_id, 3);
    act(&mut c, "bug", 4, "alice", "opened").await;
    wait_received(&r, 3, "id 4 while 3 is uncommitted").await;
    // Another poll passes while 3 is still invisible: the one that reads 5. Once 5 is in the
    // log, that poll neither delivered 3 nor read 4 again.
    act(&mut c, "bug", 5, "alice", "opened").await;
    wait_logged(&s, wh, 5).await;
    assert_logged_once(&s, wh, &[1, 2, 4, 5]).await;
    wait_received(&r, 4, "id 5").await;
    assert_eq!(received_ids(&r), vec![1, 2, 4, 5]);

    slow.query_drop("COMMIT").await.expect("commit");
    wait_received(&r, 5, "the late id 3").await;
    act(&mut c, "bug", 6, "alice", "opened").await;
    // Read after the gap was filled: once 6 is in, no poll has read 3 (or another) twice.
    wait_logged(&s, wh, 6).await;
    assert_logged_once(&s, wh, &[1, 2, 3, 4, 5, 6]).await;
    wait_received(&r, 6, "id 6 after the gap was filled").await;
    assert_eq!(received_ids(&r), vec![1, 2, 3, 4, 5, 6]);
    let _ = (c.disconnect().await, slow.disconnect().await);
    s.stop().await;
}

#[actix_rt::test]
async fn db_source_gives_up_a_rolled_back_id_after_the_grace_period() {
    let Some(db) =
        TestDb::create("db_source_gives_up_a_rolled_back_id_after_the_grace_period").await
    else {
        return;
    };
    let r = Receiver::fixed(200);
    let config =
        source_config(&db, "beginning").replace("gap_grace = \"5m\"", "gap_grace = \"1s\"");
    let s = TestServer::start(&config).await;
    s.webhook(json!({"name": "rollback", "url": r.url})).await;
    let mut c = db.conn().await;
    let mut slow = db.conn().await;
    act(&mut c, "bug", 1, "alice", "opened").await;
    slow.query_drop("START TRANSACTION").await.expect("begin");
    act(&mut slow, "bug", 2, "alice", "opened").await;
    act(&mut c, "bug", 3, "alice", "opened").await;
    // The poll that reads 3 remembers 2 as a gap.
    let cursor = eventually_value(WAIT, "id 3 read", || async {
        let raw = s.engine.store().checkpoint("db:zt_action").expect("read");
        match raw.map(|r| Cursor::decode(&r).expect("cursor")) {
            Some(c) if c.high == 3 => Ok(c),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(cursor.gaps.keys().copied().collect::<Vec<_>>(), vec![2]);
    wait_received(&r, 2, "ids 1 and 3").await;
    slow.query_drop("ROLLBACK").await.expect("rollback");
    // Id 2 never appears: once the grace period is over the cursor stops waiting for it.
    eventually_value(WAIT, "gap 2 given up", || async {
        let raw = s.engine.store().checkpoint("db:zt_action").expect("read");
        let cursor = raw.map(|r| Cursor::decode(&r).expect("cursor"));
        if cursor == Some(Cursor::after(3)) {
            Ok(())
        } else {
            Err(format!("gap 2 still tracked: {cursor:?}"))
        }
    })
    .await;
    assert_eq!(received_ids(&r), vec![1, 3]);
    let _ = (c.disconnect().await, slow.disconnect().await);
    s.stop().await;
}

#[actix_rt::test]
async fn db_source_starts_at_the_end_commits_that_position_and_resumes_after_a_restart() {
    let Some(db) = TestDb::create(
        "db_source_starts_at_the_end_commits_that_position_and_resumes_after_a_restart",
    )
    .await
    else {
        return;
    };
    let mut c = db.conn().await;
    // History before sanhook was started: not delivered with start_at = "end".
    act(&mut c, "bug", 1, "alice", "opened").await;
    act(&mut c, "bug", 2, "alice", "opened").await;
    let r = Receiver::fixed(200);
    let dir = tempfile::tempdir().expect("dir");
    let cfg = crate::support::test_config(dir.path(), &source_config(&db, "end"));
    let s = TestServer::start_with(cfg, dir).await;
    let wh = s.webhook(json!({"name": "end", "url": r.url})).await;
    // The starting position is committed before anything is read, so a restart cannot move
    // it past actions written meanwhile.
    let cursor = eventually_value(WAIT, "a checkpoint committed", || async {
        match s.engine.store().checkpoint("db:zt_action").expect("read") {
            Some(raw) => Ok(Cursor::decode(&raw).expect("a cursor")),
            None => Err("none".to_string()),
        }
    })
    .await;
    assert_eq!(cursor, Cursor::after(2));
    act(&mut c, "bug", 3, "alice", "opened").await;
    wait_received(&r, 1, "id 3").await;
    let dir = s.stop().await;

    // Written while sanhook is down: a restart resumes from the checkpoint, not from the
    // new end, and repeats nothing.
    act(&mut c, "bug", 4, "alice", "opened").await;
    act(&mut c, "bug", 5, "alice", "opened").await;
    let cfg = crate::support::test_config(dir.path(), &source_config(&db, "end"));
    let s = TestServer::start_with(cfg, dir).await;
    wait_received(&r, 3, "ids 4 and 5 after the restart").await;
    // A later action: once it is in the log, so is anything the polls since the restart read
    // (3 read again included).
    act(&mut c, "bug", 6, "alice", "opened").await;
    wait_logged(&s, wh, 6).await;
    assert_logged_once(&s, wh, &[3, 4, 5, 6]).await;
    wait_received(&r, 4, "id 6").await;
    assert_eq!(received_ids(&r), vec![3, 4, 5, 6]);
    let _ = c.disconnect().await;
    s.stop().await;
}

#[actix_rt::test]
async fn db_source_resumes_from_its_checkpoint_after_sigkill_with_no_repeats() {
    const ACTIONS: u64 = 300;
    let Some(db) =
        TestDb::create("db_source_resumes_from_its_checkpoint_after_sigkill_with_no_repeats").await
    else {
        return;
    };
    let r = Receiver::fixed(200);
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[delivery]\nretry_schedule = [\"100ms\", \"100ms\", \"100ms\"]\n{}",
            dir.path().join("data/sanhook.redb").display(),
            source_config(&db, "beginning")
        ),
    )
    .expect("write config");
    let mut child = Sanhook::serve(&config, &dir.path().join("run0.log"), &base).await;
    let api = Api::new(&base, "");
    let wh = api
        .webhook(json!({"name": "kill", "url": r.url, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
        .await;

    // Actions keep coming while the server is killed twice and restarted.
    let writer_db = db.url.clone();
    let writer = actix_rt::spawn(async move {
        let mut c = Conn::from_url(writer_db.as_str()).await.expect("connect");
        for i in 1..=ACTIONS {
            act(&mut c, "bug", i, "alice", "opened").await;
            // The writer's pace (actions keep coming while sanhook is killed), not a wait.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = c.disconnect().await;
    });
    for (run, after) in [(1, ACTIONS / 4), (2, ACTIONS / 2)] {
        eventually(WAIT, &format!("{after} actions delivered"), || async {
            r.received().len() as u64 >= after
        })
        .await;
        child.sigkill();
        child = Sanhook::serve(&config, &dir.path().join(format!("run{run}.log")), &base).await;
    }
    writer.await.expect("writer");

    // Every action reaches the receiver (a retry after a kill may repeat a send, with the
    // same webhook-id)...
    let seen = eventually_value(
        Duration::from_secs(60),
        "every action at the receiver",
        || async {
            let seen: BTreeMap<String, String> = r
                .received()
                .iter()
                .map(|x| {
                    (
                        x.header("webhook-id").unwrap_or("").to_string(),
                        x.json()["objectID"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            if seen.len() as u64 >= ACTIONS {
                Ok(seen)
            } else {
                Err(format!("{} webhook-ids of {ACTIONS}", seen.len()))
            }
        },
    )
    .await;
    let mut objects: Vec<u64> = seen.values().filter_map(|v| v.parse().ok()).collect();
    objects.sort_unstable();
    assert_eq!(
        objects,
        (1..=ACTIONS).collect::<Vec<_>>(),
        "one webhook-id per action"
    );
    // ...and the log holds exactly one delivery per action id.
    let log = api.deliveries(wh).await;
    let mut per_event: BTreeMap<u64, usize> = BTreeMap::new();
    for d in &log {
        *per_event
            .entry(d["eventId"].as_u64().unwrap_or(0))
            .or_default() += 1;
    }
    assert_eq!(per_event.len() as u64, ACTIONS, "{per_event:?}");
    assert!(
        per_event.values().all(|n| *n == 1),
        "repeats: {per_event:?}"
    );
    drop(child);
}

#[actix_rt::test]
async fn db_source_quarantines_a_bad_row_and_reads_on() {
    let Some(db) = TestDb::create("db_source_quarantines_a_bad_row_and_reads_on").await else {
        return;
    };
    let r = Receiver::fixed(200);
    let s = TestServer::start(&source_config(&db, "beginning")).await;
    s.webhook(json!({"name": "q", "url": r.url})).await;
    let mut c = db.conn().await;
    act(&mut c, "", 1, "alice", "opened").await;
    act(&mut c, "bug", 2, "alice", "opened").await;
    wait_received(&r, 1, "the good row after the bad one").await;
    assert_eq!(received_ids(&r), vec![2]);
    let (status, q) = s.call("GET", "/api/v1/quarantine?limit=10", None).await;
    assert_eq!(status, 200, "{q}");
    let q = q.as_array().cloned().unwrap_or_default();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["source"], "db");
    assert_eq!(q[0]["file"], "zt_action");
    assert_eq!(q[0]["offset"], 1);
    let reason = q[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("empty objectType"), "{reason}");
    let raw: serde_json::Value =
        serde_json::from_str(q[0]["raw"].as_str().unwrap_or("")).expect("raw is the row as JSON");
    assert_eq!(raw["objectType"], "");
    assert_eq!(raw["actor"], "alice");
    let _ = c.disconnect().await;
    s.stop().await;
}

#[actix_rt::test]
async fn db_source_reconnects_after_its_connection_is_killed() {
    let Some(db) = TestDb::create("db_source_reconnects_after_its_connection_is_killed").await
    else {
        return;
    };
    let r = Receiver::fixed(200);
    let s = TestServer::start(&source_config(&db, "beginning")).await;
    let wh = s.webhook(json!({"name": "kill", "url": r.url})).await;
    let mut c = db.conn().await;
    act(&mut c, "bug", 1, "alice", "opened").await;
    wait_received(&r, 1, "id 1").await;
    let mine: u64 = c
        .query_first("SELECT CONNECTION_ID()")
        .await
        .expect("id")
        .expect("row");
    let others: Vec<u64> = c
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> ?",
            (db.name.as_str(), mine),
        )
        .await
        .expect("processlist");
    assert!(!others.is_empty(), "the source holds a connection");
    for id in others {
        let _ = c.query_drop(format!("KILL {id}")).await;
    }
    act(&mut c, "bug", 2, "alice", "opened").await;
    act(&mut c, "bug", 3, "alice", "opened").await;
    wait_received(&r, 3, "ids 2 and 3 after the connection was killed").await;
    // A later action: once it is in the log, so is anything read twice before it.
    act(&mut c, "bug", 4, "alice", "opened").await;
    wait_logged(&s, wh, 4).await;
    assert_logged_once(&s, wh, &[1, 2, 3, 4]).await;
    wait_received(&r, 4, "id 4").await;
    assert_eq!(received_ids(&r), vec![1, 2, 3, 4]);
    let _ = c.disconnect().await;
    s.stop().await;
}

#[test]
fn test_database_urls_keep_their_options() {
    assert_eq!(
        with_database("mysql://root@127.0.0.1:3306/test", "x"),
        "mysql://root@127.0.0.1:3306/x"
    );
    assert_eq!(
        with_database("mysql://u:p@h:1?require_ssl=true", "x"),
        "mysql://u:p@h:1/x?require_ssl=true"
    );
}
