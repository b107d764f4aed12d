//! `[sanplex_db]`: follows Sanplex's own database, exactly once.
//!
//! A poller reads `zt_action` by id (`WHERE id > cursor ORDER BY id LIMIT N`) every
//! `poll_interval`, enriches the rows from Sanplex's tables ([`enrich`]), and hands them to
//! [`Intake::submit`] together with its new [`Cursor`] as the checkpoint: the events, their
//! deliveries and the read position commit in one transaction, so each action creates its
//! deliveries exactly once whatever crashes, and a restart resumes where the last commit left
//! off. Action ids are the events' `id`s, so the dedupe index still drops repeats.
//!
//! Ids that commit late (see [`cursor`]) are re-checked every poll until they show up or
//! `gap_grace` has passed. A row that cannot become an event is quarantined (source `db`,
//! file `zt_action`, offset = its id) and never blocks the rows after it. A lost connection is
//! retried with capped exponential backoff and logged once per outage; nothing is lost, since
//! the position only moves with a commit.

mod cursor;
mod enrich;
mod row;

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::watch;

pub use cursor::{Cursor, Untracked, CHECKPOINT_KEY, MAX_GAPS};
pub use enrich::{table_for, ObjectTable, OBJECT_TABLES};
pub use row::to_event;

use self::enrich::{id_list, Lookups, Schema};
use crate::backoff::Backoff;
use crate::config::{SanplexDbConfig, StartAt};
use crate::event::ActionEvent;
use crate::ingest::Intake;
use crate::sanplex::{select, ConnectError, Database, Record};
use crate::store::{Checkpoint, QuarantineItem, StoreError};
use crate::{Engine, Error};

/// The source name in metrics, quarantine and batch records.
pub const SOURCE: &str = "db";

/// Most `zt_action` rows read per poll; a full batch is followed by the next at once.
pub const BATCH_ROWS: usize = 500;

/// First wait after a failure; doubled per failure up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection attempt that takes longer counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A poll's reads that take longer count as a lost connection (a hung server or network).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Gap ids re-checked per query.
const GAP_CHUNK: usize = 1000;
/// How many given-up ids one log line lists.
const LOG_IDS: usize = 20;

/// Starts the database poller when `sanplex_db.url` is set.
///
/// The URL and the stored checkpoint are checked here, so that a bad one stops the engine at
/// start with a message instead of leaving a source that silently never runs.
pub fn start(engine: &Engine) -> Result<(), Error> {
    let cfg = engine.config().sanplex_db.clone();
    if cfg.url.trim().is_empty() {
        return Ok(());
    }
    let db = Database::parse(&cfg.url, "sanplex_db.url").map_err(Error::Config)?;
    let cursor = match engine.store().checkpoint(CHECKPOINT_KEY)? {
        None => None,
        Some(raw) => Some(Cursor::decode(&raw).map_err(|reason| StoreError::Corrupt {
            table: "checkpoints",
            reason,
        })?),
    };
    let poller = Poller {
        intake: engine.intake().clone(),
        db,
        cfg,
        cursor,
        backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
        outage: None,
        logged_missing: None,
        settled: 0,
    };
    actix::spawn(poller.run(engine.stopping()));
    Ok(())
}

/// Why a session with the database ended.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("{0}")]
    Db(#[from] mysql_async::Error),
    #[error("{0}")]
    Schema(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("could not commit to the outbox: {0}")]
    Intake(#[from] Error),
}

impl From<ConnectError> for SourceError {
    fn from(e: ConnectError) -> SourceError {
        match e {
            ConnectError::Timeout(d) => SourceError::Timeout(d),
            ConnectError::Db(e) => SourceError::Db(e),
        }
    }
}

/// An ongoing failure to reach the database (or to commit), logged once.
struct Outage {
    since: Instant,
    attempts: u32,
}

struct Poller {
    intake: Intake,
    db: Database,
    cfg: SanplexDbConfig,
    /// `None` until the first position is known (no checkpoint yet).
    cursor: Option<Cursor>,
    backoff: Backoff,
    outage: Option<Outage>,
    /// The missing columns last logged, so that reconnects do not repeat the line.
    logged_missing: Option<Vec<String>>,
    /// The highest `zt_action` id read by an earlier poll: a row at or below it has had a
    /// poll interval for its `zt_history` rows to be written ([`read_batch`]).
    settled: u64,
}

impl Poller {
    /// Polls until the engine stops. `stop` is held until the task ends, which is what
    /// [`Engine::shutdown`] waits for: whatever this source was doing is then either
    /// committed or abandoned (and read again from the checkpoint at the next start).
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(db = %self.db.shown, "following Sanplex's database");
        loop {
            // A session ends only by an error; stopping cancels it wherever it is.
            let e = tokio::select! {
                e = self.session() => e,
                _ = stop.wait_for(|s| *s) => break,
            };
            match &mut self.outage {
                None => {
                    tracing::warn!(
                        db = %self.db.shown,
                        error = %e,
                        "Sanplex database source paused; retrying with backoff and resuming from the checkpoint"
                    );
                    self.intake.source_status(SOURCE, Some(e.to_string()));
                    self.outage = Some(Outage {
                        since: Instant::now(),
                        attempts: 1,
                    });
                }
                Some(o) => {
                    o.attempts += 1;
                    tracing::debug!(db = %self.db.shown, error = %e, attempt = o.attempts, "still failing");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.backoff.next_delay()) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        tracing::info!(db = %self.db.shown, "stopped following Sanplex's database");
    }

    /// One connection's life: connect, learn the schema, poll until an error.
    async fn session(&mut self) -> SourceError {
        match self.connected().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn connected(&mut self) -> Result<std::convert::Infallible, SourceError> {
        let mut conn = self.db.connect(CONNECT_TIMEOUT).await?;
        let schema = Schema::discover(&mut conn)
            .await?
            .map_err(SourceError::Schema)?;
        if self.logged_missing.as_ref() != Some(&schema.missing) {
            if !schema.missing.is_empty() {
                tracing::info!(
                    db = %self.db.shown,
                    missing = %schema.missing.join(", "),
                    "these columns are absent in this Sanplex version; events go without that enrichment"
                );
            }
            self.logged_missing = Some(schema.missing.clone());
        }
        if self.cursor.is_none() {
            self.cursor = Some(self.first_position(&mut conn).await?);
        }
        self.intake.source_status(SOURCE, None);
        if let Some(o) = self.outage.take() {
            tracing::info!(
                db = %self.db.shown,
                failed_attempts = o.attempts,
                after_secs = o.since.elapsed().as_secs(),
                "Sanplex database source resumed from its checkpoint"
            );
        }
        self.backoff.reset();
        loop {
            let full = self.poll(&mut conn, &schema).await?;
            if !full {
                tokio::time::sleep(self.cfg.poll_interval).await;
            }
        }
    }

    /// Where to start when there is no checkpoint: after the current last action (`end`,
    /// committed at once so that a restart does not move it) or before the first.
    async fn first_position(&mut self, conn: &mut Conn) -> Result<Cursor, SourceError> {
        match self.cfg.start_at {
            StartAt::Beginning => {
                tracing::info!("no checkpoint: reading zt_action from the beginning");
                Ok(Cursor::after(0))
            }
            StartAt::End => {
                let max: Option<Option<u64>> = conn
                    .query_first("SELECT MAX(`id`) FROM `zt_action`")
                    .await?;
                let cursor = Cursor::after(max.flatten().unwrap_or(0));
                self.intake
                    .submit(
                        SOURCE,
                        vec![],
                        Some(Checkpoint {
                            key: CHECKPOINT_KEY.into(),
                            value: cursor.encode(),
                        }),
                        vec![],
                    )
                    .await?;
                tracing::info!(
                    after_id = cursor.high,
                    "no checkpoint: following zt_action from its current end"
                );
                Ok(cursor)
            }
        }
    }

    /// Reads, enriches and commits one batch; returns whether the batch was full.
    async fn poll(&mut self, conn: &mut Conn, schema: &Schema) -> Result<bool, SourceError> {
        let Some(cursor) = self.cursor.clone() else {
            return Ok(false);
        };
        let read = tokio::time::timeout(
            READ_TIMEOUT,
            read_batch(conn, schema, &cursor, self.settled),
        )
        .await
        .map_err(|_| SourceError::Timeout(READ_TIMEOUT))??;
        self.settled = self.settled.max(read.read_up_to);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut next = cursor.clone();
        next.fill(&read.found_gaps);
        let untracked = next.advance(&read.new_ids, now_ms);
        if untracked.count > 0 {
            tracing::warn!(
                count = untracked.count,
                max_gaps = MAX_GAPS,
                "zt_action ids jumped further than the gaps tracked; those ids will not be waited for"
            );
        }
        let grace = i64::try_from(self.cfg.gap_grace.as_millis()).unwrap_or(i64::MAX);
        let expired = next.expire(now_ms.saturating_sub(grace));
        if !expired.is_empty() {
            tracing::warn!(
                count = expired.len(),
                ids = ?&expired[..expired.len().min(LOG_IDS)],
                gap_grace = ?self.cfg.gap_grace,
                "gave up waiting for zt_action ids (rolled back, or deleted)"
            );
        }
        if next == cursor && read.events.is_empty() && read.quarantine.is_empty() {
            return Ok(false);
        }
        self.intake
            .submit(
                SOURCE,
                read.events,
                Some(Checkpoint {
                    key: CHECKPOINT_KEY.into(),
                    value: next.encode(),
                }),
                read.quarantine,
            )
            .await?;
        self.cursor = Some(next);
        Ok(read.new_ids.len() >= BATCH_ROWS)
    }
}

/// One poll's reads.
struct Batch {
    /// Ids of new rows above the cursor taken this poll, ascending.
    new_ids: Vec<u64>,
    /// The highest new id read, including rows held back for the next poll.
    read_up_to: u64,
    /// Gap ids that are now visible.
    found_gaps: Vec<u64>,
    /// Enriched events: late (gap) rows first, then new rows, each by id.
    events: Vec<ActionEvent>,
    quarantine: Vec<QuarantineItem>,
}

/// Reads the rows after the cursor and the gaps that showed up, and enriches them.
///
/// Sanplex writes an action's `zt_history` rows just after the action row, not in the same
/// transaction, so a poll can see the action before its changes. A new row without history
/// rows that no earlier poll has seen (`id > settled`) is therefore held back, with every row
/// after it, until the next poll reads it again; then what `zt_history` holds is its answer.
async fn read_batch(
    conn: &mut Conn,
    schema: &Schema,
    cursor: &Cursor,
    settled: u64,
) -> Result<Batch, SourceError> {
    let (late, fresh) = read_rows(conn, schema, cursor).await?;
    let found_gaps: Vec<u64> = late.iter().filter_map(|r| r.uint("id")).collect();
    let new_ids: Vec<u64> = fresh.iter().filter_map(|r| r.uint("id")).collect();
    let (mut events, quarantine) = to_events(late.iter().chain(fresh.iter()));
    if !events.is_empty() {
        let lookups = Lookups::fetch(conn, schema, &events).await?;
        for ev in &mut events {
            lookups.apply(ev);
        }
    }
    let mut batch = Batch {
        read_up_to: new_ids.last().copied().unwrap_or(0),
        new_ids,
        found_gaps,
        events,
        quarantine,
    };
    batch.hold_back_unsettled(cursor.high, settled);
    Ok(batch)
}

/// The `zt_action` rows of the cursor's gaps that are now visible (late), and up to
/// [`BATCH_ROWS`] rows after its position (fresh), each by id.
async fn read_rows(
    conn: &mut Conn,
    schema: &Schema,
    cursor: &Cursor,
) -> Result<(Vec<Record>, Vec<Record>), SourceError> {
    let cols = Schema::select_list(&schema.action);
    let mut late = Vec::new();
    let gaps: Vec<u64> = cursor.gaps.keys().copied().collect();
    for chunk in gaps.chunks(GAP_CHUNK) {
        let sql = format!(
            "SELECT {cols} FROM `zt_action` WHERE `id` IN ({}) ORDER BY `id`",
            id_list(chunk)
        );
        late.extend(select(conn, sql).await?);
    }
    let sql = format!(
        "SELECT {cols} FROM `zt_action` WHERE `id` > {} ORDER BY `id` LIMIT {BATCH_ROWS}",
        cursor.high
    );
    let fresh = select(conn, sql).await?;
    Ok((late, fresh))
}

/// The rows as events, and the rows that cannot be events as quarantine items (source `db`,
/// file `zt_action`, offset = the row's id).
fn to_events<'a>(
    rows: impl Iterator<Item = &'a Record>,
) -> (Vec<ActionEvent>, Vec<QuarantineItem>) {
    let now = crate::event::local_now();
    let mut events = Vec::new();
    let mut quarantine = Vec::new();
    for rec in rows {
        match to_event(rec, &now) {
            Ok(ev) => events.push(ev),
            Err(reason) => {
                let id = rec.uint("id").unwrap_or(0);
                tracing::warn!(action_id = id, %reason, "zt_action row quarantined");
                quarantine.push(QuarantineItem {
                    id: 0,
                    source: SOURCE.into(),
                    file: "zt_action".into(),
                    offset: id,
                    reason: format!("zt_action row {id}: {reason}"),
                    raw: rec.to_raw(),
                    at: 0,
                });
            }
        }
    }
    (events, quarantine)
}

impl Batch {
    /// Leaves out the first new row (above `high`) that no earlier poll has seen (above
    /// `settled`) and has no changes yet, with every new row after it: the next poll reads
    /// them again ([`read_batch`] says why).
    fn hold_back_unsettled(&mut self, high: u64, settled: u64) {
        let held = self
            .events
            .iter()
            .filter_map(|ev| {
                ev.id
                    .filter(|id| *id > high && *id > settled)
                    .map(|id| (id, ev))
            })
            .find(|(_, ev)| ev.changes.as_ref().is_some_and(Vec::is_empty))
            .map(|(id, _)| id);
        let Some(held) = held else {
            return;
        };
        self.new_ids.retain(|id| *id < held);
        self.events
            .retain(|ev| ev.id.is_none_or(|id| id <= high || id < held));
        self.quarantine
            .retain(|q| q.offset <= high || q.offset < held);
    }
}
