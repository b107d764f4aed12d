//! The producers: P tasks posting NDJSON batches of realistic action events to the engine's
//! `POST /api/v1/events`, optionally paced to a total rate.
//!
//! Every event has a unique `id` (its sequence number + 1) and carries, in its `comment`, the
//! marker `lt:<seq>:<µs since the run's epoch>` written just before its batch is posted: the
//! `default` payload sends `comment` verbatim, so the sink reads the send time back from the
//! delivery without parsing JSON.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sink::Tally;
use crate::backoff::Backoff;
use crate::client::api::{Api, Retry};
use crate::webhook::Triggers;

/// Object types the events are about, and the actions generated for each: the load test's
/// webhooks list exactly these as their triggers, so every webhook fires for every event.
pub const ACTIONS: [(&str, &[&str]); 3] = [
    ("bug", &["edited", "confirmed", "resolved", "commented"]),
    ("story", &["edited", "reviewed", "changed", "commented"]),
    ("task", &["edited", "started", "finished", "commented"]),
];

/// Object titles, Chinese and English like `fixtures/actions.ndjson`.
const TITLES: [&str; 6] = [
    "导出报表时数据丢失",
    "Login fails on Safari after the session expires",
    "As an admin I can bind DingTalk users",
    "支持企业微信应用消息",
    "Nightly build breaks on the ARM runners",
    "Deliveries stall when the receiver answers slowly",
];

const ACTORS: [(&str, &str); 4] = [
    ("admin", "Admin"),
    ("alice", "Alice Wang"),
    ("zhangsan", "张三"),
    ("wangwu", "王五"),
];

/// Tries of one batch while the engine is unreachable or answers 5xx, and the pauses between
/// them (50 ms doubling up to 1 s).
const TRIES: u32 = 8;
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Where the batches go.
const EVENTS: &str = "/api/v1/events";

/// What the producers are to send.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub events: u64,
    pub objects: u64,
    pub batch: u64,
    pub producers: u64,
    /// Total events/s over all producers; `None` = as fast as the engine takes them.
    pub rate: Option<f64>,
}

/// What the engine answered, summed over every batch.
#[derive(Debug, Default)]
pub struct Intake {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub deliveries: AtomicU64,
    /// When the last `202` came, in µs since the run's epoch.
    pub last_ack_us: AtomicU64,
}

/// Posts every batch; returns the first error that stopped a producer.
pub async fn produce(
    api: Api,
    plan: Plan,
    tally: Arc<Tally>,
    intake: Arc<Intake>,
) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..plan.producers {
        let (api, tally, intake, next) = (api.clone(), tally.clone(), intake.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let batches = plan.events.div_ceil(plan.batch);
            let mut body = Vec::with_capacity((plan.batch as usize) * 360);
            loop {
                // Batches are handed out in order, so with a rate each one has a due time.
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= batches {
                    return Ok(());
                }
                if let Some(rate) = plan.rate {
                    let due = started + Duration::from_secs_f64((i * plan.batch) as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let first = i * plan.batch;
                let last = (first + plan.batch).min(plan.events);
                body.clear();
                let now = tally.now_us();
                for seq in first..last {
                    write_event(&mut body, seq, plan.objects, now);
                }
                post(&api, &body, &intake, &tally).await?;
            }
        }));
    }
    let mut first_error = None;
    for t in tasks {
        let r = t
            .await
            .unwrap_or_else(|e| Err(format!("a producer failed: {e}")));
        if let (Err(e), None) = (r, &first_error) {
            first_error = Some(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Posts one NDJSON body until it is accepted; 5xx and network errors are retried.
async fn post(api: &Api, body: &[u8], intake: &Intake, tally: &Tally) -> Result<(), String> {
    let retry = Retry {
        tries: TRIES,
        backoff: Backoff::new(FIRST_PAUSE, LONGEST_PAUSE),
    };
    let reply = api
        .post_retrying(EVENTS, "application/x-ndjson", body, retry)
        .await
        .map_err(|e| e.to_string())?;
    if reply.status != 202 {
        return Err(format!(
            "the engine refused a batch at {}{EVENTS}: {} {}",
            api.base(),
            reply.status,
            reply.body
        ));
    }
    let n = |k: &str| reply.body[k].as_u64().unwrap_or(0);
    intake.accepted.fetch_add(n("accepted"), Ordering::Relaxed);
    intake
        .duplicates
        .fetch_add(n("duplicates"), Ordering::Relaxed);
    intake
        .deliveries
        .fetch_add(n("deliveries"), Ordering::Relaxed);
    intake
        .last_ack_us
        .fetch_max(tally.now_us(), Ordering::Relaxed);
    Ok(())
}

/// Appends event `seq` as one NDJSON line (~300 bytes), stamped with `now_us`.
pub fn write_event(out: &mut Vec<u8>, seq: u64, objects: u64, now_us: u64) {
    let object = seq % objects.max(1);
    let (ty, actions) = ACTIONS[(object % ACTIONS.len() as u64) as usize];
    let action = actions[((seq / objects.max(1)) % actions.len() as u64) as usize];
    let (actor, actor_name) = ACTORS[(seq % ACTORS.len() as u64) as usize];
    let title = TITLES[(object % TITLES.len() as u64) as usize];
    let object_id = object / ACTIONS.len() as u64 + 1;
    let product = object % 10 + 1;
    let execution = object % 7;
    // A busy Sanplex logs about ten actions a second.
    let secs = seq / 10;
    let (h, m, s) = (9 + secs / 3600 % 14, secs / 60 % 60, secs % 60);
    let mut line = String::with_capacity(360);
    let _ = write!(
        line,
        r#"{{"id":{id},"objectType":"{ty}","objectID":{object_id},"product":",{product},","project":12,"execution":{execution},"actor":"{actor}","action":"{action}","date":"2026-11-20 {h:02}:{m:02}:{s:02}","comment":"lt:{seq}:{now_us}","extra":"","objectName":"{title}","actorName":"{actor_name}","toList":["alice","bob"],"mentions":["13800000001"]}}"#,
        id = seq + 1,
    );
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

/// The trigger list every load-test webhook gets (its `actions`).
pub fn triggers() -> Triggers {
    ACTIONS
        .iter()
        .map(|(ty, actions)| {
            let actions = actions.iter().map(|a| a.to_string()).collect();
            (ty.to_string(), actions)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn events_are_valid_realistic_and_match_the_triggers() {
        let triggers = triggers();
        for seq in [0, 1, 4999, 5000, 123_456] {
            let mut line = Vec::new();
            write_event(&mut line, seq, 5000, 42);
            assert!((250..420).contains(&line.len()), "{} bytes", line.len());
            let v: Value = serde_json::from_slice(&line).expect("valid JSON");
            assert_eq!(v["id"], seq + 1);
            assert_eq!(v["comment"], format!("lt:{seq}:42"));
            let ty = v["objectType"].as_str().expect("type");
            let action = v["action"].as_str().expect("action");
            assert!(triggers[ty].iter().any(|a| a == action), "{v}");
        }
    }
}
