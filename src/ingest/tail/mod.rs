//! `[[tail]]`: follows NDJSON action logs and ingests every complete line exactly once.
//!
//! Each `[[tail]]` entry is one [`Tailer`] task. It polls: finds the glob's files
//! ([`files`](self) matches them to what it knows across renames, copies and truncations), reads
//! a batch of complete lines from them, oldest file first, and hands the batch to the intake
//! together with the entry's checkpoint (every file's identity and offset after those lines).
//! The intake commits the events, their deliveries, the checkpoint and the quarantined lines in
//! one redb transaction, so after any crash the tailer resumes exactly after the last line whose
//! deliveries exist: nothing is lost and nothing is ingested twice.
//!
//! Reading and parsing run on the blocking pool while the previous batch commits; a batch is
//! sent only once the one before it is committed, and a failed commit rewinds to the last
//! committed checkpoint (the batch read meanwhile is dropped and read again).

mod files;
mod read;
mod state;

use crate::clock::now_ms;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::config::TailConfig;
use crate::event::ActionEvent;
use crate::ingest::{IngestSummary, Intake};
use crate::store::{Checkpoint, QuarantineItem, StoreError};
use crate::{Engine, Error};

use files::Files;
use read::{Buffer, Limits};
use state::TailState;

/// How often an idle tailer looks for new lines and files.
const POLL: Duration = Duration::from_millis(200);

/// How often a busy tailer (one that always finds a full batch) still looks for new files.
const SCAN_EVERY: Duration = Duration::from_secs(1);

/// Most lines in one batch (one commit). Measured on 10,000-event batches vs 40,000: a commit's
/// cost is mostly per byte (serialising, writing, fsync), so bigger batches gain ~15 %; this
/// size keeps a commit near 60 ms and a batch's events near 15 MB of memory.
const MAX_BATCH_LINES: usize = 20_000;

/// Most input bytes in one batch.
const MAX_BATCH_BYTES: u64 = 16 << 20;

/// First and longest wait before a failed commit is tried again.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Where a tailer's batches go: the engine's intake in `sanhook serve`; a test double in tests.
///
/// The contract is the intake's: `submit` commits the events (with whatever they produce), the
/// checkpoint and the quarantined lines atomically and durably before it returns `Ok`; on `Err`
/// nothing of it was committed.
pub trait Sink: Clone + 'static {
    /// Commits one batch with the tailer's new checkpoint.
    fn submit(
        &self,
        events: Vec<ActionEvent>,
        checkpoint: Checkpoint,
        quarantine: Vec<QuarantineItem>,
    ) -> impl Future<Output = Result<IngestSummary, Error>> + 'static;

    /// The last committed checkpoint under `key`, if any.
    fn checkpoint(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Says whether the tailer runs (`None`) or is paused on an error (`Some(reason)`).
    fn status(&self, _paused: Option<String>) {}
}

/// The engine's intake as a sink: batches from `source` (`tail:<glob>`).
#[derive(Clone)]
struct IntakeSink {
    intake: Intake,
    source: String,
}

impl Sink for IntakeSink {
    fn submit(
        &self,
        events: Vec<ActionEvent>,
        checkpoint: Checkpoint,
        quarantine: Vec<QuarantineItem>,
    ) -> impl Future<Output = Result<IngestSummary, Error>> + 'static {
        let intake = self.intake.clone();
        let source = self.source.clone();
        async move {
            intake
                .submit(&source, events, Some(checkpoint), quarantine)
                .await
        }
    }

    fn checkpoint(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.intake.store.checkpoint(key)?)
    }

    fn status(&self, paused: Option<String>) {
        self.intake.source_status(&self.source, paused);
    }
}

/// Starts a tailer task per `[[tail]]` entry; they stop at [`Engine::shutdown`].
pub fn start(engine: &Engine) -> Result<(), Error> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, cfg) in engine.config().tail.iter().enumerate() {
        if let Some(j) = seen.insert(cfg.path.as_str(), i) {
            return Err(Error::Config(format!(
                "tail[{i}].path repeats tail[{j}].path ({:?}): give each glob one [[tail]] entry",
                cfg.path
            )));
        }
        let sink = IntakeSink {
            intake: engine.intake().clone(),
            source: format!("tail:{}", cfg.path),
        };
        sink.status(None);
        let tailer = Tailer::new(cfg, sink).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("tail[{i}]: {m}")),
            other => other,
        })?;
        tracing::info!(glob = %cfg.path, start_at = %cfg.start_at, "tailing");
        actix::spawn(tailer.run(engine.stopping()));
    }
    Ok(())
}

/// The checkpoint key of the `[[tail]]` entry with this glob.
pub fn checkpoint_key(glob: &str) -> String {
    format!("tail:{glob}")
}

/// What one [`Tailer::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// Lines consumed: events, quarantined and blank lines.
    pub lines: usize,
    /// Lines that became events.
    pub events: usize,
    /// Lines quarantined.
    pub quarantined: usize,
    /// Whether a batch (possibly just a new checkpoint) was committed.
    pub committed: bool,
    /// The batch was full: more lines are waiting.
    pub more: bool,
    /// What the sink made of the events.
    pub summary: IngestSummary,
}

/// Follows the files of one `[[tail]]` entry.
///
/// One batch goes through [`Tailer::advance`]: read it (off the async threads), settle the
/// commit of the batch before it, send this one. [`Tailer::step`] is one `advance` and the wait
/// for its commit; [`Tailer::run`] calls `advance` in a loop so that reading and parsing a batch
/// overlaps the commit of the one before (that overlap is most of tail throughput). Both run the
/// same code for each batch, so the tests that drive `step` cover what `run` does.
pub struct Tailer<S: Sink> {
    key: String,
    /// The batch limits now (`max_lines` halves while commits are refused as too big).
    limits: Limits,
    /// The batch size configured, which `limits.max_lines` grows back to.
    configured_max_lines: usize,
    glob: String,
    start_at: crate::config::StartAt,
    /// The files and the read buffer; `None` after a read panicked (rebuilt from `committed`).
    core: Option<(Files, Buffer)>,
    /// What the sink holds: where a restart, or a failed commit, resumes from.
    committed: Option<TailState>,
    /// The checkpoint of the last batch sent (committed or in flight).
    last_sent: Option<TailState>,
    /// The commit in flight and the checkpoint it carries.
    inflight: Option<Inflight>,
    last_scan: Option<Instant>,
    /// The last read found nothing more waiting.
    idle: bool,
    sink: S,
}

type Inflight = (
    tokio::task::JoinHandle<Result<IngestSummary, Error>>,
    TailState,
);

impl<S: Sink> Tailer<S> {
    /// A tailer for `cfg`, resuming from the checkpoint `sink` holds for it.
    pub fn new(cfg: &TailConfig, sink: S) -> Result<Tailer<S>, Error> {
        glob::Pattern::new(&cfg.path).map_err(|e| {
            Error::Config(format!(
                "path {:?} is not a valid glob: {e} (write it like /var/log/sanplex/*.ndjson)",
                cfg.path
            ))
        })?;
        let key = checkpoint_key(&cfg.path);
        let committed = match sink.checkpoint(&key)? {
            Some(raw) => Some(TailState::decode(&key, &raw).map_err(Error::Config)?),
            None => None,
        };
        Ok(Tailer {
            core: Some((
                Files::new(&cfg.path, cfg.start_at, committed.as_ref()),
                Buffer::default(),
            )),
            glob: cfg.path.clone(),
            start_at: cfg.start_at,
            key,
            limits: Limits {
                max_lines: MAX_BATCH_LINES,
                max_bytes: MAX_BATCH_BYTES,
                max_line: cfg.max_line,
            },
            configured_max_lines: MAX_BATCH_LINES,
            last_sent: committed.clone(),
            committed,
            inflight: None,
            last_scan: None,
            idle: true,
            sink,
        })
    }

    /// Sets the most lines and bytes one batch may hold (tests use small batches to interleave
    /// file changes with reads).
    pub fn set_batch_limits(&mut self, max_lines: usize, max_bytes: u64) {
        self.limits.max_lines = max_lines.max(1);
        self.configured_max_lines = self.limits.max_lines;
        self.limits.max_bytes = max_bytes.max(1);
    }

    /// One poll: scans the glob, reads one batch, commits it, and returns once it is committed.
    /// On an error nothing of this batch was committed and the tailer has rewound to the last
    /// checkpoint. [`Tailer::run`] is the production loop; this is for tests and embedders that
    /// drive the tailer themselves. Like `run`, it must run inside an actix `System` or a tokio
    /// `LocalSet` (commits are sent as local tasks).
    pub async fn step(&mut self) -> Result<Step, Error> {
        let mut step = self.advance(true).await?;
        if let Some(summary) = self.settle().await? {
            step.committed = true;
            step.summary = summary;
        }
        Ok(step)
    }

    /// Reads the next batch, settles the commit in flight, and sends this batch for commit
    /// without waiting for it. `Step::committed` is never set here: see [`Tailer::settle`].
    async fn advance(&mut self, force_scan: bool) -> Result<Step, Error> {
        let scan =
            force_scan || self.idle || self.last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY);
        let (mut files, mut buf) = match self.core.take() {
            Some(core) => core,
            None => (
                Files::new(&self.glob, self.start_at, self.committed.as_ref()),
                Buffer::default(),
            ),
        };
        let lim = self.limits;
        let read = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            if scan {
                files.scan(now);
            }
            let date = crate::event::local_now();
            let batch = files.read_batch(&mut buf, &lim, now, &date);
            let snap = files.snapshot();
            (files, buf, batch, snap)
        })
        .await;
        let (mut files, buf, batch, snap) = match read {
            Ok(r) => r,
            Err(e) => {
                // A panic while reading: start over from the last commit (`core` stays None).
                if let Err(c) = self.settle().await {
                    tracing::warn!(glob = %self.glob, error = %c, "the batch before was not committed either");
                }
                self.last_sent = self.committed.clone();
                return Err(Error::Config(format!("reading {} failed: {e}", self.glob)));
            }
        };
        if scan {
            self.last_scan = Some(Instant::now());
        }
        // The previous batch must be committed before this one may be sent.
        if let Err(e) = self.settle().await {
            files.restore(self.committed.as_ref());
            self.core = Some((files, buf));
            return Err(e);
        }
        self.core = Some((files, buf));
        self.idle = !batch.more;
        let step = Step {
            lines: batch.lines,
            events: batch.events.len(),
            quarantined: batch.quarantine.len(),
            more: batch.more,
            ..Step::default()
        };
        if batch.lines == 0 && self.last_sent.as_ref() == Some(&snap) {
            return Ok(step);
        }
        let cp = Checkpoint {
            key: self.key.clone(),
            value: snap.encode(),
        };
        let commit = actix::spawn(self.sink.submit(batch.events, cp, batch.quarantine));
        self.inflight = Some((commit, snap.clone()));
        self.last_sent = Some(snap);
        Ok(step)
    }

    /// Waits for the commit in flight, if any: on success its checkpoint is the committed one
    /// (and batches may grow back to full size); on failure the files rewind to the last
    /// committed checkpoint, and a batch with too many deliveries for one commit halves the next.
    async fn settle(&mut self) -> Result<Option<IngestSummary>, Error> {
        let Some((h, sent)) = self.inflight.take() else {
            return Ok(None);
        };
        match h.await.unwrap_or(Err(Error::Unavailable)) {
            Ok(summary) => {
                self.committed = Some(sent);
                self.limits.max_lines = (self.limits.max_lines * 2).min(self.configured_max_lines);
                Ok(Some(summary))
            }
            Err(e) => {
                if matches!(e, Error::Store(StoreError::TooManyDeliveries { .. })) {
                    self.limits.max_lines = (self.limits.max_lines / 2).max(1);
                }
                if let Some((files, _)) = self.core.as_mut() {
                    files.restore(self.committed.as_ref());
                }
                self.last_sent = self.committed.clone();
                Err(e)
            }
        }
    }

    /// Polls until `stop` turns true (or its sender goes away). Finishes the commit in flight
    /// before returning.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        while !stopped(&stop) {
            match self.advance(false).await {
                Ok(step) => {
                    if backoff.is_backing_off() {
                        self.sink.status(None);
                        backoff.reset();
                    }
                    if step.lines == 0 && !step.more {
                        pause(&mut stop, POLL).await;
                    }
                }
                Err(Error::Unavailable | Error::Store(StoreError::Closed)) => break,
                Err(e) => {
                    tracing::error!(
                        glob = %self.glob,
                        error = %e,
                        retry_in = ?backoff.peek(),
                        "tail batch not committed; reading again from the last checkpoint"
                    );
                    self.sink.status(Some(format!("paused: {e}")));
                    pause(&mut stop, backoff.next_delay()).await;
                }
            }
        }
        if let Err(e) = self.settle().await {
            tracing::warn!(glob = %self.glob, error = %e, "last tail batch not committed at shutdown; it is read again at the next start");
        }
        tracing::info!(glob = %self.glob, "tailer stopped");
    }
}

/// Whether the engine is stopping (or gone).
fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Sleeps for `d` unless the engine starts stopping first.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}
