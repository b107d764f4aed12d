//! `sanhook import-sanplex --db URL` (placeholder: being built).

use crate::Config;

/// Runs the command; returns the process exit code.
pub fn run(_cfg: &Config, _db: &str) -> i32 {
    eprintln!("sanhook: import-sanplex is not built yet");
    2
}
