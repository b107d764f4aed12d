//! What a tailer commits as its checkpoint: every file it follows, how it recognises that file,
//! and how far it has read it.
//!
//! One checkpoint per `[[tail]]` entry (key `tail:<glob>`), rewritten in the same transaction as
//! the events read since the previous one. Keeping all the entry's files in one value makes the
//! checkpoint describe exactly the lines submitted with it, across files, and lets a file that
//! went away simply be left out of the next value (the store has no "delete checkpoint").

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most bytes of a file's beginning that make its fingerprint.
pub(crate) const FP_MAX: usize = 256;

/// The checkpoint format version this build writes.
const VERSION: u32 = 1;

/// A tail entry's committed position in all of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TailState {
    /// Format version; a checkpoint from a newer build is refused rather than misread.
    pub v: u32,
    /// The `seq` the next file found gets: files are read oldest first.
    pub next_seq: u64,
    /// The files being followed, by `seq`.
    pub files: Vec<FileState>,
}

impl Default for TailState {
    fn default() -> Self {
        TailState {
            v: VERSION,
            next_seq: 1,
            files: Vec::new(),
        }
    }
}

impl TailState {
    /// Decodes a checkpoint value; the error names what to do about it.
    pub fn decode(key: &str, raw: &[u8]) -> Result<TailState, String> {
        let st: TailState = serde_json::from_slice(raw).map_err(|e| {
            format!("checkpoint {key} is unreadable ({e}); the store may be damaged")
        })?;
        if st.v > VERSION {
            return Err(format!(
                "checkpoint {key} was written by a newer sanhook (format {}, this build reads {VERSION}); run the newer version",
                st.v
            ));
        }
        Ok(st)
    }

    /// The checkpoint value.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of numbers and strings always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One followed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileState {
    /// Order of discovery: an older file (a rotated one) is read before a newer one, so lines
    /// keep the order they were written in.
    pub seq: u64,
    /// Where the file was last seen (it changes when the file is renamed).
    pub path: String,
    /// Device and inode where the file was last seen: a renamed file keeps them, a copy does not.
    pub dev: u64,
    pub ino: u64,
    /// Hash of the first `fp_len` bytes: the identity that survives a rename and that a
    /// copy-truncate copy shares with its original.
    pub fp: u64,
    /// How many bytes `fp` covers: [`FP_MAX`], or fewer (whole lines) while the file is shorter.
    pub fp_len: u32,
    /// Bytes read and committed: the start of the first line not yet ingested.
    pub offset: u64,
    /// Unix milliseconds since which the file has not been found; dropped after a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at: Option<i64>,
}

/// How many of a file's first bytes identify it, given up to [`FP_MAX`] of them (`prefix`):
/// all [`FP_MAX`] when there are that many, else the complete lines among them (a partial line
/// may still change, and a few bytes of one would match too many files). 0 = not identifiable
/// yet (and nothing to read yet either: there is no complete line).
pub(crate) fn identity_len(prefix: &[u8]) -> usize {
    if prefix.len() >= FP_MAX {
        return FP_MAX;
    }
    prefix
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0)
}

/// The fingerprint of a file's first bytes.
pub(crate) fn fingerprint(bytes: &[u8]) -> u64 {
    let d = Sha256::digest(bytes);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_covers_whole_lines_of_a_short_file() {
        assert_eq!(identity_len(b""), 0);
        assert_eq!(identity_len(b"{\"id\":1"), 0);
        assert_eq!(identity_len(b"{\"id\":1}\n{\"id\""), 9);
        assert_eq!(identity_len(&[b'x'; 300]), FP_MAX);
    }

    #[test]
    fn checkpoint_round_trips_and_refuses_a_newer_format() {
        let st = TailState {
            v: 1,
            next_seq: 3,
            files: vec![FileState {
                seq: 2,
                path: "/var/log/a.ndjson".into(),
                dev: 1,
                ino: 2,
                fp: 3,
                fp_len: 256,
                offset: 4096,
                gone_at: None,
            }],
        };
        assert_eq!(TailState::decode("k", &st.encode()), Ok(st));
        let newer = br#"{"v":9,"nextSeq":1,"files":[]}"#;
        let err = TailState::decode("tail:x", newer).unwrap_err();
        assert!(err.contains("newer sanhook"), "{err}");
    }
}
