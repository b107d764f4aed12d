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
                &DeliveryState {
                    status: Status::Delivered,
                    attempts: 1,
                    ..Default::default()
                },
                false,
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
                &DeliveryState {
                    status: Status::Dead,
                    ..Default::default()
                },
                false,
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
                &DeliveryState {
                    status: Status::Delivered,
                    ..Default::default()
                },
                false,
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
