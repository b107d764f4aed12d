//! TODO (placeholder until the routing branch lands)

mod actor;
pub use actor::*;

use std::sync::Arc;

use crate::event::ActionEvent;
use crate::webhook::{Triggers, Webhook};

pub fn default_triggers() -> Triggers {
    Triggers::new()
}

pub struct RuleIndex;
impl RuleIndex {
    pub fn new(_t: Triggers) -> RuleIndex {
        RuleIndex
    }
    pub fn upsert(&self, _w: Arc<Webhook>) {}
    pub fn remove(&self, _id: u64) {}
    pub fn set_triggers(&self, _t: Triggers) {}
    pub fn route(&self, _ev: &ActionEvent, _out: &mut Vec<u64>) {}
}
