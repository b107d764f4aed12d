//! Issue 8's hostile input: every committed fuzz input (`fuzz/corpus/<target>/`) and every
//! fixed crash (`fuzz/regressions/<target>/`) replayed through the fuzz targets' own checks
//! (`fuzz/checks.rs`) on the stable toolchain: none may panic, and none may take over 100 ms.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

#[path = "../../fuzz/checks.rs"]
mod checks;

/// The bound per input. `checks::SLOW` (100 ms) on a release build (`cargo test --release`, as
/// `.ci/run` does); an unoptimised build runs simd-json and MiniJinja ~10× slower, so a debug
/// build allows 10× that: it still catches a stall, the release run holds the real bound.
fn limit() -> Duration {
    if cfg!(debug_assertions) {
        checks::SLOW * 10
    } else {
        checks::SLOW
    }
}

/// The fastest of a few runs, so that a test running beside the suite's busy tests on two cores
/// is not failed by a descheduling; an input that is slow by itself is slow every time.
fn fastest(check: checks::Check, data: &[u8]) -> Duration {
    let mut best = checks::timed(check, data);
    for _ in 0..2 {
        if best <= limit() {
            break;
        }
        best = best.min(checks::timed(check, data));
    }
    best
}

#[test]
fn every_fuzz_input_is_handled_quickly_without_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = vec![];
    let mut total = 0;
    for (target, check) in checks::TARGETS {
        let mut files = vec![];
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                assert_ne!(dir, "corpus", "fuzz/corpus/{target} is missing");
                continue;
            };
            files.extend(entries.map(|e| e.expect("a readable directory").path()));
        }
        files.sort();
        assert!(!files.is_empty(), "no inputs for {target}");
        let mut slowest = (Duration::ZERO, String::new());
        for path in &files {
            let data = std::fs::read(path).expect("a readable input");
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string();
            match catch_unwind(AssertUnwindSafe(|| fastest(check, &data))) {
                Ok(took) if took > limit() => {
                    failures.push(format!("{shown}: {took:?} (limit {:?})", limit()))
                }
                Ok(took) => {
                    if took > slowest.0 {
                        slowest = (took, shown);
                    }
                }
                Err(_) => failures.push(format!("{shown}: panicked (message above)")),
            }
        }
        total += files.len();
        println!(
            "{target}: {} inputs, slowest {:?} ({})",
            files.len(),
            slowest.0,
            slowest.1
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {total} fuzz inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
