//! `[[tail]]` file tailer (placeholder: being built).

use crate::{Engine, Error};

/// Starts a tailer per `[[tail]]` entry.
pub fn start(_engine: &Engine) -> Result<(), Error> {
    Ok(())
}
