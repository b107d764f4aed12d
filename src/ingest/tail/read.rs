//! Reading complete lines from the followed files into one batch, in bounded memory.
//!
//! Reads go through a buffer of [`CHUNK`] bytes that grows only as far as `max_line + 1`, so
//! neither a large file nor a long line is ever held whole. Only complete lines are taken: a
//! partial last line stays unread (its offset is not passed) until its newline arrives. A line
//! longer than `max_line` is quarantined: its end is found by scanning forward without keeping
//! it, and only its first [`RAW_MAX`] bytes are stored.

use memchr::memchr;
use std::fs::File;
use std::os::unix::fs::MetadataExt;

use crate::event::{parse_line, ActionEvent};
use crate::store::QuarantineItem;

use super::files::{is_link_refused, open_nofollow, read_full_at, Files, Tracked, IDLE_CLOSE_MS};
use super::state::FileState;

/// Read size, and the buffer's size unless a longer (allowed) line needs more.
pub(crate) const CHUNK: usize = 1 << 20;

/// How much of a quarantined line is kept.
pub(crate) const RAW_MAX: usize = 4096;

/// The `source` of quarantined lines.
const QUARANTINE_SOURCE: &str = "tail";

/// How big one batch may get.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Lines (events, quarantined and blank ones alike).
    pub max_lines: usize,
    /// Bytes of input.
    pub max_bytes: u64,
    /// Longer lines are quarantined.
    pub max_line: u64,
}

/// One read's worth of input, and what it came to.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub events: Vec<ActionEvent>,
    pub quarantine: Vec<QuarantineItem>,
    /// Lines consumed: events, quarantined and blank lines.
    pub lines: usize,
    /// Bytes consumed.
    pub bytes: u64,
    /// The batch filled up: more input is waiting.
    pub more: bool,
}

impl Batch {
    fn full(&self, limits: &Limits) -> bool {
        self.lines >= limits.max_lines || self.bytes >= limits.max_bytes
    }
}

/// Whether a file was read to its (current) end or the batch filled up first.
enum Stop {
    End,
    Full,
}

/// The reusable read buffer.
#[derive(Debug, Default)]
pub(crate) struct Buffer(Vec<u8>);

impl Files {
    /// Reads the next batch of complete lines, files oldest first, advancing the offsets in
    /// memory (they become durable only when the batch's checkpoint commits). `now` is Unix ms,
    /// `date` the default date of events without one.
    pub fn read_batch(&mut self, buf: &mut Buffer, limits: &Limits, now: i64, date: &str) -> Batch {
        let mut batch = Batch::default();
        if buf.0.len() < CHUNK {
            buf.0.resize(CHUNK, 0);
        }
        for i in 0..self.tracked.len() {
            let t = &mut self.tracked[i];
            if t.st.gone_at.is_some() && !t.detached {
                continue;
            }
            if t.file.is_none() {
                if t.size <= t.st.offset {
                    // Nothing new at the last scan: no need to open it.
                    continue;
                }
                match open_same(t) {
                    Ok(Some(f)) => t.file = Some(f),
                    // Renamed or replaced since the scan: the next scan tells which.
                    Ok(None) => continue,
                    Err(e) => {
                        let (path, msg) = (t.st.path.clone(), format!("cannot open: {e}"));
                        self.warn_once(&path, &msg);
                        continue;
                    }
                }
            }
            let before = batch.lines;
            match read_file(t, &mut buf.0, limits, date, &mut batch) {
                Ok(Stop::Full) => {
                    t.eof_since = None;
                    batch.more = true;
                    break;
                }
                Ok(Stop::End) => {
                    if batch.lines > before {
                        t.eof_since = Some(now);
                    }
                    let since = *t.eof_since.get_or_insert(now);
                    // Closed only with nothing beyond the offset: a partial line keeps it open.
                    if !t.detached && now - since >= IDLE_CLOSE_MS && t.size <= t.st.offset {
                        t.file = None;
                    }
                }
                Err(e) => {
                    t.file = None;
                    let (path, msg) = (t.st.path.clone(), format!("read error: {e}"));
                    self.warn_once(&path, &msg);
                }
            }
        }
        batch
    }
}

/// Opens a tracked file by path, if the path still holds the same inode.
fn open_same(t: &Tracked) -> std::io::Result<Option<File>> {
    if t.detached {
        return Ok(None);
    }
    // A path that became a symbolic link is not the file being followed.
    let f = match open_nofollow(&t.st.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || is_link_refused(&e) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    Ok((m.dev() == t.st.dev && m.ino() == t.st.ino).then_some(f))
}

fn read_file(
    t: &mut Tracked,
    buf: &mut Vec<u8>,
    limits: &Limits,
    date: &str,
    batch: &mut Batch,
) -> std::io::Result<Stop> {
    let Tracked {
        st, file, scanned, ..
    } = t;
    let Some(file) = file.as_ref() else {
        return Ok(Stop::End);
    };
    loop {
        if batch.full(limits) {
            return Ok(Stop::Full);
        }
        let n = read_full_at(file, buf, st.offset)?;
        if n == 0 {
            return Ok(Stop::End);
        }
        let data = &mut buf[..n];
        let mut pos = 0;
        while let Some(rel) = memchr(b'\n', &data[pos..]) {
            let end = pos + rel;
            take_line(
                &mut data[pos..end],
                st.offset,
                &st.path,
                file,
                limits,
                date,
                batch,
            );
            let len = (end - pos + 1) as u64;
            st.offset += len;
            *scanned = 0;
            batch.lines += 1;
            batch.bytes += len;
            pos = end + 1;
            if batch.full(limits) {
                return Ok(Stop::Full);
            }
        }
        if n < buf.len() {
            // The rest is a partial line: it waits for its newline.
            return Ok(Stop::End);
        }
        if pos > 0 {
            continue;
        }
        // A whole buffer without a newline, starting at a line start.
        if n as u64 > limits.max_line {
            match skip_long_line(st, scanned, file, buf, limits, batch)? {
                true => continue,
                false => return Ok(Stop::End),
            }
        }
        let grown = (buf.len() * 2).min(limits.max_line as usize + 1);
        buf.resize(grown, 0);
    }
}

/// Finds the end of a line known to be longer than `max_line` without holding it, and
/// quarantines it. Returns false when its newline has not been written yet.
fn skip_long_line(
    st: &mut FileState,
    scanned: &mut u64,
    file: &File,
    buf: &mut [u8],
    limits: &Limits,
    batch: &mut Batch,
) -> std::io::Result<bool> {
    let mut at = (*scanned).max(st.offset + buf.len() as u64);
    let end = loop {
        let n = read_full_at(file, buf, at)?;
        if n == 0 {
            *scanned = at;
            return Ok(false);
        }
        if let Some(i) = memchr(b'\n', &buf[..n]) {
            break at + i as u64;
        }
        at += n as u64;
    };
    let len = end - st.offset;
    let raw = read_raw(file, st.offset, len as usize);
    batch.quarantine.push(QuarantineItem {
        id: 0,
        source: QUARANTINE_SOURCE.into(),
        file: st.path.clone(),
        offset: st.offset,
        reason: too_long(len, limits.max_line),
        raw,
        at: 0,
    });
    st.offset = end + 1;
    *scanned = 0;
    batch.lines += 1;
    batch.bytes += len + 1;
    Ok(true)
}

fn too_long(len: u64, max: u64) -> String {
    format!(
        "line of {len} bytes is longer than max_line ({max} bytes); raise max_line of this [[tail]] entry to ingest such lines"
    )
}

/// Turns one complete line (without its newline) into an event, a quarantine entry, or
/// nothing (a blank line).
fn take_line(
    line: &mut [u8],
    offset: u64,
    path: &str,
    file: &File,
    limits: &Limits,
    date: &str,
    batch: &mut Batch,
) {
    let quarantine = |batch: &mut Batch, reason: String, raw: String| {
        batch.quarantine.push(QuarantineItem {
            id: 0,
            source: QUARANTINE_SOURCE.into(),
            file: path.to_string(),
            offset,
            reason,
            raw,
            at: 0,
        });
    };
    if line.len() as u64 > limits.max_line {
        let raw = lossy(&line[..line.len().min(RAW_MAX)]);
        quarantine(batch, too_long(line.len() as u64, limits.max_line), raw);
        return;
    }
    let line = match line.split_last_mut() {
        Some((b'\r', rest)) => rest,
        _ => line,
    };
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let len = line.len();
    match parse_line(line, date) {
        Ok(ev) => batch.events.push(ev),
        Err(e) => {
            // The parser may have rewritten the buffer in place: read the raw bytes again.
            let raw = read_raw(file, offset, len);
            let reason = match &e.key {
                Some(k) if !e.message.contains(k.as_str()) => format!("{} (key {k})", e.message),
                _ => e.message.clone(),
            };
            quarantine(batch, reason, raw);
        }
    }
}

/// Up to [`RAW_MAX`] bytes of a line, as text.
fn read_raw(file: &File, offset: u64, len: usize) -> String {
    let mut raw = vec![0u8; len.min(RAW_MAX)];
    match read_full_at(file, &mut raw, offset) {
        Ok(n) => lossy(&raw[..n]),
        Err(e) => format!("(could not read the line again: {e})"),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StartAt;

    fn append(path: &std::path::Path, s: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(s.as_bytes()).expect("append");
    }

    const LIMITS: Limits = Limits {
        max_lines: 100,
        max_bytes: 1 << 20,
        max_line: 100,
    };

    fn ids(b: &Batch) -> Vec<u64> {
        b.events.iter().filter_map(|e| e.id).collect()
    }

    fn ev(id: u64) -> String {
        format!(
            "{{\"id\":{id},\"objectType\":\"bug\",\"objectID\":1,\"actor\":\"a\",\"action\":\"opened\"}}\n"
        )
    }

    #[test]
    fn an_idle_file_is_closed_and_reopened_when_it_grows() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("a.log");
        append(&log, &ev(1));
        let mut f = Files::new(
            &format!("{}/*.log", dir.path().display()),
            StartAt::Beginning,
            None,
        );
        let mut buf = Buffer::default();
        f.scan(0);
        assert_eq!(ids(&f.read_batch(&mut buf, &LIMITS, 0, "d")), vec![1]);
        assert!(f.tracked[0].file.is_some());
        f.scan(IDLE_CLOSE_MS);
        f.read_batch(&mut buf, &LIMITS, IDLE_CLOSE_MS, "d");
        assert!(f.tracked[0].file.is_none(), "idle: closed");
        // Not reopened while nothing changed.
        f.read_batch(&mut buf, &LIMITS, IDLE_CLOSE_MS + 1, "d");
        assert!(f.tracked[0].file.is_none());
        append(&log, &ev(2));
        f.scan(IDLE_CLOSE_MS + 2);
        assert_eq!(
            ids(&f.read_batch(&mut buf, &LIMITS, IDLE_CLOSE_MS + 2, "d")),
            vec![2]
        );
    }

    #[test]
    fn long_lines_are_quarantined_without_holding_them_and_blank_lines_skipped() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("a.log");
        let long = format!("{{\"id\":9,\"pad\":\"{}\"}}\n", "z".repeat(3 * CHUNK));
        append(&log, &format!("{}\n  \r\n{long}{}", ev(1), ev(2)));
        let mut f = Files::new(
            &format!("{}/*.log", dir.path().display()),
            StartAt::Beginning,
            None,
        );
        let mut buf = Buffer::default();
        f.scan(0);
        let mut b = f.read_batch(&mut buf, &LIMITS, 0, "d");
        // The long line filled the batch (bytes): the next line comes with the next one.
        assert!(b.more);
        let next = f.read_batch(&mut buf, &LIMITS, 0, "d");
        b.events.extend(next.events);
        b.lines += next.lines;
        assert_eq!(ids(&b), vec![1, 2]);
        assert_eq!(b.lines, 5);
        assert_eq!(b.quarantine.len(), 1);
        let q = &b.quarantine[0];
        assert_eq!(q.offset, (ev(1).len() + 1 + 4) as u64);
        assert_eq!(q.raw.len(), RAW_MAX);
        assert!(q.reason.contains("max_line (100 bytes)"), "{}", q.reason);
        assert!(
            buf.0.len() <= CHUNK,
            "the buffer never grew for the long line"
        );
    }

    #[test]
    fn a_long_line_still_being_written_waits_then_is_quarantined() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("a.log");
        append(&log, &format!("{}{}", ev(1), "y".repeat(2 * CHUNK + 10)));
        let mut f = Files::new(
            &format!("{}/*.log", dir.path().display()),
            StartAt::Beginning,
            None,
        );
        let mut buf = Buffer::default();
        f.scan(0);
        let b = f.read_batch(&mut buf, &LIMITS, 0, "d");
        assert_eq!((ids(&b), b.quarantine.len()), (vec![1], 0));
        append(&log, &format!("yyy\n{}", ev(2)));
        f.scan(1);
        let mut b = f.read_batch(&mut buf, &LIMITS, 1, "d");
        b.events
            .extend(f.read_batch(&mut buf, &LIMITS, 1, "d").events);
        assert_eq!((ids(&b), b.quarantine.len()), (vec![2], 1));
        assert!(b.quarantine[0]
            .reason
            .contains(&format!("{} bytes", 2 * CHUNK + 13)));
    }
}
