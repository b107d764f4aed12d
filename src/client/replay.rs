//! `sanhook replay` (placeholder: being built).
