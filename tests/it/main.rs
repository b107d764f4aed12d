//! The one integration-test binary: behaviour through the HTTP API against real sockets.

mod support;

mod addresses;
mod admin;
mod api;
mod browsers;
mod burst;
mod cli;
mod clock;
mod crash;
mod delivery;
mod faults;
mod fuzz_corpus;
mod hostile;
mod import;
mod kill_loop;
mod messages;
mod openapi;
mod platforms;
mod recover_stats;
mod sanplex_db;
mod secrets;
mod storage;
mod tail;
