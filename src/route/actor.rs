//! The router actor: owns the rule index, routes batches, takes live updates.

use std::sync::Arc;

use actix::prelude::*;

use super::RuleIndex;
use crate::event::ActionEvent;
use crate::webhook::{Triggers, Webhook};

/// Holds the in-memory rule index. Routing and updates are messages, so an update never races
/// a batch half-routed.
pub struct Router {
    index: RuleIndex,
}

impl Router {
    /// A router over an index already filled.
    pub fn new(index: RuleIndex) -> Router {
        Router { index }
    }
}

impl Actor for Router {
    type Context = Context<Self>;
}

/// Route a batch: returns the events with, per event, the ids of the webhooks that fire.
#[derive(Message)]
#[rtype(result = "(Vec<ActionEvent>, Vec<Vec<u64>>)")]
pub struct RouteBatch(pub Vec<ActionEvent>);

impl Handler<RouteBatch> for Router {
    type Result = MessageResult<RouteBatch>;

    fn handle(&mut self, msg: RouteBatch, _: &mut Self::Context) -> Self::Result {
        let mut routes = Vec::with_capacity(msg.0.len());
        for ev in &msg.0 {
            let mut out = Vec::new();
            self.index.route(ev, &mut out);
            routes.push(out);
        }
        MessageResult((msg.0, routes))
    }
}

/// Insert or replace a webhook (a deleted one is removed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpsertRule(pub Arc<Webhook>);

impl Handler<UpsertRule> for Router {
    type Result = ();

    fn handle(&mut self, msg: UpsertRule, _: &mut Self::Context) {
        if msg.0.deleted {
            self.index.remove(msg.0.id);
        } else {
            self.index.upsert(msg.0);
        }
    }
}

/// Replace the global trigger settings.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetTriggers(pub Triggers);

impl Handler<SetTriggers> for Router {
    type Result = ();

    fn handle(&mut self, msg: SetTriggers, _: &mut Self::Context) {
        self.index.set_triggers(msg.0);
    }
}
