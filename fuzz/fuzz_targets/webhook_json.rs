//! `webhook_json`: see `fuzz/checks.rs` for what is checked, `fuzz/README.md` for how to run it.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::fuzz_one(
    "webhook_json",
    checks::webhook_json,
    data
));
