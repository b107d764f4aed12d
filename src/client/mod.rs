//! Commands that are clients of a running server (`replay`, `import-sanplex`): they take its
//! address and token from the same config, and exit 2 when no server answers. `loadtest` is the
//! exception: it starts its own server (a child process) and its own receiver. All of them talk
//! to the server through [`api::Api`].

pub mod api;
pub mod import;
pub mod loadtest;
pub mod replay;

use std::future::Future;

/// Runs a client command's future on a runtime of its own (one thread: a client waits on one
/// server); returns its exit code, or 2 when no runtime can be started.
fn block_on(command: &str, run: impl Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run),
        Err(e) => {
            eprintln!("sanhook {command}: cannot start the async runtime: {e}");
            2
        }
    }
}
