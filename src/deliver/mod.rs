//! Delivery: build the body, sign it, send it, classify the reply. The only code that makes
//! outbound HTTP.

pub mod chat;
pub mod payload;
pub mod sign;
pub mod text;
