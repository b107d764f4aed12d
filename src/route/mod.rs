//! Routing: which webhooks fire for an action event.
//!
//! Pure: no IO, no clocks. The rules are docs/sanplex.md "Trigger actions" and "Scope filters" plus
//! the per-webhook `actions`, `ignoreActors` and `details` (the no-op edit rule) of docs/reference.md §4:
//!
//! - [`default_triggers`] is Sanplex's own default trigger table (every object type, every action);
//! - [`matches`] is the reference semantics for one webhook, written to be obviously right;
//! - [`RuleIndex`] answers the same question for all webhooks at once without scanning them, and is
//!   what ingestion calls for every event.
//!
//! The tests hold `RuleIndex::route` to agree with `matches` on the fixture table
//! (`fixtures/routing/cases.json`) and on randomised webhooks, events and updates.

mod actor;
mod index;
mod triggers;

#[cfg(test)]
mod tests;

pub use actor::{RouteBatch, Router, SetTriggers, UpsertRule};
pub use index::RuleIndex;
pub use triggers::{default_triggers, is_noop_edit, matches, OPERATOR};
