//! One destination: per-object queues, many sends in flight, outcomes committed in groups.
//!
//! A `default`/app destination sends up to `delivery.max_in_flight` objects' heads at once. When
//! a send ends, its outcome joins the destination's next state commit: one commit carries every
//! outcome that ended while the previous one was being written, and sends of other objects go on
//! meanwhile. An object stays busy until its outcome is on disk, so its next delivery never
//! starts before that (per-object order, and nothing repeats after a crash but the sends that
//! were in flight or awaiting their commit).
//!
//! A bot destination runs one lane instead: one message at a time within its sliding windows.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::envelope::{prepare, MemberBudgets, Ready};
use super::limiter::Limiter;
use super::{later, DispatchCtx, Flush, Job, ObjectKey, Purge, TakeSlot};
use crate::config::Window;
use crate::deliver::{Attempt, Deliverer, Outcome};
use crate::event::ActionEvent;
use crate::store::{AttemptLog, DeliveryState, StateUpdate, Status, HISTORY, HISTORY_ERROR_BYTES};

/// How long to wait before trying again when the store could not record an outcome (or read
/// an event back).
pub(super) const STORE_RETRY: Duration = Duration::from_secs(1);

/// Jobs for this destination, each with its object.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Jobs(pub Vec<(ObjectKey, Job)>);

/// A send of this destination ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Attempted {
    key: ObjectKey,
    id: u64,
    webhook_id: u64,
    /// When the delivery's batch was committed (Unix ms; 0 = not known).
    created_at: i64,
    attempt: Attempt,
}

/// An attempt that ended, waiting for its state to be committed.
struct Ended {
    key: ObjectKey,
    id: u64,
    webhook_id: u64,
    /// The status the attempt started from (what the commit moves the delivery out of).
    from: Status,
    created_at: i64,
    state: DeliveryState,
    delay: Option<Duration>,
}

/// The actor of one destination.
pub struct Destination {
    name: String,
    ctx: Arc<DispatchCtx>,
    /// This worker's HTTP client and platform plumbing.
    deliverer: Deliverer,
    max_in_flight: usize,
    queues: HashMap<ObjectKey, VecDeque<Job>>,
    /// Objects whose head may be sent now (checked again when popped).
    ready: VecDeque<ObjectKey>,
    /// Objects whose head waits for a time (checked again when due).
    timers: BTreeMap<(Instant, u64), ObjectKey>,
    timer_seq: u64,
    /// Objects whose head is held for the async flush.
    held: HashSet<ObjectKey>,
    /// Objects whose head is being sent or whose outcome is being committed.
    busy: HashSet<ObjectKey>,
    /// HTTP sends under way (at most `max_in_flight`).
    sends: usize,
    /// Deliveries being sent or committed right now: a purge leaves them to finish (their
    /// outcome is recorded once, by the send).
    sending: HashSet<u64>,
    /// Outcomes for the next state commit, and whether one is being written.
    ended: Vec<Ended>,
    committing: bool,
    /// Set while outcomes are held because the store could not commit them (logged once).
    commit_failing: bool,
    /// The wake-up currently scheduled, if any.
    wake: Option<(Instant, SpawnHandle)>,
    /// Bot mode: one send at a time, within the sliding windows, coalescing when the budget is
    /// short. Otherwise: one send per object, up to `max_in_flight` at once.
    lane: bool,
    limiter: Limiter,
    /// Whether the bot's saved send times are in `limiter` ([`Destination::read_budget`]).
    budget_read: bool,
    /// Set when the platform said "too fast": nothing is sent to this destination until then.
    paused_until: Option<Instant>,
    /// Per-member budgets of an app destination (WeCom), taken before each send.
    members: MemberBudgets,
}

/// The checkpoint key under which a destination's recent send times are kept.
fn rate_key(name: &str) -> String {
    format!("rate:{name}")
}

impl Destination {
    pub(super) fn new(
        name: String,
        ctx: Arc<DispatchCtx>,
        deliverer: Deliverer,
        windows: Vec<Window>,
    ) -> Destination {
        let mut d = Destination {
            lane: !windows.is_empty(),
            limiter: Limiter::new(windows, vec![]),
            budget_read: false,
            paused_until: None,
            members: MemberBudgets::default(),
            max_in_flight: ctx.cfg.delivery.max_in_flight.max(1) as usize,
            name,
            ctx,
            deliverer,
            queues: HashMap::default(),
            ready: VecDeque::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            held: HashSet::default(),
            busy: HashSet::default(),
            sends: 0,
            sending: HashSet::default(),
            ended: Vec::new(),
            committing: false,
            commit_failing: false,
            wake: None,
        };
        if d.lane {
            d.read_budget();
        }
        d
    }

    /// Reads the bot's saved send times back into its limiter (once). A budget that cannot be
    /// read is not guessed: sending without it could exceed the platform's window after a
    /// restart, so the lane waits and tries the read again.
    fn read_budget(&mut self) -> bool {
        if self.budget_read {
            return true;
        }
        let past: Vec<i64> = match self.ctx.store.checkpoint(&rate_key(&self.name)) {
            // A budget that no longer decodes is dropped: it is a window's worth at most.
            Ok(Some(raw)) => serde_json::from_slice(&raw).unwrap_or_default(),
            Ok(None) => vec![],
            Err(e) => {
                tracing::error!(destination = %crate::mask::text(&self.name), error = %e, "could not read the send budget; trying again before sending");
                return false;
            }
        };
        self.limiter = Limiter::new(self.limiter.windows().to_vec(), past);
        self.budget_read = true;
        true
    }

    /// Files the head of `key`'s queue under ready, a timer, or held.
    fn classify(&mut self, key: ObjectKey, now: Instant) {
        if self.lane {
            if self.queues.get(&key).is_some_and(|q| q.is_empty()) {
                self.queues.remove(&key);
            }
            return;
        }
        if self.busy.contains(&key) {
            return;
        }
        let Some(head) = self.queues.get(&key).and_then(|q| q.front()) else {
            self.queues.remove(&key);
            return;
        };
        match head.due() {
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
        let now = self.ctx.clock.now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.classify(key, now);
        }
        if !self.ctx.draining.load(Ordering::Relaxed) {
            while self.sends < self.max_in_flight {
                let Some(key) = self.ready.pop_front() else {
                    break;
                };
                if self.busy.contains(&key) {
                    continue;
                }
                let due = self
                    .queues
                    .get(&key)
                    .and_then(|q| q.front())
                    .map(|j| j.due());
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
            let sleep = self.ctx.clock.sleep_until(at);
            let h = ctx.spawn(sleep.into_actor(self).map(|(), act, ctx| {
                act.wake = None;
                act.pump(ctx);
            }));
            self.wake = Some((at, h));
        }
    }

    /// Bot mode: when the windows allow, send the oldest waiting delivery — or, when more wait
    /// than the budget has sends left, a digest of several.
    fn pump_lane(&mut self, ctx: &mut Context<Self>) {
        if !self.busy.is_empty() || self.ctx.draining.load(Ordering::Relaxed) {
            return;
        }
        let now = self.ctx.clock.now();
        if let Some(until) = self.paused_until {
            if until > now {
                self.wake_at(until, now, ctx);
                return;
            }
            self.paused_until = None;
        }
        let (due, total, next_due) = self.due_prefixes(now);
        if due.is_empty() {
            if let Some(t) = next_due {
                self.wake_at(t, now, ctx);
            }
            return;
        }
        if !self.read_budget() {
            self.wake_at(later(now, STORE_RETRY), now, ctx);
            return;
        }
        let wall = self.ctx.clock.wall_ms();
        let wait = self.limiter.wait(wall);
        if !wait.is_zero() {
            self.wake_at(later(now, wait), now, ctx);
            return;
        }
        // Spread what waits over the sends the windows still allow.
        let remaining = self.limiter.remaining(wall).max(1);
        let want = total.div_ceil(remaining);
        let mut batch = self.take_oldest(&due, want);
        if batch.is_empty() {
            return;
        }
        let (events, created) = self.read_events(&batch);
        if events.is_empty() {
            self.wake_at(later(now, STORE_RETRY), now, ctx);
            return;
        }
        batch.truncate(events.len());
        let fits = self.digest_capacity(batch[0].1.webhook_id, &events);
        let (mut events, mut created) = (events, created);
        batch.truncate(fits.max(1));
        events.truncate(fits.max(1));
        created.truncate(fits.max(1));
        self.limiter.record(wall);
        self.start_lane(batch, events, created, ctx);
    }

    /// For each object, the prefix of its queue that may be sent now (in queue order); their
    /// total; and when the next job that is not due yet will be.
    fn due_prefixes(&self, now: Instant) -> (Vec<(ObjectKey, usize)>, usize, Option<Instant>) {
        let mut due: Vec<(ObjectKey, usize)> = Vec::new();
        let mut total = 0usize;
        let mut next_due: Option<Instant> = None;
        for (key, q) in &self.queues {
            let mut n = 0;
            for j in q {
                match j.due() {
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
                due.push((*key, n));
            }
        }
        (due, total, next_due)
    }

    /// Up to `want` jobs from the objects' due prefixes, oldest delivery first, never
    /// reordering a queue. One message carries one webhook's events; an object whose next job
    /// belongs to another webhook stops there, so nothing behind it overtakes it.
    fn take_oldest(&self, due: &[(ObjectKey, usize)], want: usize) -> Vec<(ObjectKey, Job)> {
        let mut taken: Vec<usize> = vec![0; due.len()];
        let mut open: Vec<bool> = vec![true; due.len()];
        let mut webhook: Option<u64> = None;
        let mut batch: Vec<(ObjectKey, Job)> = Vec::new();
        while batch.len() < want {
            let mut best: Option<(usize, u64)> = None;
            for (i, (key, n)) in due.iter().enumerate() {
                if !open[i] || taken[i] >= *n {
                    continue;
                }
                if let Some(j) = self.queues.get(key).and_then(|q| q.get(taken[i])) {
                    if best.is_none_or(|(_, id)| j.id < id) {
                        best = Some((i, j.id));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let Some(job) = self.queues.get(&due[i].0).and_then(|q| q.get(taken[i])) else {
                break;
            };
            let w = *webhook.get_or_insert(job.webhook_id);
            if job.webhook_id != w {
                open[i] = false;
                continue;
            }
            batch.push((due[i].0, job.clone()));
            taken[i] += 1;
        }
        batch
    }

    /// The events of `batch` and their commit times, read back; one that cannot be read ends
    /// the list before it.
    fn read_events(&self, batch: &[(ObjectKey, Job)]) -> (Vec<Arc<ActionEvent>>, Vec<i64>) {
        let mut events: Vec<Arc<ActionEvent>> = Vec::with_capacity(batch.len());
        let mut created: Vec<i64> = Vec::with_capacity(batch.len());
        for (_, job) in batch {
            match self.ctx.events.event(job.id) {
                Ok((ev, at)) => {
                    events.push(ev);
                    created.push(at);
                }
                Err(e) => {
                    tracing::error!(delivery = job.id, error = %e, "could not read a queued event back");
                    break;
                }
            }
        }
        (events, created)
    }

    /// How many of `events` one message can carry.
    fn digest_capacity(&self, webhook_id: u64, events: &[Arc<ActionEvent>]) -> usize {
        match self.ctx.webhooks.get(&webhook_id) {
            Some(wh) => {
                let events: Vec<&ActionEvent> = events.iter().map(|e| e.as_ref()).collect();
                crate::deliver::digest_capacity(&wh, &events, &self.ctx.cfg)
            }
            None => 1,
        }
    }

    /// Sends one message for `batch` (one delivery, or a digest of several, all heads or
    /// in-order followers of their objects' queues) after saving the send budget.
    fn start_lane(
        &mut self,
        batch: Vec<(ObjectKey, Job)>,
        events: Vec<Arc<ActionEvent>>,
        created: Vec<i64>,
        ctx: &mut Context<Self>,
    ) {
        for (k, job) in &batch {
            self.busy.insert(*k);
            self.sending.insert(job.id);
        }
        self.ctx.in_flight.fetch_add(1, Ordering::Relaxed);
        let shared = self.ctx.clone();
        let deliverer = self.deliverer.clone();
        let budget = serde_json::to_vec(&self.limiter.snapshot()).unwrap_or_default();
        let rate_key = rate_key(&self.name);
        let single = (batch.len() == 1).then(|| self.prepare_job(&batch[0].1, events[0].clone()));
        let fut = async move {
            // The send counts against the budget before it happens: a crash after this commit
            // wastes a slot, never exceeds one.
            let saved_budget = shared
                .store
                .put_checkpoint(crate::store::Checkpoint {
                    key: rate_key,
                    value: budget,
                })
                .await
                .map_err(|e| e.to_string());
            let attempt =
                lane_attempt(&shared, &deliverer, saved_budget, single, &batch, &events).await;
            // The platform's wait pauses the whole bot, cut like a delivery's own wait
            // (docs/reference.md §5 `max_retry_after`): a header can say anything.
            let pause = match &attempt.outcome {
                Outcome::Retry { after: Some(a), .. } => {
                    Some((*a).min(shared.cfg.delivery.max_retry_after))
                }
                _ => None,
            };
            let (ended, updates) = lane_outcomes(&shared, &batch, created, &attempt);
            let saved = shared
                .store
                .update_states(updates)
                .await
                .map_err(|e| e.to_string());
            (ended, pause, saved)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(ended, pause, saved), act, ctx| {
                    if let Some(p) = pause {
                        act.paused_until = Some(later(act.ctx.clock.now(), p));
                    }
                    if saved.is_err() {
                        // Not on disk: held for the destination's next commit (the objects
                        // stay busy, the send is not made again); counted until then.
                        act.hold_unsaved(ended, &saved, ctx);
                        return;
                    }
                    act.ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
                    for e in ended {
                        act.finished_job(e, saved.clone(), false);
                    }
                    act.pump(ctx);
                }),
        );
    }

    /// The envelope of `job`'s attempt, made in the actor's turn (see [`prepare`]).
    fn prepare_job(&mut self, job: &Job, event: Arc<ActionEvent>) -> Result<Ready, Outcome> {
        let progress = job.state.as_ref().and_then(|s| s.progress.clone());
        prepare(
            &self.ctx,
            &mut self.members,
            job.id,
            job.webhook_id,
            event,
            progress,
        )
    }

    fn start(&mut self, key: ObjectKey, ctx: &mut Context<Self>) {
        let Some(job) = self.queues.get(&key).and_then(|q| q.front()) else {
            return;
        };
        let (id, webhook_id) = (job.id, job.webhook_id);
        let progress = job.state.as_ref().and_then(|s| s.progress.clone());
        self.sending.insert(id);
        self.busy.insert(key);
        self.sends += 1;
        self.ctx.in_flight.fetch_add(1, Ordering::Relaxed);
        // The envelope is made here, in the actor: member budgets are taken (and their
        // checkpoint queued) in send order.
        let mut created_at = 0;
        let ready = match self.ctx.events.event(id) {
            Ok((ev, at)) => {
                created_at = at;
                prepare(&self.ctx, &mut self.members, id, webhook_id, ev, progress)
            }
            Err(e) => Err(Outcome::Retry {
                after: Some(STORE_RETRY),
                error: format!("could not read the event back from the store: {e}"),
            }),
        };
        let deliverer = self.deliverer.clone();
        let fut = async move {
            match ready {
                Ok(ready) => ready.run(&deliverer).await,
                Err(outcome) => Attempt::failed_before_send(outcome),
            }
        };
        // A task of its own, not a future of the actor's: actix polls every future an actor
        // holds whenever any of them wakes, which with many sends in flight costs more than the
        // sends. The outcome comes back as a message.
        let addr = ctx.address();
        actix::spawn(async move {
            let attempt = fut.await;
            addr.do_send(Attempted {
                key,
                id,
                webhook_id,
                created_at,
                attempt,
            });
        });
    }

    /// Writes the outcomes that ended since the last commit in one commit, unless one is being
    /// written (then they go in the next, when it is done).
    fn commit_ended(&mut self, ctx: &mut Context<Self>) {
        if self.committing || self.ended.is_empty() {
            return;
        }
        self.committing = true;
        let ended = std::mem::take(&mut self.ended);
        let updates: Vec<StateUpdate> = ended
            .iter()
            .map(|e| StateUpdate::new(e.id, e.webhook_id, e.from, &e.state))
            .collect();
        let store = self.ctx.store.clone();
        let fut = async move {
            store
                .update_states(updates)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(fut.into_actor(self).map(move |saved, act, ctx| {
            if saved.is_err() {
                act.hold_unsaved(ended, &saved, ctx);
                return;
            }
            if act.commit_failing {
                tracing::info!(destination = %act.name, "delivery outcomes are recorded again");
                act.commit_failing = false;
            }
            act.committing = false;
            for e in ended {
                act.finished_job(e, saved.clone(), true);
            }
            act.commit_ended(ctx);
            act.pump(ctx);
        }));
    }

    /// Outcomes whose commit failed (the store cannot commit): kept, with their objects busy,
    /// and committed again after [`STORE_RETRY`] together with whatever ended meanwhile. A send
    /// whose outcome is not on disk is never made again while the process lives (only a crash
    /// before the commit can repeat it).
    fn hold_unsaved(
        &mut self,
        ended: Vec<Ended>,
        saved: &Result<(), String>,
        ctx: &mut Context<Self>,
    ) {
        if !self.commit_failing {
            if let Err(err) = saved {
                tracing::error!(
                    destination = %self.name,
                    error = %err,
                    "could not record delivery outcomes; holding them and trying again (nothing is sent again)"
                );
            }
            self.commit_failing = true;
        }
        let mut held = ended;
        held.append(&mut self.ended);
        self.ended = held;
        self.committing = true;
        ctx.run_later(STORE_RETRY, |act, ctx| {
            act.committing = false;
            act.commit_ended(ctx);
        });
    }

    /// Applies the committed (or failed to commit) outcome of one delivery: the head of its
    /// object's queue, or in a digest one of the jobs right behind heads that went with it.
    fn finished_job(&mut self, e: Ended, saved: Result<(), String>, counted: bool) {
        let Ended {
            key,
            id,
            created_at,
            state,
            delay,
            ..
        } = e;
        if counted {
            self.ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.busy.remove(&key);
        self.sending.remove(&id);
        let now = self.ctx.clock.now();
        let metrics = &self.ctx.metrics;
        let job = self
            .queues
            .get_mut(&key)
            .and_then(|q| q.iter_mut().position(|j| j.id == id).map(|p| (q, p)));
        if let Err(err) = saved {
            // The outcome is not on disk: keep the job as it was and try again shortly. If the
            // send succeeded it may repeat, with the same webhook-id.
            tracing::error!(delivery = id, error = %err, "could not record a delivery outcome");
            if let Some((q, p)) = job {
                q[p].set_due(Some(later(now, STORE_RETRY)));
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
            if state.status == Status::Delivered && created_at > 0 {
                let waited = self.ctx.clock.wall_ms() - created_at;
                metrics.delivered_after(Duration::from_millis(waited.max(0) as u64));
            }
            if let Some((q, p)) = job {
                q.remove(p);
            }
            if state.status == Status::Dead {
                tracing::warn!(
                    destination = %crate::mask::text(&self.name),
                    delivery = id,
                    error = state.last_error.as_deref().unwrap_or(""),
                    "delivery dead"
                );
            }
        } else if let Some((q, p)) = job {
            let j = &mut q[p];
            if j.state.as_ref().map_or(Status::Pending, |s| s.status) != Status::Retrying {
                metrics.delivery(Status::Retrying, 1);
            }
            // Due when the record says (`nextAttemptAt`, from the attempt's time), not `delay`
            // after this commit was applied: the two name the same moment whatever the commit
            // took, also when a manual clock moved meanwhile.
            let wait = match state.next_attempt_at {
                Some(at) => Duration::from_millis(
                    u64::try_from(at.saturating_sub(self.ctx.clock.wall_ms())).unwrap_or(0),
                ),
                None => delay.unwrap_or(Duration::ZERO),
            };
            j.state = Some(Box::new(state));
            j.set_due(Some(later(now, wait)));
        }
        self.classify(key, now);
    }
}

/// The one attempt of a bot message: nothing is sent unless its budget was saved; one delivery
/// goes as prepared, several as a digest.
async fn lane_attempt(
    shared: &DispatchCtx,
    deliverer: &Deliverer,
    saved_budget: Result<(), String>,
    single: Option<Result<Ready, Outcome>>,
    batch: &[(ObjectKey, Job)],
    events: &[Arc<ActionEvent>],
) -> Attempt {
    let (_, first) = &batch[0];
    let webhook = shared.webhooks.get(&first.webhook_id).map(|w| w.clone());
    match (saved_budget, single, webhook) {
        (Err(e), _, _) => Attempt::failed_before_send(Outcome::Retry {
            after: Some(STORE_RETRY),
            error: format!("could not save the send budget: {e}"),
        }),
        (Ok(()), Some(Ok(ready)), _) => ready.run(deliverer).await,
        (Ok(()), Some(Err(outcome)), _) => Attempt::failed_before_send(outcome),
        (Ok(()), None, Some(wh)) if !wh.deleted => {
            deliverer.attempt_digest(&wh, events, first.id).await
        }
        (Ok(()), None, _) => {
            Attempt::failed_before_send(Outcome::Skipped("webhook deleted".into()))
        }
    }
}

/// What one bot message's attempt means for each delivery it carried.
fn lane_outcomes(
    shared: &DispatchCtx,
    batch: &[(ObjectKey, Job)],
    created: Vec<i64>,
    attempt: &Attempt,
) -> (Vec<Ended>, Vec<StateUpdate>) {
    let mut ended = Vec::with_capacity(batch.len());
    let mut updates = Vec::with_capacity(batch.len());
    for ((key, job), created_at) in batch.iter().zip(created) {
        let prev = job.state.as_deref().cloned().unwrap_or_default();
        let (state, delay) = next_state(shared, &prev, attempt.clone());
        updates.push(StateUpdate::new(
            job.id,
            job.webhook_id,
            prev.status,
            &state,
        ));
        ended.push(Ended {
            key: *key,
            id: job.id,
            webhook_id: job.webhook_id,
            from: prev.status,
            created_at,
            state,
            delay,
        });
    }
    (ended, updates)
}

/// The state after an attempt, and when to try again (for `retrying`).
fn next_state(
    ctx: &DispatchCtx,
    prev: &DeliveryState,
    attempt: Attempt,
) -> (DeliveryState, Option<Duration>) {
    let now = ctx.clock.wall_ms();
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
        history: prev.history.clone(),
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
                let wait_ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                s.next_attempt_at = Some(now.saturating_add(wait_ms));
                delay = Some(d);
            }
        }
    }
    if attempted {
        let keep = s.history.len().saturating_sub(HISTORY - 1);
        s.history.drain(..keep);
        s.history.push(AttemptLog {
            at: now,
            status: s.last_status,
            error: s
                .last_error
                .clone()
                .map(|e| crate::cut::with_ellipsis(e, HISTORY_ERROR_BYTES)),
        });
    }
    (s, delay)
}

/// ±20 % jitter, so that many deliveries failing together do not retry together. In whole
/// milliseconds: the record's `next_attempt_at` and the job's due time are both kept in ms, and
/// must name the same moment.
fn jitter(d: Duration) -> Duration {
    let f: f64 = rand::rng().random_range(0.8..=1.2);
    let ms = d.mul_f64(f).as_millis();
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

impl Actor for Destination {
    type Context = Context<Self>;
}

impl Handler<Jobs> for Destination {
    type Result = ();

    fn handle(&mut self, msg: Jobs, ctx: &mut Self::Context) {
        let now = self.ctx.clock.now();
        for (key, job) in msg.0 {
            let q = self.queues.entry(key).or_default();
            let head = q.front().map(|j| j.id);
            insert_in_order(q, job, &self.sending);
            if q.front().map(|j| j.id) != head {
                // A new head (the queue was empty, or a re-queued older delivery went first):
                // file it. Where the old head was filed goes stale, and is checked again when
                // it comes up.
                self.classify(key, now);
            }
        }
        self.pump(ctx);
    }
}

/// Puts `job` into its object's queue in delivery-id order, but never ahead of a job being
/// sent (or whose outcome is being committed): those are the queue's front.
///
/// New deliveries are the newest and go to the back. A re-queued one (recovered, retried by
/// hand) is older than what may still wait for the same object, and goes before it, so the
/// object's deliveries still reach the receiver in the order they were created.
fn insert_in_order(q: &mut VecDeque<Job>, job: Job, sending: &HashSet<u64>) {
    let mut at = q.len();
    while at > 0 && q[at - 1].id > job.id && !sending.contains(&q[at - 1].id) {
        at -= 1;
    }
    q.insert(at, job);
}

impl Handler<Attempted> for Destination {
    type Result = ();

    fn handle(&mut self, msg: Attempted, ctx: &mut Self::Context) {
        let Attempted {
            key,
            id,
            webhook_id,
            created_at,
            attempt,
        } = msg;
        self.sends -= 1;
        let prev = self
            .queues
            .get(&key)
            .and_then(|q| q.front())
            .filter(|j| j.id == id)
            .and_then(|j| j.state.as_deref().cloned())
            .unwrap_or_default();
        let from = prev.status;
        let (state, delay) = next_state(&self.ctx, &prev, attempt);
        self.ended.push(Ended {
            key,
            id,
            webhook_id,
            from,
            created_at,
            state,
            delay,
        });
        self.commit_ended(ctx);
        self.pump(ctx);
    }
}

/// A send outside the queue takes a slot of the windows like any message, saved before it is
/// sent; refused (with the wait) when the windows are spent or the platform asked for a pause.
impl Handler<TakeSlot> for Destination {
    type Result = ResponseFuture<Result<(), (Duration, String)>>;

    fn handle(&mut self, _: TakeSlot, _: &mut Context<Self>) -> Self::Result {
        let refuse = |wait: Duration, why: String| -> Self::Result {
            Box::pin(async move { Err((wait, why)) })
        };
        if !self.lane {
            return Box::pin(async { Ok(()) });
        }
        if !self.read_budget() {
            return refuse(STORE_RETRY, "the send budget could not be read".into());
        }
        let now = self.ctx.clock.now();
        if let Some(until) = self.paused_until.filter(|u| *u > now) {
            return refuse(until - now, "the platform asked to pause sending".into());
        }
        let wall = self.ctx.clock.wall_ms();
        let wait = self.limiter.wait(wall);
        if !wait.is_zero() {
            return refuse(
                wait,
                "the rate-limit windows of this destination are spent".into(),
            );
        }
        self.limiter.record(wall);
        let budget = serde_json::to_vec(&self.limiter.snapshot()).unwrap_or_default();
        let (store, key) = (self.ctx.store.clone(), rate_key(&self.name));
        Box::pin(async move {
            store
                .put_checkpoint(crate::store::Checkpoint { key, value: budget })
                .await
                .map_err(|e| (STORE_RETRY, format!("could not save the send budget: {e}")))
        })
    }
}

impl Handler<Flush> for Destination {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) {
        let now = self.ctx.clock.now();
        for q in self.queues.values_mut() {
            for j in q.iter_mut() {
                if j.due().is_none() {
                    j.set_due(Some(now));
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
        let mut purged: Vec<Job> = vec![];
        for q in self.queues.values_mut() {
            q.retain(|j| {
                let keep = self.sending.contains(&j.id) || j.webhook_id != msg.0;
                if !keep {
                    purged.push(j.clone());
                }
                keep
            });
        }
        if purged.is_empty() {
            return;
        }
        let now_ms = self.ctx.clock.wall_ms();
        let updates: Vec<StateUpdate> = purged
            .iter()
            .map(|j| {
                let prev = j.state.as_deref().cloned().unwrap_or_default();
                let from = prev.status;
                let state = DeliveryState {
                    status: Status::Skipped,
                    last_error: Some("webhook deleted".into()),
                    next_attempt_at: None,
                    last_attempt_at: prev.last_attempt_at.or(Some(now_ms)),
                    ..prev
                };
                StateUpdate::new(j.id, j.webhook_id, from, &state)
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
        let keys: Vec<ObjectKey> = self.queues.keys().copied().collect();
        self.ready.clear();
        self.held.clear();
        self.timers.clear();
        let now = self.ctx.clock.now();
        for k in keys {
            self.classify(k, now);
        }
        self.pump(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(ids: &[u64]) -> VecDeque<Job> {
        ids.iter().map(|&id| Job::new(id, 1, None, None)).collect()
    }

    fn ids(q: &VecDeque<Job>) -> Vec<u64> {
        q.iter().map(|j| j.id).collect()
    }

    #[test]
    fn a_requeued_delivery_goes_in_delivery_order_but_never_before_a_send() {
        let none = HashSet::default();
        // New deliveries are the newest: they go to the back.
        let mut q = queue(&[3, 5]);
        insert_in_order(&mut q, Job::new(9, 1, None, None), &none);
        assert_eq!(ids(&q), [3, 5, 9]);
        // An older one goes before the newer ones waiting.
        insert_in_order(&mut q, Job::new(4, 1, None, None), &none);
        assert_eq!(ids(&q), [3, 4, 5, 9]);
        insert_in_order(&mut q, Job::new(1, 1, None, None), &none);
        assert_eq!(ids(&q), [1, 3, 4, 5, 9]);
        // Not before the head being sent (or a digest's jobs being sent).
        let mut q = queue(&[5, 7, 9]);
        let sending: HashSet<u64> = [5, 7].into_iter().collect();
        insert_in_order(&mut q, Job::new(2, 1, None, None), &sending);
        assert_eq!(ids(&q), [5, 7, 2, 9]);
        insert_in_order(&mut q, Job::new(8, 1, None, None), &sending);
        assert_eq!(ids(&q), [5, 7, 2, 8, 9]);
        let mut q = VecDeque::new();
        insert_in_order(&mut q, Job::new(2, 1, None, None), &none);
        assert_eq!(ids(&q), [2]);
    }
}
