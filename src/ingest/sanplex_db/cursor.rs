//! The read position in `zt_action`, committed with the events it produced.
//!
//! `zt_action` ids are assigned when a row is inserted but become visible only when its
//! transaction commits, so following "the largest id seen" alone skips rows whose transaction
//! commits after a later one. The cursor therefore keeps, besides the highest id read, the ids
//! below it that were missing when it was read (the gaps), each with the time it was first
//! missed; the poller re-checks them until they show up or `gap_grace` has passed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Checkpoint key of the database source.
pub const CHECKPOINT_KEY: &str = "db:zt_action";

/// Most gaps remembered at once. A jump larger than this is an `AUTO_INCREMENT` change or rows
/// deleted in bulk, not transactions still in flight; tracking every id of it would only make
/// each checkpoint bigger.
pub const MAX_GAPS: usize = 10_000;

/// Where the source is in `zt_action`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cursor {
    /// Every id up to and including this one has been read, or is in `gaps`.
    pub high: u64,
    /// Ids below `high` that were not visible when a later id was read, with the Unix time in
    /// milliseconds when they were first missed.
    #[serde(default)]
    pub gaps: BTreeMap<u64, i64>,
}

/// What [`Cursor::advance`] had to leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Untracked {
    /// Missing ids not remembered because [`MAX_GAPS`] was reached.
    pub count: u64,
}

impl Cursor {
    /// A cursor after `high`, with no gaps.
    pub fn after(high: u64) -> Cursor {
        Cursor {
            high,
            gaps: BTreeMap::new(),
        }
    }

    /// Reads a stored checkpoint.
    pub fn decode(bytes: &[u8]) -> Result<Cursor, String> {
        serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "checkpoint {CHECKPOINT_KEY} is not a valid cursor ({e}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        })
    }

    /// The checkpoint value to commit.
    pub fn encode(&self) -> Vec<u8> {
        // A map of integers to integers cannot fail to serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Records ids read above `high` (ascending, as `ORDER BY id` returns them) at time `now`:
    /// every id skipped between them becomes a gap.
    pub fn advance(&mut self, ids: &[u64], now: i64) -> Untracked {
        let mut untracked = Untracked::default();
        for &id in ids {
            if id <= self.high {
                continue;
            }
            let missing = id - self.high - 1;
            let room = MAX_GAPS.saturating_sub(self.gaps.len()) as u64;
            let kept = missing.min(room);
            // Keep the ids just above the old position: a transaction that was already open
            // when the later row committed got its id there.
            for g in self.high + 1..self.high + 1 + kept {
                self.gaps.insert(g, now);
            }
            untracked.count += missing - kept;
            self.high = id;
        }
        untracked
    }

    /// Removes gaps whose rows have now been read.
    pub fn fill(&mut self, found: &[u64]) {
        for id in found {
            self.gaps.remove(id);
        }
    }

    /// Gives up on gaps first missed before `cutoff` (Unix ms); returns their ids, ascending.
    pub fn expire(&mut self, cutoff: i64) -> Vec<u64> {
        let doomed: Vec<u64> = self
            .gaps
            .iter()
            .filter(|(_, first)| **first < cutoff)
            .map(|(id, _)| *id)
            .collect();
        for id in &doomed {
            self.gaps.remove(id);
        }
        doomed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_leave_no_gaps() {
        let mut c = Cursor::after(4);
        assert_eq!(c.advance(&[5, 6, 7], 100), Untracked::default());
        assert_eq!(c, Cursor::after(7));
    }

    #[test]
    fn a_jump_remembers_the_skipped_ids_with_when_they_were_missed() {
        let mut c = Cursor::after(2);
        c.advance(&[4, 7], 100);
        assert_eq!(c.high, 7);
        assert_eq!(c.gaps, BTreeMap::from([(3, 100), (5, 100), (6, 100)]));
        // A later miss keeps the first time.
        c.advance(&[9], 200);
        assert_eq!(c.gaps.get(&3), Some(&100));
        assert_eq!(c.gaps.get(&8), Some(&200));
    }

    #[test]
    fn found_gaps_are_dropped_and_old_ones_expire() {
        let mut c = Cursor::after(0);
        c.advance(&[3], 100);
        c.advance(&[6], 500);
        c.fill(&[2]);
        assert_eq!(c.gaps.keys().copied().collect::<Vec<_>>(), vec![1, 4, 5]);
        assert_eq!(c.expire(300), vec![1]);
        assert_eq!(c.gaps.keys().copied().collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(c.expire(300), Vec::<u64>::new());
    }

    #[test]
    fn ids_at_or_below_the_position_are_ignored() {
        let mut c = Cursor::after(10);
        c.advance(&[9, 10], 1);
        assert_eq!(c, Cursor::after(10));
    }

    #[test]
    fn a_huge_jump_is_tracked_only_up_to_the_cap() {
        let mut c = Cursor::after(0);
        let u = c.advance(&[1_000_001], 1);
        assert_eq!(c.gaps.len(), MAX_GAPS);
        assert_eq!(u.count, 1_000_000 - MAX_GAPS as u64);
        assert_eq!(c.gaps.keys().next(), Some(&1));
        assert_eq!(c.high, 1_000_001);
    }

    #[test]
    fn round_trips_through_the_checkpoint() {
        let mut c = Cursor::after(5);
        c.advance(&[8], 42);
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert!(Cursor::decode(b"{nope")
            .unwrap_err()
            .contains(CHECKPOINT_KEY));
    }
}
