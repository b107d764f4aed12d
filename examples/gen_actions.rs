//! Writes a large, realistic NDJSON action log for load tests: the 300 sample actions of
//! `fixtures/actions.ndjson` (Chinese and English titles, comments with HTML, recipient lists)
//! repeated with fresh ids, objects, dates and products.
//!
//! `cargo run --release --example gen_actions -- OUT.ndjson [COUNT]` (COUNT defaults to 1,000,000).
//!
//! Every action gets a single product 1..=10 and an action the default trigger settings list
//! for its object type, so against ten webhooks scoped to one product each, every event matches
//! exactly one webhook. The benchmark `benches/tail.rs` uses the same generator.

use std::io::Write;

/// Products the generated events are spread over (one webhook each in the benchmark).
pub const PRODUCTS: u64 = 10;

/// First generated id.
const FIRST_ID: u64 = 1_000_000;

/// Writes `count` actions to `out`; returns the bytes written.
pub fn write_actions(mut out: impl Write, count: u64) -> std::io::Result<u64> {
    let samples: Vec<serde_json::Value> = include_str!("../fixtures/actions.ndjson")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let triggers = sanhook::route::default_triggers();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .ok_or_else(|| std::io::Error::other("bad start date"))?;
    let mut written = 0u64;
    let mut line = Vec::with_capacity(1024);
    for i in 0..count {
        let mut e = samples[(i % samples.len() as u64) as usize].clone();
        let round = i / samples.len() as u64;
        e["id"] = (FIRST_ID + i).into();
        // Passes over the samples touch other objects of the same kinds, and come back to them:
        // about 90,000 objects with a dozen actions each, like a busy year of Sanplex.
        let object = e["objectID"].as_u64().unwrap_or(1) + round % 300 * 1000;
        e["objectID"] = object.into();
        e["product"] = format!(",{},", i % PRODUCTS + 1).into();
        let ty = e["objectType"].as_str().unwrap_or("bug").to_string();
        let action = e["action"].as_str().unwrap_or("").to_string();
        match triggers.get(&ty) {
            Some(actions) if actions.contains(&action) => {}
            Some(actions) if !actions.is_empty() => {
                e["action"] = actions[(i as usize) % actions.len()].clone().into();
            }
            _ => {
                e["objectType"] = "bug".into();
                e["action"] = "edited".into();
            }
        }
        // About ten actions a second, as a busy Sanplex would log them.
        let at = start + chrono::Duration::milliseconds(i as i64 * 100);
        e["date"] = at.format("%Y-%m-%d %H:%M:%S").to_string().into();
        line.clear();
        serde_json::to_writer(&mut line, &e)?;
        line.push(b'\n');
        out.write_all(&line)?;
        written += line.len() as u64;
    }
    out.flush()?;
    Ok(written)
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: gen_actions OUT.ndjson [COUNT]");
        std::process::exit(2);
    };
    let count = match args.next().map(|c| c.replace('_', "").parse::<u64>()) {
        None => 1_000_000,
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("gen_actions: COUNT must be a whole number: {e}");
            std::process::exit(2);
        }
    };
    let file = std::fs::File::create(&path)?;
    let bytes = write_actions(std::io::BufWriter::with_capacity(1 << 20, file), count)?;
    eprintln!(
        "gen_actions: wrote {count} actions, {:.1} MiB, to {path}",
        bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
