//! Dispatch: one actor per destination, keeping per-object order and retry timing.
//!
//! The [`Dispatcher`] hands each delivery to the [`Destination`] actor of where it goes (for a
//! `default` webhook: the webhook). A destination keeps one queue per object (objectType +
//! objectID): only the head of a queue is ever in flight, so a later event about an object waits
//! while an earlier one is retrying, and other objects go on. Every state change is committed to
//! the store before the next delivery of the same object starts.

mod destination;
pub mod limiter;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use dashmap::DashMap;

pub use destination::Destination;

use crate::config::Config;
use crate::config::Window;
use crate::deliver::Deliverer;
use crate::metrics::Metrics;
use crate::store::{OpenDelivery, Store};
use crate::webhook::{SendType, Webhook, WebhookType};

/// A bot's identity: its URL without the per-request `timestamp`/`sign` parameters.
fn bot_identity(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "timestamp" && k != "sign")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                u.set_query(None);
            } else {
                u.query_pairs_mut().clear().extend_pairs(kept);
            }
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// What every destination actor shares.
pub struct DispatchCtx {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub deliverer: Deliverer,
    /// The live webhooks by id (deleted ones removed): deliveries are rendered from the webhook
    /// as it is when they are sent.
    pub webhooks: Arc<DashMap<u64, Arc<Webhook>>>,
    pub metrics: Arc<Metrics>,
    /// Sends under way, across all destinations (for a graceful drain).
    pub in_flight: AtomicUsize,
    /// Set on shutdown: no new sends start.
    pub draining: AtomicBool,
}

/// A delivery waiting in a destination.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery: OpenDelivery,
    /// When it may be sent; `None` = held until the next async flush.
    pub not_before: Option<Instant>,
}

/// New (or resumed, or re-queued) deliveries.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue {
    pub deliveries: Vec<OpenDelivery>,
    /// Send at once even if the webhook is async (manual retry).
    pub now: bool,
}

/// Release every held async delivery now.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Flush;

/// A webhook was deleted: its queued deliveries end `skipped`.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Purge(pub u64);

/// Stop starting sends; resolves when none is in flight or `timeout` passed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain(pub Duration);

/// Routes deliveries to destination actors and runs the async flush timer.
pub struct Dispatcher {
    ctx: Arc<DispatchCtx>,
    destinations: HashMap<String, Addr<Destination>>,
}

impl Dispatcher {
    /// A dispatcher over `ctx`; start it with `Actor::start`.
    pub fn new(ctx: Arc<DispatchCtx>) -> Dispatcher {
        Dispatcher {
            ctx,
            destinations: HashMap::new(),
        }
    }

    /// Where a webhook's deliveries go, and that destination's rate windows. Deliveries of one
    /// destination share its order and its budget: two webhooks on one bot share the bot's.
    fn destination_key(&self, webhook_id: u64) -> (String, Vec<Window>) {
        let Some(wh) = self.ctx.webhooks.get(&webhook_id).map(|w| w.clone()) else {
            return (format!("wh:{webhook_id}"), vec![]);
        };
        let limits = &self.ctx.cfg.limits;
        let bot = |windows: &Vec<Window>| {
            (
                format!("bot:{}:{}", wh.kind, bot_identity(&wh.url)),
                windows.clone(),
            )
        };
        match wh.kind {
            WebhookType::Default => (format!("wh:{webhook_id}"), vec![]),
            WebhookType::Dinggroup => bot(&limits.dinggroup),
            WebhookType::Wechatgroup => bot(&limits.wechatgroup),
            WebhookType::Feishugroup => bot(&limits.feishugroup),
            WebhookType::Dinguser => (
                format!("app:dinguser:{}:{}", wh.app_key, wh.agent_id),
                vec![],
            ),
            WebhookType::Wechatuser => (
                format!(
                    "app:wechatuser:{}:{}",
                    wh.wechat_corp_id, wh.wechat_agent_id
                ),
                vec![],
            ),
            WebhookType::Feishuuser => (
                format!("app:feishuuser:{}:{}", wh.api_base, wh.feishu_app_id),
                vec![],
            ),
        }
    }

    fn destination(&mut self, key: String, windows: Vec<Window>) -> Addr<Destination> {
        let ctx = self.ctx.clone();
        self.destinations
            .entry(key)
            .or_insert_with_key(|k| Destination::new(k.clone(), ctx, windows).start())
            .clone()
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.ctx.cfg.delivery.async_interval, |act, _| {
            for d in act.destinations.values() {
                d.do_send(Flush);
            }
        });
    }
}

impl Handler<Enqueue> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, _: &mut Self::Context) {
        let now = Instant::now();
        let wall = chrono::Utc::now().timestamp_millis();
        // Destinations of this message: (key, windows, jobs); webhooks are looked up once each.
        let mut dests: Vec<(String, Vec<Window>, Vec<Job>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut per_webhook: HashMap<u64, (usize, bool)> = HashMap::new();
        for d in msg.deliveries {
            let (slot, is_async) = *per_webhook.entry(d.webhook_id).or_insert_with(|| {
                let (key, windows) = self.destination_key(d.webhook_id);
                let is_async = self
                    .ctx
                    .webhooks
                    .get(&d.webhook_id)
                    .is_some_and(|w| w.send_type == SendType::Async);
                let slot = *index.entry(key.clone()).or_insert_with(|| {
                    dests.push((key, windows, vec![]));
                    dests.len() - 1
                });
                (slot, is_async)
            });
            let not_before = if msg.now {
                Some(now)
            } else if let Some(at) = d.state.next_attempt_at {
                Some(now + Duration::from_millis((at - wall).max(0) as u64))
            } else if is_async && d.state.attempts == 0 {
                None
            } else {
                Some(now)
            };
            dests[slot].2.push(Job {
                delivery: d,
                not_before,
            });
        }
        for (key, windows, jobs) in dests {
            self.ctx.metrics.queue(jobs.len() as i64);
            self.destination(key, windows)
                .do_send(destination::Jobs(jobs));
        }
    }
}

impl Handler<Flush> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Self::Context) {
        for d in self.destinations.values() {
            d.do_send(Flush);
        }
    }
}

impl Handler<Purge> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Purge, _: &mut Self::Context) {
        for d in self.destinations.values() {
            d.do_send(msg);
        }
    }
}

impl Handler<Drain> for Dispatcher {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, _: &mut Self::Context) -> Self::Result {
        self.ctx.draining.store(true, Ordering::SeqCst);
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let deadline = Instant::now() + msg.0;
            while ctx.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }
}
