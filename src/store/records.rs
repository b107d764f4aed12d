//! What the store keeps, in the form it keeps it (compact JSON values in redb tables).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::ActionEvent;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Queued, not yet attempted (or re-queued by hand).
    #[default]
    Pending,
    /// At least one attempt failed; another is scheduled.
    Retrying,
    /// The destination accepted it.
    Delivered,
    /// Given up: permanent failure or retries exhausted (`last_error` says why).
    Dead,
    /// Not sent on purpose: webhook deleted, nobody to send to (`last_error` says why).
    Skipped,
}

impl Status {
    /// Every status, for metrics families.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Retrying,
        Status::Delivered,
        Status::Dead,
        Status::Skipped,
    ];

    /// Delivered, dead and skipped deliveries are never sent again unless retried by hand.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Dead | Status::Skipped)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Retrying => "retrying",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
            Status::Skipped => "skipped",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// The last request as the log shows it (credentials masked, body cut).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RequestLog {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The last response as the log shows it (body cut); the API shows it as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[schema(as = Response)]
pub struct ResponseLog {
    pub status: u16,
    pub body: String,
}

/// The mutable part of a delivery. Absent from the state table means "pending, never attempted".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryState {
    pub status: Status,
    pub attempts: u32,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<i64>,
    /// Unix milliseconds; set while `retrying`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestLog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseLog>,
    /// Deliverer-specific progress that must survive a restart (e.g. recipients already served),
    /// so a retry never sends twice to those already served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
    /// The last [`HISTORY`] attempts, oldest first (the delivery log's detail).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptLog>,
}

/// Attempts a delivery's [`DeliveryState::history`] keeps: enough to see a retry schedule at work,
/// small enough that a retrying delivery stays small.
pub const HISTORY: usize = 5;

/// The longest error an [`AttemptLog`] keeps (the last one is whole in `last_error`).
pub const HISTORY_ERROR_BYTES: usize = 300;

/// One attempt as the log's history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// Unix milliseconds.
    pub at: i64,
    /// The answer's HTTP status; none when nothing answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed (cut to [`HISTORY_ERROR_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One committed intake batch: its events and the (event, webhook) deliveries routing made.
///
/// One row per batch, not per event or delivery: redb's cost is per row and per commit, so a
/// batch of 1,000 events is one insert. Delivery ids are `batch_seq << DELIVERY_BITS | index`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Unix milliseconds of the commit.
    pub created_at: i64,
    /// `http`, `tail:<path>`, `db`, ...
    pub source: String,
    pub events: Vec<ActionEvent>,
    /// `(webhook id, index into events)` per delivery, in delivery-id order.
    pub deliveries: Vec<(u64, u32)>,
}

/// Bits of a delivery id that index a delivery inside its batch.
pub const DELIVERY_BITS: u32 = 20;
/// The most deliveries one batch (one request) may create.
pub const MAX_DELIVERIES_PER_BATCH: usize = 1 << DELIVERY_BITS;

/// Splits a delivery id into (batch seq, index).
pub fn split_delivery_id(id: u64) -> (u64, usize) {
    (
        id >> DELIVERY_BITS,
        (id & ((1 << DELIVERY_BITS) - 1)) as usize,
    )
}

/// Joins (batch seq, index) into a delivery id.
pub fn delivery_id(batch: u64, index: usize) -> u64 {
    (batch << DELIVERY_BITS) | index as u64
}

/// A delivery that still has to be sent, as handed to the dispatcher: the same record the log
/// shows.
pub type OpenDelivery = DeliveryRecord;

/// The events of one batch's deliveries, by delivery index (`None`: not held here).
#[derive(Debug, Clone, Default)]
pub struct BatchEvents {
    /// Unix milliseconds of the commit that created the batch.
    pub created_at: i64,
    /// Distinct events held (what the memory is mostly spent on).
    pub events: usize,
    pub by_delivery: Vec<Option<Arc<ActionEvent>>>,
}

/// A delivery: its event and its state, as the log shows it and as the dispatcher gets it.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: u64,
    pub webhook_id: u64,
    pub event: Arc<ActionEvent>,
    /// Unix milliseconds of the commit that created it.
    pub created_at: i64,
    pub state: DeliveryState,
}

/// A line or row that could not be ingested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuarantineItem {
    #[serde(default)]
    pub id: u64,
    pub source: String,
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub offset: u64,
    pub reason: String,
    /// The raw input, cut to a few KB (lossy UTF-8).
    pub raw: String,
    /// Unix milliseconds.
    #[serde(default)]
    pub at: i64,
}

/// A source's read position, committed with the deliveries it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub key: String,
    pub value: Vec<u8>,
}

/// The longest `last_error` a webhook's counters keep (the delivery log has the whole one).
pub const COUNTERS_ERROR_MAX: usize = 500;

/// One webhook's deliveries by status, and its latest outcomes: what `GET /api/v1/stats` shows.
///
/// Counts are of the deliveries the log holds (created within `storage.retention`, or older and
/// still open): intake adds `pending`, every state change moves one delivery from its old status
/// to its new one, and retention subtracts what it drops. They are kept in the `counters` table,
/// written in the same commit as the changes they count, so they stay exact across a crash.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCounters {
    pub pending: u64,
    pub retrying: u64,
    pub delivered: u64,
    pub dead: u64,
    pub skipped: u64,
    /// Unix milliseconds of the latest commit of a `delivered` outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<i64>,
    /// Unix milliseconds of the latest commit of a failure (an outcome of `retrying` or `dead`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<i64>,
    /// That failure's error, cut to [`COUNTERS_ERROR_MAX`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix milliseconds of the first failure since the latest success: the start of the
    /// current failing episode (`None`: the latest outcome was a success, or there was none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
}

impl WebhookCounters {
    /// The deliveries in `status`.
    pub fn count(&self, status: Status) -> u64 {
        match status {
            Status::Pending => self.pending,
            Status::Retrying => self.retrying,
            Status::Delivered => self.delivered,
            Status::Dead => self.dead,
            Status::Skipped => self.skipped,
        }
    }

    fn slot(&mut self, status: Status) -> &mut u64 {
        match status {
            Status::Pending => &mut self.pending,
            Status::Retrying => &mut self.retrying,
            Status::Delivered => &mut self.delivered,
            Status::Dead => &mut self.dead,
            Status::Skipped => &mut self.skipped,
        }
    }

    /// `n` more deliveries in `status`.
    pub fn add(&mut self, status: Status, n: u64) {
        *self.slot(status) += n;
    }

    /// `n` fewer deliveries in `status` (never below zero: a count that would go negative was
    /// already wrong, and wrapping would make it absurd).
    pub fn sub(&mut self, status: Status, n: u64) {
        let s = self.slot(status);
        *s = s.saturating_sub(n);
    }

    /// Records an outcome committed at `at`: a success, or a failure with its error. Only newer
    /// outcomes replace older ones.
    pub fn outcome(&mut self, status: Status, at: i64, error: Option<&str>) {
        match status {
            Status::Delivered => {
                if self.last_success_at.is_none_or(|t| t <= at) {
                    self.last_success_at = Some(at);
                }
                if self.failing_since.is_some_and(|t| t <= at) {
                    self.failing_since = None;
                }
            }
            Status::Retrying | Status::Dead => {
                if self.last_failure_at.is_none_or(|t| t <= at) {
                    self.last_failure_at = Some(at);
                    self.last_error =
                        error.map(|e| crate::cut::prefix(e, COUNTERS_ERROR_MAX).to_string());
                }
                if self.failing_since.is_none() && self.last_success_at.is_none_or(|t| t <= at) {
                    self.failing_since = Some(at);
                }
            }
            Status::Pending | Status::Skipped => {}
        }
    }
}
