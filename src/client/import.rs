//! `sanhook import-sanplex` (placeholder: being built).
