//! `sanhook replay FILE...` (placeholder: being built).

use std::path::PathBuf;

use crate::Config;

/// Runs the command; returns the process exit code.
pub fn run(_cfg: &Config, _files: &[PathBuf]) -> i32 {
    eprintln!("sanhook: replay is not built yet");
    2
}
