//! Commands that are clients of a running server (`replay`, `import-sanplex`): they take its
//! address and token from the same config, and exit 2 when no server answers.

pub mod import;
pub mod replay;
