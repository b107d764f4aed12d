//! Builds and starts the actors; [`Engine`] is the handle the API, the binary and embedders use.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;

use crate::clock::Clock;
use crate::config::Config;
use crate::deliver::Deliverer;
use crate::dispatch::{
    DispatchCtx, Dispatcher, Drain, Enqueue, EventCache, Flush, Purge, ResumeDone, TakeSlot, Worker,
};
use crate::event::ActionEvent;
use crate::ingest::{IngestSummary, Intake};
use crate::metrics::Metrics;
use crate::route::{default_triggers, Router, RuleIndex, SetTriggers, UpsertRule};
use crate::store::{
    DeliveryQuery, DeliveryRecord, DeliveryState, OpenDelivery, StateUpdate, Status, Store,
    WebhookCounters,
};
use crate::webhook::{Triggers, Webhook};
use crate::Error;

/// Outbox batches read per page when resuming: the first sends start after the first page.
const RESUME_PAGE: usize = 16;

/// Starts the dispatch workers (one thread each) and the dispatcher, and resumes every delivery
/// left pending. The threads are added to `arbiters`, which shutdown stops.
async fn start_dispatch(
    ctx: Arc<DispatchCtx>,
    deliverer: &Deliverer,
    arbiters: &mut Vec<ArbiterHandle>,
) -> Result<Addr<Dispatcher>, Error> {
    let mut workers = Vec::new();
    for _ in 0..ctx.cfg.dispatch_workers() {
        let arbiter = Arbiter::new().handle();
        arbiters.push(arbiter.clone());
        workers.push(Worker {
            arbiter,
            deliverer: deliverer.with_own_client().map_err(Error::Config)?,
        });
    }
    let store = ctx.store.clone();
    let last_open = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.last_open_batch())
            .await
            .map_err(|e| Error::Config(format!("store: {e}")))??
    };
    let dispatch_arbiter = Arbiter::new().handle();
    arbiters.push(dispatch_arbiter.clone());
    let resuming = last_open.is_some();
    let dispatcher = Dispatcher::start_in_arbiter(&dispatch_arbiter, move |_| {
        Dispatcher::new(ctx, workers, resuming)
    });
    if let Some(upto) = last_open {
        actix::spawn(resume(store, dispatcher.clone(), upto));
    }
    Ok(dispatcher)
}

/// Gives freed memory back to the system now and then. Off the async threads: a trim walks the
/// whole heap (a few ms for hundreds of MB).
async fn trim_loop(engine: Weak<Inner>) {
    loop {
        tokio::time::sleep(TRIM_EVERY).await;
        if engine.strong_count() == 0 {
            break;
        }
        let _ = tokio::task::spawn_blocking(crate::trim_allocator).await;
    }
}

/// The endpoint-health and storage watch ([`crate::operator::Watch`]), once a second.
async fn health_loop(engine: Weak<Inner>) {
    let mut watch = crate::operator::Watch::default();
    loop {
        tokio::time::sleep(crate::operator::WATCH_EVERY).await;
        let Some(inner) = engine.upgrade() else { break };
        if *inner.stopping.borrow() {
            break;
        }
        watch.look(&Engine { inner }).await;
    }
}

/// Drops finished deliveries, quarantine and seen ids older than `storage.retention`.
async fn retention_loop(engine: Weak<Inner>) {
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        let Some(inner) = engine.upgrade() else { break };
        let cutoff = retention_cutoff(
            chrono::Utc::now().timestamp_millis(),
            inner.cfg.storage.retention,
        );
        // A pass removes a bounded number of rows per commit; go on until it is done.
        loop {
            match inner.store.prune(cutoff).await {
                Ok(s) => {
                    tracing::info!(
                        batches = s.batches,
                        quarantine = s.quarantine,
                        "retention pass"
                    );
                    let limit = crate::store::PRUNE_BATCHES_PER_COMMIT;
                    if s.batches < limit && s.quarantine < limit {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "retention pass failed");
                    break;
                }
            }
        }
    }
}

/// Reads the outbox a page at a time up to batch `upto` (the newest open one at start) and
/// hands it to the dispatcher, which holds new deliveries back until [`ResumeDone`]. Each page
/// waits for the dispatcher to take the previous one, so the outbox is never all in memory.
async fn resume(store: Store, dispatcher: Addr<Dispatcher>, upto: u64) {
    let started = std::time::Instant::now();
    let mut from = 0;
    let mut total = 0usize;
    let mut pause = Duration::from_secs(1);
    loop {
        let s = store.clone();
        let page =
            tokio::task::spawn_blocking(move || s.open_deliveries_page(from, upto, RESUME_PAGE))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        let (deliveries, next) = match page {
            Ok(p) => p,
            // Nothing pending is skipped: the page is read again until it can be (new
            // deliveries keep waiting behind it, so each object's order holds).
            Err(e) => {
                if !dispatcher.connected() {
                    return;
                }
                tracing::error!(error = %e, batch = from, retry_in = ?pause, "could not read the outbox; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        pause = Duration::from_secs(1);
        total += deliveries.len();
        if !deliveries.is_empty() {
            let msg = Enqueue {
                deliveries,
                now: false,
                resumed: true,
            };
            if dispatcher.send(msg).await.is_err() {
                return;
            }
        }
        match next {
            Some(n) => from = n,
            None => break,
        }
    }
    tracing::info!(
        count = total,
        took_ms = started.elapsed().as_millis() as u64,
        "resumed pending deliveries"
    );
    dispatcher.do_send(ResumeDone);
}

/// Dead deliveries re-queued per commit by [`Engine::recover`]: a large recovery is a series of
/// bounded commits and pages, never one transaction or the whole list in memory.
pub const RECOVER_PAGE: usize = 1000;

/// One webhook's line of `GET /api/v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStats {
    pub webhook_id: u64,
    pub name: String,
    pub counters: WebhookCounters,
}

/// How often finished deliveries past `storage.retention` are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The creation time (Unix ms) before which finished deliveries are dropped: `now_ms` less
/// `retention`, saturating. The config file bounds durations, but an embedder's `Config` may hold
/// any `Duration`: `as_millis() as i64` would wrap a huge one to -1, and a subtraction could
/// overflow, putting the cutoff in the future and dropping everything. A retention longer
/// than the clock has run drops nothing.
fn retention_cutoff(now_ms: i64, retention: Duration) -> i64 {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(retention_ms)
}

/// How often freed heap is handed back to the kernel ([`crate::trim_allocator`]).
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// How long a graceful shutdown waits for sends in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start an [`Engine`] other than with the defaults.
#[derive(Default)]
pub struct StartOptions {
    /// Injected storage write failures (tests of storage faults).
    pub faults: Option<Arc<crate::store::Faults>>,
    /// The clock dispatch and the endpoint-health watch read ([`Clock::system`] by default).
    pub clock: Clock,
}

/// A running engine. Cheap to clone. Must be started inside an actix `System`
/// (`#[actix_web::main]`, `#[actix_rt::test]`, or `actix_rt::System::new().block_on(..)`).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: Arc<Config>,
    store: Store,
    webhooks: Arc<DashMap<u64, Arc<Webhook>>>,
    triggers: std::sync::RwLock<Triggers>,
    router: Addr<Router>,
    dispatcher: Addr<Dispatcher>,
    /// For calls to the platforms outside deliveries (directory listings).
    deliverer: Deliverer,
    intake: Intake,
    metrics: Arc<Metrics>,
    clock: Clock,
    /// Serialises webhook changes so that the store, the registry and the index agree.
    changes: tokio::sync::Mutex<()>,
    /// The router's and the dispatcher's threads, stopped at shutdown so the store is released.
    arbiters: Vec<ArbiterHandle>,
    /// Set to true by [`Engine::shutdown`]: sources stop reading when they see it.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Engine {
    /// Opens the store, loads webhooks and settings, starts the router and the dispatcher, and
    /// resumes every delivery left pending.
    pub async fn start(cfg: Config) -> Result<Engine, Error> {
        Engine::start_with(cfg, StartOptions::default()).await
    }

    /// [`Engine::start`] with a chosen clock or injected store faults (simulations and tests).
    pub async fn start_with(cfg: Config, opts: StartOptions) -> Result<Engine, Error> {
        Engine::start_inner(cfg, opts).await
    }

    async fn start_inner(cfg: Config, opts: StartOptions) -> Result<Engine, Error> {
        let StartOptions { faults, clock } = opts;
        let cfg = Arc::new(cfg);
        let path = cfg.storage.path.clone();
        let store = tokio::task::spawn_blocking(move || match faults {
            Some(f) => Store::open_with_faults(&path, f),
            None => Store::open(&path),
        })
        .await
        .map_err(|e| Error::Config(format!("store: {e}")))??;
        let metrics = Arc::new(Metrics::new());
        let webhooks: Arc<DashMap<u64, Arc<Webhook>>> = Arc::new(DashMap::new());
        let triggers = store.triggers()?.unwrap_or_else(default_triggers);
        let index = RuleIndex::new(triggers.clone());
        for wh in store.webhooks()? {
            let wh = Arc::new(wh);
            index.upsert(wh.clone());
            webhooks.insert(wh.id, wh);
        }
        let router_arbiter = Arbiter::new().handle();
        let router = Router::start_in_arbiter(&router_arbiter, move |_| Router::new(index));
        let deliverer = Deliverer::new(cfg.clone(), store.instance()).map_err(Error::Config)?;
        let ctx = Arc::new(DispatchCtx {
            cfg: cfg.clone(),
            store: store.clone(),
            events: EventCache::new(store.clone(), crate::dispatch::events::DEFAULT_CAPACITY),
            webhooks: webhooks.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        });
        let mut arbiters = vec![router_arbiter];
        let dispatcher = start_dispatch(ctx, &deliverer, &mut arbiters).await?;
        let intake = Intake {
            sources: Arc::default(),
            store: store.clone(),
            router: router.clone(),
            dispatcher: dispatcher.clone(),
            metrics: metrics.clone(),
        };
        let engine = Engine {
            inner: Arc::new(Inner {
                cfg,
                store,
                webhooks,
                triggers: std::sync::RwLock::new(triggers),
                router,
                dispatcher,
                deliverer,
                intake,
                metrics,
                clock,
                changes: tokio::sync::Mutex::new(()),
                arbiters,
                stopping: tokio::sync::watch::channel(false).0,
            }),
        };
        crate::ingest::tail::start(&engine)?;
        crate::ingest::sanplex_db::start(&engine)?;
        let weak = Arc::downgrade(&engine.inner);
        actix::spawn(trim_loop(weak.clone()));
        actix::spawn(health_loop(weak.clone()));
        actix::spawn(retention_loop(weak));
        Ok(engine)
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    /// The clock scheduling reads ([`StartOptions::clock`]).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The store (for sources that commit checkpoints with their events).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The intake path every source ends in.
    /// The sources for `/healthz`: `{name: {"status": "running"}}` or `{"status": "paused",
    /// "reason": ...}`.
    pub fn sources(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for e in self.inner.intake.sources.iter() {
            let v = match e.value() {
                None => serde_json::json!({"status": "running"}),
                Some(why) => serde_json::json!({"status": "paused", "reason": why}),
            };
            out.insert(e.key().clone(), v);
        }
        serde_json::Value::Object(out)
    }

    pub fn intake(&self) -> &Intake {
        &self.inner.intake
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Becomes true when [`Engine::shutdown`] starts (and the sender is gone once the engine is
    /// dropped): sources spawned at start watch it so that they stop reading and release the
    /// store, instead of outliving the engine they feed. A source keeps its receiver until its
    /// task has ended; shutdown waits (bounded) for every receiver to be dropped, so that no
    /// source commits after it.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// Submits already-parsed events from `source`; returns once they are durably queued.
    pub async fn submit(
        &self,
        source: &str,
        events: Vec<ActionEvent>,
    ) -> Result<IngestSummary, Error> {
        self.inner.intake.submit(source, events, None, vec![]).await
    }

    /// Every webhook, by id.
    pub fn webhooks(&self) -> Vec<Webhook> {
        let mut v: Vec<Webhook> = self.inner.webhooks.iter().map(|w| (**w).clone()).collect();
        v.sort_by_key(|w| w.id);
        v
    }

    /// One webhook.
    pub fn webhook(&self, id: u64) -> Result<Webhook, Error> {
        self.inner
            .webhooks
            .get(&id)
            .map(|w| (**w).clone())
            .ok_or_else(|| Error::NotFound(format!("webhook {id} not found")))
    }

    /// Creates a webhook; returns it with its id.
    pub async fn create_webhook(&self, mut wh: Webhook) -> Result<Webhook, Error> {
        wh.id = 0;
        wh.deleted = false;
        wh.disabled_reason.clear();
        wh.validate()?;
        let _guard = self.inner.changes.lock().await;
        if let Some(sid) = wh.sanplex_id {
            if let Some(other) = self
                .inner
                .webhooks
                .iter()
                .find(|w| w.sanplex_id == Some(sid))
            {
                return Err(Error::Conflict(format!(
                    "webhook {} already holds sanplexId {sid}; update it with PUT /api/v1/webhooks/{}",
                    other.id, other.id
                )));
            }
        }
        let stored = self.inner.store.put_webhook(wh).await?;
        self.install(stored.clone()).await?;
        Ok(stored)
    }

    /// Replaces a webhook; secrets sent as `"******"` keep their stored value.
    pub async fn update_webhook(&self, id: u64, mut wh: Webhook) -> Result<Webhook, Error> {
        let _guard = self.inner.changes.lock().await;
        let old = self.webhook(id)?;
        wh.id = id;
        wh.deleted = false;
        wh.keep_masked_secrets(&old)?;
        // Read-only: kept while the webhook stays disabled, cleared when it is enabled again.
        wh.disabled_reason = if wh.enabled {
            String::new()
        } else {
            old.disabled_reason.clone()
        };
        wh.validate()?;
        if let Some(sid) = wh.sanplex_id {
            if let Some(other) = self
                .inner
                .webhooks
                .iter()
                .find(|w| w.sanplex_id == Some(sid) && w.id != id)
            {
                return Err(Error::Conflict(format!(
                    "webhook {} already holds sanplexId {sid}",
                    other.id
                )));
            }
        }
        let stored = self.inner.store.put_webhook(wh).await?;
        self.install(stored.clone()).await?;
        Ok(stored)
    }

    /// Disables a webhook on sanhook's own account (`delivery.disable_after`), with the reason
    /// in its `disabledReason`; new events stop firing it, queued deliveries are still sent.
    pub async fn disable_webhook(&self, id: u64, reason: String) -> Result<(), Error> {
        let _guard = self.inner.changes.lock().await;
        let mut wh = self.webhook(id)?;
        if !wh.enabled {
            return Ok(());
        }
        wh.enabled = false;
        wh.disabled_reason = reason;
        let stored = self.inner.store.put_webhook(wh).await?;
        self.install(stored).await
    }

    /// Deletes a webhook; its queued deliveries end `skipped` ("webhook deleted").
    pub async fn delete_webhook(&self, id: u64) -> Result<(), Error> {
        let _guard = self.inner.changes.lock().await;
        let mut wh = self.webhook(id)?;
        wh.deleted = true;
        let stored = self.inner.store.put_webhook(wh).await?;
        self.install(stored).await?;
        self.inner.dispatcher.send(Purge(id)).await?;
        Ok(())
    }

    async fn install(&self, wh: Webhook) -> Result<(), Error> {
        let wh = Arc::new(wh);
        if wh.deleted {
            self.inner.webhooks.remove(&wh.id);
        } else {
            self.inner.webhooks.insert(wh.id, wh.clone());
        }
        self.inner.router.send(UpsertRule(wh)).await?;
        Ok(())
    }

    /// The bindings of a webhook: `(account, platform user id)`, by account.
    pub async fn bindings(&self, webhook: u64) -> Result<Vec<(String, String)>, Error> {
        let store = self.inner.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.bindings(webhook))
            .await
            .map_err(|_| Error::Unavailable)??)
    }

    /// Binds or re-binds accounts to platform users. Within one webhook a platform user is bound
    /// to at most one account: binding it to a second is a conflict naming both.
    pub async fn bind(&self, webhook: u64, changes: Vec<(String, String)>) -> Result<(), Error> {
        self.webhook(webhook)?;
        let _guard = self.inner.changes.lock().await;
        let current = self.bindings(webhook).await?;
        let mut owner: std::collections::HashMap<String, String> = current
            .into_iter()
            .map(|(account, userid)| (userid, account))
            .collect();
        // Accounts being re-bound release their old user first.
        let rebinding: std::collections::HashSet<&str> =
            changes.iter().map(|(a, _)| a.as_str()).collect();
        owner.retain(|_, a| !rebinding.contains(a.as_str()));
        for (account, userid) in &changes {
            if let Some(other) = owner.get(userid) {
                if other != account {
                    return Err(Error::BindingConflict {
                        userid: userid.clone(),
                        bound_to: other.clone(),
                        account: account.clone(),
                    });
                }
            }
            owner.insert(userid.clone(), account.clone());
        }
        let changes = changes.into_iter().map(|(a, u)| (a, Some(u))).collect();
        self.inner.store.put_bindings(webhook, changes).await?;
        Ok(())
    }

    /// Removes an account's binding.
    pub async fn unbind(&self, webhook: u64, account: &str) -> Result<(), Error> {
        let _guard = self.inner.changes.lock().await;
        let current = self.bindings(webhook).await?;
        if !current.iter().any(|(a, _)| a == account) {
            return Err(Error::NotFound(format!(
                "account {account} is not bound on webhook {webhook}"
            )));
        }
        self.inner
            .store
            .put_bindings(webhook, vec![(account.to_string(), None)])
            .await?;
        Ok(())
    }

    /// The platform directory of an app-message webhook, live; `unbound` hides users already
    /// bound to an account of that webhook.
    pub async fn remote_users(
        &self,
        webhook: u64,
        unbound: bool,
    ) -> Result<Vec<crate::deliver::RemoteUser>, Error> {
        let wh = self.webhook(webhook)?;
        let mut users = self.inner.deliverer.remote_users(&wh).await?;
        if unbound {
            let bound: std::collections::HashSet<String> = self
                .bindings(webhook)
                .await?
                .into_iter()
                .map(|(_, u)| u)
                .collect();
            users.retain(|u| !bound.contains(&u.userid));
        }
        Ok(users)
    }

    /// The envelope a send of `event` (the sample event when `None`) to webhook `id` would
    /// have: the webhook as it is now, its bindings when its type has recipients, and a fresh
    /// id (high bit set: never a delivery's) so that receivers do not take it for a repeat.
    async fn envelope(
        &self,
        id: u64,
        event: Option<ActionEvent>,
    ) -> Result<crate::deliver::Envelope, Error> {
        self.envelope_of(Arc::new(self.webhook(id)?), id, event)
            .await
    }

    /// [`Engine::envelope`] for a given webhook, with the bindings of webhook `id`.
    async fn envelope_of(
        &self,
        wh: Arc<Webhook>,
        id: u64,
        event: Option<ActionEvent>,
    ) -> Result<crate::deliver::Envelope, Error> {
        let event = Arc::new(event.unwrap_or_else(crate::deliver::template::sample_event));
        let mut env = crate::deliver::Envelope::new(
            wh.clone(),
            event,
            (1 << 63) | rand::random::<u64>() >> 1,
        );
        if crate::deliver::channel(wh.kind).needs_bindings() {
            env.bindings = self.bindings(id).await?;
        }
        Ok(env)
    }

    /// Exactly what a send of `event` (the sample event when `None`) to webhook `id` would be,
    /// credentials masked; nothing is sent (docs/reference.md §4 `preview`).
    pub async fn preview(
        &self,
        id: u64,
        event: Option<ActionEvent>,
    ) -> Result<crate::deliver::Preview, Error> {
        let env = self.envelope(id, event).await?;
        self.inner
            .deliverer
            .preview(&env)
            .await
            .map_err(Error::BadRequest)
    }

    /// What a send of `event` to a webhook that is not saved (yet) would be: the web admin's
    /// live preview. With `base`, the draft is an edit of that webhook: secrets sent back masked
    /// keep its stored ones, and its bindings give the recipients. Checked as a save would be;
    /// nothing is stored or sent.
    pub async fn preview_draft(
        &self,
        mut draft: Webhook,
        base: Option<u64>,
        event: Option<ActionEvent>,
    ) -> Result<crate::deliver::Preview, Error> {
        draft.deleted = false;
        match base {
            Some(id) => draft.keep_masked_secrets(&self.webhook(id)?)?,
            // Nothing stored stands behind a masked value: "******" is not a secret to sign with.
            None if draft.secret == crate::mask::MASK => {
                return Err(Error::Invalid(crate::webhook::ValidationError {
                    field: "secret",
                    message: format!(
                        "secret is masked ({}): send the secret, or the id of the webhook it is \
                         stored in",
                        crate::mask::MASK
                    ),
                }))
            }
            None => draft.keep_masked_secrets(&Webhook::default())?,
        }
        draft.id = base.unwrap_or(0);
        draft.validate()?;
        let env = self
            .envelope_of(Arc::new(draft), base.unwrap_or(0), event)
            .await?;
        self.inner.deliverer.preview(&env).await.map_err(|e| {
            // A template that parses but does not render for this event: name its field, as a
            // refused save does, so that a form can mark it.
            match ["template.body", "template.title", "template.text"]
                .into_iter()
                .filter_map(|f| e.find(f).map(|at| (at, f)))
                .min()
                .map(|(_, f)| f)
            {
                Some(field) => {
                    Error::Invalid(crate::webhook::ValidationError { field, message: e })
                }
                None => Error::BadRequest(e),
            }
        })
    }

    /// Sends `event` (the sample event when `None`) to webhook `id` now, outside the queue and
    /// the delivery log, within the destination's rate windows (docs/reference.md §4 `test`).
    pub async fn test_send(
        &self,
        id: u64,
        event: Option<ActionEvent>,
    ) -> Result<crate::deliver::Attempt, Error> {
        let env = self.envelope(id, event).await?;
        self.inner
            .dispatcher
            .send(TakeSlot(id))
            .await?
            .map_err(|(retry_after, why)| Error::RateLimited {
                message: format!(
                    "not sent: {why}; try again in {}s",
                    retry_after.as_secs().max(1)
                ),
                retry_after,
            })?;
        Ok(self.inner.deliverer.attempt(&env).await)
    }

    /// The global trigger settings.
    pub fn triggers(&self) -> Triggers {
        self.inner
            .triggers
            .read()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// Replaces the global trigger settings.
    pub async fn set_triggers(&self, t: Triggers) -> Result<(), Error> {
        let _guard = self.inner.changes.lock().await;
        self.inner.store.put_triggers(t.clone()).await?;
        if let Ok(mut cur) = self.inner.triggers.write() {
            *cur = t.clone();
        }
        self.inner.router.send(SetTriggers(t)).await?;
        Ok(())
    }

    /// The delivery log, newest first.
    pub async fn deliveries(&self, q: DeliveryQuery) -> Result<Vec<DeliveryRecord>, Error> {
        let store = self.inner.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.deliveries(&q))
            .await
            .map_err(|_| Error::Unavailable)??)
    }

    /// One delivery.
    pub async fn delivery(&self, id: u64) -> Result<DeliveryRecord, Error> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.delivery(id))
            .await
            .map_err(|_| Error::Unavailable)??
            .ok_or_else(|| Error::NotFound(format!("delivery {id} not found")))
    }

    /// Re-queues a dead, skipped or delivered delivery to be sent now.
    pub async fn retry_delivery(&self, id: u64) -> Result<DeliveryRecord, Error> {
        // Serialised, so two concurrent retries cannot both see "final" and queue it twice.
        let _guard = self.inner.changes.lock().await;
        let rec = self.delivery(id).await?;
        if !rec.state.status.is_final() {
            return Err(Error::Conflict(format!(
                "delivery {id} is already queued (status {})",
                rec.state.status.as_str()
            )));
        }
        if !self.inner.webhooks.contains_key(&rec.webhook_id) {
            return Err(Error::Conflict(format!(
                "delivery {id} belongs to webhook {}, which was deleted",
                rec.webhook_id
            )));
        }
        let state = DeliveryState {
            status: Status::Pending,
            next_attempt_at: None,
            ..rec.state.clone()
        };
        self.inner
            .store
            .update_states(vec![StateUpdate::new(
                id,
                rec.webhook_id,
                rec.state.status,
                &state,
            )])
            .await?;
        self.inner.metrics.delivery(Status::Pending, 1);
        self.inner.dispatcher.do_send(Enqueue {
            deliveries: vec![OpenDelivery {
                id,
                webhook_id: rec.webhook_id,
                event: rec.event.clone(),
                created_at: rec.created_at,
                state: state.clone(),
            }],
            now: true,
            resumed: false,
        });
        Ok(DeliveryRecord { state, ..rec })
    }

    /// Re-queues every `dead` delivery of `webhook` whose batch was committed at or after
    /// `since_ms` (Unix ms), oldest first; returns how many.
    ///
    /// A page at a time ([`RECOVER_PAGE`]): each page's move to `pending` is committed before
    /// its deliveries are queued, and before the next page is read. Each goes into its object's
    /// queue in delivery-id order, so it is sent before newer deliveries of that object still
    /// waiting (never before one already being sent). If a page fails, those before it stay
    /// re-queued and calling again re-queues the rest; if the webhook is deleted meanwhile, the
    /// recovery stops there.
    pub async fn recover(&self, webhook: u64, since_ms: i64) -> Result<u64, Error> {
        self.webhook(webhook)?;
        let mut scan = None;
        let mut requeued = 0u64;
        loop {
            // Held per page, like a retry by hand: nothing else can re-queue these deliveries
            // between reading them dead and committing them pending. Webhook changes wait for
            // one page at most.
            let _guard = self.inner.changes.lock().await;
            if !self.inner.webhooks.contains_key(&webhook) {
                tracing::warn!(
                    webhook,
                    requeued,
                    "webhook deleted during a recovery; stopped"
                );
                break;
            }
            let store = self.inner.store.clone();
            let (page, next) = tokio::task::spawn_blocking(move || {
                store.dead_deliveries(webhook, since_ms, scan, RECOVER_PAGE)
            })
            .await
            .map_err(|_| Error::Unavailable)??;
            if !page.is_empty() {
                let mut updates = Vec::with_capacity(page.len());
                let mut deliveries = Vec::with_capacity(page.len());
                for rec in page {
                    let state = DeliveryState {
                        status: Status::Pending,
                        next_attempt_at: None,
                        ..rec.state
                    };
                    updates.push(StateUpdate::new(rec.id, webhook, Status::Dead, &state));
                    deliveries.push(OpenDelivery {
                        id: rec.id,
                        webhook_id: rec.webhook_id,
                        event: rec.event,
                        created_at: rec.created_at,
                        state,
                    });
                }
                self.inner.store.update_states(updates).await?;
                let n = deliveries.len() as u64;
                self.inner.metrics.delivery(Status::Pending, n);
                self.inner.dispatcher.do_send(Enqueue {
                    deliveries,
                    now: true,
                    resumed: false,
                });
                requeued += n;
            }
            match next {
                Some(n) => scan = Some(n),
                None => break,
            }
        }
        tracing::info!(webhook, since_ms, requeued, "recovered dead deliveries");
        Ok(requeued)
    }

    /// Every webhook's deliveries by status and its latest outcomes, by webhook id (from
    /// memory: no table is read).
    pub fn stats(&self) -> Vec<WebhookStats> {
        let mut counters = self.inner.store.counters();
        let mut out: Vec<WebhookStats> = self
            .inner
            .webhooks
            .iter()
            .map(|wh| WebhookStats {
                webhook_id: wh.id,
                name: wh.name.clone(),
                counters: counters.remove(&wh.id).unwrap_or_default(),
            })
            .collect();
        out.sort_by_key(|s| s.webhook_id);
        out
    }

    /// Sends every queued async delivery now.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.dispatcher.send(Flush).await?;
        Ok(())
    }

    /// Stops the sources, stops starting sends, waits for those in flight (bounded), and makes
    /// sure every queued store write is committed. Pending deliveries stay in the outbox for the
    /// next start.
    pub async fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
        if tokio::time::timeout(DRAIN_TIMEOUT, self.inner.stopping.closed())
            .await
            .is_err()
        {
            tracing::warn!("an ingestion source did not stop within {DRAIN_TIMEOUT:?}");
        }
        if let Err(e) = self.inner.dispatcher.send(Drain(DRAIN_TIMEOUT)).await {
            tracing::warn!(error = %e, "dispatcher gone before drain");
        }
        // Everything queued is committed, then the file is released: a new engine may open
        // the same store as soon as this returns.
        if let Err(e) = self.inner.store.close().await {
            tracing::error!(error = %e, "closing the store at shutdown failed");
        }
        for a in &self.inner.arbiters {
            a.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_cutoff_saturates_instead_of_wrapping() {
        let now = 1_767_603_600_000; // 2026-01-05 09:00 UTC
        assert_eq!(
            retention_cutoff(now, Duration::from_secs(86_400)),
            now - 86_400_000
        );
        assert_eq!(retention_cutoff(now, Duration::ZERO), now);
        // The longest retention config accepts (u64::MAX ms, ~585 million years), and longer:
        // the cutoff is far in the past, never in the future.
        for retention in [
            Duration::from_millis(u64::MAX),
            Duration::from_millis(i64::MAX as u64),
            Duration::from_millis(i64::MAX as u64 + 1),
            Duration::MAX,
        ] {
            let cutoff = retention_cutoff(now, retention);
            assert!(cutoff < 0, "{retention:?}: cutoff {cutoff}");
        }
        assert_eq!(retention_cutoff(i64::MIN, Duration::MAX), i64::MIN);
    }
}
