//! Store behaviour: dedupe, open counts, resume, retention.

use super::*;

fn ev(id: u64, obj: u64) -> ActionEvent {
    ActionEvent {
        id: Some(id),
        object_type: "bug".into(),
        object_id: obj,
        actor: "alice".into(),
        action: "opened".into(),
        date: "2026-01-05 18:35:21".into(),
        ..Default::default()
    }
}

/// Opens, waiting for a just-dropped store's writer thread to let go of the file.
fn reopen(path: &std::path::Path) -> Store {
    for _ in 0..100 {
        match Store::open(path) {
            Ok(s) => return s,
            Err(StoreError::Open { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
    panic!("store still open after 2 s")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn dedupe_open_counts_and_resume_survive_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    rt().block_on(async {
        let store = Store::open(&path).expect("open");
        let r = store
            .ingest(IngestBatch {
                source: "t".into(),
                events: vec![ev(1, 1), ev(2, 2), ev(1, 1)],
                routes: vec![vec![10, 11], vec![10], vec![10]],
                ..Default::default()
            })
            .await
            .expect("ingest");
        assert_eq!((r.accepted, r.duplicates, r.deliveries.len()), (2, 1, 3));
        let first = r.deliveries[0].clone();
        store
            .update_states(vec![StateUpdate::new(
                first.id,
                10,
                Status::Pending,
                &DeliveryState {
                    status: Status::Delivered,
                    attempts: 1,
                    ..Default::default()
                },
            )])
            .await
            .expect("update");
        assert_eq!(store.open_deliveries().expect("open").len(), 2);
    });
    // Reopen: the dedupe index and the open deliveries are still there.
    rt().block_on(async {
        let store = reopen(&path);
        let r = store
            .ingest(IngestBatch {
                source: "t".into(),
                events: vec![ev(2, 2), ev(3, 3)],
                routes: vec![vec![10], vec![]],
                ..Default::default()
            })
            .await
            .expect("ingest");
        assert_eq!((r.accepted, r.duplicates, r.deliveries.len()), (1, 1, 0));
        let open = store.open_deliveries().expect("open");
        assert_eq!(open.len(), 2);
        assert!(open.iter().all(|d| d.state.status == Status::Pending));
        let log = store
            .deliveries(&DeliveryQuery {
                limit: 10,
                ..Default::default()
            })
            .expect("log");
        assert_eq!(log.len(), 3);
        assert_eq!(
            log.iter()
                .filter(|d| d.state.status == Status::Delivered)
                .count(),
            1
        );
    });
}

#[test]
fn retention_drops_only_finished_batches_and_forgets_their_ids() {
    let dir = tempfile::tempdir().expect("dir");
    rt().block_on(async {
        let store = Store::open(&dir.path().join("s.redb")).expect("open");
        let done = store
            .ingest(IngestBatch {
                source: "t".into(),
                events: vec![ev(1, 1)],
                routes: vec![vec![10]],
                ..Default::default()
            })
            .await
            .expect("ingest");
        let open = store
            .ingest(IngestBatch {
                source: "t".into(),
                events: vec![ev(2, 2)],
                routes: vec![vec![10]],
                ..Default::default()
            })
            .await
            .expect("ingest");
        store
            .update_states(vec![StateUpdate::new(
                done.deliveries[0].id,
                10,
                Status::Pending,
                &DeliveryState {
                    status: Status::Dead,
                    ..Default::default()
                },
            )])
            .await
            .expect("update");
        let stats = store.prune(i64::MAX).await.expect("prune");
        assert_eq!(
            stats.batches, 1,
            "the finished batch goes, the open one stays"
        );
        assert!(store
            .delivery(done.deliveries[0].id)
            .expect("get")
            .is_none());
        assert!(store
            .delivery(open.deliveries[0].id)
            .expect("get")
            .is_some());
        // Its event id is forgotten: the same id is new again.
        let again = store
            .ingest(IngestBatch {
                source: "t".into(),
                events: vec![ev(1, 1), ev(2, 2)],
                routes: vec![vec![], vec![]],
                ..Default::default()
            })
            .await
            .expect("ingest");
        assert_eq!((again.accepted, again.duplicates), (1, 1));
    });
}

#[test]
fn ids_are_not_reused_after_everything_was_pruned() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    let first = rt().block_on(async {
        let store = Store::open(&path).expect("open");
        let r = store
            .ingest(IngestBatch {
                source: "t".into(),
                events: vec![ev(1, 1)],
                routes: vec![vec![10]],
                ..Default::default()
            })
            .await
            .expect("ingest");
        let id = r.deliveries[0].id;
        store
            .update_states(vec![StateUpdate::new(
                id,
                10,
                Status::Pending,
                &DeliveryState {
                    status: Status::Delivered,
                    ..Default::default()
                },
            )])
            .await
            .expect("update");
        assert_eq!(store.prune(i64::MAX).await.expect("prune").batches, 1);
        id
    });
    rt().block_on(async {
        let store = reopen(&path);
        let r = store
            .ingest(IngestBatch {
                source: "t".into(),
                events: vec![ev(2, 2)],
                routes: vec![vec![10]],
                ..Default::default()
            })
            .await
            .expect("ingest");
        assert!(
            r.deliveries[0].id > first,
            "a delivery id (and its webhook-id) repeated"
        );
    });
}

fn state(status: Status, at: i64, error: Option<&str>) -> DeliveryState {
    DeliveryState {
        status,
        attempts: 1,
        last_attempt_at: Some(at),
        last_error: error.map(str::to_string),
        ..Default::default()
    }
}

/// Counts by status, in `Status::ALL` order.
fn counts(store: &Store, webhook: u64) -> [u64; 5] {
    let c = store.counters().remove(&webhook).unwrap_or_default();
    Status::ALL.map(|s| c.count(s))
}

/// Ingests one batch: one event per object, each routed to `routes`' webhooks.
async fn ingest(store: &Store, first_id: u64, objects: u64, routes: &[u64]) -> Vec<OpenDelivery> {
    let events: Vec<ActionEvent> = (0..objects).map(|i| ev(first_id + i, i)).collect();
    let routes = vec![routes.to_vec(); events.len()];
    store
        .ingest(IngestBatch {
            source: "t".into(),
            events,
            routes,
            ..Default::default()
        })
        .await
        .expect("ingest")
        .deliveries
}

async fn set(store: &Store, d: &OpenDelivery, from: Status, to: &DeliveryState) {
    store
        .update_states(vec![StateUpdate::new(d.id, d.webhook_id, from, to)])
        .await
        .expect("update");
}

#[test]
fn counters_follow_intake_state_changes_and_retention_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    rt().block_on(async {
        let store = Store::open(&path).expect("open");
        // Batch 1: two objects to webhooks 10 and 11; batch 2: one object to webhook 10.
        let b1 = ingest(&store, 1, 2, &[10, 11]).await;
        let b2 = ingest(&store, 3, 1, &[10]).await;
        assert_eq!(counts(&store, 10), [3, 0, 0, 0, 0]);
        assert_eq!(counts(&store, 11), [2, 0, 0, 0, 0]);
        let (w10, w11): (Vec<_>, Vec<_>) = b1.iter().partition(|d| d.webhook_id == 10);
        set(
            &store,
            w10[0],
            Status::Pending,
            &state(Status::Delivered, 1, None),
        )
        .await;
        set(
            &store,
            w10[1],
            Status::Pending,
            &state(Status::Retrying, 2, Some("HTTP 502")),
        )
        .await;
        set(
            &store,
            w10[1],
            Status::Retrying,
            &state(Status::Dead, 3, Some("HTTP 410")),
        )
        .await;
        set(
            &store,
            w11[0],
            Status::Pending,
            &state(Status::Skipped, 4, Some("nobody")),
        )
        .await;
        set(
            &store,
            w11[1],
            Status::Pending,
            &state(Status::Retrying, 5, Some("timeout")),
        )
        .await;
        assert_eq!(counts(&store, 10), [1, 0, 1, 1, 0]);
        assert_eq!(counts(&store, 11), [0, 1, 0, 0, 1]);
        let c10 = store.counters().remove(&10).expect("webhook 10");
        assert!(c10.last_success_at.is_some() && c10.last_failure_at.is_some());
        assert_eq!(c10.last_error.as_deref(), Some("HTTP 410"));
        let c11 = store.counters().remove(&11).expect("webhook 11");
        assert_eq!(
            (c11.last_success_at, c11.last_error.as_deref()),
            (None, Some("timeout"))
        );
        // A dead delivery re-queued (as recover and retry do) is pending again.
        set(
            &store,
            w10[1],
            Status::Dead,
            &state(Status::Pending, 3, Some("HTTP 410")),
        )
        .await;
        assert_eq!(counts(&store, 10), [2, 0, 1, 0, 0]);
        set(
            &store,
            w10[1],
            Status::Pending,
            &state(Status::Dead, 6, Some("HTTP 410 again")),
        )
        .await;
        set(
            &store,
            &b2[0],
            Status::Pending,
            &state(Status::Delivered, 7, None),
        )
        .await;
        assert_eq!(counts(&store, 10), [0, 0, 2, 1, 0]);
        // Retention: batch 1 still has an open delivery (webhook 11's retrying one), batch 2
        // is finished and goes, and with it one delivered delivery of webhook 10.
        assert_eq!(store.prune(i64::MAX).await.expect("prune").batches, 1);
        assert_eq!(counts(&store, 10), [0, 0, 1, 1, 0]);
        assert_eq!(counts(&store, 11), [0, 1, 0, 0, 1]);
        set(
            &store,
            w11[1],
            Status::Retrying,
            &state(Status::Delivered, 8, None),
        )
        .await;
        assert_eq!(store.prune(i64::MAX).await.expect("prune").batches, 1);
        assert_eq!(counts(&store, 10), [0; 5]);
        assert_eq!(counts(&store, 11), [0; 5]);
        // The latest outcomes outlive the deliveries they came from.
        let c10 = store.counters().remove(&10).expect("webhook 10");
        assert_eq!(c10.last_error.as_deref(), Some("HTTP 410 again"));
        ingest(&store, 10, 2, &[10, 11]).await;
    });
    // Reopened (as after kill -9: every change above was its own commit), the counters are
    // what was committed.
    rt().block_on(async {
        let store = reopen(&path);
        assert_eq!(counts(&store, 10), [2, 0, 0, 0, 0]);
        assert_eq!(counts(&store, 11), [2, 0, 0, 0, 0]);
        let c10 = store.counters().remove(&10).expect("webhook 10");
        assert_eq!(c10.last_error.as_deref(), Some("HTTP 410 again"));
        assert!(c10.last_success_at.is_some());
    });
}

#[test]
fn a_store_without_counters_has_them_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    let before = rt().block_on(async {
        let store = Store::open(&path).expect("open");
        let b1 = ingest(&store, 1, 3, &[10, 11]).await;
        ingest(&store, 4, 1, &[10]).await;
        set(
            &store,
            &b1[0],
            Status::Pending,
            &state(Status::Delivered, 1_000, None),
        )
        .await;
        set(
            &store,
            &b1[1],
            Status::Pending,
            &state(Status::Dead, 2_000, Some("HTTP 410")),
        )
        .await;
        set(
            &store,
            &b1[2],
            Status::Pending,
            &state(Status::Retrying, 3_000, Some("HTTP 503")),
        )
        .await;
        set(
            &store,
            &b1[3],
            Status::Pending,
            &state(Status::Skipped, 4_000, Some("nobody")),
        )
        .await;
        store.counters()
    });
    // What a store written before the counters existed looks like: no table, no mark.
    {
        let db = reopen_raw(&path);
        let w = db.begin_write().expect("write");
        w.delete_table(COUNTERS).expect("drop counters");
        w.open_table(META)
            .expect("meta")
            .remove(COUNTERS_BUILT)
            .expect("unmark");
        w.commit().expect("commit");
    }
    let store = reopen(&path);
    let after = store.counters();
    for webhook in [10, 11] {
        let (b, a) = (&before[&webhook], &after[&webhook]);
        assert_eq!(
            Status::ALL.map(|s| a.count(s)),
            Status::ALL.map(|s| b.count(s)),
            "webhook {webhook}"
        );
    }
    assert_eq!(counts(&store, 10), [2, 1, 1, 0, 0]);
    assert_eq!(counts(&store, 11), [1, 0, 0, 1, 1]);
    // Rebuilt, the latest outcomes are the deliveries' last attempts.
    assert_eq!(after[&10].last_success_at, Some(1_000));
    assert_eq!(after[&10].last_failure_at, Some(3_000));
    assert_eq!(after[&10].last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(after[&11].last_failure_at, Some(2_000));
}

/// Opens the redb file itself, waiting for a dropped store's writer thread to let go of it.
fn reopen_raw(path: &std::path::Path) -> Database {
    for _ in 0..100 {
        match Database::create(path) {
            Ok(db) => return db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
    panic!("store still open after 2 s")
}

/// Waits until the wall clock has passed `ms`, so that the next commit is stamped later.
fn after_ms(ms: i64) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while now_ms() <= ms {
        assert!(
            std::time::Instant::now() < until,
            "the clock does not advance"
        );
        std::thread::yield_now();
    }
}

#[test]
fn dead_deliveries_since_a_time_come_in_pages_in_delivery_order() {
    let dir = tempfile::tempdir().expect("dir");
    rt().block_on(async {
        let store = Store::open(&dir.path().join("s.redb")).expect("open");
        // Eight batches, each committed in a later millisecond; in each, two objects for
        // webhooks 10 and 11, all dead but webhook 10's second one (delivered). Batch 4 routes
        // nowhere (a batch row without deliveries).
        let mut batches = vec![];
        let mut last = 0;
        for b in 0..8u64 {
            after_ms(last);
            let routes: &[u64] = if b == 4 { &[] } else { &[10, 11] };
            let ds = ingest(&store, b * 10 + 1, 2, routes).await;
            let at = if ds.is_empty() {
                now_ms()
            } else {
                ds[0].created_at
            };
            for d in &ds {
                let to = if d.webhook_id == 10 && d.event.object_id == 1 {
                    Status::Delivered
                } else {
                    Status::Dead
                };
                set(&store, d, Status::Pending, &state(to, at, Some("HTTP 410"))).await;
            }
            last = at;
            batches.push((at, ds));
        }
        let dead_of = |from: usize| -> Vec<u64> {
            batches[from..]
                .iter()
                .flat_map(|(_, ds)| ds.iter())
                .filter(|d| d.webhook_id == 10 && d.event.object_id == 0)
                .map(|d| d.id)
                .collect()
        };
        let all_pages = |since: i64, limit: usize| -> Vec<u64> {
            let mut out = vec![];
            let mut scan = None;
            loop {
                let (page, next) = store.dead_deliveries(10, since, scan, limit).expect("scan");
                assert!(page.len() <= limit);
                assert!(page
                    .iter()
                    .all(|d| d.webhook_id == 10 && d.state.status == Status::Dead));
                out.extend(page.iter().map(|d| d.id));
                match next {
                    Some(n) => scan = Some(n),
                    None => return out,
                }
            }
        };
        for (k, (at, _)) in batches.iter().enumerate() {
            assert_eq!(all_pages(*at, 1), dead_of(k), "since batch {k}'s time");
            assert_eq!(
                all_pages(*at, 1000),
                dead_of(k),
                "since batch {k}'s time, one page"
            );
            assert_eq!(
                all_pages(*at + 1, 2),
                dead_of(k + 1),
                "just after batch {k}'s time"
            );
        }
        assert_eq!(all_pages(i64::MIN, 3), dead_of(0));
        assert!(all_pages(last + 1, 3).is_empty());
        // Holes in the batch sequence: batch 0 is open again (one delivery re-queued), so
        // retention up to batch 3 takes batches 1 and 2 only.
        let reopened = batches[0].1.iter().find(|d| d.webhook_id == 11).expect("d");
        set(
            &store,
            reopened,
            Status::Dead,
            &state(Status::Pending, 0, None),
        )
        .await;
        let cutoff = batches[3].0;
        assert_eq!(store.prune(cutoff).await.expect("prune").batches, 2);
        let first = dead_of(0)[0];
        let with_first = |rest: Vec<u64>| [vec![first], rest].concat();
        assert_eq!(all_pages(batches[0].0, 1), with_first(dead_of(3)));
        assert_eq!(all_pages(batches[1].0, 1), dead_of(3));
        assert_eq!(all_pages(batches[2].0 + 1, 2), dead_of(3));
        assert_eq!(all_pages(batches[3].0 + 1, 2), dead_of(4));
    });
}

/// Issue 8: a commit that fails in the storage answers every op of its group with the error
/// (none is left to see "the store is shut down"), later writes are refused at once while the
/// store cannot commit, and once writes work again the store reopens by itself, its memory read
/// back from the file: ids go on where the last good commit left them, the refused batch is not
/// there, and the outage is reported once.
#[test]
fn a_failed_commit_refuses_writes_until_the_store_reopens_by_itself() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    let faults = Arc::new(Faults::default());
    rt().block_on(async {
        let store = Store::open_with_faults(&path, faults.clone()).expect("open");
        let batch = |id: u64| IngestBatch {
            source: "t".into(),
            events: vec![ev(id, id)],
            routes: vec![vec![7]],
            ..Default::default()
        };
        let first = store.ingest(batch(1)).await.expect("ingest");
        faults.fail_writes(true);
        // Several ops queued together: every one gets the error.
        let (a, b, c) = tokio::join!(
            store.ingest(batch(2)),
            store.put_checkpoint(Checkpoint {
                key: "k".into(),
                value: b"v".to_vec(),
            }),
            store.put_triggers(Triggers::new()),
        );
        for e in [a.err(), b.err(), c.err()] {
            let e = e.expect("refused");
            assert!(
                matches!(e, StoreError::Commit(_) | StoreError::Unavailable { .. }),
                "{e}"
            );
        }
        let outage = store.outage().expect("an outage");
        assert!(outage.reason.contains("No space left"), "{}", outage.reason);
        let later = store
            .ingest(batch(3))
            .await
            .expect_err("refused while failing");
        assert!(matches!(later, StoreError::Unavailable { .. }), "{later}");
        assert!(store.take_ended_outages().is_empty());

        faults.fail_writes(false);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let again = loop {
            match store.ingest(batch(3)).await {
                Ok(r) => break r,
                Err(e) => {
                    assert!(std::time::Instant::now() < until, "never recovered: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        };
        assert!(store.outage().is_none());
        let ended = store.take_ended_outages();
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert!(ended[0].until.is_some_and(|u| u >= ended[0].since));
        assert!(store.take_ended_outages().is_empty(), "reported once");
        // Batch 2 was never stored; batch 3 follows batch 1.
        let (b1, _) = split_delivery_id(first.deliveries[0].id);
        let (b3, _) = split_delivery_id(again.deliveries[0].id);
        assert!(b3 > b1);
        let open = store.open_deliveries().expect("open deliveries");
        let events: Vec<Option<u64>> = open.iter().map(|d| d.event.id).collect();
        assert_eq!(events, vec![Some(1), Some(3)]);
        assert_eq!(counts(&store, 7), [2, 0, 0, 0, 0]);
        // Event 2 was never acknowledged, so it is not a duplicate now.
        let r = store.ingest(batch(2)).await.expect("ingest");
        assert_eq!((r.accepted, r.duplicates), (1, 0));
    });
}

/// Issue 11: `close` answers what was queued, releases the file (the store opens again at once,
/// with no retry) and refuses later writes.
#[test]
fn close_commits_what_was_queued_and_releases_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("s.redb");
    rt().block_on(async {
        let store = Store::open(&path).expect("open");
        let queued = store.put_checkpoint(Checkpoint {
            key: "k".into(),
            value: b"v".to_vec(),
        });
        let (put, closed) = tokio::join!(queued, store.close());
        put.expect("queued before the close: committed");
        closed.expect("close");
        let late = store.put_triggers(Triggers::new()).await;
        assert!(matches!(late, Err(StoreError::Closed)), "{late:?}");
        store.close().await.expect("closing twice is fine");
        let again = Store::open(&path).expect("the file is free at once");
        assert_eq!(again.checkpoint("k").expect("read"), Some(b"v".to_vec()));
    });
}
