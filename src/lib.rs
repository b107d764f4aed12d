//! sanhook: a webhook dispatch engine for Sanplex (ZenTao) action logs.

pub mod api;
pub mod config;
pub mod deliver;
pub mod dispatch;
pub mod event;
pub mod ingest;
pub mod route;
pub mod store;
pub mod webhook;
