//! Finding the files of a glob and telling which of them is which across renames, copies and
//! truncations.
//!
//! A file's identity is the fingerprint of its first bytes ([`FileState::fp`]) together with its
//! device and inode. A scan matches what the checkpoint knows to what is on disk in two passes:
//!
//! 1. **By inode.** A known file whose inode is still in the glob, still starting with its
//!    fingerprint and at least as long as the offset read, is that file (a rename only changes
//!    its path). The same inode no longer matching means the file was truncated or replaced (an
//!    inode number reused after a delete): whatever it holds now is new and read from offset 0.
//! 2. **By fingerprint.** A known file not found by inode is looked for among the other files by
//!    its fingerprint: this is how a copy-truncate copy (new inode, same first bytes) takes over
//!    from the original, and the unread rest of the original is read from the copy.
//!
//! Files matching a known fingerprint without being claimed are copies of a file already being
//! read and are ignored. Other files are new: read from the beginning, except those found by the
//! first scan a `[[tail]]` entry ever makes, which start where `start_at` says.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use crate::config::StartAt;

use super::state::{fingerprint, identity_len, FileState, TailState, FP_MAX};

/// How long a file no longer found keeps its place in the checkpoint: if it comes back (a
/// storage hiccup, a file moved back) reading resumes where it stopped.
pub(crate) const GONE_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// How long a file that left the glob while open is kept open after its last byte was read, for
/// a writer that has not yet reopened its log after a rename.
pub(crate) const DETACHED_LINGER_MS: i64 = 5_000;

/// How long a file's handle stays open after a read found nothing new: an idle file is then
/// closed (and reopened when a scan sees it grow), so a glob over many old files holds few
/// descriptors.
pub(crate) const IDLE_CLOSE_MS: i64 = 30_000;

/// A followed file: its committed-format state and what only this process knows about it.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub st: FileState,
    /// The open file; reads go through it, so a rename between scans changes nothing.
    pub file: Option<File>,
    /// No newline exists in `[st.offset, scanned)`: where the search for the end of an
    /// over-long line resumes, so a huge line being written is not rescanned from its start.
    pub scanned: u64,
    /// The file left the glob (renamed away or deleted) while open: it is read to its end
    /// through the handle, then forgotten.
    pub detached: bool,
    /// When a read last found nothing more in this file (Unix ms); `None` while it has data.
    pub eof_since: Option<i64>,
    /// The file's size at the last scan: a closed file is opened only when it has grown past
    /// the offset.
    pub size: u64,
}

impl Tracked {
    fn new(st: FileState) -> Tracked {
        Tracked {
            st,
            file: None,
            scanned: 0,
            detached: false,
            eof_since: None,
            size: u64::MAX,
        }
    }

    fn with_size(st: FileState, size: u64) -> Tracked {
        Tracked {
            size,
            ..Tracked::new(st)
        }
    }
}

/// A file the glob matches now.
#[derive(Debug)]
struct Candidate {
    path: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    /// Up to [`FP_MAX`] first bytes.
    prefix: Vec<u8>,
}

impl Candidate {
    fn starts_with(&self, st: &FileState) -> bool {
        let n = st.fp_len as usize;
        n > 0 && self.prefix.len() >= n && fingerprint(&self.prefix[..n]) == st.fp
    }

    fn same_inode(&self, st: &FileState) -> bool {
        self.dev == st.dev && self.ino == st.ino
    }
}

/// The files of one `[[tail]]` entry and the rules for following them.
#[derive(Debug)]
pub(crate) struct Files {
    pub glob: String,
    pub start_at: StartAt,
    /// No checkpoint has been committed yet: `start_at` applies to files the next scan finds.
    pub first_run: bool,
    pub next_seq: u64,
    /// Sorted by `seq`: the order files are read in.
    pub tracked: Vec<Tracked>,
    /// Problems already logged, so a persistent one is logged once, not every poll.
    warned: HashSet<String>,
    /// Components of the glob before its first wildcard: the admin's own path, where a
    /// symbolic link is theirs to make. Components matched by wildcards must not be links.
    fixed_components: usize,
}

impl Files {
    /// Starts from a committed state (`None`: the entry has never committed one).
    pub fn new(glob: &str, start_at: StartAt, state: Option<&TailState>) -> Files {
        let mut f = Files {
            glob: glob.to_string(),
            start_at,
            first_run: true,
            next_seq: 1,
            tracked: Vec::new(),
            warned: HashSet::new(),
            fixed_components: fixed_components(glob),
        };
        f.restore(state);
        f
    }

    /// Forgets everything not committed: back to `state`, files closed.
    pub fn restore(&mut self, state: Option<&TailState>) {
        self.first_run = state.is_none();
        let state = state.cloned().unwrap_or_default();
        self.next_seq = state.next_seq;
        self.tracked = state.files.into_iter().map(Tracked::new).collect();
        self.tracked.sort_by_key(|t| t.st.seq);
    }

    /// The state to commit.
    pub fn snapshot(&self) -> TailState {
        TailState {
            next_seq: self.next_seq,
            files: self.tracked.iter().map(|t| t.st.clone()).collect(),
            ..TailState::default()
        }
    }

    /// Logs `msg` for `what` unless it was logged already.
    pub fn warn_once(&mut self, what: &str, msg: &str) {
        if self.warned.insert(format!("{what}\u{0}{msg}")) {
            tracing::warn!(glob = %self.glob, file = what, "{msg}");
        }
    }

    fn candidates(&mut self) -> Vec<Candidate> {
        let paths = match glob::glob(&self.glob) {
            Ok(p) => p,
            Err(e) => {
                let msg = format!("invalid glob: {e}");
                self.warn_once("", &msg);
                return vec![];
            }
        };
        let mut out = Vec::new();
        for entry in paths {
            let path: PathBuf = match entry {
                Ok(p) => p,
                Err(e) => {
                    let (what, msg) = (e.path().display().to_string(), e.error().to_string());
                    self.warn_once(&what, &format!("cannot list: {msg}"));
                    continue;
                }
            };
            let Some(name) = path.to_str().map(str::to_string) else {
                self.warn_once(
                    &path.display().to_string(),
                    "skipped: the path is not valid UTF-8",
                );
                continue;
            };
            if let Some(link) = linked_dir(&path, self.fixed_components) {
                let msg = format!(
                    "skipped: {} is a symbolic link, and links are never followed",
                    link.display()
                );
                self.warn_once(&name, &msg);
                continue;
            }
            match candidate(name.clone()) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                // It may have been renamed or deleted since the listing: the next scan will tell.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if is_link_refused(&e) => self.warn_once(
                    &name,
                    "skipped: a symbolic link, and links are never followed (a link could \
                     put any file this process can read into the quarantine or the outbox)",
                ),
                Err(e) => self.warn_once(&name, &format!("cannot read: {e}")),
            }
        }
        out
    }

    /// Matches the files on disk to the known ones (see the module docs); records new files,
    /// moves, truncations and disappearances. `now` is Unix ms.
    pub fn scan(&mut self, now: i64) {
        let cands = self.candidates();
        let m = self.match_candidates(&cands);
        self.let_go_of_unmatched(&m, now);
        self.follow_matched(&cands, &m);
        self.tracked
            .retain(|t| t.st.gone_at.is_none_or(|g| now - g < GONE_RETENTION_MS));
        self.track_new(&cands, &m);
        self.first_run = false;
    }

    /// Pairs known files with candidates: by inode first (a file that only grew), then by
    /// content (a rename, or a copy of a file that was then truncated).
    fn match_candidates(&self, cands: &[Candidate]) -> Matching {
        let mut m = Matching {
            claimed: vec![false; cands.len()],
            fresh: vec![false; cands.len()],
            found: vec![false; self.tracked.len()],
            truncated: vec![false; self.tracked.len()],
            moves: Vec::new(),
        };
        for (ti, t) in self.tracked.iter().enumerate() {
            let Some(ci) = cands.iter().position(|c| c.same_inode(&t.st)) else {
                continue;
            };
            if m.claimed[ci] {
                continue;
            }
            let c = &cands[ci];
            if c.starts_with(&t.st) && c.size >= t.st.offset {
                m.claimed[ci] = true;
                m.found[ti] = true;
            } else {
                m.fresh[ci] = true;
                m.truncated[ti] = true;
            }
        }
        for (ti, t) in self.tracked.iter().enumerate() {
            if m.found[ti] {
                continue;
            }
            let best = cands
                .iter()
                .enumerate()
                .filter(|(ci, c)| {
                    !m.claimed[*ci]
                        && !m.fresh[*ci]
                        && c.starts_with(&t.st)
                        && c.size >= t.st.offset
                })
                .min_by_key(|(_, c)| c.path != t.st.path)
                .map(|(ci, _)| ci);
            if let Some(ci) = best {
                m.claimed[ci] = true;
                m.found[ti] = true;
                m.moves.push((ti, ci));
            }
        }
        m
    }

    /// Known files with no candidate: read what an open handle still has (for a while), then
    /// mark them gone.
    fn let_go_of_unmatched(&mut self, m: &Matching, now: i64) {
        for (ti, t) in self.tracked.iter_mut().enumerate() {
            if m.found[ti] {
                continue;
            }
            if m.truncated[ti] {
                // Its inode holds other content now: the handle would read that.
                t.file = None;
                t.detached = false;
            } else if t.file.is_some() && t.st.gone_at.is_none() && !t.detached {
                // Read what was written before it left, then let it go.
                t.detached = true;
                t.eof_since = None;
            }
            if t.detached {
                let lingered = t.eof_since.is_some_and(|s| now - s >= DETACHED_LINGER_MS);
                if !lingered {
                    continue;
                }
                t.detached = false;
                t.file = None;
            }
            if t.st.gone_at.is_none() {
                tracing::info!(
                    glob = %self.glob,
                    file = %t.st.path,
                    offset = t.st.offset,
                    "tailed file is gone"
                );
            }
            t.st.gone_at.get_or_insert(now);
        }
    }

    /// Known files with a candidate: follow renames and copies, and refresh fingerprints of
    /// growing files.
    fn follow_matched(&mut self, cands: &[Candidate], m: &Matching) {
        for (ti, t) in self.tracked.iter_mut().enumerate() {
            if !m.found[ti] {
                continue;
            }
            let ci = m
                .moves
                .iter()
                .find(|(moved, _)| *moved == ti)
                .map(|(_, c)| *c)
                .or_else(|| cands.iter().position(|c| c.same_inode(&t.st)));
            let Some(ci) = ci else { continue };
            let c = &cands[ci];
            if !c.same_inode(&t.st) {
                tracing::info!(
                    glob = %self.glob,
                    from = %t.st.path,
                    to = %c.path,
                    offset = t.st.offset,
                    "following a copy of a truncated file"
                );
                t.file = None;
                t.scanned = 0;
                t.st.dev = c.dev;
                t.st.ino = c.ino;
            }
            t.st.path.clone_from(&c.path);
            t.size = c.size;
            t.st.gone_at = None;
            t.detached = false;
            let len = identity_len(&c.prefix);
            if len > t.st.fp_len as usize {
                t.st.fp_len = len as u32;
                t.st.fp = fingerprint(&c.prefix[..len]);
            }
        }
    }

    /// Candidates nobody claimed: new files, oldest first, so a rotated file's lines come before
    /// its successor's.
    fn track_new(&mut self, cands: &[Candidate], m: &Matching) {
        let mut new: Vec<usize> = (0..cands.len())
            .filter(|ci| !m.claimed[*ci] && identity_len(&cands[*ci].prefix) > 0)
            .filter(|ci| {
                m.fresh[*ci] || !self.tracked.iter().any(|t| cands[*ci].starts_with(&t.st))
            })
            .collect();
        new.sort_by(|a, b| {
            (cands[*a].mtime, &cands[*a].path).cmp(&(cands[*b].mtime, &cands[*b].path))
        });
        for ci in new {
            let c = &cands[ci];
            let offset = if self.first_run && !m.fresh[ci] && self.start_at == StartAt::End {
                match end_of_last_line(&c.path) {
                    Ok(o) => o,
                    Err(e) => {
                        self.warn_once(&c.path, &format!("cannot read: {e}"));
                        continue;
                    }
                }
            } else {
                0
            };
            let len = identity_len(&c.prefix);
            tracing::info!(glob = %self.glob, file = %c.path, offset, "tailing a new file");
            self.tracked.push(Tracked::with_size(
                FileState {
                    seq: self.next_seq,
                    path: c.path.clone(),
                    dev: c.dev,
                    ino: c.ino,
                    fp: fingerprint(&c.prefix[..len]),
                    fp_len: len as u32,
                    offset,
                    gone_at: None,
                },
                c.size,
            ));
            self.next_seq += 1;
        }
    }
}

/// How one scan paired candidates (`ci`) with known files (`ti`).
struct Matching {
    /// Candidate taken by a known file.
    claimed: Vec<bool>,
    /// Candidate whose inode is a known file that was truncated or replaced: new content.
    fresh: Vec<bool>,
    /// Known file that has its candidate.
    found: Vec<bool>,
    /// Known file whose own inode was truncated: its handle must not be drained.
    truncated: Vec<bool>,
    /// Known files found by content at another candidate: (ti, ci).
    moves: Vec<(usize, usize)>,
}

/// Opens a followed file by path for reading, refusing a symbolic link (`O_NOFOLLOW`: the
/// check and the open are one step, so a link swapped in between cannot slip through) and never
/// blocking on a FIFO (`O_NONBLOCK`, which changes nothing for a regular file).
pub(crate) fn open_nofollow(path: &str) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Whether an open failed because the path is a symbolic link (`O_NOFOLLOW` answers `ELOOP`).
pub(crate) fn is_link_refused(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// How many leading components of `glob` hold no wildcard (`*`, `?`, `[`).
fn fixed_components(glob: &str) -> usize {
    std::path::Path::new(glob)
        .components()
        .take_while(|c| {
            !c.as_os_str()
                .as_encoded_bytes()
                .iter()
                .any(|b| b"*?[".contains(b))
        })
        .count()
}

/// The first directory of `path` matched by a wildcard of the glob (past its first `fixed`
/// components) that is a symbolic link, if any: `logs/*/a.ndjson` must not lead through a
/// link to a directory elsewhere. The file itself is checked when it is opened.
fn linked_dir(path: &std::path::Path, fixed: usize) -> Option<PathBuf> {
    let parts: Vec<_> = path.components().collect();
    let mut dir = PathBuf::new();
    for (i, part) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
        dir.push(part);
        if i >= fixed && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(dir);
        }
    }
    None
}

/// Opens a path and reads its first bytes; `None` for what is not a regular file. A symbolic
/// link is refused ([`open_nofollow`]).
fn candidate(path: String) -> std::io::Result<Option<Candidate>> {
    let file = open_nofollow(&path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut prefix = vec![0u8; FP_MAX];
    let n = read_full_at(&file, &mut prefix, 0)?;
    prefix.truncate(n);
    Ok(Some(Candidate {
        path,
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        prefix,
    }))
}

/// Reads at `offset` until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The offset just after the file's last newline (0 when it has none): where `start_at = "end"`
/// starts, so a line being written when sanhook starts is read whole once it is finished.
fn end_of_last_line(path: &str) -> std::io::Result<u64> {
    const STEP: u64 = 64 * 1024;
    let file = open_nofollow(path)?;
    let mut end = file.metadata()?.size();
    let mut buf = vec![0u8; STEP as usize];
    while end > 0 {
        let start = end.saturating_sub(STEP);
        let len = (end - start) as usize;
        let n = read_full_at(&file, &mut buf[..len], start)?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &std::path::Path, s: &str) {
        std::fs::write(path, s).expect("write");
    }

    fn append(path: &std::path::Path, s: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(s.as_bytes()).expect("append");
    }

    fn glob_of(dir: &tempfile::TempDir) -> String {
        format!("{}/*.log*", dir.path().display())
    }

    /// Issue 8: a symbolic link in the glob (to a file, or a directory a wildcard matches) is
    /// never followed, and is named in one warning however many scans see it.
    #[test]
    fn symbolic_links_are_skipped_with_one_warning() {
        let dir = tempfile::tempdir().expect("dir");
        let outside = tempfile::tempdir().expect("outside");
        let secret = outside.path().join("shadow");
        write(&secret, "root:password\n");
        write(&dir.path().join("a.log"), "{\"id\":1}\n");
        let link = dir.path().join("b.log");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        let dangling = dir.path().join("c.log");
        std::os::unix::fs::symlink(outside.path().join("nothing"), &dangling).expect("symlink");
        let mut f = Files::new(&glob_of(&dir), StartAt::Beginning, None);
        for now in 0..3 {
            f.scan(now);
        }
        let paths: Vec<&str> = f.tracked.iter().map(|t| t.st.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![dir.path().join("a.log").to_str().expect("utf-8")]
        );
        let mut warned: Vec<&String> = f.warned.iter().collect();
        warned.sort();
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(
            warned[0].starts_with(link.to_str().expect("utf-8")),
            "{warned:?}"
        );
        assert!(warned[0].contains("symbolic link"), "{warned:?}");
        assert!(
            warned[1].starts_with(dangling.to_str().expect("utf-8")),
            "{warned:?}"
        );

        // A wildcard over directories does not lead through a link to one.
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("dir");
        write(&real.join("x.ndjson"), "{\"id\":2}\n");
        std::fs::create_dir(outside.path().join("d")).expect("dir");
        write(&outside.path().join("d/x.ndjson"), "secret\n");
        std::os::unix::fs::symlink(outside.path().join("d"), dir.path().join("via"))
            .expect("symlink");
        let mut f = Files::new(
            &format!("{}/*/x.ndjson", dir.path().display()),
            StartAt::Beginning,
            None,
        );
        f.scan(0);
        f.scan(1);
        let paths: Vec<&str> = f.tracked.iter().map(|t| t.st.path.as_str()).collect();
        assert_eq!(paths, vec![real.join("x.ndjson").to_str().expect("utf-8")]);
        assert_eq!(f.warned.len(), 1, "{:?}", f.warned);
        // The admin's own path may go through a link: only wildcard parts are checked.
        let mut f = Files::new(
            &format!("{}/via/*.ndjson", dir.path().display()),
            StartAt::Beginning,
            None,
        );
        f.scan(0);
        assert_eq!(f.tracked.len(), 1);
    }

    #[test]
    fn a_rename_keeps_the_offset_and_the_new_file_comes_after() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("a.log");
        write(&log, "{\"id\":1}\n{\"id\":2}\n");
        let mut f = Files::new(&glob_of(&dir), StartAt::Beginning, None);
        f.scan(0);
        assert_eq!(f.tracked.len(), 1);
        f.tracked[0].st.offset = 9;
        std::fs::rename(&log, dir.path().join("a.log.1")).expect("rename");
        write(&log, "{\"id\":3}\n");
        f.scan(1);
        assert_eq!(f.tracked.len(), 2);
        assert!(f.tracked[0].st.path.ends_with("a.log.1"));
        assert_eq!(f.tracked[0].st.offset, 9);
        assert!(f.tracked[1].st.path.ends_with("a.log"));
        assert_eq!(f.tracked[1].st.offset, 0);
    }

    #[test]
    fn a_copy_truncate_continues_in_the_copy_and_rereads_the_original() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("a.log");
        write(&log, "{\"id\":1}\n{\"id\":2}\n");
        let mut f = Files::new(&glob_of(&dir), StartAt::Beginning, None);
        f.scan(0);
        f.tracked[0].st.offset = 9;
        std::fs::copy(&log, dir.path().join("a.log.1")).expect("copy");
        // Before the truncation the copy is ignored: the original is still there.
        f.scan(1);
        assert_eq!(f.tracked.len(), 1);
        assert!(f.tracked[0].st.path.ends_with("a.log"));
        write(&log, "");
        f.scan(2);
        assert_eq!(f.tracked.len(), 1);
        assert!(f.tracked[0].st.path.ends_with("a.log.1"));
        assert_eq!(f.tracked[0].st.offset, 9);
        append(&log, "{\"id\":3}\n");
        f.scan(3);
        assert_eq!(f.tracked.len(), 2);
        assert!(f.tracked[1].st.path.ends_with("a.log"));
        assert_eq!(f.tracked[1].st.offset, 0);
    }

    #[test]
    fn start_at_end_applies_only_to_the_first_scan_and_waits_for_a_partial_line() {
        let dir = tempfile::tempdir().expect("dir");
        write(&dir.path().join("a.log"), "{\"id\":1}\n{\"id\":2");
        let mut f = Files::new(&glob_of(&dir), StartAt::End, None);
        f.scan(0);
        assert_eq!(f.tracked[0].st.offset, 9);
        write(&dir.path().join("b.log"), "{\"id\":3}\n");
        f.scan(1);
        assert_eq!(f.tracked[1].st.offset, 0);
    }

    #[test]
    fn a_gone_file_is_dropped_after_the_retention() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("a.log");
        write(&log, "{\"id\":1}\n");
        let mut f = Files::new(&glob_of(&dir), StartAt::Beginning, None);
        f.scan(0);
        std::fs::remove_file(&log).expect("rm");
        f.scan(10);
        assert_eq!(f.tracked[0].st.gone_at, Some(10));
        f.scan(10 + GONE_RETENTION_MS - 1);
        assert_eq!(f.tracked.len(), 1);
        f.scan(10 + GONE_RETENTION_MS);
        assert!(f.tracked.is_empty());
    }

    #[test]
    fn a_reused_inode_with_other_content_is_a_new_file() {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("a.log");
        write(&log, "{\"id\":1}\n{\"id\":2}\n");
        let mut f = Files::new(&glob_of(&dir), StartAt::Beginning, None);
        f.scan(0);
        f.tracked[0].st.offset = 18;
        // Truncated in place and rewritten: same inode, other first bytes.
        write(&log, "{\"id\":3}\n");
        f.scan(1);
        let live: Vec<&Tracked> = f
            .tracked
            .iter()
            .filter(|t| t.st.gone_at.is_none())
            .collect();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].st.offset, 0);
    }
}
