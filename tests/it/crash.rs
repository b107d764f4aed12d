//! The real binary, killed with SIGKILL mid-run, loses nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::binary::{free_port, write_config, Sanhook};
use crate::support::receiver::Receiver;
use crate::support::{eventually, eventually_value, Api};

const EVENTS: u64 = 1000;

#[actix_rt::test]
async fn sigkill_mid_run_loses_nothing() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let r = Receiver::start(move |_, _| {
        if h.load(Ordering::SeqCst) {
            (200, vec![], "ok".into())
        } else {
            (500, vec![], "down".into())
        }
    });
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(dir.path(), port, "300ms", 40);
    let mut child = Sanhook::serve(&config, &dir.path().join("run1.log"), &base).await;
    let api = Api::new(&base, "");
    api.webhook(
        json!({"name": "crash", "url": r.url, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    )
    .await;
    for chunk in (1..=EVENTS).collect::<Vec<_>>().chunks(100) {
        let body: Vec<String> = chunk
            .iter()
            .map(|i| crate::support::event(*i, *i, "opened").to_string())
            .collect();
        let (status, v) = api
            .post_raw("/api/v1/events", "application/x-ndjson", body.join("\n"))
            .await;
        assert_eq!(status, 202, "{v}");
    }
    // Let some attempts fail, then kill it hard.
    eventually(Duration::from_secs(30), "200 failed attempts", || async {
        r.received().len() >= 200
    })
    .await;
    child.sigkill();
    let failed_before = r.received().len();
    healthy.store(true, Ordering::SeqCst);

    let child = Sanhook::serve(&config, &dir.path().join("run2.log"), &base).await;
    let (ok_ids, oks) = eventually_value(
        Duration::from_secs(60),
        "every event delivered after the restart",
        || async {
            let got = r.received();
            let mut ids: HashMap<String, usize> = HashMap::new();
            let mut events = HashSet::new();
            for g in got.iter().skip(failed_before) {
                if let Some(id) = g.header("webhook-id") {
                    *ids.entry(id.to_string()).or_default() += 1;
                    events.insert(g.json()["objectID"].as_str().unwrap_or("").to_string());
                }
            }
            if events.len() as u64 >= EVENTS {
                let oks: usize = ids.values().sum();
                Ok((events, oks))
            } else {
                Err(format!("{} of {EVENTS} events delivered", events.len()))
            }
        },
    )
    .await;
    drop(child);
    let lost: Vec<u64> = (1..=EVENTS)
        .filter(|i| !ok_ids.contains(&i.to_string()))
        .collect();
    println!(
        "crash test: {} delivered after restart, {} lost, {} duplicate sends",
        ok_ids.len(),
        lost.len(),
        oks - ok_ids.len()
    );
    assert!(
        lost.is_empty(),
        "lost {} events, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}
