//! Commands that are clients of a running server (`replay`, `import-sanplex`): they take its
//! address and token from the same config, and exit 2 when no server answers. `loadtest` is the
//! exception: it starts its own server (a child process) and its own receiver.

pub mod import;
pub mod loadtest;
pub mod replay;
