//! `kill -9` ten times while events flow to a receiver that fails a fifth of its requests
//! (`500`): nothing is lost, each object's events are delivered in order, and a repeat carries
//! the `webhook-id` of the first send.
//!
//! 3,000 events by default; `SANHOOK_TEST_FLAKY_KILL_EVENTS=100000` for the full run (on the
//! release build: `cargo test --release --test it flaky_receiver -- --nocapture`).

use std::time::Duration;

use crate::kill_loop::{run, Run};

fn events() -> u64 {
    std::env::var("SANHOOK_TEST_FLAKY_KILL_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

#[actix_rt::test]
async fn ten_kills_with_a_flaky_receiver_lose_nothing() {
    let report = run(Run {
        webhooks: 1,
        objects: 500,
        events: events(),
        kills: 10,
        fail_percent: 20,
        signed: true,
        // 20 % failures: a delivery failing 21 times in a row (dead) is 2e-15 likely.
        retry: "200ms",
        retries: 20,
        finish: Duration::from_secs(900),
    })
    .await;
    assert!(report.failed > 0, "the receiver never failed");
    assert_eq!(report.lost, 0);
}
