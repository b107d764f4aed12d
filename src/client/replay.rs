//! `sanhook replay FILE...`: a one-off backfill through the running server.
//!
//! The files are read line by line and posted in order as NDJSON batches to
//! `POST /api/v1/events`, one at a time (so events keep their order per object). The server
//! takes a batch whole or not at all and names the first bad line of a refused one; the lines
//! before it are then posted on their own, the bad line is reported (`FILE:LINE: reason`) and
//! dropped, and the rest of the batch goes on. Events the server has already seen (by `id`) come
//! back as duplicates, so running a replay twice is safe.
//!
//! Exit codes: 0 when every line was accepted or a duplicate, 1 when any line was rejected, 2
//! when the replay could not run (no server, token refused, unreadable file, server failing).

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::api::{Api, ApiError, Reply, Retry};
use crate::backoff::Backoff;
use crate::Config;

/// Lines per request.
const BATCH_LINES: usize = 1000;

/// Most bytes per request (the server's `max_body` may lower it).
const BATCH_BYTES: u64 = 4 << 20;

/// Per request: a batch commits in milliseconds, so this only catches a hung server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Tries of one request when the server is unreachable or answers 5xx, and the pauses between
/// them (0.5, 1, 2, 4 s).
const TRIES: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const LONGEST_PAUSE: Duration = Duration::from_secs(4);

/// Rejected lines listed in the summary (all of them are reported as they are found).
const SUMMARY_REJECTED: usize = 20;

/// Runs the command; returns the process exit code.
pub fn run(cfg: &Config, files: &[PathBuf]) -> i32 {
    super::block_on("replay", replay(cfg, files))
}

/// A line the server refused.
struct Rejected {
    file: String,
    line: u64,
    reason: String,
}

/// What the replay came to.
#[derive(Default)]
struct Totals {
    /// Non-blank lines read.
    lines: u64,
    accepted: u64,
    duplicates: u64,
    deliveries: u64,
    rejected: Vec<Rejected>,
}

/// One line to send: where it came from and its bytes (no newline).
struct Line {
    number: u64,
    bytes: Vec<u8>,
}

/// Why the replay stopped early (exit 2).
struct Fatal(String);

struct Replayer {
    api: Api,
    /// The server's `max_body`: a longer line can never be sent.
    max_body: u64,
    /// Bytes per request.
    batch_bytes: u64,
    totals: Totals,
    bar: ProgressBar,
    started: Instant,
}

async fn replay(cfg: &Config, files: &[PathBuf]) -> i32 {
    let api = match Api::for_server(cfg, REQUEST_TIMEOUT) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("sanhook replay: {e}");
            return 2;
        }
    };
    let (opened, total_bytes) = match open_all(files) {
        Ok(o) => o,
        Err(Fatal(msg)) => {
            eprintln!("sanhook replay: {msg}");
            return 2;
        }
    };
    let mut r = Replayer {
        api,
        max_body: cfg.server.max_body,
        batch_bytes: cfg.server.max_body.min(BATCH_BYTES),
        totals: Totals::default(),
        bar: progress_bar(total_bytes),
        started: Instant::now(),
    };
    if let Err(e) = r.api.healthy().await {
        eprintln!("sanhook replay: {e}");
        return 2;
    }
    for (path, file) in opened {
        if let Err(Fatal(msg)) = r.replay_file(path, file).await {
            r.bar.finish_and_clear();
            eprintln!("sanhook replay: {msg}");
            println!("{}", r.summary(files.len()));
            return 2;
        }
    }
    r.bar.finish_and_clear();
    println!("{}", r.summary(files.len()));
    if r.totals.rejected.is_empty() {
        0
    } else {
        1
    }
}

/// The files to replay, opened, with their total size (for the progress bar).
type Opened<'a> = (Vec<(&'a Path, File)>, u64);

/// Opens every file before anything is sent, so that a typo in the last name costs nothing.
fn open_all(files: &[PathBuf]) -> Result<Opened<'_>, Fatal> {
    let mut opened = Vec::with_capacity(files.len());
    let mut total_bytes = 0;
    for path in files {
        let (f, len) = File::open(path)
            .and_then(|f| f.metadata().map(|m| (f, m.len())))
            .map_err(|e| {
                Fatal(format!(
                    "cannot read {}: {e}; nothing was sent",
                    path.display()
                ))
            })?;
        total_bytes += len;
        opened.push((path.as_path(), f));
    }
    Ok((opened, total_bytes))
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

impl Replayer {
    async fn replay_file(&mut self, path: &Path, file: File) -> Result<(), Fatal> {
        let name = path.display().to_string();
        let mut reader = LineReader::new(
            BufReader::with_capacity(1 << 20, file),
            self.max_body.saturating_sub(1),
        );
        let mut batch: Vec<Line> = Vec::with_capacity(BATCH_LINES);
        let mut batch_bytes = 0u64;
        loop {
            let next = reader
                .next_line()
                .map_err(|e| Fatal(format!("cannot read {name}: {e}")))?;
            let Some(item) = next else { break };
            self.bar.inc(item.consumed);
            let line = match item.content {
                Content::Blank => continue,
                Content::TooLong(len) => {
                    self.totals.lines += 1;
                    self.reject(
                        &name,
                        item.number,
                        format!(
                            "line of {len} bytes does not fit one request (server.max_body is {} bytes)",
                            self.max_body
                        ),
                    );
                    continue;
                }
                Content::Line(bytes) => Line {
                    number: item.number,
                    bytes,
                },
            };
            self.totals.lines += 1;
            if batch_bytes + line.bytes.len() as u64 + 1 > self.batch_bytes && !batch.is_empty() {
                self.send(&name, std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
            batch_bytes += line.bytes.len() as u64 + 1;
            batch.push(line);
            if batch.len() >= BATCH_LINES {
                self.send(&name, std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            self.send(&name, batch).await?;
        }
        Ok(())
    }

    fn reject(&mut self, file: &str, line: u64, reason: String) {
        self.bar
            .suspend(|| eprintln!("{file}:{line}: rejected: {reason}"));
        self.totals.rejected.push(Rejected {
            file: file.to_string(),
            line,
            reason,
        });
    }

    /// Posts `lines` in order until each is accepted, a duplicate, or rejected.
    async fn send(&mut self, file: &str, lines: Vec<Line>) -> Result<(), Fatal> {
        // Pending pieces, next first: a refused batch is split around its bad line, a batch
        // too large for the server in halves.
        let mut pending: Vec<Vec<Line>> = vec![lines];
        while let Some(batch) = pending.pop() {
            if batch.is_empty() {
                continue;
            }
            let mut body = Vec::with_capacity(batch.iter().map(|l| l.bytes.len() + 1).sum());
            for l in &batch {
                body.extend_from_slice(&l.bytes);
                body.push(b'\n');
            }
            let reply = self.post(&body, file, batch[0].number).await?;
            match reply.status {
                202 => self.count(&reply.body),
                400 => self.refused(file, batch, &reply.body, &mut pending),
                413 if batch.len() > 1 => {
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
                413 => {
                    let l = &batch[0];
                    let reason = format!(
                        "line of {} bytes is larger than the server's max_body",
                        l.bytes.len()
                    );
                    self.reject(file, l.number, reason);
                }
                other => {
                    return Err(Fatal(format!(
                        "the server answered {other} at {file}:{}: {}; lines before it were committed, and replaying again is safe (seen ids count as duplicates)",
                        batch[0].number, reply.body
                    )))
                }
            }
        }
        Ok(())
    }

    /// Adds an accepted batch's counts.
    fn count(&mut self, reply: &Value) {
        let n = |k: &str| reply[k].as_u64().unwrap_or(0);
        self.totals.accepted += n("accepted");
        self.totals.duplicates += n("duplicates");
        self.totals.deliveries += n("deliveries");
        self.show_rate();
    }

    /// A batch the server refused (400): when it names a bad line, that line is rejected and
    /// the lines around it go back to `pending` (those before it first); otherwise every line
    /// is rejected.
    fn refused(
        &mut self,
        file: &str,
        batch: Vec<Line>,
        reply: &Value,
        pending: &mut Vec<Vec<Line>>,
    ) {
        let reason = reply["error"]
            .as_str()
            .unwrap_or("refused by the server")
            .to_string();
        match reply["line"].as_u64().map(|l| l as usize) {
            Some(l) if l >= 1 && l <= batch.len() => {
                let mut before = batch;
                let mut after = before.split_off(l - 1);
                let bad = after.remove(0);
                self.reject(file, bad.number, reason);
                pending.push(after);
                pending.push(before);
            }
            // Not about one line: the whole batch is refused.
            _ => {
                for l in batch {
                    self.reject(file, l.number, reason.clone());
                }
            }
        }
    }

    /// Posts one NDJSON body; retries while the server is unreachable or failing (5xx).
    async fn post(&self, body: &[u8], file: &str, first_line: u64) -> Result<Reply, Fatal> {
        let retry = Retry {
            tries: TRIES,
            backoff: Backoff::new(FIRST_PAUSE, LONGEST_PAUSE),
        };
        self.api
            .post_retrying("/api/v1/events", "application/x-ndjson", body, retry)
            .await
            .map_err(|e| match e {
                ApiError::GaveUp { .. } => Fatal(format!(
                    "{e} sending {file} from line {first_line}; lines before it were committed, and replaying again is safe (seen ids count as duplicates)"
                )),
                other => Fatal(other.to_string()),
            })
    }

    fn show_rate(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let events = self.totals.accepted + self.totals.duplicates;
        self.bar.set_message(format!(
            "{events} events, {:.0} events/s",
            events as f64 / secs
        ));
    }

    fn summary(&self, files: usize) -> String {
        let t = &self.totals;
        let mut s = format!(
            "replay: {files} file{}, {} lines: {} events accepted, {} duplicates, {} deliveries created, {} rejected",
            if files == 1 { "" } else { "s" },
            t.lines,
            t.accepted,
            t.duplicates,
            t.deliveries,
            t.rejected.len()
        );
        if !t.rejected.is_empty() {
            let shown: Vec<String> = t
                .rejected
                .iter()
                .take(SUMMARY_REJECTED)
                .map(|r| format!("{}:{} ({})", r.file, r.line, r.reason))
                .collect();
            s.push_str(": ");
            s.push_str(&shown.join("; "));
            if t.rejected.len() > SUMMARY_REJECTED {
                s.push_str(&format!(
                    "; and {} more (listed above)",
                    t.rejected.len() - SUMMARY_REJECTED
                ));
            }
        }
        s
    }
}

/// What one line of a file is.
enum Content {
    Blank,
    /// Too long to send; its length.
    TooLong(u64),
    Line(Vec<u8>),
}

struct Item {
    /// 1-based line number.
    number: u64,
    /// Bytes of the file this line took (newline included), for the progress bar.
    consumed: u64,
    content: Content,
}

/// Reads lines without ever holding more than `max` bytes of one: a longer line is skipped and
/// reported by length. A last line without a newline is a line.
struct LineReader<R> {
    inner: R,
    max: u64,
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    fn new(inner: R, max: u64) -> Self {
        LineReader {
            inner,
            max,
            number: 0,
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<Item>> {
        let mut line = Vec::new();
        let mut len = 0u64;
        let mut consumed = 0u64;
        let mut too_long = false;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                if consumed == 0 {
                    return Ok(None);
                }
                break;
            }
            let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], i + 1),
                None => (buf, buf.len()),
            };
            len += chunk.len() as u64;
            if len > self.max {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
            let newline = done > chunk.len();
            self.inner.consume(done);
            consumed += done as u64;
            if newline {
                break;
            }
        }
        self.number += 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let content = if too_long {
            Content::TooLong(len)
        } else if line.iter().all(u8::is_ascii_whitespace) {
            Content::Blank
        } else {
            Content::Line(line)
        };
        Ok(Some(Item {
            number: self.number,
            consumed,
            content,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8], max: u64) -> Vec<(u64, String)> {
        let mut r = LineReader::new(text, max);
        let mut out = vec![];
        while let Some(item) = r.next_line().expect("read") {
            let s = match item.content {
                Content::Blank => "<blank>".to_string(),
                Content::TooLong(n) => format!("<too long: {n}>"),
                Content::Line(b) => String::from_utf8_lossy(&b).into_owned(),
            };
            out.push((item.number, s));
        }
        out
    }

    #[test]
    fn lines_are_numbered_and_the_last_needs_no_newline() {
        let got = read_all(b"a\r\n\n  \nbbbbbbbbbb\nc", 5);
        assert_eq!(
            got,
            vec![
                (1, "a".to_string()),
                (2, "<blank>".to_string()),
                (3, "<blank>".to_string()),
                (4, "<too long: 10>".to_string()),
                (5, "c".to_string()),
            ]
        );
        assert!(read_all(b"", 5).is_empty());
        assert_eq!(read_all(b"x\n", 5), vec![(1, "x".to_string())]);
    }
}
