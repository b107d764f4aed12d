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
pub struct Tailer<S: Sink> {
    key: String,
    limits: Limits,
    files: Files,
    buf: Buffer,
    /// What the sink holds: where a restart, or a failed commit, resumes from.
    committed: Option<TailState>,
    sink: S,
}

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
            files: Files::new(&cfg.path, cfg.start_at, committed.as_ref()),
            key,
            limits: Limits {
                max_lines: MAX_BATCH_LINES,
                max_bytes: MAX_BATCH_BYTES,
                max_line: cfg.max_line,
            },
            buf: Buffer::default(),
            committed,
            sink,
        })
    }

    /// Sets the most lines and bytes one batch may hold (tests use small batches to interleave
    /// file changes with reads).
    pub fn set_batch_limits(&mut self, max_lines: usize, max_bytes: u64) {
        self.limits.max_lines = max_lines.max(1);
        self.limits.max_bytes = max_bytes.max(1);
    }

    /// One poll, on the caller's thread: scans the glob, reads one batch, commits it, and returns
    /// once it is committed. On an error nothing was committed and the tailer has rewound to the
    /// last checkpoint. [`Tailer::run`] is the production loop; this is for tests and embedders
    /// that drive the tailer themselves (its file reads block).
    pub async fn step(&mut self) -> Result<Step, Error> {
        let now = now_ms();
        self.files.scan(now);
        let date = crate::event::local_now();
        let batch = self
            .files
            .read_batch(&mut self.buf, &self.limits, now, &date);
        let snap = self.files.snapshot();
        let mut step = Step {
            lines: batch.lines,
            events: batch.events.len(),
            quarantined: batch.quarantine.len(),
            more: batch.more,
            ..Step::default()
        };
        if batch.lines == 0 && self.committed.as_ref() == Some(&snap) {
            return Ok(step);
        }
        let cp = Checkpoint {
            key: self.key.clone(),
            value: snap.encode(),
        };
        match self.sink.submit(batch.events, cp, batch.quarantine).await {
            Ok(summary) => {
                self.committed = Some(snap);
                step.committed = true;
                step.summary = summary;
                Ok(step)
            }
            Err(e) => {
                self.files.restore(self.committed.as_ref());
                Err(e)
            }
        }
    }

    /// Polls until `stop` turns true (or its sender goes away), overlapping the reading and
    /// parsing of a batch with the commit of the previous one. Finishes the commit in flight
    /// before returning.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let Tailer {
            key,
            limits,
            files,
            buf,
            mut committed,
            sink,
        } = self;
        let glob = files.glob.clone();
        let start_at = files.start_at;
        let mut core = Some((files, buf));
        let mut inflight: Option<(
            tokio::task::JoinHandle<Result<IngestSummary, Error>>,
            TailState,
        )> = None;
        let mut last_sent = committed.clone();
        let mut last_scan: Option<Instant> = None;
        let mut idle = true;
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        let mut max_lines = limits.max_lines;
        while !stopped(&stop) {
            let scan = idle || last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY);
            let (mut files, mut buf) = core.take().unwrap_or_else(|| {
                (
                    Files::new(&glob, start_at, committed.as_ref()),
                    Buffer::default(),
                )
            });
            let lim = Limits {
                max_lines,
                ..limits
            };
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
            let (files, buf, batch, snap) = match read {
                Ok(r) => r,
                Err(e) => {
                    // A panic while reading: start over from the last commit.
                    tracing::error!(glob = %glob, error = %e, "tailer read failed; resuming from the last checkpoint");
                    if let Some((h, sent)) = inflight.take() {
                        if matches!(h.await, Ok(Ok(_))) {
                            committed = Some(sent);
                        }
                    }
                    last_sent = committed.clone();
                    pause(&mut stop, backoff.next_delay()).await;
                    continue;
                }
            };
            if scan {
                last_scan = Some(Instant::now());
            }
            let mut files = files;
            // The previous batch must be committed before this one may be sent.
            if let Some((h, sent)) = inflight.take() {
                match h.await.unwrap_or(Err(Error::Unavailable)) {
                    Ok(_) => {
                        committed = Some(sent);
                        if backoff.is_backing_off() {
                            sink.status(None);
                        }
                        backoff.reset();
                        max_lines = (max_lines * 2).min(limits.max_lines);
                    }
                    Err(e) => {
                        if matches!(e, Error::Unavailable | Error::Store(StoreError::Closed)) {
                            break;
                        }
                        if matches!(e, Error::Store(StoreError::TooManyDeliveries { .. }))
                            && max_lines > 1
                        {
                            // Too many deliveries for one commit: smaller batches.
                            max_lines = (max_lines / 2).max(1);
                        }
                        tracing::error!(
                            glob = %glob,
                            error = %e,
                            retry_in = ?backoff.peek(),
                            "tail batch not committed; reading again from the last checkpoint"
                        );
                        sink.status(Some(format!("paused: {e}")));
                        files.restore(committed.as_ref());
                        core = Some((files, buf));
                        last_sent = committed.clone();
                        pause(&mut stop, backoff.next_delay()).await;
                        continue;
                    }
                }
            }
            core = Some((files, buf));
            idle = !batch.more;
            if batch.lines == 0 && last_sent.as_ref() == Some(&snap) {
                pause(&mut stop, POLL).await;
                continue;
            }
            let cp = Checkpoint {
                key: key.clone(),
                value: snap.encode(),
            };
            let commit = actix::spawn(sink.submit(batch.events, cp, batch.quarantine));
            inflight = Some((commit, snap.clone()));
            last_sent = Some(snap);
        }
        if let Some((h, _)) = inflight {
            if let Ok(Err(e)) = h.await {
                tracing::warn!(glob = %glob, error = %e, "last tail batch not committed at shutdown; it is read again at the next start");
            }
        }
        tracing::info!(glob = %glob, "tailer stopped");
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
