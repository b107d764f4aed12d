//! `[sanplex_db]` source (placeholder: being built).

use crate::{Engine, Error};

/// Starts the database poller when `sanplex_db.url` is set.
pub fn start(_engine: &Engine) -> Result<(), Error> {
    Ok(())
}
