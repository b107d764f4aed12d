//! Parsing throughput of action events (docs/reference.md §3): the intake and the tailer's hot path.
//!
//! Bodies are built from `fixtures/actions.ndjson` (300 realistic events, ~285 bytes each).
//! Parsing overwrites its input, so every iteration gets a fresh copy, made outside the timing.
//!
//! Batches allocate ~11 small strings per event and free them all between iterations, so glibc's
//! heap trimming shows up here (page faults): compare with `MALLOC_TRIM_THRESHOLD_=268435456
//! MALLOC_MMAP_THRESHOLD_=268435456` to see the parser's own cost.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sanhook::event::{parse_body, parse_event, BodyFormat, EventParser};

const NOW: &str = "2026-01-05 18:35:21";
const SAMPLE: &str = include_str!("../fixtures/actions.ndjson");
const BATCH: usize = 1000;

/// `BATCH` sample lines, cycling through the file, as an NDJSON body.
fn ndjson_batch() -> Vec<u8> {
    let mut body = Vec::new();
    for line in SAMPLE.lines().cycle().take(BATCH) {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    body
}

/// The same events as one JSON array.
fn array_batch() -> Vec<u8> {
    let lines: Vec<&str> = SAMPLE.lines().cycle().take(BATCH).collect();
    format!("[{}]", lines.join(",")).into_bytes()
}

fn batches(c: &mut Criterion) {
    sanhook::tune_allocator();
    let ndjson = ndjson_batch();
    let array = array_batch();
    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("ndjson_1000", |b| {
        b.iter_batched_ref(
            || ndjson.clone(),
            |body| parse_body(black_box(body), BodyFormat::Ndjson, NOW).map(|v| v.len()),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("array_1000", |b| {
        b.iter_batched_ref(
            || array.clone(),
            |body| parse_body(black_box(body), BodyFormat::Auto, NOW).map(|v| v.len()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn single(c: &mut Criterion) {
    // A typical line: the first sample event (all keys, Chinese title, two recipients).
    let line = SAMPLE
        .lines()
        .next()
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let mut group = c.benchmark_group("single");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_event", |b| {
        b.iter_batched_ref(
            || line.clone(),
            |bytes| parse_event(black_box(bytes), NOW),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("event_parser_reused", |b| {
        let mut parser = EventParser::new();
        b.iter_batched_ref(
            || line.clone(),
            |bytes| parser.parse_event(black_box(bytes), NOW),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, batches, single);
criterion_main!(benches);
