//! The crate's error: each stage's error folded into one, so embedders match on one type.

use crate::store::StoreError;
use crate::webhook::ValidationError;

/// Anything the engine can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is wrong; the message names the key.
    #[error("config: {0}")]
    Config(String),
    /// The store failed (disk full, damaged file, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A webhook was refused; the error names the field.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// Input was refused for another reason (the message says which and why).
    #[error("{0}")]
    BadRequest(String),
    /// No such thing (the message names it).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what is stored (the message names both sides).
    #[error("{0}")]
    Conflict(String),
    /// A platform user is already bound to another account of the same webhook.
    #[error(
        "platform user {userid} is already bound to account {bound_to}; cannot also bind it to \
         {account} (unbind {bound_to} first)"
    )]
    BindingConflict {
        userid: String,
        /// The account it is bound to.
        bound_to: String,
        /// The account the request wanted to bind it to.
        account: String,
    },
    /// The engine is shutting down or an actor is gone.
    #[error("the engine is shutting down")]
    Unavailable,
    /// Refused for now: a rate limit is spent; try again after `retry_after`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// A platform or other outside service failed.
    #[error("{0}")]
    Upstream(String),
}

impl From<actix::MailboxError> for Error {
    fn from(_: actix::MailboxError) -> Self {
        Error::Unavailable
    }
}
