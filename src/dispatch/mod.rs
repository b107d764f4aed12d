//! Dispatch: per-destination actors keeping per-object order and retry timing, sharded over
//! worker threads.
//!
//! The [`Dispatcher`] hands each delivery to the [`Destination`] actor of where it goes (for a
//! `default` webhook: the webhook). Destinations are spread over `delivery.workers` threads
//! ([`Worker`], by a stable hash of the destination's name: [`shard_of`]); each worker owns its
//! destinations whole — their queues, limiter budgets and checkpoint keys — and has its own HTTP
//! client. A destination keeps one queue per object (objectType + objectID): only the head of a
//! queue is ever in flight, so a later event about an object waits while an earlier one is
//! retrying, and other objects go on. A queued delivery is a [`Job`] of a few integers; its event
//! is read back at send time ([`EventCache`]). Every state change is committed to the store
//! before the next delivery of the same object starts; the outcomes of one destination are
//! committed in groups.

mod destination;
mod envelope;
pub mod events;
pub mod limiter;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use dashmap::DashMap;

pub use destination::Destination;
pub use events::EventCache;

use crate::clock::Clock;
use crate::config::Config;
use crate::config::Window;
use crate::deliver::Deliverer;
use crate::event::ActionEvent;
use crate::metrics::Metrics;
use crate::store::{split_delivery_id, BatchEvents, DeliveryState, OpenDelivery, Store};
use crate::webhook::{SendType, Webhook};

/// What every destination actor shares.
pub struct DispatchCtx {
    pub cfg: Arc<Config>,
    pub store: Store,
    /// The events of queued deliveries, read back from the store when not cached.
    pub events: EventCache,
    /// The live webhooks by id (deleted ones removed): deliveries are rendered from the webhook
    /// as it is when they are sent.
    pub webhooks: Arc<DashMap<u64, Arc<Webhook>>>,
    pub metrics: Arc<Metrics>,
    /// Every "now" and every wait of scheduling (retries, windows, pauses, async flushes).
    pub clock: Clock,
    /// Sends under way (until their outcome is committed), across all destinations (for a
    /// graceful drain).
    pub in_flight: AtomicUsize,
    /// Set on shutdown: no new sends start.
    pub draining: AtomicBool,
}

/// A delivery waiting in a destination: a few integers (32 bytes). Its event (and the time it
/// was committed) is read back at send time ([`EventCache`]); its state is held only once it
/// differs from "pending, never attempted".
#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub webhook_id: u64,
    /// When it may be sent, as milliseconds on the dispatch clock ([`clock_ms`]); [`HELD`] =
    /// held until the next async flush.
    due: u64,
    /// The state after earlier attempts (retrying, or re-queued by hand); `None` = pending.
    pub state: Option<Box<DeliveryState>>,
}

/// A job's `due` while it is held for the async flush.
const HELD: u64 = u64::MAX;

/// The dispatch clock's origin: a job's due time is kept in 8 bytes as milliseconds since it.
pub(crate) fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The furthest ahead dispatch ever schedules anything: a wait past it (a hostile
/// `Retry-After`, a corrupt record) means "not in this process's life" all the same.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `now + wait`, never overflowing the clock (`Instant + Duration` panics past its range, and a
/// wait can come from a receiver's header): waits beyond [`FAR_FUTURE`] are cut to it.
pub(crate) fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(FAR_FUTURE)).unwrap_or(now)
}

/// `t` in milliseconds on the dispatch clock (rounded up, so a job is never early).
fn clock_ms(t: Instant) -> u64 {
    let d = t.saturating_duration_since(epoch());
    d.as_millis() as u64 + u64::from(d.subsec_nanos() % 1_000_000 != 0)
}

impl Job {
    /// A job due at `at` (`None`: held for the async flush).
    pub fn new(
        id: u64,
        webhook_id: u64,
        at: Option<Instant>,
        state: Option<Box<DeliveryState>>,
    ) -> Job {
        let mut j = Job {
            id,
            webhook_id,
            due: HELD,
            state,
        };
        j.set_due(at);
        j
    }

    /// When it may be sent; `None` = held until the next async flush.
    pub fn due(&self) -> Option<Instant> {
        (self.due != HELD).then(|| later(epoch(), Duration::from_millis(self.due)))
    }

    /// Sets when it may be sent (`None`: held).
    pub fn set_due(&mut self, at: Option<Instant>) {
        self.due = at.map_or(HELD, |t| clock_ms(t).min(HELD - 1));
    }
}

/// A dispatch worker: one thread owning a share (a shard) of the destinations, with its own
/// HTTP client and connection pool.
#[derive(Clone)]
pub struct Worker {
    pub arbiter: ArbiterHandle,
    pub deliverer: Deliverer,
}

/// An object's identity inside a destination: a hash of its type and its id. Two objects whose
/// keys collide share one queue, which keeps each one's order (and only costs them their
/// independence).
pub(crate) type ObjectKey = (u64, u64);

/// The key of an event's object.
pub(crate) fn object_key(ev: &ActionEvent) -> ObjectKey {
    (fnv1a(ev.object_type.as_bytes()), ev.object_id)
}

/// FNV-1a: stable across processes and builds, so a destination's shard never depends on a
/// random seed (a cluster node will own shards by this number).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The shard (worker index) that owns a destination.
pub fn shard_of(destination: &str, workers: usize) -> usize {
    (fnv1a(destination.as_bytes()) % workers.max(1) as u64) as usize
}

/// New (or resumed, or re-queued) deliveries.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue {
    pub deliveries: Vec<OpenDelivery>,
    /// Send at once even if the webhook is async (manual retry).
    pub now: bool,
    /// Read from the outbox at start: queued ahead of anything that arrives while resuming.
    pub resumed: bool,
}

/// The outbox has been read whole: what arrived meanwhile is queued now, behind it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResumeDone;

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

/// One destination's share of an [`Enqueue`]: its key, its rate windows, its jobs.
type DestinationJobs = (String, Vec<Window>, Vec<(ObjectKey, Job)>);

/// Routes deliveries to destination actors and runs the async flush timer.
pub struct Dispatcher {
    ctx: Arc<DispatchCtx>,
    workers: Vec<Worker>,
    destinations: HashMap<String, Addr<Destination>>,
    /// While the outbox is being resumed: new deliveries wait here, so that each object's older
    /// deliveries are queued first.
    waiting: Option<Vec<Enqueue>>,
}

impl Dispatcher {
    /// A dispatcher over `ctx` whose destinations live on `workers`; start it with
    /// `Actor::start`. With `resuming`, deliveries other than resumed ones wait for
    /// [`ResumeDone`].
    pub fn new(ctx: Arc<DispatchCtx>, workers: Vec<Worker>, resuming: bool) -> Dispatcher {
        Dispatcher {
            ctx,
            workers,
            destinations: HashMap::new(),
            waiting: resuming.then(Vec::new),
        }
    }

    /// Where a webhook's deliveries go, and that destination's rate windows (its channel's
    /// [`crate::deliver::Route`]). Deliveries of one destination share its order and its
    /// budget: two webhooks on one bot share the bot's.
    fn destination_key(&self, webhook_id: u64) -> (String, Vec<Window>) {
        let Some(wh) = self.ctx.webhooks.get(&webhook_id).map(|w| w.clone()) else {
            return (format!("wh:{webhook_id}"), vec![]);
        };
        let route = crate::deliver::channel(wh.kind).route(&wh, &self.ctx.cfg);
        (route.name, route.windows)
    }

    fn destination(&mut self, key: String, windows: Vec<Window>) -> Addr<Destination> {
        let ctx = self.ctx.clone();
        let workers = &self.workers;
        self.destinations
            .entry(key)
            .or_insert_with_key(|k| {
                let worker = workers[shard_of(k, workers.len())].clone();
                let name = k.clone();
                Destination::start_in_arbiter(&worker.arbiter.clone(), move |_| {
                    Destination::new(name, ctx, worker.deliverer, windows)
                })
            })
            .clone()
    }

    /// Offers the events of `deliveries` to the cache, one entry per batch.
    fn offer_events(&self, deliveries: &[OpenDelivery], resumed: bool) {
        let mut i = 0;
        while i < deliveries.len() {
            let (seq, _) = split_delivery_id(deliveries[i].id);
            let mut batch = BatchEvents {
                created_at: deliveries[i].created_at,
                ..BatchEvents::default()
            };
            let mut last: Option<&Arc<ActionEvent>> = None;
            while i < deliveries.len() && split_delivery_id(deliveries[i].id).0 == seq {
                let d = &deliveries[i];
                let (_, idx) = split_delivery_id(d.id);
                if batch.by_delivery.len() <= idx {
                    batch.by_delivery.resize(idx + 1, None);
                }
                if !last.is_some_and(|l| Arc::ptr_eq(l, &d.event)) {
                    batch.events += 1;
                }
                last = Some(&d.event);
                batch.by_delivery[idx] = Some(d.event.clone());
                i += 1;
            }
            self.ctx.events.offer(seq, batch, resumed);
        }
    }

    fn enqueue(&mut self, msg: Enqueue) {
        self.offer_events(&msg.deliveries, msg.resumed);
        let now = self.ctx.clock.now();
        let wall = self.ctx.clock.wall_ms();
        // Destinations of this message: (key, windows, jobs); webhooks are looked up once each.
        let mut dests: Vec<DestinationJobs> = Vec::new();
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
                Some(later(
                    now,
                    Duration::from_millis(at.saturating_sub(wall).max(0) as u64),
                ))
            } else if is_async && d.state.attempts == 0 {
                None
            } else {
                Some(now)
            };
            let state = (d.state != DeliveryState::default()).then(|| Box::new(d.state));
            dests[slot].2.push((
                object_key(&d.event),
                Job::new(d.id, d.webhook_id, not_before, state),
            ));
        }
        for (key, windows, jobs) in dests {
            self.ctx.metrics.queue(jobs.len() as i64);
            self.destination(key, windows)
                .do_send(destination::Jobs(jobs));
        }
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.flush_later(ctx);
    }
}

impl Dispatcher {
    /// Sends every destination a [`Flush`] each `delivery.async_interval` on the engine's clock.
    fn flush_later(&self, ctx: &mut Context<Self>) {
        let sleep = self.ctx.clock.sleep(self.ctx.cfg.delivery.async_interval);
        ctx.spawn(sleep.into_actor(self).map(|(), act, ctx| {
            for d in act.destinations.values() {
                d.do_send(Flush);
            }
            act.flush_later(ctx);
        }));
    }
}

impl Handler<Enqueue> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, _: &mut Self::Context) {
        match &mut self.waiting {
            Some(waiting) if !msg.resumed => waiting.push(msg),
            _ => self.enqueue(msg),
        }
    }
}

impl Handler<ResumeDone> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: ResumeDone, _: &mut Self::Context) {
        for msg in self.waiting.take().unwrap_or_default() {
            self.enqueue(msg);
        }
    }
}

/// Takes one send from the rate windows of a webhook's destination, for a send outside the queue
/// (`POST /webhooks/{id}/test`). `Err` holds how long until one is free and why.
#[derive(Message)]
#[rtype(result = "Result<(), (Duration, String)>")]
pub struct TakeSlot(pub u64);

impl Handler<TakeSlot> for Dispatcher {
    type Result = ResponseFuture<Result<(), (Duration, String)>>;

    fn handle(&mut self, msg: TakeSlot, _: &mut Self::Context) -> Self::Result {
        let (key, windows) = self.destination_key(msg.0);
        if windows.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let dest = self.destination(key, windows);
        Box::pin(async move {
            dest.send(msg)
                .await
                .unwrap_or_else(|_| Err((Duration::from_secs(1), "the destination is gone".into())))
        })
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
