//! Stamps the git commit into the binary for `sanhook --version` (`unknown` outside a git
//! checkout, e.g. a crate from a registry).

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SANHOOK_COMMIT={commit}");
    // A commit or a checkout moves HEAD or the branch it names. Only files that exist are
    // named: a missing one would make cargo run this script on every build.
    println!("cargo:rerun-if-changed=build.rs");
    if Path::new(".git/HEAD").is_file() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
            if let Some(r) = head.strip_prefix("ref: ") {
                let r = format!(".git/{}", r.trim());
                if Path::new(&r).is_file() {
                    println!("cargo:rerun-if-changed={r}");
                }
                // After `git gc` the branch lives in packed-refs.
                if Path::new(".git/packed-refs").is_file() {
                    println!("cargo:rerun-if-changed=.git/packed-refs");
                }
            }
        }
    }
}
