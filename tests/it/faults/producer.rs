//! Producers that leave part-way through `POST /api/v1/events` (NDJSON, many at once, raw TCP):
//! every event of a request answered `202` is delivered exactly once; nothing of a request whose
//! body was cut off is; a request sent whole whose client left before the answer is all or
//! nothing (docs/reference.md §4: "Atomic").

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Act, Bin, Raw};
use crate::support::eventually_value;

const REQUESTS: usize = 60;
const EVENTS_PER_REQUEST: usize = 40;
const OBJECTS: u64 = 20;

/// What one producer does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaves {
    /// Sends everything and reads the answer.
    Never,
    /// Sends the headers and `at` bytes of a `Content-Length` body, then closes.
    MidBody { at: usize },
    /// Chunked: sends the chunks holding `at` bytes of the body, without the last chunk, then
    /// closes.
    MidChunks { at: usize },
    /// Sends everything, then closes without reading the answer.
    BeforeAnswer,
}

/// The `comment` prefix of the events posted once the engine is idle.
const END: &str = "end";

/// The event marker `r<request>e<index>`.
fn marker(r: usize, i: usize) -> String {
    format!("r{r}e{i}")
}

fn body(r: usize) -> Vec<u8> {
    let mut lines = vec![];
    for i in 0..EVENTS_PER_REQUEST {
        let id = (r * 1000 + i + 1) as u64;
        lines.push(
            json!({
                "id": id, "objectType": "bug", "objectID": id % OBJECTS + 1, "product": ",1,",
                "actor": "alice", "action": "edited", "date": "2026-11-20 09:00:35",
                "objectName": "Login fails", "comment": marker(r, i)
            })
            .to_string(),
        );
    }
    let mut b = lines.join("\n").into_bytes();
    b.push(b'\n');
    b
}

/// Does what `leaves` says; returns the status when an answer was read.
async fn produce(addr: &str, r: usize, leaves: Leaves) -> Option<u16> {
    let body = body(r);
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let chunked = matches!(leaves, Leaves::MidChunks { .. });
    let length = if chunked {
        "transfer-encoding: chunked\r\n".to_string()
    } else {
        format!("content-length: {}\r\n", body.len())
    };
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-ndjson\r\n{length}connection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.ok()?;
    match leaves {
        Leaves::Never | Leaves::BeforeAnswer => {
            // In two writes, so that the server sees the body arrive in parts.
            let half = body.len() / 2;
            sock.write_all(&body[..half]).await.ok()?;
            tokio::task::yield_now().await;
            sock.write_all(&body[half..]).await.ok()?;
        }
        Leaves::MidBody { at } => {
            sock.write_all(&body[..at]).await.ok()?;
        }
        Leaves::MidChunks { at } => {
            // Chunks of 500 bytes up to `at`; no terminating zero-length chunk.
            for part in body[..at].chunks(500) {
                sock.write_all(format!("{:x}\r\n", part.len()).as_bytes())
                    .await
                    .ok()?;
                sock.write_all(part).await.ok()?;
                sock.write_all(b"\r\n").await.ok()?;
            }
        }
    }
    sock.flush().await.ok()?;
    if leaves != Leaves::Never {
        // Gone: a reset if anything is still unread, else a plain close.
        drop(sock);
        return None;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|s| s.parse().ok())
}

#[actix_rt::test]
async fn producers_that_leave_mid_request_get_all_or_nothing() {
    let seed: u64 = std::env::var("SANHOOK_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("producer test seed {seed} (SANHOOK_TEST_SEED)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sink = Raw::start(|_| Act::status(200)).await;
    let b = Bin::start("200ms", 5, "", "").await;
    let wh = b.webhook(json!({"name": "sink", "url": sink.url})).await;
    let addr = b.base.trim_start_matches("http://").to_string();

    let plans: Vec<Leaves> = (0..REQUESTS)
        .map(|r| {
            let len = body(r).len();
            match rng.random_range(0..4) {
                0 => Leaves::Never,
                1 => Leaves::MidBody {
                    at: rng.random_range(0..len),
                },
                2 => Leaves::MidChunks {
                    at: rng.random_range(0..len),
                },
                _ => Leaves::BeforeAnswer,
            }
        })
        .collect();
    // All at once.
    let answers: Arc<Mutex<HashMap<usize, Option<u16>>>> = Arc::default();
    let mut tasks = vec![];
    for (r, leaves) in plans.iter().enumerate() {
        let (addr, answers, leaves) = (addr.clone(), answers.clone(), *leaves);
        tasks.push(actix_rt::spawn(async move {
            let status = produce(&addr, r, leaves).await;
            answers.lock().expect("answers").insert(r, status);
        }));
    }
    for t in tasks {
        t.await.expect("producer task");
    }
    let answers = answers.lock().expect("answers").clone();
    for (r, leaves) in plans.iter().enumerate() {
        if *leaves == Leaves::Never {
            assert_eq!(answers[&r], Some(202), "request {r} was sent whole");
        }
    }
    let accepted: HashSet<usize> = (0..REQUESTS)
        .filter(|r| plans[*r] == Leaves::Never)
        .collect();

    // Everything committed ends delivered: every accepted event arrives, and the engine has
    // nothing left to send.
    let must: HashSet<String> = accepted
        .iter()
        .flat_map(|r| (0..EVENTS_PER_REQUEST).map(move |i| marker(*r, i)))
        .collect();
    let arrived = |sink: &Raw| -> Vec<String> {
        sink.hits()
            .iter()
            .map(|h| h.json()["comment"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    eventually_value(
        Duration::from_secs(60),
        "every accepted event delivered",
        || async {
            let got: HashSet<String> = arrived(&sink).into_iter().collect();
            let st = b.stats(wh).await;
            let idle = st["pending"] == 0 && st["retrying"] == 0;
            if must.is_subset(&got) && idle && st["delivered"].as_u64() == Some(sink.count() as u64)
            {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} accepted events arrived; stats {st}",
                    must.intersection(&got).count(),
                    must.len()
                ))
            }
        },
    )
    .await;
    // Nothing more arrives once the engine is idle. The marker: one more event about each
    // object, posted whole. An object's next delivery is sent only once its earlier ones have
    // ended, so anything the engine still had for an object arrives before that object's
    // marker: once every marker is in, the requests since the idle point are the markers alone.
    let settled = sink.count();
    let markers: Vec<Value> = (0..OBJECTS)
        .map(|o| {
            json!({
                "id": 1_000_000 + o, "objectType": "bug", "objectID": o + 1, "product": ",1,",
                "actor": "alice", "action": "edited", "date": "2026-11-20 09:00:35",
                "objectName": "Login fails", "comment": format!("{END}{o}")
            })
        })
        .collect();
    b.post_events(markers).await;
    eventually_value(Duration::from_secs(30), "every end marker", || async {
        let ends = arrived(&sink).iter().filter(|m| m.starts_with(END)).count();
        if ends as u64 == OBJECTS {
            Ok(())
        } else {
            Err(format!("{ends} of {OBJECTS} end markers"))
        }
    })
    .await;
    assert_eq!(
        sink.count(),
        settled + OBJECTS as usize,
        "deliveries after the engine was idle"
    );

    let got: Vec<String> = arrived(&sink)
        .into_iter()
        .filter(|m| !m.starts_with(END))
        .collect();
    let mut per_request: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut once = HashSet::new();
    for m in &got {
        assert!(once.insert(m.clone()), "{m} delivered twice");
        let (r, i) = m
            .trim_start_matches('r')
            .split_once('e')
            .and_then(|(r, i)| Some((r.parse().ok()?, i.parse().ok()?)))
            .expect("marker");
        per_request.entry(r).or_default().push(i);
    }
    let mut committed_unanswered = 0;
    for (r, leaves) in plans.iter().enumerate() {
        let n = per_request.get(&r).map_or(0, Vec::len);
        match leaves {
            Leaves::Never => assert_eq!(n, EVENTS_PER_REQUEST, "request {r}: 202, {n} delivered"),
            Leaves::MidBody { at } | Leaves::MidChunks { at } => {
                assert_eq!(
                    n, 0,
                    "request {r} cut at byte {at} ({leaves:?}): {n} delivered"
                )
            }
            Leaves::BeforeAnswer => {
                assert!(
                    n == 0 || n == EVENTS_PER_REQUEST,
                    "request {r} (client gone before the answer): {n} of {EVENTS_PER_REQUEST} delivered"
                );
                committed_unanswered += usize::from(n > 0);
            }
        }
        // Within a request, one object's events arrive in their order.
        if let Some(idx) = per_request.get(&r) {
            let mut last: HashMap<u64, usize> = HashMap::new();
            for &i in idx {
                let object = ((r * 1000 + i + 1) as u64) % OBJECTS;
                let prev = last.insert(object, i);
                assert!(
                    prev.is_none_or(|p| p < i),
                    "request {r}: event {i} arrived after {prev:?} of its object"
                );
            }
        }
    }
    let count = |f: fn(&Leaves) -> bool| plans.iter().filter(|l| f(l)).count();
    println!(
        "producers: {} answered 202, {} cut mid-body, {} cut mid-chunks, {} left before the answer ({} of them committed); {} events delivered",
        count(|l| *l == Leaves::Never),
        count(|l| matches!(l, Leaves::MidBody { .. })),
        count(|l| matches!(l, Leaves::MidChunks { .. })),
        count(|l| *l == Leaves::BeforeAnswer),
        committed_unanswered,
        got.len()
    );
}
