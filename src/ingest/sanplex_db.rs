//! `[sanplex_db]` source (placeholder: being built).
