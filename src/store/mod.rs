//! The one embedded database (redb) and the only code that touches it.
//!
//! Writes go through one writer thread that merges whatever is waiting into one durable commit
//! (group commit): concurrent intake requests, delivery-state updates and API changes share the
//! ~250 µs fsync instead of paying it each. Reads open their own MVCC snapshot on the caller's
//! thread.
//!
//! Tables: `meta` (schema version, counters), `webhooks`, `settings`, `batches` (one row per
//! intake batch: its events and deliveries), `seen` (one row per batch: its event ids, for the
//! dedupe index), `open` (batch → deliveries not yet final), `states` (delivery → state, absent =
//! pending), `checkpoints`, `quarantine`, `bindings`, `counters` (webhook → its deliveries by
//! status, [`WebhookCounters`]).

mod backend;
mod records;
#[cfg(test)]
mod tests;

use crate::clock::now_ms;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

pub use backend::Faults;
pub use records::*;

use crate::event::ActionEvent;
use crate::webhook::{Triggers, Webhook};
use rustc_hash::FxHashMap as FxMap;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const WEBHOOKS: TableDefinition<u64, &[u8]> = TableDefinition::new("webhooks");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
const SEEN: TableDefinition<u64, &[u8]> = TableDefinition::new("seen");
const OPEN: TableDefinition<u64, u64> = TableDefinition::new("open");
const STATES: TableDefinition<u64, &[u8]> = TableDefinition::new("states");
const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
const BINDINGS: TableDefinition<(u64, &str), &str> = TableDefinition::new("bindings");
const COUNTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("counters");

/// Set in `meta` once `counters` holds every webhook's counts: a store written before that
/// table existed has them rebuilt from the log when it is first opened.
const COUNTERS_BUILT: &str = "counters_built";

/// The schema this build writes. A store written by a newer schema is refused.
pub const SCHEMA_VERSION: u64 = 1;

/// Most batches (and quarantine rows) one retention op removes: a long-overdue pass is split
/// over several commits instead of stalling intake in one huge one.
pub const PRUNE_BATCHES_PER_COMMIT: usize = 1000;

/// redb's page cache (its default is 1 GiB, which a busy outbox fills: resident memory then
/// grows with the backlog). Reads of recent batches and the delivery log stay fast at this size.
const PAGE_CACHE: usize = 16 << 20;

/// Most ops merged into one commit: bounds the latency a large group adds to the first op.
const MAX_OPS_PER_COMMIT: usize = 256;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0} (is the disk full or the file damaged?)")]
    Db(#[from] redb::Error),
    #[error("could not open the store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("corrupt record in table {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("the store is shut down")]
    Closed,
    /// The store cannot commit right now (disk full, I/O error) and refuses writes until it
    /// can again; it keeps trying by itself.
    #[error("the store cannot commit ({reason}); it retries by itself, try again shortly")]
    Unavailable { reason: String },
    /// The commit that held this operation failed (disk full, I/O error): nothing of it is
    /// stored, and the caller may try again.
    #[error("could not commit to the store: {0}")]
    Commit(String),
    /// The store was written by a newer schema than this build knows.
    #[error("the store was written by a newer sanhook (schema {found}, this build knows {known}); upgrade sanhook")]
    NewerSchema { found: u64, known: u64 },
    /// One intake batch would create more deliveries than a batch row can index.
    #[error("one request may create at most {max} deliveries; split the body")]
    TooManyDeliveries { max: usize },
    /// A caller passed routes that do not pair with the events (a bug, not bad input).
    #[error("an intake batch has {events} events but {routes} routes")]
    RoutesMismatch { events: usize, routes: usize },
    #[error("not found")]
    NotFound,
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
db_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One intake batch to commit: the events of one request (or one read of a source), how each
/// was routed, and optionally the source's new read position and its rejected input.
#[derive(Debug, Default)]
pub struct IngestBatch {
    pub source: String,
    pub events: Vec<ActionEvent>,
    /// Webhook ids per event (same length as `events`).
    pub routes: Vec<Vec<u64>>,
    pub checkpoint: Option<Checkpoint>,
    pub quarantine: Vec<QuarantineItem>,
}

/// What a committed intake batch produced.
#[derive(Debug, Default)]
pub struct IngestResult {
    /// New events.
    pub accepted: usize,
    /// Events whose `id` was already seen (including repeats inside the batch).
    pub duplicates: usize,
    /// The deliveries created, to hand to the dispatcher.
    pub deliveries: Vec<OpenDelivery>,
}

/// A state change for one delivery, encoded by the caller: the one writer thread only stores
/// bytes, so the encoding cost is spread over the dispatch workers.
#[derive(Debug, Clone)]
pub struct StateUpdate {
    id: u64,
    /// The delivery's webhook, whose counters move with it.
    webhook: u64,
    raw: Vec<u8>,
    /// The status before this update (keeps the open-batch counts and the counters exact: the
    /// caller holds the state it is replacing, so the writer need not read and decode it).
    from: Status,
    to: Status,
    /// A failure's error, for the webhook's `last_error`.
    error: Option<String>,
    /// When the attempt that led here was made (the state's `last_attempt_at`, on the engine's
    /// clock): the counters' last success / failure and `failing_since` use it, as the rebuild
    /// from the states does, rather than the time of the commit.
    at: Option<i64>,
}

impl StateUpdate {
    /// Delivery `id` of `webhook` moves from status `from` to `state`.
    pub fn new(id: u64, webhook: u64, from: Status, state: &DeliveryState) -> StateUpdate {
        let failed = matches!(state.status, Status::Retrying | Status::Dead);
        StateUpdate {
            id,
            webhook,
            // Plain structs, strings and a JSON value: encoding cannot fail.
            raw: serde_json::to_vec(state).expect("a delivery state always encodes"),
            from,
            to: state.status,
            error: if failed {
                state.last_error.clone()
            } else {
                None
            },
            at: state.last_attempt_at,
        }
    }

    /// The delivery this update is for.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Filter for the delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub webhook: Option<u64>,
    pub status: Option<Status>,
    pub limit: usize,
    /// Only ids below this (paging backwards).
    pub before: Option<u64>,
}

enum Op {
    Ingest(IngestBatch, oneshot::Sender<Result<IngestResult>>),
    States(Vec<StateUpdate>, oneshot::Sender<Result<()>>),
    PutWebhook(Box<Webhook>, oneshot::Sender<Result<Webhook>>),
    PutTriggers(Triggers, oneshot::Sender<Result<()>>),
    PutCheckpoint(Checkpoint, oneshot::Sender<Result<()>>),
    PutBindings(
        u64,
        Vec<(String, Option<String>)>,
        oneshot::Sender<Result<()>>,
    ),
    Prune(i64, oneshot::Sender<Result<PruneStats>>),
    /// Stop: everything queued before has been answered; the file is released before the reply.
    Close(oneshot::Sender<Result<()>>),
}

/// What a retention pass removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct PruneStats {
    pub batches: usize,
    pub quarantine: usize,
}

/// The open database, swapped by the writer when it reopens the file after a failed commit;
/// `None` while it is being reopened.
type DbHandle = Arc<std::sync::RwLock<Option<Arc<Database>>>>;

/// A time the store could not commit: since when, until when (`None`: still), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// Unix milliseconds.
    pub since: i64,
    /// Unix milliseconds; `None` while it lasts.
    pub until: Option<i64>,
    pub reason: String,
}

/// Whether the store can commit, as the writer last found: the current outage, and the ended
/// ones nobody has reported yet.
#[derive(Debug, Default)]
struct Health {
    current: Option<Outage>,
    ended: Vec<Outage>,
}

type SharedHealth = Arc<std::sync::Mutex<Health>>;

fn lock_health(h: &SharedHealth) -> std::sync::MutexGuard<'_, Health> {
    h.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Handle to the store. Cheap to clone; the writer thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    db: DbHandle,
    health: SharedHealth,
    tx: mpsc::UnboundedSender<Op>,
    instance: Arc<str>,
    /// The committed `counters` table, kept in memory by the writer (replaced after each
    /// commit), so that reading every webhook's counts touches no table.
    counters: SharedCounters,
}

/// Webhook → its counters, as last committed.
type SharedCounters = Arc<std::sync::RwLock<HashMap<u64, WebhookCounters>>>;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("instance", &self.instance)
            .finish()
    }
}

fn corrupt(table: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: e.to_string(),
    }
}

/// Opens the database file (creating it), with redb's page cache at [`PAGE_CACHE`].
fn open_db(path: &Path, faults: Option<Arc<Faults>>) -> Result<Database> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    let backend = backend::Backend::new(file, faults)?;
    Database::builder()
        .set_cache_size(PAGE_CACHE)
        .create_with_backend(backend)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Open {
                path: path.display().to_string(),
                reason: "it is already open in another process (only one `sanhook serve` may use a store)".into(),
            },
            other => StoreError::from(other),
        })
}

impl Store {
    /// Opens (or creates) the store at `path`, creating parent directories.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_inner(path, None)
    }

    /// [`Store::open`] with a switch for injected write failures (tests of storage faults).
    #[doc(hidden)]
    pub fn open_with_faults(path: &Path, faults: Arc<Faults>) -> Result<Store> {
        Store::open_inner(path, Some(faults))
    }

    fn open_inner(path: &Path, faults: Option<Arc<Faults>>) -> Result<Store> {
        let open_err = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
            }
        }
        let owned = path.to_path_buf();
        let reopen = move || open_db(&owned, faults.clone());
        let db = Arc::new(reopen().map_err(|e| open_err(e.to_string()))?);
        let (instance, state) = init(&db)?;
        let counters = state.counters.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let handle: DbHandle = Arc::new(std::sync::RwLock::new(Some(db)));
        let health = SharedHealth::default();
        let writer = Writer {
            db: handle.clone(),
            reopen: Box::new(reopen),
            health: health.clone(),
        };
        std::thread::Builder::new()
            .name("sanhook-store".into())
            .spawn(move || writer.run(rx, state))
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Store {
            db: handle,
            health,
            tx,
            instance: instance.into(),
            counters,
        })
    }

    /// A read transaction on the current database (503-like [`StoreError::Unavailable`] while
    /// the writer is reopening it).
    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        let db = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Unavailable {
                reason: "the store is being reopened after a failed commit".into(),
            })?;
        Ok(db.begin_read()?)
    }

    /// The current outage, when the store cannot commit.
    pub fn outage(&self) -> Option<Outage> {
        lock_health(&self.health).current.clone()
    }

    /// Outages that have ended since the last call (each is returned once).
    pub fn take_ended_outages(&self) -> Vec<Outage> {
        std::mem::take(&mut lock_health(&self.health).ended)
    }

    /// A random id made when the store was created: makes `webhook-id`s unique across stores.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Commits an intake batch durably; returns once it is on disk.
    pub async fn ingest(&self, batch: IngestBatch) -> Result<IngestResult> {
        if batch.events.len() != batch.routes.len() {
            return Err(StoreError::RoutesMismatch {
                events: batch.events.len(),
                routes: batch.routes.len(),
            });
        }
        self.call(|tx| Op::Ingest(batch, tx)).await
    }

    /// Commits delivery state changes durably.
    pub async fn update_states(&self, updates: Vec<StateUpdate>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.call(|tx| Op::States(updates, tx)).await
    }

    /// Inserts (id 0: a new id is assigned) or replaces a webhook; returns it as stored.
    pub async fn put_webhook(&self, wh: Webhook) -> Result<Webhook> {
        self.call(|tx| Op::PutWebhook(Box::new(wh), tx)).await
    }

    /// Replaces the global trigger settings.
    pub async fn put_triggers(&self, t: Triggers) -> Result<()> {
        self.call(|tx| Op::PutTriggers(t, tx)).await
    }

    /// Writes a checkpoint on its own (sources write theirs with their events via `ingest`).
    pub async fn put_checkpoint(&self, cp: Checkpoint) -> Result<()> {
        self.queue_checkpoint(cp).await
    }

    /// Queues a checkpoint write now, in call order with every other write, and returns the
    /// wait for its commit. Unlike [`Store::put_checkpoint`], whose write is queued only when
    /// the future is first polled, two snapshots of one budget queued one after the other are
    /// committed in that order, so the newer one is what stays.
    pub fn queue_checkpoint(
        &self,
        cp: Checkpoint,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self
            .tx
            .send(Op::PutCheckpoint(cp, tx))
            .map_err(|_| StoreError::Closed);
        async move {
            queued?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Binds (`Some(userid)`) or unbinds (`None`) accounts of one webhook.
    pub async fn put_bindings(
        &self,
        webhook: u64,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<()> {
        self.call(|tx| Op::PutBindings(webhook, changes, tx)).await
    }

    /// Drops finished batches created before `cutoff_ms` (with their states and seen ids) and
    /// quarantine entries older than it.
    pub async fn prune(&self, cutoff_ms: i64) -> Result<PruneStats> {
        self.call(|tx| Op::Prune(cutoff_ms, tx)).await
    }

    /// Commits (or fails) everything queued before, then closes the database and stops the
    /// writer: when this returns the file is released and may be opened again. Later writes
    /// fail with [`StoreError::Closed`].
    pub async fn close(&self) -> Result<()> {
        match self.call(Op::Close).await {
            Err(StoreError::Closed) => Ok(()),
            other => other,
        }
    }

    /// Waits until every op queued before this call is committed (or failed).
    pub async fn sync(&self) -> Result<()> {
        // An empty state update is a no-op op: its reply comes after everything queued before it.
        self.call(|tx| Op::States(vec![], tx)).await
    }

    /// Every webhook, deleted ones excluded.
    pub fn webhooks(&self) -> Result<Vec<Webhook>> {
        let r = self.begin_read()?;
        let t = match r.open_table(WEBHOOKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(e.into()),
        };
        let mut out = vec![];
        for row in t.iter()? {
            let (_, v) = row?;
            let wh: Webhook =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("webhooks", e))?;
            if !wh.deleted {
                out.push(wh);
            }
        }
        Ok(out)
    }

    /// The stored global trigger settings, if ever set.
    pub fn triggers(&self) -> Result<Option<Triggers>> {
        let r = self.begin_read()?;
        let t = r.open_table(SETTINGS)?;
        match t.get("triggers")? {
            Some(v) => Ok(Some(
                serde_json::from_slice(v.value()).map_err(|e| corrupt("settings", e))?,
            )),
            None => Ok(None),
        }
    }

    /// The bindings of one webhook: `(account, userid)` sorted by account.
    pub fn bindings(&self, webhook: u64) -> Result<Vec<(String, String)>> {
        let r = self.begin_read()?;
        let t = r.open_table(BINDINGS)?;
        let mut out = vec![];
        for row in t.range((webhook, "")..)? {
            let (k, v) = row?;
            let (w, account) = k.value();
            if w != webhook {
                break;
            }
            out.push((account.to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    /// A source's checkpoint.
    pub fn checkpoint(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let r = self.begin_read()?;
        let t = r.open_table(CHECKPOINTS)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Every checkpoint whose key starts with `prefix`.
    pub fn checkpoints(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let r = self.begin_read()?;
        let t = r.open_table(CHECKPOINTS)?;
        let mut out = vec![];
        for row in t.range(prefix..)? {
            let (k, v) = row?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Newest quarantine entries first.
    pub fn quarantine(&self, limit: usize) -> Result<Vec<QuarantineItem>> {
        let r = self.begin_read()?;
        let t = r.open_table(QUARANTINE)?;
        let mut out = vec![];
        for row in t.iter()?.rev().take(limit) {
            let (_, v) = row?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| corrupt("quarantine", e))?);
        }
        Ok(out)
    }

    /// Every delivery that is not final, oldest first.
    pub fn open_deliveries(&self) -> Result<Vec<OpenDelivery>> {
        Ok(self.open_deliveries_page(0, u64::MAX, usize::MAX)?.0)
    }

    /// The newest batch that still has open deliveries: resuming stops there, so batches
    /// committed after the engine started are not resumed twice.
    pub fn last_open_batch(&self) -> Result<Option<u64>> {
        let r = self.begin_read()?;
        let open = r.open_table(OPEN)?;
        let last = open.last()?.map(|(k, _)| k.value());
        Ok(last)
    }

    /// The open deliveries of at most `max_batches` batches from `from` up to `upto`
    /// (inclusive), oldest first, and the batch to continue from (`None` when done). Resuming
    /// reads the outbox a page at a time so that the first sends start before it is all read.
    pub fn open_deliveries_page(
        &self,
        from: u64,
        upto: u64,
        max_batches: usize,
    ) -> Result<(Vec<OpenDelivery>, Option<u64>)> {
        let r = self.begin_read()?;
        let open = r.open_table(OPEN)?;
        let batches = r.open_table(BATCHES)?;
        let states = r.open_table(STATES)?;
        let mut out = vec![];
        for (read, row) in open.range(from..=upto)?.enumerate() {
            let (seq, _) = row?;
            let seq = seq.value();
            if read == max_batches {
                return Ok((out, Some(seq)));
            }
            let Some(raw) = batches.get(seq)? else {
                continue;
            };
            let batch = Decoded::new(seq, raw.value())?;
            let st = batch_states(&states, seq)?;
            for i in 0..batch.deliveries.len() {
                let id = delivery_id(seq, i);
                let state = st.get(&id).cloned().unwrap_or_default();
                if state.status.is_final() {
                    continue;
                }
                let (webhook_id, event) = batch.delivery(i)?;
                out.push(OpenDelivery {
                    id,
                    webhook_id,
                    event,
                    created_at: batch.created_at,
                    state,
                });
            }
        }
        Ok((out, None))
    }

    /// The event of every delivery of one batch, by delivery index (what dispatch reads back
    /// at send time when its cache no longer holds the batch).
    pub fn batch_events(&self, seq: u64) -> Result<Option<BatchEvents>> {
        let r = self.begin_read()?;
        let batches = r.open_table(BATCHES)?;
        let Some(raw) = batches.get(seq)? else {
            return Ok(None);
        };
        let batch = Decoded::new(seq, raw.value())?;
        let by_delivery = (0..batch.deliveries.len())
            .map(|i| batch.delivery(i).map(|(_, ev)| Some(ev)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(BatchEvents {
            created_at: batch.created_at,
            events: batch.events.len(),
            by_delivery,
        }))
    }

    /// One delivery.
    pub fn delivery(&self, id: u64) -> Result<Option<DeliveryRecord>> {
        let (seq, idx) = split_delivery_id(id);
        let r = self.begin_read()?;
        let batches = r.open_table(BATCHES)?;
        let states = r.open_table(STATES)?;
        let Some(raw) = batches.get(seq)? else {
            return Ok(None);
        };
        let batch: BatchRecord =
            serde_json::from_slice(raw.value()).map_err(|e| corrupt("batches", e))?;
        let Some((wh, ev)) = batch.deliveries.get(idx).copied() else {
            return Ok(None);
        };
        let state = match states.get(id)? {
            Some(v) => serde_json::from_slice(v.value()).map_err(|e| corrupt("states", e))?,
            None => DeliveryState::default(),
        };
        let event = batch
            .events
            .into_iter()
            .nth(ev as usize)
            .ok_or_else(|| corrupt("batches", format!("batch {seq}: event index {ev}")))?;
        Ok(Some(DeliveryRecord {
            id,
            webhook_id: wh,
            event: Arc::new(event),
            created_at: batch.created_at,
            state,
        }))
    }

    /// The delivery log, newest first.
    pub fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        let r = self.begin_read()?;
        let batches = r.open_table(BATCHES)?;
        let states = r.open_table(STATES)?;
        let upper = q.before.map(split_delivery_id);
        let range = match upper {
            Some((seq, _)) => batches.range(..=seq)?,
            None => batches.range(0..)?,
        };
        let mut out = vec![];
        for row in range.rev() {
            if out.len() >= q.limit {
                break;
            }
            let (seq, raw) = row?;
            let seq = seq.value();
            let batch = Decoded::new(seq, raw.value())?;
            if batch.deliveries.is_empty() {
                continue;
            }
            if let Some(w) = q.webhook {
                if !batch.deliveries.iter().any(|(wh, _)| *wh == w) {
                    continue;
                }
            }
            let st = batch_states(&states, seq)?;
            for (i, (wh, _)) in batch.deliveries.iter().enumerate().rev() {
                let id = delivery_id(seq, i);
                if q.before.is_some_and(|b| id >= b) || q.webhook.is_some_and(|w| w != *wh) {
                    continue;
                }
                let state = st.get(&id).cloned().unwrap_or_default();
                if q.status.is_some_and(|s| s != state.status) {
                    continue;
                }
                let (webhook_id, event) = batch.delivery(i)?;
                out.push(DeliveryRecord {
                    id,
                    webhook_id,
                    event,
                    created_at: batch.created_at,
                    state,
                });
                if out.len() >= q.limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Where a scan of dead deliveries ([`Store::dead_deliveries`]) goes on from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadScan {
    /// The next delivery id to look at.
    from: u64,
    /// The first delivery id not to look at: what is committed after the scan began is left
    /// alone, so a scan ends even while deliveries keep dying.
    end: u64,
}

impl Store {
    /// Every webhook's counters as last committed (deleted webhooks' too), from memory.
    pub fn counters(&self) -> HashMap<u64, WebhookCounters> {
        self.counters
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The webhooks in a failing episode: `(webhook, failing since, last error)`, from memory,
    /// without copying the others' counters (the health watch asks every second).
    pub fn failing(&self) -> Vec<(u64, i64, String)> {
        self.counters
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter_map(|(id, c)| {
                c.failing_since
                    .map(|since| (*id, since, c.last_error.clone().unwrap_or_default()))
            })
            .collect()
    }

    /// Up to `limit` dead deliveries of `webhook` whose batch was committed at or after
    /// `since_ms`, in delivery-id order, and where the next page starts (`None`: no more).
    /// Start with `scan: None`.
    ///
    /// Only the `states` rows from the first batch committed since then are read (a dead
    /// delivery always has one; a delivery without one is pending), and a batch row only when
    /// one of its deliveries is dead: the first batch is found by a binary search over the
    /// batch sequence, not by reading the log from its start.
    pub fn dead_deliveries(
        &self,
        webhook: u64,
        since_ms: i64,
        scan: Option<DeadScan>,
        limit: usize,
    ) -> Result<(Vec<DeliveryRecord>, Option<DeadScan>)> {
        let r = self.begin_read()?;
        let batches = r.open_table(BATCHES)?;
        let states = r.open_table(STATES)?;
        let scan = match scan {
            Some(s) => s,
            None => {
                let Some(first) = first_batch_since(&batches, since_ms)? else {
                    return Ok((vec![], None));
                };
                let last = batches.last()?.map_or(first, |(k, _)| k.value());
                DeadScan {
                    from: delivery_id(first, 0),
                    end: delivery_id(last + 1, 0),
                }
            }
        };
        let mut out = vec![];
        // The batch of the rows being read: its head, and the whole row once a delivery of it
        // is taken.
        let mut head: Option<(u64, Option<BatchHead>)> = None;
        let mut full: Option<Decoded> = None;
        for row in states.range(scan.from..scan.end)? {
            let (k, v) = row?;
            let id = k.value();
            if out.len() >= limit {
                return Ok((out, Some(DeadScan { from: id, ..scan })));
            }
            let status: StatusOnly =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("states", e))?;
            if status.status != Status::Dead {
                continue;
            }
            let (seq, idx) = split_delivery_id(id);
            if head.as_ref().is_none_or(|(s, _)| *s != seq) {
                let h = match batches.get(seq)? {
                    Some(raw) => Some(BatchHead::decode(raw.value())?),
                    None => None,
                };
                head = Some((seq, h));
            }
            let Some((_, Some(h))) = &head else { continue };
            if h.created_at < since_ms || h.deliveries.get(idx).map(|d| d.0) != Some(webhook) {
                continue;
            }
            if full.as_ref().is_none_or(|b| b.seq != seq) {
                let Some(raw) = batches.get(seq)? else {
                    continue;
                };
                full = Some(Decoded::new(seq, raw.value())?);
            }
            let Some(batch) = &full else { continue };
            let (webhook_id, event) = batch.delivery(idx)?;
            out.push(DeliveryRecord {
                id,
                webhook_id,
                event,
                created_at: batch.created_at,
                state: serde_json::from_slice(v.value()).map_err(|e| corrupt("states", e))?,
            });
        }
        Ok((out, None))
    }
}

/// The first batch committed at or after `since_ms`, by a binary search over the batch
/// sequence (about log2(batches) rows read).
///
/// A batch's `created_at` is its commit's wall-clock time and does not decrease along the
/// sequence (retention relies on that too, stopping at the first batch too young to drop); a
/// clock stepped back across `since_ms` would only move where the search lands by the batches
/// committed during the step.
fn first_batch_since(
    batches: &impl ReadableTable<u64, &'static [u8]>,
    since_ms: i64,
) -> Result<Option<u64>> {
    let (Some((first, _)), Some((last, _))) = (batches.first()?, batches.last()?) else {
        return Ok(None);
    };
    // The answer is in [lo, hi), or is `found` (the smallest batch seen that qualifies).
    let (mut lo, mut hi) = (first.value(), last.value() + 1);
    let mut found = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // The first batch at or after `mid` (the sequence has holes: retention, refused
        // requests).
        let Some((k, v)) = batches.range(mid..hi)?.next().transpose()? else {
            hi = mid;
            continue;
        };
        let seq = k.value();
        if BatchHead::decode(v.value())?.created_at >= since_ms {
            found = Some(seq);
            hi = mid;
        } else {
            lo = seq + 1;
        }
    }
    Ok(found)
}

/// What a batch row says about its deliveries, without its events (decoded, but not kept).
#[derive(serde::Deserialize)]
struct BatchHead {
    created_at: i64,
    deliveries: Vec<(u64, u32)>,
}

impl BatchHead {
    fn decode(raw: &[u8]) -> Result<BatchHead> {
        serde_json::from_slice(raw).map_err(|e| corrupt("batches", e))
    }
}

/// A state row's status alone.
#[derive(serde::Deserialize)]
struct StatusOnly {
    status: Status,
}

/// What a webhook's counters take from a state row when they are rebuilt from the log.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateOutcome {
    status: Status,
    #[serde(default)]
    last_attempt_at: Option<i64>,
    #[serde(default)]
    last_error: Option<String>,
}

/// A batch row decoded, its events shared by the deliveries that point at them.
struct Decoded {
    seq: u64,
    created_at: i64,
    deliveries: Vec<(u64, u32)>,
    events: Vec<Arc<ActionEvent>>,
}

impl Decoded {
    fn new(seq: u64, raw: &[u8]) -> Result<Decoded> {
        let rec: BatchRecord = serde_json::from_slice(raw).map_err(|e| corrupt("batches", e))?;
        Ok(Decoded {
            seq,
            created_at: rec.created_at,
            deliveries: rec.deliveries,
            events: rec.events.into_iter().map(Arc::new).collect(),
        })
    }

    /// Delivery `i`'s webhook and event (a row whose delivery points past its events is corrupt).
    fn delivery(&self, i: usize) -> Result<(u64, Arc<ActionEvent>)> {
        let (wh, ev) = self.deliveries[i];
        let event = self
            .events
            .get(ev as usize)
            .ok_or_else(|| corrupt("batches", format!("batch {}: event index {ev}", self.seq)))?;
        Ok((wh, event.clone()))
    }
}

fn batch_states(
    states: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<HashMap<u64, DeliveryState>> {
    let mut out = HashMap::new();
    for row in states.range(delivery_id(seq, 0)..delivery_id(seq + 1, 0))? {
        let (k, v) = row?;
        out.insert(
            k.value(),
            serde_json::from_slice(v.value()).map_err(|e| corrupt("states", e))?,
        );
    }
    Ok(out)
}

/// Event id → batch. Event ids are chosen by producers, so the hash is seeded per process
/// (foldhash): an unseeded one (Fx) puts ids that are multiples of 2^k in a few buckets, and a
/// producer could slow the dedupe index down on purpose. Touched once per ingested event.
type SeenMap = HashMap<u64, u64, foldhash::fast::RandomState>;

/// What the writer keeps in memory between commits.
struct WriterState {
    next_batch: u64,
    next_webhook: u64,
    next_quarantine: u64,
    /// Event id → batch that holds it: the dedupe index (persisted per batch in `seen`).
    seen: SeenMap,
    /// Batch → deliveries not yet final (persisted in `open`).
    open: HashMap<u64, u64>,
    /// Webhook → its counters (persisted in `counters`), shared with the store's readers.
    counters: SharedCounters,
}

fn init(db: &Database) -> Result<(String, WriterState)> {
    let w = db.begin_write()?;
    let instance;
    {
        let mut meta = w.open_table(META)?;
        let version = meta.get("schema_version")?.map(|v| v.value());
        let version: Option<u64> = version;
        match version {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    found: v,
                    known: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
        }
        let existing = meta.get("instance")?.map(|v| v.value());
        let inst = match existing {
            Some(i) => i,
            None => {
                let i = rand::random::<u64>() >> 1;
                meta.insert("instance", i)?;
                i
            }
        };
        instance = format!("{inst:x}");
        // Create every table so readers never meet a missing one.
        w.open_table(WEBHOOKS)?;
        w.open_table(SETTINGS)?;
        w.open_table(BATCHES)?;
        w.open_table(SEEN)?;
        w.open_table(OPEN)?;
        w.open_table(STATES)?;
        w.open_table(CHECKPOINTS)?;
        w.open_table(QUARANTINE)?;
        w.open_table(BINDINGS)?;
        w.open_table(COUNTERS)?;
        if meta.get(COUNTERS_BUILT)?.is_none() {
            rebuild_counters(&w)?;
            meta.insert(COUNTERS_BUILT, 1)?;
        }
    }
    w.commit()?;

    let r = db.begin_read()?;
    let meta = r.open_table(META)?;
    let next_webhook = meta.get("next_webhook_id")?.map(|v| v.value()).unwrap_or(1);
    let next_batch = r
        .open_table(BATCHES)?
        .last()?
        .map(|(k, _)| k.value() + 1)
        .unwrap_or(1)
        .max(
            r.open_table(SEEN)?
                .last()?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1),
        )
        // Ids are never reused, even when retention pruned the newest rows.
        .max(meta.get("next_batch")?.map(|v| v.value()).unwrap_or(1));
    let next_quarantine = r
        .open_table(QUARANTINE)?
        .last()?
        .map(|(k, _)| k.value() + 1)
        .unwrap_or(1)
        .max(meta.get("next_quarantine")?.map(|v| v.value()).unwrap_or(1));
    let mut seen = SeenMap::default();
    for row in r.open_table(SEEN)?.iter()? {
        let (k, v) = row?;
        let seq = k.value();
        for chunk in v.value().chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            seen.insert(u64::from_le_bytes(b), seq);
        }
    }
    let mut open = HashMap::new();
    for row in r.open_table(OPEN)?.iter()? {
        let (k, v) = row?;
        open.insert(k.value(), v.value());
    }
    let mut counters = HashMap::new();
    for row in r.open_table(COUNTERS)?.iter()? {
        let (k, v) = row?;
        counters.insert(
            k.value(),
            serde_json::from_slice(v.value()).map_err(|e| corrupt("counters", e))?,
        );
    }
    Ok((
        instance,
        WriterState {
            next_batch,
            next_webhook,
            next_quarantine,
            seen,
            open,
            counters: Arc::new(std::sync::RwLock::new(counters)),
        },
    ))
}

/// Counts every delivery of the log by webhook and status into `counters` (a store written
/// before that table existed). The latest success and failure are taken from the deliveries'
/// last attempts. Runs once, in the transaction that creates the table.
fn rebuild_counters(w: &redb::WriteTransaction) -> Result<()> {
    let started = std::time::Instant::now();
    let batches = w.open_table(BATCHES)?;
    let states = w.open_table(STATES)?;
    let mut counters: HashMap<u64, WebhookCounters> = HashMap::new();
    let mut deliveries = 0u64;
    for row in batches.iter()? {
        let (k, v) = row?;
        let seq = k.value();
        let head = BatchHead::decode(v.value())?;
        let mut changed: HashMap<u64, StateOutcome> = HashMap::new();
        for row in states.range(delivery_id(seq, 0)..delivery_id(seq + 1, 0))? {
            let (k, v) = row?;
            let st: StateOutcome =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("states", e))?;
            changed.insert(k.value(), st);
        }
        for (i, (webhook, _)) in head.deliveries.iter().enumerate() {
            let c = counters.entry(*webhook).or_default();
            match changed.get(&delivery_id(seq, i)) {
                Some(st) => {
                    c.add(st.status, 1);
                    if let Some(at) = st.last_attempt_at {
                        c.outcome(st.status, at, st.last_error.as_deref());
                    }
                }
                None => c.add(Status::Pending, 1),
            }
            deliveries += 1;
        }
    }
    let mut table = w.open_table(COUNTERS)?;
    for (webhook, c) in &counters {
        let raw = serde_json::to_vec(c).map_err(|e| corrupt("counters", e))?;
        table.insert(*webhook, raw.as_slice())?;
    }
    if deliveries > 0 {
        tracing::info!(
            webhooks = counters.len(),
            deliveries,
            took_ms = started.elapsed().as_millis() as u64,
            "counted the delivery log into per-webhook counters (first start of this version)"
        );
    }
    Ok(())
}

/// Reply senders of one commit group, answered after the commit.
enum Reply {
    Ingest(oneshot::Sender<Result<IngestResult>>, Box<IngestResult>),
    Unit(oneshot::Sender<Result<()>>),
    Webhook(oneshot::Sender<Result<Webhook>>, Box<Webhook>),
    Prune(oneshot::Sender<Result<PruneStats>>, PruneStats),
}

impl Reply {
    fn fail(self, e: &StoreError) {
        let msg = || StoreError::Commit(e.to_string());
        match self {
            Reply::Ingest(tx, _) => drop(tx.send(Err(msg()))),
            Reply::Unit(tx) => drop(tx.send(Err(msg()))),
            Reply::Webhook(tx, _) => drop(tx.send(Err(msg()))),
            Reply::Prune(tx, _) => drop(tx.send(Err(msg()))),
        }
    }
    fn ok(self) {
        match self {
            Reply::Ingest(tx, r) => drop(tx.send(Ok(*r))),
            Reply::Unit(tx) => drop(tx.send(Ok(()))),
            Reply::Webhook(tx, w) => drop(tx.send(Ok(*w))),
            Reply::Prune(tx, p) => drop(tx.send(Ok(p))),
        }
    }
}

/// Staged changes to the writer's memory, applied only once the commit succeeded.
#[derive(Default)]
struct Staged {
    seen: SeenMap,
    seen_removed: std::collections::HashSet<u64>,
    open: BTreeMap<u64, u64>,
    /// The counters of the webhooks this group touched, whole (written once per group).
    counters: FxMap<u64, WebhookCounters>,
    next_batch: u64,
    next_webhook: u64,
    next_quarantine: u64,
}

/// The writer thread: the only writer of the database, and the one that reopens it when a
/// commit fails.
struct Writer {
    db: DbHandle,
    reopen: Box<dyn Fn() -> Result<Database> + Send>,
    health: SharedHealth,
}

/// How long the writer waits between attempts to commit again during an outage (doubling).
const RECOVER_FIRST: std::time::Duration = std::time::Duration::from_millis(200);
const RECOVER_MAX: std::time::Duration = std::time::Duration::from_secs(5);

impl Writer {
    fn current(&self) -> Option<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn run(self, mut rx: mpsc::UnboundedReceiver<Op>, mut st: WriterState) {
        while let Some(first) = rx.blocking_recv() {
            if let Op::Close(tx) = first {
                self.release();
                drop(tx.send(Ok(())));
                return;
            }
            let mut ops = vec![first];
            // A retention pass commits on its own, so its failure never fails anyone's intake.
            let mut held: Option<Op> = None;
            if !matches!(ops[0], Op::Prune(..)) {
                while ops.len() < MAX_OPS_PER_COMMIT {
                    match rx.try_recv() {
                        Ok(op @ (Op::Prune(..) | Op::Close(..))) => {
                            held = Some(op);
                            break;
                        }
                        Ok(op) => ops.push(op),
                        Err(_) => break,
                    }
                }
            }
            let close = match held {
                Some(Op::Close(tx)) => {
                    held = None;
                    Some(tx)
                }
                other => {
                    held = other;
                    None
                }
            };
            for group in std::iter::once(ops).chain(held.map(|op| vec![op])) {
                let failure = match self.current() {
                    Some(db) => run_group(&db, &mut st, group, &self.health),
                    None => Some(fail_all(group, "the store is being reopened".into())),
                };
                if let Some(reason) = failure {
                    if !self.recover(&mut rx, &mut st, reason) {
                        return;
                    }
                }
            }
            if let Some(tx) = close {
                self.release();
                drop(tx.send(Ok(())));
                return;
            }
        }
    }

    /// Drops the database (so its file lock is released), waiting briefly for readers.
    fn release(&self) {
        let old = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(old) = old {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while Arc::strong_count(&old) > 1 && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }

    /// After a failed commit: refuse every write (answering each at once, so nothing waits on
    /// a store that cannot commit) and reopen the file until a commit succeeds again; then the
    /// writer's memory is read back from the file (the failed commit may have left part of
    /// itself on disk, never a part that was acknowledged). `false` when the store is closing.
    fn recover(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Op>,
        st: &mut WriterState,
        mut reason: String,
    ) -> bool {
        begin_outage(&self.health, &reason);
        let mut wait = RECOVER_FIRST;
        loop {
            loop {
                match rx.try_recv() {
                    Ok(op) => fail_op(
                        op,
                        &StoreError::Unavailable {
                            reason: reason.clone(),
                        },
                    ),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return false,
                }
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(RECOVER_MAX);
            match self.reopen_and_reload(st) {
                Ok(()) => break,
                Err(e) => {
                    reason = e.to_string();
                    if let Some(o) = lock_health(&self.health).current.as_mut() {
                        o.reason.clone_from(&reason);
                    }
                }
            }
        }
        let mut h = lock_health(&self.health);
        if let Some(mut o) = h.current.take() {
            o.until = Some(now_ms());
            tracing::warn!(since = o.since, reason = %o.reason, "the store commits again");
            h.ended.push(o);
        }
        true
    }

    /// Closes the database, opens it again (redb repairs what a failed commit left) and reads
    /// the writer's memory back from it. Opening commits (the schema check), which is the proof
    /// that the store can commit again.
    fn reopen_and_reload(&self, st: &mut WriterState) -> Result<()> {
        self.release();
        let db = Arc::new((self.reopen)()?);
        let (_, fresh) = init(&db)?;
        st.next_batch = fresh.next_batch;
        st.next_webhook = fresh.next_webhook;
        st.next_quarantine = fresh.next_quarantine;
        st.seen = fresh.seen;
        st.open = fresh.open;
        let counters = std::mem::take(
            &mut *fresh
                .counters
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        *st.counters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = counters;
        *self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(db);
        Ok(())
    }
}

/// Marks the store as unable to commit (once per outage), before anyone is told of the failure.
fn begin_outage(health: &SharedHealth, reason: &str) {
    let mut h = lock_health(health);
    if h.current.is_none() {
        tracing::error!(error = %reason, "the store cannot commit: writes are refused (503) until it can; retrying");
        h.current = Some(Outage {
            since: now_ms(),
            until: None,
            reason: reason.to_string(),
        });
    }
}

/// Answers one op with `e` without running it.
fn fail_op(op: Op, e: &StoreError) {
    let err = || StoreError::Unavailable {
        reason: match e {
            StoreError::Unavailable { reason } => reason.clone(),
            other => other.to_string(),
        },
    };
    match op {
        Op::Ingest(_, tx) => drop(tx.send(Err(err()))),
        Op::States(_, tx)
        | Op::PutTriggers(_, tx)
        | Op::PutCheckpoint(_, tx)
        | Op::PutBindings(_, _, tx) => drop(tx.send(Err(err()))),
        Op::PutWebhook(_, tx) => drop(tx.send(Err(err()))),
        Op::Prune(_, tx) => drop(tx.send(Err(err()))),
        Op::Close(tx) => drop(tx.send(Err(err()))),
    }
}

/// Answers every op of a group with an outage error; returns the reason.
fn fail_all(ops: Vec<Op>, reason: String) -> String {
    let e = StoreError::Unavailable {
        reason: reason.clone(),
    };
    for op in ops {
        fail_op(op, &e);
    }
    reason
}

/// Commits one group of ops and answers them: all succeed together or all fail together; the
/// writer's memory changes only once the commit succeeded. Returns the reason when the commit
/// failed in the storage (the database must then be reopened), `None` otherwise.
fn run_group(
    db: &Database,
    st: &mut WriterState,
    ops: Vec<Op>,
    health: &SharedHealth,
) -> Option<String> {
    let mut staged = Staged {
        next_batch: st.next_batch,
        next_webhook: st.next_webhook,
        next_quarantine: st.next_quarantine,
        ..Default::default()
    };
    let mut replies = Vec::with_capacity(ops.len());
    match commit_group(db, st, &mut staged, ops, &mut replies) {
        Ok(()) => {
            for k in staged.seen_removed {
                st.seen.remove(&k);
            }
            st.seen.extend(staged.seen);
            for (k, v) in staged.open {
                if v == 0 {
                    st.open.remove(&k);
                } else {
                    st.open.insert(k, v);
                }
            }
            st.next_batch = staged.next_batch;
            st.next_webhook = staged.next_webhook;
            st.next_quarantine = staged.next_quarantine;
            if !staged.counters.is_empty() {
                st.counters
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend(staged.counters);
            }
            for r in replies {
                r.ok();
            }
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed");
            let storage = matches!(e, StoreError::Db(_));
            if storage {
                begin_outage(health, &e.to_string());
            }
            for r in replies {
                r.fail(&e);
            }
            storage.then(|| e.to_string())
        }
    }
}

/// The tables one commit writes, opened once per group.
struct Tables<'t> {
    batches: redb::Table<'t, u64, &'static [u8]>,
    seen: redb::Table<'t, u64, &'static [u8]>,
    open: redb::Table<'t, u64, u64>,
    states: redb::Table<'t, u64, &'static [u8]>,
    checkpoints: redb::Table<'t, &'static str, &'static [u8]>,
    quarantine: redb::Table<'t, u64, &'static [u8]>,
    webhooks: redb::Table<'t, u64, &'static [u8]>,
    settings: redb::Table<'t, &'static str, &'static [u8]>,
    meta: redb::Table<'t, &'static str, u64>,
    bindings: redb::Table<'t, (u64, &'static str), &'static str>,
    counters: redb::Table<'t, u64, &'static [u8]>,
}

/// What every op of one group works on: its tables, the writer's committed memory, the staged
/// changes to it, and the commit time.
struct Group<'a, 't> {
    t: Tables<'t>,
    st: &'a WriterState,
    staged: &'a mut Staged,
    now: i64,
}

fn commit_group(
    db: &Database,
    st: &WriterState,
    staged: &mut Staged,
    ops: Vec<Op>,
    replies: &mut Vec<Reply>,
) -> Result<()> {
    let w = db.begin_write()?;
    {
        let mut g = Group {
            t: Tables {
                batches: w.open_table(BATCHES)?,
                seen: w.open_table(SEEN)?,
                open: w.open_table(OPEN)?,
                states: w.open_table(STATES)?,
                checkpoints: w.open_table(CHECKPOINTS)?,
                quarantine: w.open_table(QUARANTINE)?,
                webhooks: w.open_table(WEBHOOKS)?,
                settings: w.open_table(SETTINGS)?,
                meta: w.open_table(META)?,
                bindings: w.open_table(BINDINGS)?,
                counters: w.open_table(COUNTERS)?,
            },
            st,
            staged,
            now: now_ms(),
        };
        // An op that fails fails the group: it and every op after it are answered with the
        // error too (by `run_group`, through `replies`, and here), never left without answer.
        let mut ops = ops.into_iter();
        while let Some(op) = ops.next() {
            let (reply, result) = match op {
                Op::Ingest(batch, tx) => match g.ingest(batch) {
                    Ok(Ok(res)) => (Reply::Ingest(tx, Box::new(res)), Ok(())),
                    // Refused on its own: nothing of it was written; the group goes on.
                    Ok(Err(e)) => {
                        drop(tx.send(Err(e)));
                        continue;
                    }
                    Err(e) => (Reply::Ingest(tx, Box::default()), Err(e)),
                },
                Op::States(updates, tx) => (Reply::Unit(tx), g.states(updates)),
                Op::PutWebhook(wh, tx) => match g.put_webhook(*wh) {
                    Ok(wh) => (Reply::Webhook(tx, Box::new(wh)), Ok(())),
                    Err(e) => (Reply::Webhook(tx, Box::default()), Err(e)),
                },
                Op::PutTriggers(t, tx) => {
                    let put = serde_json::to_vec(&t)
                        .map_err(|e| corrupt("settings", e))
                        .and_then(|raw| {
                            g.t.settings.insert("triggers", raw.as_slice())?;
                            Ok(())
                        });
                    (Reply::Unit(tx), put)
                }
                Op::PutCheckpoint(cp, tx) => {
                    let put =
                        g.t.checkpoints
                            .insert(cp.key.as_str(), cp.value.as_slice())
                            .map(drop)
                            .map_err(StoreError::from);
                    (Reply::Unit(tx), put)
                }
                Op::PutBindings(webhook, changes, tx) => {
                    (Reply::Unit(tx), g.put_bindings(webhook, changes))
                }
                // Never in a group: the writer takes it out before grouping.
                Op::Close(tx) => (Reply::Unit(tx), Ok(())),
                Op::Prune(cutoff, tx) => match g.prune(cutoff) {
                    Ok(stats) => (Reply::Prune(tx, stats), Ok(())),
                    Err(e) => (Reply::Prune(tx, PruneStats::default()), Err(e)),
                },
            };
            replies.push(reply);
            if let Err(e) = result {
                let failed = StoreError::Commit(e.to_string());
                for rest in ops {
                    fail_op(rest, &failed);
                }
                return Err(e);
            }
        }
        g.write_counters()?;
    }
    w.commit()?;
    Ok(())
}

impl Group<'_, '_> {
    /// `webhook`'s counters as staged so far in this group.
    fn counter(&mut self, webhook: u64) -> &mut WebhookCounters {
        let committed = &self.st.counters;
        self.staged.counters.entry(webhook).or_insert_with(|| {
            committed
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&webhook)
                .cloned()
                .unwrap_or_default()
        })
    }

    /// Writes the counters this group changed, once each.
    fn write_counters(&mut self) -> Result<()> {
        for (webhook, c) in &self.staged.counters {
            let raw = serde_json::to_vec(c).map_err(|e| corrupt("counters", e))?;
            self.t.counters.insert(*webhook, raw.as_slice())?;
        }
        Ok(())
    }

    /// Open deliveries of batch `seq` as staged so far in this group.
    fn open_count(&self, seq: u64) -> u64 {
        self.staged
            .open
            .get(&seq)
            .copied()
            .or_else(|| self.st.open.get(&seq).copied())
            .unwrap_or(0)
    }

    /// Whether event id `id` was already taken (committed, or earlier in this group).
    fn is_seen(&self, id: u64) -> bool {
        self.staged.seen.contains_key(&id)
            || (self.st.seen.contains_key(&id) && !self.staged.seen_removed.contains(&id))
    }

    /// Writes one intake batch: its new events and their deliveries as one row, their ids, its
    /// open count, the source's checkpoint and quarantine. The inner `Err` refuses this batch
    /// alone (nothing of it written); the outer one fails the whole group.
    fn ingest(&mut self, batch: IngestBatch) -> Result<Result<IngestResult>> {
        let IngestBatch {
            source,
            events,
            routes,
            checkpoint,
            quarantine: bad,
        } = batch;
        let mut res = IngestResult::default();
        let seq = self.staged.next_batch;
        let mut kept = Vec::with_capacity(events.len());
        let mut deliveries = Vec::new();
        let mut ids = Vec::new();
        let mut new_ids = Vec::new();
        for (ev, route) in events.into_iter().zip(routes) {
            if let Some(id) = ev.id {
                if self.is_seen(id) {
                    res.duplicates += 1;
                    continue;
                }
                self.staged.seen.insert(id, seq);
                new_ids.push(id);
                ids.extend_from_slice(&id.to_le_bytes());
            }
            let idx = kept.len() as u32;
            for wh in route {
                deliveries.push((wh, idx));
            }
            kept.push(ev);
        }
        if deliveries.len() > MAX_DELIVERIES_PER_BATCH {
            for id in new_ids {
                self.staged.seen.remove(&id);
            }
            return Ok(Err(StoreError::TooManyDeliveries {
                max: MAX_DELIVERIES_PER_BATCH,
            }));
        }
        res.accepted = kept.len();
        if !kept.is_empty() {
            let rec = BatchRecord {
                created_at: self.now,
                source,
                events: kept,
                deliveries,
            };
            let raw = serde_json::to_vec(&rec).map_err(|e| corrupt("batches", e))?;
            self.t.batches.insert(seq, raw.as_slice())?;
            if !ids.is_empty() {
                self.t.seen.insert(seq, ids.as_slice())?;
            }
            if !rec.deliveries.is_empty() {
                self.t.open.insert(seq, rec.deliveries.len() as u64)?;
                self.staged.open.insert(seq, rec.deliveries.len() as u64);
            }
            for (webhook, _) in &rec.deliveries {
                self.counter(*webhook).add(Status::Pending, 1);
            }
            self.staged.next_batch += 1;
            self.t.meta.insert("next_batch", self.staged.next_batch)?;
            let events: Vec<Arc<ActionEvent>> = rec.events.into_iter().map(Arc::new).collect();
            res.deliveries = rec
                .deliveries
                .iter()
                .enumerate()
                .map(|(i, (wh, ev))| OpenDelivery {
                    id: delivery_id(seq, i),
                    webhook_id: *wh,
                    event: events[*ev as usize].clone(),
                    created_at: self.now,
                    state: DeliveryState::default(),
                })
                .collect();
        }
        if let Some(cp) = checkpoint {
            self.t
                .checkpoints
                .insert(cp.key.as_str(), cp.value.as_slice())?;
        }
        for mut q in bad {
            q.id = self.staged.next_quarantine;
            q.at = self.now;
            self.staged.next_quarantine += 1;
            let raw = serde_json::to_vec(&q).map_err(|e| corrupt("quarantine", e))?;
            self.t.quarantine.insert(q.id, raw.as_slice())?;
            self.t
                .meta
                .insert("next_quarantine", self.staged.next_quarantine)?;
        }
        Ok(Ok(res))
    }

    /// Writes delivery states and keeps the open counts of their batches and the counters of
    /// their webhooks exact.
    fn states(&mut self, updates: Vec<StateUpdate>) -> Result<()> {
        let now = self.now;
        for u in updates {
            self.t.states.insert(u.id, u.raw.as_slice())?;
            let c = self.counter(u.webhook);
            c.sub(u.from, 1);
            c.add(u.to, 1);
            c.outcome(u.to, u.at.unwrap_or(now), u.error.as_deref());
            let (seq, _) = split_delivery_id(u.id);
            let delta: i64 = match (u.from.is_final(), u.to.is_final()) {
                (false, true) => -1,
                (true, false) => 1,
                _ => 0,
            };
            if delta != 0 {
                let n = (self.open_count(seq) as i64 + delta).max(0) as u64;
                if n == 0 {
                    self.t.open.remove(seq)?;
                } else {
                    self.t.open.insert(seq, n)?;
                }
                self.staged.open.insert(seq, n);
            }
        }
        Ok(())
    }

    /// Inserts (id 0: assigns the next id) or replaces a webhook; a deleted one loses its
    /// bindings.
    fn put_webhook(&mut self, mut wh: Webhook) -> Result<Webhook> {
        if wh.id == 0 {
            wh.id = self.staged.next_webhook;
            self.staged.next_webhook += 1;
            self.t
                .meta
                .insert("next_webhook_id", self.staged.next_webhook)?;
        } else if wh.id >= self.staged.next_webhook {
            self.staged.next_webhook = wh.id + 1;
            self.t
                .meta
                .insert("next_webhook_id", self.staged.next_webhook)?;
        }
        let raw = serde_json::to_vec(&wh).map_err(|e| corrupt("webhooks", e))?;
        let was_disabled = match self.t.webhooks.insert(wh.id, raw.as_slice())? {
            Some(old) => serde_json::from_slice::<Webhook>(old.value())
                .map(|old| !old.enabled)
                .unwrap_or(false),
            None => false,
        };
        if wh.enabled && was_disabled {
            // Enabled again: a new start, so an old failing episode cannot disable it at once.
            self.counter(wh.id).failing_since = None;
        }
        if wh.deleted {
            let accounts: Vec<String> = self
                .t
                .bindings
                .range((wh.id, "")..)?
                .map_while(|r| {
                    r.ok().and_then(|(k, _)| {
                        let (w, a) = k.value();
                        (w == wh.id).then(|| a.to_string())
                    })
                })
                .collect();
            for a in accounts {
                self.t.bindings.remove((wh.id, a.as_str()))?;
            }
        }
        Ok(wh)
    }

    /// Binds (`Some(userid)`) or unbinds accounts of one webhook.
    fn put_bindings(&mut self, webhook: u64, changes: Vec<(String, Option<String>)>) -> Result<()> {
        for (account, userid) in changes {
            match userid {
                Some(u) => {
                    self.t
                        .bindings
                        .insert((webhook, account.as_str()), u.as_str())?;
                }
                None => {
                    self.t.bindings.remove((webhook, account.as_str()))?;
                }
            }
        }
        Ok(())
    }

    /// Drops up to [`PRUNE_BATCHES_PER_COMMIT`] finished batches created before `cutoff` (with
    /// their states and seen ids, and their deliveries from their webhooks' counters) and as
    /// many quarantine rows older than it.
    fn prune(&mut self, cutoff: i64) -> Result<PruneStats> {
        let mut stats = PruneStats::default();
        let mut doomed = vec![];
        for row in self.t.batches.iter()? {
            let (k, v) = row?;
            let seq = k.value();
            if self.open_count(seq) > 0 {
                continue;
            }
            if doomed.len() >= PRUNE_BATCHES_PER_COMMIT {
                break;
            }
            match BatchHead::decode(v.value()) {
                Ok(head) if head.created_at >= cutoff => break,
                Ok(head) => doomed.push((seq, head.deliveries)),
                Err(e) => {
                    tracing::error!(batch = seq, error = %e, "corrupt batch row left in place by retention");
                }
            }
        }
        for (seq, deliveries) in doomed {
            self.t.batches.remove(seq)?;
            if let Some(ids) = self.t.seen.remove(seq)? {
                for chunk in ids.value().chunks_exact(8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(chunk);
                    let id = u64::from_le_bytes(b);
                    if self.st.seen.get(&id) == Some(&seq) {
                        self.staged.seen_removed.insert(id);
                    }
                }
            }
            // Every delivery of a batch without open ones has a state row; one that has not is
            // counted as what a missing row means (pending).
            let mut status = vec![Status::Pending; deliveries.len()];
            let mut keys = vec![];
            for row in self
                .t
                .states
                .range(delivery_id(seq, 0)..delivery_id(seq + 1, 0))?
            {
                let (k, v) = row?;
                let id = k.value();
                keys.push(id);
                match serde_json::from_slice::<StatusOnly>(v.value()) {
                    Ok(st) => {
                        if let Some(s) = status.get_mut(split_delivery_id(id).1) {
                            *s = st.status;
                        }
                    }
                    Err(e) => {
                        tracing::error!(delivery = id, error = %e, "corrupt state row dropped by retention; its webhook's counts may be off by one");
                    }
                }
            }
            for k in keys {
                self.t.states.remove(k)?;
            }
            for ((webhook, _), st) in deliveries.iter().zip(status) {
                self.counter(*webhook).sub(st, 1);
            }
            stats.batches += 1;
        }
        let mut old_q = vec![];
        for row in self.t.quarantine.iter()? {
            let (k, v) = row?;
            if old_q.len() >= PRUNE_BATCHES_PER_COMMIT {
                break;
            }
            match serde_json::from_slice::<QuarantineItem>(v.value()) {
                Ok(q) if q.at >= cutoff => break,
                Ok(_) => old_q.push(k.value()),
                Err(e) => {
                    tracing::error!(id = k.value(), error = %e, "corrupt quarantine row left in place");
                }
            }
        }
        for k in old_q {
            self.t.quarantine.remove(k)?;
            stats.quarantine += 1;
        }
        Ok(stats)
    }
}
