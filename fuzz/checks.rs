//! What each fuzz target does with one input, shared by the targets (`fuzz/fuzz_targets/`) and
//! the corpus replay on the stable toolchain (`tests/it/fuzz_corpus.rs`), so both run exactly
//! the same checks. Included as a module with `#[path]`; stable Rust, no libFuzzer here.
//!
//! Each check calls the crate's real entry points for hostile input and asserts what must hold
//! whatever the bytes: no panic, errors that say what is wrong, and, when the input is accepted,
//! the invariants the rest of sanhook relies on (lists capped, a stored value reads back equal).
#![allow(dead_code)] // each fuzz target uses one check

use std::time::Duration;

use sanhook::api::parse_webhook;
use sanhook::deliver::template;
use sanhook::event::{
    parse_body, parse_body_at_most, parse_event, parse_line, BodyError, BodyFormat, EventParser,
    TooMany, MAX_ENTRIES,
};
use sanhook::webhook::{Webhook, WebhookType};
use sanhook::{ActionEvent, Config};

/// The most one input may take (issue 8), measured by the corpus replay on a release build.
pub const SLOW: Duration = Duration::from_millis(100);

/// What a target does with one input.
pub type Check = fn(&[u8]);

/// Every target: its name (the folder under `fuzz/corpus/` and `fuzz/regressions/`) and check.
pub const TARGETS: [(&str, Check); 4] = [
    ("event_body", event_body),
    ("webhook_json", webhook_json),
    ("config_toml", config_toml),
    ("template", template),
];

/// The ingestion time given to the parser: the `date` of events that carry none.
const NOW: &str = "2026-01-05 18:35:21";

/// The event parser (`POST /api/v1/events`, the tailer, the database source) on arbitrary bytes:
/// as one object, as a body (object, array or NDJSON, by content and as NDJSON), on the shared
/// parser and on one that parses arrays and NDJSON element by element, with and without an
/// event limit.
pub fn event_body(data: &[u8]) {
    let one = parse_event(&mut data.to_vec(), NOW);
    assert_eq!(
        one,
        parse_line(&mut data.to_vec(), NOW),
        "parse_line and parse_event disagree"
    );
    if let Ok(ev) = &one {
        accepted_event(ev);
    }
    for format in [BodyFormat::Auto, BodyFormat::Ndjson] {
        let body = parse_body(&mut data.to_vec(), format, NOW);
        // The element-by-element paths (split_array, line by line) that large bodies take must
        // give the answer of the one-call parse.
        let split =
            EventParser::new()
                .with_whole_max(0)
                .parse_body(&mut data.to_vec(), format, NOW);
        assert!(
            same_answer(&body, &split),
            "{format:?}: the whole and the split parse disagree:\n{body:?}\n{split:?}"
        );
        let none = parse_body_at_most(&mut data.to_vec(), format, NOW, 0);
        assert!(
            none.is_err(),
            "{format:?}: a body accepted with max_events 0"
        );
        match &body {
            Ok(events) => {
                assert!(!events.is_empty(), "{format:?}: accepted with no events");
                events.iter().for_each(accepted_event);
                let n = events.len();
                let at_most = parse_body_at_most(&mut data.to_vec(), format, NOW, n);
                assert_eq!(at_most.as_ref(), Ok(events), "{format:?}: max_events {n}");
                let over = parse_body_at_most(&mut data.to_vec(), format, NOW, n - 1);
                let too_many = over.map(|_| ()).unwrap_err().too_many;
                assert_eq!(
                    too_many,
                    Some(TooMany {
                        events: n,
                        limit: n - 1
                    }),
                    "{format:?}: {n} events with max_events {}",
                    n - 1
                );
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

/// Whether two parses of one body give the same answer: the same events, or the same error.
/// One exception: a body that is not JSON at all may be refused for a different first fault
/// (simd-json checks UTF-8 and the grammar of the whole body at once, the split parse element by
/// element), as long as both refuse the whole body as not JSON.
fn same_answer(
    a: &Result<Vec<ActionEvent>, BodyError>,
    b: &Result<Vec<ActionEvent>, BodyError>,
) -> bool {
    let not_json = |e: &BodyError| {
        e.index.is_none()
            && e.line.is_none()
            && e.key.is_none()
            && e.too_many.is_none()
            && (e.message.starts_with("invalid JSON") || e.message.starts_with("invalid UTF-8"))
    };
    match (a, b) {
        (Err(a), Err(b)) if a != b => not_json(a) && not_json(b),
        _ => a == b,
    }
}

/// What every accepted event holds, and that it is stored and read back unchanged (the outbox
/// keeps events as compact JSON and reparses them for each send).
fn accepted_event(ev: &ActionEvent) {
    for (key, len) in [
        ("product", ev.product.len()),
        ("toList", ev.to_list.len()),
        ("mentions", ev.mentions.len()),
        ("changes", ev.changes.as_ref().map_or(0, Vec::len)),
    ] {
        assert!(len <= MAX_ENTRIES, "{key}: {len} entries accepted");
    }
    for (key, value) in [
        ("objectType", &ev.object_type),
        ("actor", &ev.actor),
        ("action", &ev.action),
    ] {
        assert!(!value.trim().is_empty(), "{key} accepted blank");
    }
    assert_eq!(ev.date.len(), 19, "date {:?}", ev.date);
    assert!(!ev.product.contains(&0), "product 0 kept");
    let _ = ev.product_string();
    let json = serde_json::to_vec(ev).expect("an event serialises");
    let back: ActionEvent = serde_json::from_slice(&json).expect("a stored event reads back");
    assert_eq!(&back, ev, "serde round trip");
    let mut again = json.clone();
    let parsed = parse_event(&mut again, NOW).expect("a serialised event parses");
    assert_eq!(&parsed, ev, "parser round trip");
}

/// A webhook body (`POST`/`PUT /api/v1/webhooks`): a 400 or a webhook that validates without
/// panicking, shows masked, is stored and read back unchanged, and survives the GET-then-PUT
/// round trip (a masked secret or URL sent back keeps the stored one).
pub fn webhook_json(data: &[u8]) {
    let wh = match parse_webhook(data) {
        Ok(wh) => wh,
        Err(e) => {
            assert_eq!(e.status.as_u16(), 400, "{e}");
            assert!(
                e.body["error"].as_str().is_some_and(|m| !m.is_empty()),
                "{e}"
            );
            return;
        }
    };
    assert_eq!(
        wh.id, 0,
        "the id of a webhook body is assigned by the store"
    );
    if let Err(e) = wh.validate() {
        assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}");
    }
    let _ = format!("{wh:?}");
    let _ = wh.payload_keys();
    let stored = serde_json::to_vec(&wh).expect("a webhook serialises");
    let back: Webhook = serde_json::from_slice(&stored).expect("a stored webhook reads back");
    assert!(back == wh, "store round trip changed the webhook");
    let mut shown = wh.masked();
    let _ = serde_json::to_string(&shown).expect("a masked webhook serialises");
    match shown.keep_masked_secrets(&wh) {
        Ok(()) => assert!(shown == wh, "GET then PUT changed the webhook: {shown:?}"),
        Err(e) => panic!("GET then PUT refused: {e:?}"),
    }
}

/// A config file (`config.toml`, `check-config`): parsed, validated, and rendered the way
/// `check-config` prints it; a rendering without masked secrets is a config file again, whose
/// own rendering is the same. Only these three calls, so the target stays valid however the
/// parser is built.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::from_toml_str(text) {
        Ok(config) => config,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    if let Err(e) = config.validate() {
        assert!(!e.to_string().is_empty());
    }
    let shown = config.render_effective();
    if !shown.contains(sanhook::mask::MASK) {
        let again = Config::from_toml_str(&shown)
            .unwrap_or_else(|e| panic!("check-config's output does not parse: {e}\n{shown}"));
        assert_eq!(
            again.render_effective(),
            shown,
            "rendering is not a fixed point"
        );
    }
}

/// A message template as saved (`template.title`, `.text`, `.body`): the first byte picks the
/// field (and so the escaping: text for chat titles and texts, JSON for `default` bodies), the
/// rest is the source. `template::check` compiles it and renders the sample event, as the API
/// does on save; fuel and recursion limits must end any runaway.
pub fn template(data: &[u8]) {
    let Some((&which, source)) = data.split_first() else {
        return;
    };
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let (field, kind) = match which % 3 {
        0 => ("template.title", WebhookType::Dinggroup),
        1 => ("template.text", WebhookType::Wechatgroup),
        _ => ("template.body", WebhookType::Default),
    };
    if let Err(message) = template::check(field, source, kind) {
        assert!(message.starts_with(field), "{message}");
    }
}

/// Runs `check` on `data` and says how long it took: the thread's CPU time, so that on a busy
/// shared machine the time the thread spent descheduled does not count against the input.
pub fn timed(check: Check, data: &[u8]) -> Duration {
    let start = thread_cpu();
    check(data);
    thread_cpu().saturating_sub(start)
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// For the fuzz targets: runs `check` and reports each new slowest input (from 10 ms up) on
/// stderr, since libFuzzer's own `Slowest unit` counts whole seconds. An input over [`SLOW`] is
/// also written as `slow-<ms>ms-<bytes>b` beside libFuzzer's crash files (its
/// `-artifact_prefix`), to be replayed on a release build: instrumented builds run several times
/// slower, so the bound is not asserted here. `-timeout` catches stalls, the replay
/// (`tests/it/fuzz_corpus.rs`) holds the 100 ms bound.
pub fn fuzz_one(target: &str, check: Check, data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SLOWEST_US: AtomicU64 = AtomicU64::new(10_000);
    let took = timed(check, data);
    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    if us > SLOWEST_US.fetch_max(us, Ordering::Relaxed) {
        eprintln!(
            "#slowest {target}: {:.1} ms CPU, {} bytes",
            us as f64 / 1000.0,
            data.len()
        );
    }
    if took > SLOW {
        let prefix = std::env::args()
            .find_map(|a| a.strip_prefix("-artifact_prefix=").map(str::to_owned))
            .unwrap_or_default();
        let name = format!("{prefix}slow-{}ms-{}b", took.as_millis(), data.len());
        let _ = std::fs::write(name, data);
    }
}
