//! The events of pending deliveries, read back from the store at send time.
//!
//! A queued delivery is held as a few integers ([`super::Job`]); its event lives in the batch row
//! the intake committed. Batches being sent are kept here, decoded, in a cache bounded by the
//! number of events it holds, so a backlog of millions costs the queues' integers and not the
//! events. Fresh intake batches are offered to the cache as they are queued, so at full speed
//! nothing is read back; after a restart, or when a backlog outgrows the cache, a batch is read
//! and decoded once and then serves its neighbours in the queues.

use std::sync::Arc;

use moka::policy::EvictionPolicy;

use crate::event::ActionEvent;
use crate::store::{split_delivery_id, BatchEvents, Store, StoreError};

/// The most events the cache holds (about 0.5–1 KB each, decoded): a few batches ahead of
/// every destination's queue heads.
pub const DEFAULT_CAPACITY: u64 = 20_000;

/// Decoded batches by batch sequence number, shared by every dispatch worker.
#[derive(Clone)]
pub struct EventCache {
    store: Store,
    batches: moka::sync::Cache<u64, Arc<BatchEvents>>,
    capacity: u64,
}

impl EventCache {
    /// A cache of at most `capacity` events over `store`.
    pub fn new(store: Store, capacity: u64) -> EventCache {
        let batches = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|_, b: &Arc<BatchEvents>| b.events.try_into().unwrap_or(u32::MAX))
            // Least recently used goes first: queues are sent oldest batch first, so a batch in
            // use is one that was just used. (The default admission policy could refuse a fresh
            // batch in favour of one that was hot a minute ago.)
            .eviction_policy(EvictionPolicy::lru())
            .build();
        EventCache {
            store,
            batches,
            capacity,
        }
    }

    /// Offers a batch's events (a fresh intake batch, or a page read when resuming). Kept
    /// unless the batch is already held; when `only_if_room`, kept only while the cache is
    /// less than half full, so that a resume reading the whole outbox does not push out the
    /// oldest batches, the ones sent first.
    pub fn offer(&self, seq: u64, events: BatchEvents, only_if_room: bool) {
        if only_if_room && self.batches.weighted_size() >= self.capacity / 2 {
            return;
        }
        if !self.batches.contains_key(&seq) {
            self.batches.insert(seq, Arc::new(events));
        }
    }

    /// The event of delivery `id` and when its batch was committed (Unix ms): from the cache,
    /// else read back from the store (blocking: one read and decode of the batch row, shared by
    /// the batch's other deliveries).
    pub fn event(&self, id: u64) -> Result<(Arc<ActionEvent>, i64), StoreError> {
        let (seq, idx) = split_delivery_id(id);
        if let Some(b) = self.batches.get(&seq) {
            if let Some(Some(ev)) = b.by_delivery.get(idx) {
                return Ok((ev.clone(), b.created_at));
            }
        }
        let batch = self.store.batch_events(seq)?.ok_or(StoreError::NotFound)?;
        let ev = batch
            .by_delivery
            .get(idx)
            .cloned()
            .flatten()
            .ok_or(StoreError::NotFound)?;
        let created_at = batch.created_at;
        self.batches.insert(seq, Arc::new(batch));
        Ok((ev, created_at))
    }
}
