//! The rule index: finds the webhooks an event fires without looking at the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

// rustc's fast unseeded hash: every key of these maps comes from administrators' trigger lists and
// webhook filters (object types, actions, product and execution ids); events only look keys up,
// so a producer cannot grow a map with colliding keys.
use super::triggers::default_triggers;
use crate::event::ActionEvent;
use crate::webhook::{Triggers, Webhook};
use rustc_hash::FxHashMap as FxMap;

/// Which bucket a webhook lives in: the one scope dimension every event it fires for must hit.
///
/// A webhook with an execution filter can only fire for an event whose execution is listed, so it
/// is filed under each listed execution (executions are finer-grained than products, hence this
/// is preferred when both filters are set). Else a product filter files it under each listed
/// product. A webhook with no filter is a candidate for every event and lives under `Any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Any,
    Product(u64),
    Execution(u64),
}

/// Interned `(objectType, action)` pairs: routing hashes the event's two strings once to get a
/// small id, and everything after that is integer lookups. Grows only, as trigger lists name new
/// pairs; ids are never reused, so an id in a rule or a bucket always means the same pair.
#[derive(Debug, Default, Clone)]
struct Pairs {
    ids: FxMap<String, FxMap<String, PairId>>,
    count: PairId,
}

type PairId = u32;

impl Pairs {
    fn get(&self, object_type: &str, action: &str) -> Option<PairId> {
        self.ids.get(object_type)?.get(action).copied()
    }

    /// The pair's id, adding it when new; copies the (shared) table only in that case.
    fn intern(this: &mut Arc<Pairs>, object_type: &str, action: &str) -> PairId {
        if let Some(id) = this.get(object_type, action) {
            return id;
        }
        let pairs = Arc::make_mut(this);
        let id = pairs.count;
        pairs.count += 1;
        pairs
            .ids
            .entry(object_type.to_string())
            .or_default()
            .insert(action.to_string(), id);
        id
    }
}

/// A webhook in the form routing checks it: sorted filters for binary search, its trigger list
/// as pair ids, and the buckets it was filed under so that it can be taken out again.
#[derive(Debug)]
struct Rule {
    id: u64,
    /// Sorted, deduplicated copy of the webhook's `products`.
    products: Box<[u64]>,
    /// Sorted, deduplicated copy of the webhook's `executions`.
    executions: Box<[u64]>,
    /// `None`: follows the global settings. `Some`: its own list, deduplicated (empty for `{}`).
    own: Option<Box<[PairId]>>,
    /// Accounts whose actions never fire it (`ignoreActors`), sorted.
    ignore: Box<[Box<str>]>,
    /// `details: true`: a no-op edit does not fire it ([`super::is_noop_edit`]).
    details: bool,
    /// Enabled and not deleted (operator events check only this and the own list).
    live: bool,
    /// Empty for a webhook that can never fire (disabled, deleted, an empty own list, or filters
    /// listing only the id 0): such a webhook is remembered but filed nowhere.
    keys: Box<[Key]>,
}

impl Rule {
    fn new(webhook: &Webhook, pairs: &mut Arc<Pairs>) -> Rule {
        let sorted = |ids: &[u64]| {
            let mut v = ids.to_vec();
            v.sort_unstable();
            v.dedup();
            v.into_boxed_slice()
        };
        let products = sorted(&webhook.products);
        let executions = sorted(&webhook.executions);
        let own = webhook.actions.as_ref().map(|triggers| {
            let mut ids: Vec<PairId> = triggers
                .iter()
                .flat_map(|(ty, actions)| actions.iter().map(move |a| (ty, a)))
                .map(|(ty, action)| Pairs::intern(pairs, ty, action))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.into_boxed_slice()
        });
        let can_fire =
            webhook.enabled && !webhook.deleted && own.as_ref().is_none_or(|ids| !ids.is_empty());
        // Id 0 is never looked up: events never match it (see `matches`).
        let keys: Box<[Key]> = if !can_fire {
            Box::new([])
        } else if !executions.is_empty() {
            executions
                .iter()
                .filter(|e| **e != 0)
                .map(|e| Key::Execution(*e))
                .collect()
        } else if !products.is_empty() {
            products
                .iter()
                .filter(|p| **p != 0)
                .map(|p| Key::Product(*p))
                .collect()
        } else {
            Box::new([Key::Any])
        };
        let mut ignore: Vec<Box<str>> = webhook
            .ignore_actors
            .iter()
            .map(|a| a.as_str().into())
            .collect();
        ignore.sort_unstable();
        ignore.dedup();
        Rule {
            id: webhook.id,
            products,
            executions,
            own,
            ignore: ignore.into_boxed_slice(),
            details: webhook.details,
            live: webhook.enabled && !webhook.deleted,
            keys,
        }
    }

    /// The scope filters, ignored actors and the no-op rule; the trigger check was done by
    /// choosing the slot.
    #[inline]
    fn scope_passes(&self, ev: &ActionEvent) -> bool {
        (self.ignore.is_empty()
            || self
                .ignore
                .binary_search_by(|a| (**a).cmp(ev.actor.as_str()))
                .is_err())
            && !(self.details && super::is_noop_edit(ev))
            && (self.products.is_empty()
                || ev
                    .product
                    .iter()
                    .any(|p| *p != 0 && self.products.binary_search(p).is_ok()))
            && (self.executions.is_empty()
                || (ev.execution != 0 && self.executions.binary_search(&ev.execution).is_ok()))
    }
}

/// Everything filed under one [`Key`]. Cloned only when an update touches it.
#[derive(Debug, Default, Clone)]
struct Bucket {
    /// Webhooks following the global trigger settings: they are all candidates when the settings
    /// allow the event's pair, and none are otherwise. Changing the settings therefore needs no
    /// re-filing.
    global: Vec<Arc<Rule>>,
    /// Webhooks with their own trigger list, by pair: the slot an event looks up holds exactly
    /// the webhooks whose list contains its `(objectType, action)`.
    own: FxMap<PairId, Vec<Arc<Rule>>>,
}

impl Bucket {
    fn is_empty(&self) -> bool {
        self.global.is_empty() && self.own.is_empty()
    }

    /// Files `rule`, replacing any other version with the same id in each slot.
    fn put(&mut self, rule: &Arc<Rule>) {
        match &rule.own {
            None => put_in(&mut self.global, rule),
            Some(pairs) => {
                for pair in pairs.iter() {
                    put_in(self.own.entry(*pair).or_default(), rule);
                }
            }
        }
    }

    /// Takes this exact version of `rule` out, dropping slots left empty.
    fn take(&mut self, rule: &Arc<Rule>) {
        let other = |r: &Arc<Rule>| !Arc::ptr_eq(r, rule);
        match &rule.own {
            None => self.global.retain(other),
            Some(pairs) => {
                for pair in pairs.iter() {
                    if let Some(slot) = self.own.get_mut(pair) {
                        slot.retain(other);
                        if slot.is_empty() {
                            self.own.remove(pair);
                        }
                    }
                }
            }
        }
    }
}

fn put_in(slot: &mut Vec<Arc<Rule>>, rule: &Arc<Rule>) {
    match slot.iter_mut().find(|r| r.id == rule.id) {
        Some(old) => *old = Arc::clone(rule),
        None => slot.push(Arc::clone(rule)),
    }
}

/// The global trigger settings in both forms: as given (for [`RuleIndex::triggers`]) and as the
/// set of pair ids they allow.
#[derive(Debug)]
struct Global {
    triggers: Triggers,
    /// Indexed by pair id; ids interned after these settings were set are beyond the end, and
    /// not allowed.
    allowed: Vec<bool>,
}

impl Global {
    fn new(triggers: Triggers, pairs: &mut Arc<Pairs>) -> Global {
        let ids: Vec<PairId> = triggers
            .iter()
            .flat_map(|(ty, actions)| actions.iter().map(move |a| (ty, a)))
            .map(|(ty, action)| Pairs::intern(pairs, ty, action))
            .collect();
        let mut allowed = vec![false; pairs.count as usize];
        for id in ids {
            allowed[id as usize] = true;
        }
        Global { triggers, allowed }
    }

    fn allows(&self, pair: PairId) -> bool {
        self.allowed.get(pair as usize).copied().unwrap_or(false)
    }
}

/// One consistent state of the index. Never changed once published: an update builds the next
/// snapshot (sharing every bucket it does not touch) and swaps it in whole.
#[derive(Debug, Clone)]
struct Snapshot {
    pairs: Arc<Pairs>,
    global: Arc<Global>,
    buckets: FxMap<Key, Arc<Bucket>>,
}

impl Snapshot {
    fn file(&mut self, rule: &Arc<Rule>) {
        for key in rule.keys.iter() {
            Arc::make_mut(self.buckets.entry(*key).or_default()).put(rule);
        }
    }

    fn unfile(&mut self, rule: &Arc<Rule>) {
        for key in rule.keys.iter() {
            if let Some(bucket) = self.buckets.get_mut(key) {
                let bucket = Arc::make_mut(bucket);
                bucket.take(rule);
                if bucket.is_empty() {
                    self.buckets.remove(key);
                }
            }
        }
    }

    fn collect(
        &self,
        key: Key,
        pair: PairId,
        global_ok: bool,
        ev: &ActionEvent,
        out: &mut Vec<u64>,
    ) {
        let Some(bucket) = self.buckets.get(&key) else {
            return;
        };
        if global_ok {
            out.extend(
                bucket
                    .global
                    .iter()
                    .filter(|r| r.scope_passes(ev))
                    .map(|r| r.id),
            );
        }
        if let Some(slot) = bucket.own.get(&pair) {
            out.extend(slot.iter().filter(|r| r.scope_passes(ev)).map(|r| r.id));
        }
    }
}

/// All webhooks, indexed for routing: which of them fire for an event.
///
/// `route` looks only at the buckets an event can hit (its products, its execution, and the
/// unfiltered webhooks), and inside each only at the slot for its `(objectType, action)` plus,
/// when the global settings allow that pair, the webhooks that follow them; each candidate then
/// gets its scope filters checked. The cost depends on the number of candidates, not on the
/// number of webhooks.
///
/// Safe to share between threads (`&self` everywhere). Routing reads an immutable snapshot;
/// updates (rare) are serialised, build the next snapshot copy-on-write — costing the number of
/// buckets plus the size of the buckets touched, not the number of webhooks — and swap it in. So
/// a `route` sees the index entirely before or entirely after an update, never half of one (a
/// webhook moving between buckets is never missed). Webhooks stay until removed: not a cache.
#[derive(Debug)]
pub struct RuleIndex {
    current: RwLock<Arc<Snapshot>>,
    /// Every webhook by id, including those that cannot fire. Also the writers' lock: an update
    /// holds it from reading the current snapshot to publishing the next one.
    rules: Mutex<HashMap<u64, Arc<Rule>>>,
}

impl Default for RuleIndex {
    /// An empty index under [`default_triggers`].
    fn default() -> RuleIndex {
        RuleIndex::new(default_triggers())
    }
}

impl RuleIndex {
    /// An empty index; `global` is the trigger settings for webhooks without their own `actions`.
    pub fn new(global: Triggers) -> RuleIndex {
        let mut pairs = Arc::new(Pairs::default());
        let global = Arc::new(Global::new(global, &mut pairs));
        let snapshot = Snapshot {
            pairs,
            global,
            buckets: FxMap::default(),
        };
        RuleIndex {
            current: RwLock::new(Arc::new(snapshot)),
            rules: Mutex::new(HashMap::new()),
        }
    }

    /// Adds `webhook`, or replaces the one with the same `id`. Disabled and deleted webhooks are
    /// kept (they count in [`len`](Self::len)) but never fire.
    pub fn upsert(&self, webhook: Arc<Webhook>) {
        self.extend([webhook]);
    }

    /// [`upsert`](Self::upsert)s many webhooks as one update, e.g. every stored webhook at
    /// startup: one snapshot is built instead of one per webhook.
    pub fn extend(&self, webhooks: impl IntoIterator<Item = Arc<Webhook>>) {
        self.update(|rules, next| {
            for webhook in webhooks {
                let rule = Arc::new(Rule::new(&webhook, &mut next.pairs));
                if let Some(old) = rules.insert(rule.id, Arc::clone(&rule)) {
                    next.unfile(&old);
                }
                next.file(&rule);
            }
        });
    }

    /// Forgets the webhook with this id; unknown ids are ignored, so removal is idempotent.
    pub fn remove(&self, id: u64) {
        self.update(|rules, next| {
            if let Some(old) = rules.remove(&id) {
                next.unfile(&old);
            }
        });
    }

    /// Replaces the global trigger settings (`PUT /api/v1/settings/triggers`). Takes effect for
    /// every `route` that starts afterwards; nothing needs re-filing.
    pub fn set_triggers(&self, triggers: Triggers) {
        self.update(|_, next| next.global = Arc::new(Global::new(triggers, &mut next.pairs)));
    }

    /// The global trigger settings, as last set.
    pub fn triggers(&self) -> Triggers {
        self.snapshot().global.triggers.clone()
    }

    /// How many webhooks the index holds, including those that cannot fire.
    pub fn len(&self) -> usize {
        self.lock_rules().len()
    }

    /// Whether the index holds no webhook at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends to `out` the ids of the webhooks that fire for `ev`, ascending, each once (what
    /// was in `out` before is left alone). Same answer as [`matches`](super::matches) over every
    /// webhook; allocates nothing besides growing `out`.
    pub fn route(&self, ev: &ActionEvent, out: &mut Vec<u64>) {
        let start = out.len();
        if ev.object_type == super::OPERATOR {
            self.route_operator(ev, out);
            out[start..].sort_unstable();
            return;
        }
        {
            // Held only for the lookups; a writer waits at most that long to publish.
            let snapshot = self.current.read().unwrap_or_else(PoisonError::into_inner);
            // A pair no trigger list names cannot fire anything.
            let Some(pair) = snapshot.pairs.get(&ev.object_type, &ev.action) else {
                return;
            };
            let global_ok = snapshot.global.allows(pair);
            snapshot.collect(Key::Any, pair, global_ok, ev, out);
            if ev.execution != 0 {
                snapshot.collect(Key::Execution(ev.execution), pair, global_ok, ev, out);
            }
            for &p in &ev.product {
                if p != 0 {
                    snapshot.collect(Key::Product(p), pair, global_ok, ev, out);
                }
            }
        }
        // A webhook filed under several of the event's products is found once per product.
        out[start..].sort_unstable();
        let mut kept = start;
        for i in start..out.len() {
            if kept == start || out[i] != out[kept - 1] {
                out[kept] = out[i];
                kept += 1;
            }
        }
        out.truncate(kept);
    }

    /// Operator events (docs/reference.md §4): only webhooks whose own list names them, whatever their
    /// product and execution filters. Rare, so a scan of every webhook.
    fn route_operator(&self, ev: &ActionEvent, out: &mut Vec<u64>) {
        let Some(pair) = self.snapshot().pairs.get(&ev.object_type, &ev.action) else {
            return;
        };
        for rule in self.lock_rules().values() {
            if rule.live && rule.own.as_ref().is_some_and(|own| own.contains(&pair)) {
                out.push(rule.id);
            }
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current)
    }

    /// Runs one update on a copy of the current snapshot and publishes the result.
    fn update(&self, change: impl FnOnce(&mut HashMap<u64, Arc<Rule>>, &mut Snapshot)) {
        let mut rules = self.lock_rules();
        let mut next = Snapshot::clone(&self.snapshot());
        change(&mut rules, &mut next);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(next);
    }

    fn lock_rules(&self) -> MutexGuard<'_, HashMap<u64, Arc<Rule>>> {
        // An update that panicked published nothing, so routing still sees a whole snapshot;
        // the only panic possible inside one is an allocation failure.
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
