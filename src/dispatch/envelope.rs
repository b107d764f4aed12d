//! What dispatch reads and reserves before an attempt, so that `deliver` gets it in the
//! [`Envelope`] and never touches the store: the webhook's bindings, and for a channel with a
//! per-member budget (WeCom app messages) the members' slots.
//!
//! The per-member hand-off is two steps around one synchronous point. The channel says which
//! members an attempt would send to ([`crate::deliver::Channel::member_demand`], pure); the
//! destination actor takes slots for those within budget from its [`Keyed`] limiter and queues
//! the budget's checkpoint write at once, in the same turn of the actor; the attempt then waits
//! for that commit before it sends, and only to the granted members. So the checkpoint is on
//! disk before the send (a crash after it wastes a slot, never exceeds one), and two sends in
//! flight for one app write their snapshots in the order they took their slots, so the newest
//! is what stays.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rustc_hash::FxHashMap;

use super::destination::STORE_RETRY;
use super::limiter::Keyed;
use super::DispatchCtx;
use crate::deliver::{channel, Attempt, Deliverer, Envelope, MemberDemand, MemberGrant, Outcome};
use crate::event::ActionEvent;
use crate::store::{Checkpoint, StoreError};

/// The commit of a budget's checkpoint, queued already.
type SavedBudget = BoxFuture<'static, Result<(), StoreError>>;

/// The checkpoint key of one app's per-member budget (as before the budget moved to dispatch,
/// so that a budget saved by an older build is read back).
fn members_key(budget: &str) -> String {
    format!("rate:wecom-members:{budget}")
}

/// The per-member budgets of one destination, by credential set; each is read back from its
/// checkpoint the first time it is used.
#[derive(Default)]
pub(super) struct MemberBudgets(FxHashMap<String, Keyed>);

impl MemberBudgets {
    /// Takes the slots `demand` asks for; returns the grant and the checkpoint write, already
    /// queued. `Err` when the saved budget cannot be read (sending without it could exceed it).
    fn take(
        &mut self,
        ctx: &DispatchCtx,
        demand: MemberDemand,
    ) -> Result<(MemberGrant, Option<SavedBudget>), String> {
        let key = members_key(&demand.budget);
        if !self.0.contains_key(&demand.budget) {
            let saved: HashMap<String, Vec<i64>> = match ctx.store.checkpoint(&key) {
                // A budget that no longer decodes is dropped: it is a minute's worth at most.
                Ok(Some(raw)) => serde_json::from_slice(&raw).unwrap_or_default(),
                Ok(None) => HashMap::new(),
                Err(e) => return Err(format!("could not read the member send budget: {e}")),
            };
            self.0
                .insert(demand.budget.clone(), Keyed::new(demand.windows, saved));
        }
        let Some(budget) = self.0.get_mut(&demand.budget) else {
            return Err("member send budget missing".into());
        };
        let now = ctx.clock.wall_ms();
        let (granted, held) = budget.take(&demand.members, now);
        // Nothing taken, nothing to save: the held members are sent nothing.
        let saved = (!granted.is_empty()).then(|| {
            let value = serde_json::to_vec(&budget.snapshot(now)).unwrap_or_default();
            Box::pin(ctx.store.queue_checkpoint(Checkpoint { key, value })) as SavedBudget
        });
        Ok((MemberGrant { granted, held }, saved))
    }
}

/// An attempt ready to start: its envelope, and the budget write to wait for before the send.
pub(super) struct Ready {
    env: Envelope,
    saved: Option<SavedBudget>,
}

impl Ready {
    /// Waits for the budget to be on disk, then makes the attempt.
    pub(super) async fn run(self, deliverer: &Deliverer) -> Attempt {
        if let Some(saved) = self.saved {
            if let Err(e) = saved.await {
                return Attempt::failed_before_send(Outcome::Retry {
                    after: Some(STORE_RETRY),
                    error: format!("could not save the member send budget: {e}"),
                });
            }
        }
        deliverer.attempt(&self.env).await
    }
}

/// Prepares the attempt of delivery `id` of `webhook_id` about `event`: the webhook as it is
/// now, its bindings when its channel needs them (read now, so a change applies to the next
/// attempt), and the member slots it takes. `Err` is the outcome to record without sending
/// (webhook deleted: skipped; store unreadable: retried).
pub(super) fn prepare(
    ctx: &DispatchCtx,
    budgets: &mut MemberBudgets,
    id: u64,
    webhook_id: u64,
    event: Arc<ActionEvent>,
    progress: Option<serde_json::Value>,
) -> Result<Ready, Outcome> {
    let webhook = match ctx.webhooks.get(&webhook_id).map(|w| w.clone()) {
        Some(wh) if !wh.deleted => wh,
        _ => return Err(Outcome::Skipped("webhook deleted".into())),
    };
    let retry = |after, error| Outcome::Retry { after, error };
    let ch = channel(webhook.kind);
    let mut env = Envelope::new(webhook, event, id);
    env.progress = progress;
    if ch.needs_bindings() {
        // A blocking read, on this worker's thread: a redb read transaction takes microseconds
        // and never waits for the writer.
        env.bindings = ctx.store.bindings(webhook_id).map_err(|e| {
            let error = format!("could not read the bindings of webhook {webhook_id}: {e}");
            retry(None, error)
        })?;
    }
    let mut saved = None;
    if let Some(demand) = ch.member_demand(&env, &ctx.cfg) {
        let (grant, write) = budgets
            .take(ctx, demand)
            .map_err(|e| retry(Some(STORE_RETRY), e))?;
        env.members = Some(grant);
        saved = write;
    }
    Ok(Ready { env, saved })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use dashmap::DashMap;

    use super::*;
    use crate::config::Config;
    use crate::metrics::Metrics;
    use crate::store::Store;
    use crate::webhook::{Webhook, WebhookType};

    fn ctx(store: &Store) -> DispatchCtx {
        let cfg =
            Config::from_toml_str("[limits]\nwechatuser_member = [\"2/60s\"]\n").expect("config");
        let webhooks = DashMap::new();
        let wh = Webhook {
            id: 1,
            kind: WebhookType::Wechatuser,
            wechat_corp_id: "corp".into(),
            wechat_corp_secret: "secret".into(),
            wechat_agent_id: "1000002".into(),
            ..Webhook::default()
        };
        webhooks.insert(1, Arc::new(wh));
        DispatchCtx {
            cfg: Arc::new(cfg),
            store: store.clone(),
            events: crate::dispatch::EventCache::new(store.clone(), 100),
            webhooks: Arc::new(webhooks),
            metrics: Arc::new(Metrics::new()),
            clock: crate::clock::Clock::system(),
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }
    }

    fn granted(r: &Ready) -> Vec<String> {
        r.env
            .members
            .as_ref()
            .map(|g| g.granted.clone())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn bindings_are_read_per_attempt_and_member_budgets_survive_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("d.redb")).expect("store");
        let ctx = ctx(&store);
        let bind = |userid: &str| vec![("bob".to_string(), Some(userid.to_string()))];
        store.put_bindings(1, bind("u-bob")).await.expect("bind");
        let ev = Arc::new(ActionEvent {
            actor: "alice".into(),
            to_list: vec!["bob".into()],
            ..ActionEvent::default()
        });
        let mut budgets = MemberBudgets::default();
        for _ in 0..2 {
            let r = prepare(&ctx, &mut budgets, 7, 1, ev.clone(), None).expect("ready");
            assert_eq!(granted(&r), vec!["u-bob"]);
            // The budget is committed before the attempt may send.
            r.saved.expect("a budget to save").await.expect("saved");
        }
        // A restart: the budgets are read back from the store, and bob's is spent.
        let mut restarted = MemberBudgets::default();
        let r = prepare(&ctx, &mut restarted, 7, 1, ev.clone(), None).expect("ready");
        assert!(granted(&r).is_empty(), "the restored budget is spent");
        let held = r
            .env
            .members
            .as_ref()
            .map(|g| g.held.clone())
            .unwrap_or_default();
        assert_eq!(held.len(), 1);
        assert!(r.saved.is_none(), "nothing taken, nothing saved");
        // A binding changed through the API applies to the next attempt.
        store
            .put_bindings(1, bind("u-bob-2"))
            .await
            .expect("rebind");
        let r = prepare(&ctx, &mut restarted, 7, 1, ev, None).expect("ready");
        assert_eq!(r.env.bindings, vec![("bob".into(), "u-bob-2".into())]);
        assert_eq!(granted(&r), vec!["u-bob-2"]);
    }

    #[test]
    fn a_deleted_webhook_is_skipped_without_reading_anything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("d.redb")).expect("store");
        let ctx = ctx(&store);
        let ev = Arc::new(ActionEvent::default());
        let got = prepare(&ctx, &mut MemberBudgets::default(), 1, 99, ev, None).err();
        assert_eq!(got, Some(Outcome::Skipped("webhook deleted".into())));
    }
}
