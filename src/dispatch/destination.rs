//! One destination: per-object queues, a bounded number of sends in flight, retry timers.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;

use super::limiter::Limiter;
use super::{DispatchCtx, Flush, Job, Purge};
use crate::config::Window;
use crate::deliver::{Attempt, Outcome};
use crate::store::{DeliveryState, StateUpdate, Status};

/// Sends one destination may have under way at once (each for a different object).
const MAX_IN_FLIGHT: usize = 8;

/// How long to wait before trying again when the store could not record an outcome.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Objects are identified by type and id: their events are delivered in ingestion order.
type ObjectKey = (Arc<str>, u64);

/// Jobs for this destination.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Jobs(pub Vec<Job>);

/// The actor of one destination.
pub struct Destination {
    name: String,
    ctx: Arc<DispatchCtx>,
    queues: HashMap<ObjectKey, VecDeque<Job>>,
    /// Objects whose head may be sent now (checked again when popped).
    ready: VecDeque<ObjectKey>,
    /// Objects whose head waits for a time (checked again when due).
    timers: BTreeMap<(Instant, u64), ObjectKey>,
    timer_seq: u64,
    /// Objects whose head is held for the async flush.
    held: HashSet<ObjectKey>,
    in_flight: HashSet<ObjectKey>,
    /// Deliveries being sent right now: a purge leaves them to finish (their outcome is recorded
    /// once, by the send).
    sending: HashSet<u64>,
    /// The wake-up currently scheduled, if any.
    wake: Option<(Instant, SpawnHandle)>,
    /// Bot mode: one send at a time, within the sliding windows, coalescing when the budget is
    /// short. Otherwise: one send per object, up to [`MAX_IN_FLIGHT`] at once.
    lane: bool,
    limiter: Limiter,
    /// Set when the platform said "too fast": nothing is sent to this destination until then.
    paused_until: Option<Instant>,
}

/// The checkpoint key under which a destination's recent send times are kept.
fn rate_key(name: &str) -> String {
    format!("rate:{name}")
}

impl Destination {
    pub(super) fn new(name: String, ctx: Arc<DispatchCtx>, windows: Vec<Window>) -> Destination {
        let past: Vec<i64> = match ctx.store.checkpoint(&rate_key(&name)) {
            Ok(Some(raw)) => serde_json::from_slice(&raw).unwrap_or_default(),
            Ok(None) => vec![],
            Err(e) => {
                tracing::error!(destination = %name, error = %e, "could not read the send budget; starting empty");
                vec![]
            }
        };
        Destination {
            lane: !windows.is_empty(),
            limiter: Limiter::new(windows, past),
            paused_until: None,
            name,
            ctx,
            queues: HashMap::new(),
            ready: VecDeque::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            held: HashSet::new(),
            in_flight: HashSet::new(),
            sending: HashSet::new(),
            wake: None,
        }
    }

    /// Files the head of `key`'s queue under ready, a timer, or held.
    fn classify(&mut self, key: ObjectKey, now: Instant) {
        if self.lane {
            if self.queues.get(&key).is_some_and(|q| q.is_empty()) {
                self.queues.remove(&key);
            }
            return;
        }
        if self.in_flight.contains(&key) {
            return;
        }
        let Some(head) = self.queues.get(&key).and_then(|q| q.front()) else {
            self.queues.remove(&key);
            return;
        };
        match head.not_before {
            None => {
                self.held.insert(key);
            }
            Some(t) if t <= now => self.ready.push_back(key),
            Some(t) => {
                self.timer_seq += 1;
                self.timers.insert((t, self.timer_seq), key);
            }
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.lane {
            self.pump_lane(ctx);
            return;
        }
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.classify(key, now);
        }
        if !self.ctx.draining.load(Ordering::SeqCst) {
            while self.in_flight.len() < MAX_IN_FLIGHT {
                let Some(key) = self.ready.pop_front() else {
                    break;
                };
                if self.in_flight.contains(&key) {
                    continue;
                }
                let due = self
                    .queues
                    .get(&key)
                    .and_then(|q| q.front())
                    .map(|j| j.not_before);
                match due {
                    Some(Some(t)) if t <= now => self.start(key, ctx),
                    Some(_) => self.classify(key, now),
                    None => {}
                }
            }
        }
        // Wake up for the earliest timer.
        if let Some(((at, _), _)) = self.timers.first_key_value() {
            let at = *at;
            self.wake_at(at, now, ctx);
        }
    }

    /// Makes sure `pump` runs again by `at`.
    fn wake_at(&mut self, at: Instant, now: Instant, ctx: &mut Context<Self>) {
        let rescheduled = !matches!(&self.wake, Some((t, _)) if *t <= at && *t > now);
        if rescheduled {
            if let Some((_, h)) = self.wake.take() {
                ctx.cancel_future(h);
            }
            let h = ctx.run_later(at.saturating_duration_since(now), |act, ctx| {
                act.wake = None;
                act.pump(ctx);
            });
            self.wake = Some((at, h));
        }
    }

    /// Bot mode: when the windows allow, send the oldest waiting delivery — or, when more wait
    /// than the budget has sends left, a digest of several.
    fn pump_lane(&mut self, ctx: &mut Context<Self>) {
        if !self.in_flight.is_empty() || self.ctx.draining.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        if let Some(until) = self.paused_until {
            if until > now {
                self.wake_at(until, now, ctx);
                return;
            }
            self.paused_until = None;
        }
        // Due: for each object, the prefix of its queue that may be sent now, in queue order.
        let mut due: Vec<(ObjectKey, usize)> = Vec::new();
        let mut total = 0usize;
        let mut next_due: Option<Instant> = None;
        for (key, q) in &self.queues {
            let mut n = 0;
            for j in q {
                match j.not_before {
                    Some(t) if t <= now => n += 1,
                    Some(t) => {
                        next_due = Some(next_due.map_or(t, |x: Instant| x.min(t)));
                        break;
                    }
                    None => break,
                }
            }
            if n > 0 {
                total += n;
                due.push((key.clone(), n));
            }
        }
        if due.is_empty() {
            if let Some(t) = next_due {
                self.wake_at(t, now, ctx);
            }
            return;
        }
        let wall = chrono::Utc::now().timestamp_millis();
        let wait = self.limiter.wait(wall);
        if !wait.is_zero() {
            self.wake_at(now + wait, now, ctx);
            return;
        }
        // Spread what waits over the sends the windows still allow.
        let remaining = self.limiter.remaining(wall).max(1);
        let want = total.div_ceil(remaining);
        // Merge the objects' due prefixes, oldest delivery first, never reordering a queue. One
        // message carries one webhook's events; an object whose next job belongs to another
        // webhook stops there, so nothing behind it overtakes it.
        let mut taken: Vec<usize> = vec![0; due.len()];
        let mut open: Vec<bool> = vec![true; due.len()];
        let mut webhook: Option<u64> = None;
        let mut batch: Vec<crate::store::OpenDelivery> = Vec::new();
        while batch.len() < want {
            let mut best: Option<(usize, u64)> = None;
            for (i, (key, n)) in due.iter().enumerate() {
                if !open[i] || taken[i] >= *n {
                    continue;
                }
                if let Some(j) = self.queues.get(key).and_then(|q| q.get(taken[i])) {
                    if best.is_none_or(|(_, id)| j.delivery.id < id) {
                        best = Some((i, j.delivery.id));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let Some(job) = self.queues.get(&due[i].0).and_then(|q| q.get(taken[i])) else {
                break;
            };
            let w = *webhook.get_or_insert(job.delivery.webhook_id);
            if job.delivery.webhook_id != w {
                open[i] = false;
                continue;
            }
            batch.push(job.delivery.clone());
            taken[i] += 1;
        }
        if batch.is_empty() {
            return;
        }
        let fits = self.digest_capacity(&batch);
        batch.truncate(fits.max(1));
        self.limiter.record(wall);
        self.start_lane(batch, ctx);
    }

    /// How many of `batch` one message can carry.
    fn digest_capacity(&self, batch: &[crate::store::OpenDelivery]) -> usize {
        let Some(first) = batch.first() else { return 0 };
        match self.ctx.webhooks.get(&first.webhook_id) {
            Some(wh) => {
                let events: Vec<&crate::event::ActionEvent> =
                    batch.iter().map(|d| d.event.as_ref()).collect();
                crate::deliver::digest_capacity(&wh, &events, &self.ctx.cfg)
            }
            None => 1,
        }
    }

    /// Sends one message for `batch` (one delivery, or a digest of several, all heads or
    /// in-order followers of their objects' queues) after saving the send budget.
    fn start_lane(&mut self, batch: Vec<crate::store::OpenDelivery>, ctx: &mut Context<Self>) {
        let keys: Vec<ObjectKey> = batch
            .iter()
            .map(|d| (Arc::from(d.event.object_type.as_str()), d.event.object_id))
            .collect();
        for k in &keys {
            self.in_flight.insert(k.clone());
        }
        self.sending.extend(batch.iter().map(|d| d.id));
        self.ctx.in_flight.fetch_add(1, Ordering::SeqCst);
        let shared = self.ctx.clone();
        let budget = serde_json::to_vec(&self.limiter.snapshot()).unwrap_or_default();
        let rate_key = rate_key(&self.name);
        let fut = async move {
            // The send counts against the budget before it happens: a crash after this commit
            // wastes a slot, never exceeds one.
            let saved_budget = shared
                .store
                .put_checkpoint(crate::store::Checkpoint {
                    key: rate_key,
                    value: budget,
                })
                .await;
            let attempt = match (
                saved_budget,
                shared.webhooks.get(&batch[0].webhook_id).map(|w| w.clone()),
            ) {
                (Err(e), _) => Attempt {
                    outcome: Outcome::Retry {
                        after: Some(STORE_RETRY),
                        error: format!("could not save the send budget: {e}"),
                    },
                    request: None,
                    response: None,
                    progress: None,
                },
                (Ok(()), Some(wh)) if !wh.deleted => {
                    if batch.len() == 1 {
                        let d = &batch[0];
                        shared
                            .deliverer
                            .attempt(&wh, &d.event, d.id, d.state.progress.as_ref())
                            .await
                    } else {
                        let events: Vec<Arc<crate::event::ActionEvent>> =
                            batch.iter().map(|d| d.event.clone()).collect();
                        shared
                            .deliverer
                            .attempt_digest(&wh, &events, batch[0].id)
                            .await
                    }
                }
                (Ok(()), _) => Attempt {
                    outcome: Outcome::Skipped("webhook deleted".into()),
                    request: None,
                    response: None,
                    progress: None,
                },
            };
            let pause = match &attempt.outcome {
                Outcome::Retry { after: Some(a), .. } => Some(*a),
                _ => None,
            };
            let mut results = Vec::with_capacity(batch.len());
            let mut updates = Vec::with_capacity(batch.len());
            for d in &batch {
                let (state, delay) = next_state(&shared, &d.state, attempt.clone());
                updates.push(StateUpdate {
                    id: d.id,
                    state: state.clone(),
                    was_final: d.state.status.is_final(),
                });
                results.push((state, delay));
            }
            let saved = shared
                .store
                .update_states(updates)
                .await
                .map_err(|e| e.to_string());
            (batch, results, pause, saved)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(batch, results, pause, saved), act, ctx| {
                    act.ctx.in_flight.fetch_sub(1, Ordering::SeqCst);
                    for k in &keys {
                        act.in_flight.remove(k);
                    }
                    for d in &batch {
                        act.sending.remove(&d.id);
                    }
                    if let Some(p) = pause {
                        act.paused_until = Some(Instant::now() + p);
                    }
                    // Finish in reverse so each object's later jobs are popped after its earlier ones.
                    let mut per_key: Vec<(
                        ObjectKey,
                        crate::store::OpenDelivery,
                        DeliveryState,
                        Option<Duration>,
                    )> = Vec::new();
                    for ((d, (state, delay)), key) in batch.into_iter().zip(results).zip(keys) {
                        per_key.push((key, d, state, delay));
                    }
                    for (key, d, state, delay) in per_key {
                        act.finished_job(key, d, state, delay, saved.clone());
                    }
                    act.pump(ctx);
                }),
        );
    }

    fn start(&mut self, key: ObjectKey, ctx: &mut Context<Self>) {
        let Some(job) = self.queues.get(&key).and_then(|q| q.front()) else {
            return;
        };
        let d = job.delivery.clone();
        self.sending.insert(d.id);
        self.in_flight.insert(key.clone());
        self.ctx.in_flight.fetch_add(1, Ordering::SeqCst);
        let shared = self.ctx.clone();
        let fut = async move {
            let webhook = shared.webhooks.get(&d.webhook_id).map(|w| w.clone());
            let attempt = match webhook {
                Some(wh) if !wh.deleted => {
                    shared
                        .deliverer
                        .attempt(&wh, &d.event, d.id, d.state.progress.as_ref())
                        .await
                }
                _ => Attempt {
                    outcome: Outcome::Skipped("webhook deleted".into()),
                    request: None,
                    response: None,
                    progress: None,
                },
            };
            let (state, delay) = next_state(&shared, &d.state, attempt);
            let update = StateUpdate {
                id: d.id,
                state: state.clone(),
                was_final: d.state.status.is_final(),
            };
            let saved = shared.store.update_states(vec![update]).await;
            (state, delay, saved.map_err(|e| e.to_string()), d)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(state, delay, saved, d), act, ctx| {
                    act.ctx.in_flight.fetch_sub(1, Ordering::SeqCst);
                    act.in_flight.remove(&key);
                    act.sending.remove(&d.id);
                    act.finished_job(key, d, state, delay, saved);
                    act.pump(ctx);
                }),
        );
    }

    /// Applies the outcome of one delivery (head of its object's queue, or in a digest one of
    /// the jobs right behind heads that went in the same message).
    fn finished_job(
        &mut self,
        key: ObjectKey,
        d: crate::store::OpenDelivery,
        state: DeliveryState,
        delay: Option<Duration>,
        saved: Result<(), String>,
    ) {
        let now = Instant::now();
        let metrics = &self.ctx.metrics;
        if let Err(e) = saved {
            // The outcome is not on disk: keep the job as it was and try again shortly. If the
            // send succeeded it may repeat, with the same webhook-id.
            tracing::error!(delivery = d.id, error = %e, "could not record a delivery outcome");
            if let Some(job) = self
                .queues
                .get_mut(&key)
                .and_then(|q| q.iter_mut().find(|j| j.delivery.id == d.id))
            {
                job.not_before = Some(now + STORE_RETRY);
            }
            self.classify(key, now);
            return;
        }
        metrics.attempt(match state.status {
            Status::Delivered => "delivered",
            Status::Dead => "dead",
            Status::Skipped => "skipped",
            _ => "retry",
        });
        if state.status.is_final() {
            metrics.delivery(state.status, 1);
            metrics.queue(-1);
            if state.status == Status::Delivered {
                let waited = chrono::Utc::now().timestamp_millis() - d.created_at;
                metrics.delivered_after(Duration::from_millis(waited.max(0) as u64));
            }
            if let Some(q) = self.queues.get_mut(&key) {
                if let Some(pos) = q.iter().position(|j| j.delivery.id == d.id) {
                    q.remove(pos);
                }
            }
            if state.status == Status::Dead {
                tracing::warn!(
                    destination = %self.name,
                    delivery = d.id,
                    error = state.last_error.as_deref().unwrap_or(""),
                    "delivery dead"
                );
            }
        } else if let Some(job) = self
            .queues
            .get_mut(&key)
            .and_then(|q| q.iter_mut().find(|j| j.delivery.id == d.id))
        {
            if job.delivery.state.status != Status::Retrying {
                metrics.delivery(Status::Retrying, 1);
            }
            job.delivery.state = state;
            job.not_before = Some(now + delay.unwrap_or(Duration::ZERO));
        }
        self.classify(key, now);
    }
}

/// The state after an attempt, and when to try again (for `retrying`).
fn next_state(
    ctx: &DispatchCtx,
    prev: &DeliveryState,
    attempt: Attempt,
) -> (DeliveryState, Option<Duration>) {
    let now = chrono::Utc::now().timestamp_millis();
    let attempted = attempt.request.is_some();
    let mut s = DeliveryState {
        status: Status::Pending,
        attempts: prev.attempts + u32::from(attempted),
        last_attempt_at: if attempted {
            Some(now)
        } else {
            prev.last_attempt_at
        },
        next_attempt_at: None,
        last_status: attempt.response.as_ref().map(|r| r.status),
        last_error: None,
        request: attempt.request.or_else(|| prev.request.clone()),
        response: attempt.response,
        progress: attempt.progress.or_else(|| prev.progress.clone()),
    };
    let mut delay = None;
    match attempt.outcome {
        Outcome::Delivered => s.status = Status::Delivered,
        Outcome::Dead(e) => {
            s.status = Status::Dead;
            s.last_error = Some(e);
        }
        Outcome::Skipped(r) => {
            s.status = Status::Skipped;
            s.last_error = Some(r);
        }
        Outcome::Retry { after, error } => {
            let schedule = &ctx.cfg.delivery.retry_schedule;
            // Retry k (1-based) waits schedule[k-1]; after the last one the delivery is dead.
            let retry_no = s.attempts.max(1) as usize;
            if retry_no > schedule.len() {
                s.status = Status::Dead;
                s.last_error = Some(format!(
                    "gave up after {} attempts; last error: {error}",
                    s.attempts
                ));
            } else {
                let d = match after {
                    Some(a) => a.min(ctx.cfg.delivery.max_retry_after),
                    None => jitter(schedule[retry_no - 1]),
                };
                s.status = Status::Retrying;
                s.last_error = Some(error);
                s.next_attempt_at = Some(now + d.as_millis() as i64);
                delay = Some(d);
            }
        }
    }
    (s, delay)
}

/// ±20 % jitter, so that many deliveries failing together do not retry together.
fn jitter(d: Duration) -> Duration {
    let f: f64 = rand::rng().random_range(0.8..=1.2);
    d.mul_f64(f)
}

impl Actor for Destination {
    type Context = Context<Self>;
}

impl Handler<Jobs> for Destination {
    type Result = ();

    fn handle(&mut self, msg: Jobs, ctx: &mut Self::Context) {
        let now = Instant::now();
        for job in msg.0 {
            let ev = &job.delivery.event;
            let key: ObjectKey = (Arc::from(ev.object_type.as_str()), ev.object_id);
            let q = self.queues.entry(key.clone()).or_default();
            let was_empty = q.is_empty();
            q.push_back(job);
            if was_empty {
                self.classify(key, now);
            }
        }
        self.pump(ctx);
    }
}

impl Handler<Flush> for Destination {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) {
        let now = Instant::now();
        for q in self.queues.values_mut() {
            for j in q.iter_mut() {
                if j.not_before.is_none() {
                    j.not_before = Some(now);
                }
            }
        }
        for key in std::mem::take(&mut self.held) {
            self.classify(key, now);
        }
        self.pump(ctx);
    }
}

impl Handler<Purge> for Destination {
    type Result = ();

    fn handle(&mut self, msg: Purge, ctx: &mut Self::Context) {
        let mut purged = vec![];
        for q in self.queues.values_mut() {
            q.retain(|j| {
                let keep = self.sending.contains(&j.delivery.id) || j.delivery.webhook_id != msg.0;
                if !keep {
                    purged.push(j.delivery.clone());
                }
                keep
            });
        }
        if purged.is_empty() {
            return;
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let updates: Vec<StateUpdate> = purged
            .iter()
            .map(|d| StateUpdate {
                id: d.id,
                was_final: false,
                state: DeliveryState {
                    status: Status::Skipped,
                    last_error: Some("webhook deleted".into()),
                    next_attempt_at: None,
                    last_attempt_at: d.state.last_attempt_at.or(Some(now_ms)),
                    ..d.state.clone()
                },
            })
            .collect();
        let n = updates.len() as u64;
        self.ctx.metrics.delivery(Status::Skipped, n);
        self.ctx.metrics.queue(-(n as i64));
        let store = self.ctx.store.clone();
        ctx.spawn(
            async move {
                if let Err(e) = store.update_states(updates).await {
                    tracing::error!(error = %e, "could not record purged deliveries");
                }
            }
            .into_actor(self),
        );
        // Heads may have changed: re-file every object.
        let keys: Vec<ObjectKey> = self.queues.keys().cloned().collect();
        self.ready.clear();
        self.held.clear();
        self.timers.clear();
        let now = Instant::now();
        for k in keys {
            self.classify(k, now);
        }
        self.pump(ctx);
    }
}
