//! Ingestion sources. Every source ends in [`Intake::submit`]: route, commit, dispatch.
//!
//! The HTTP intake is [`crate::api`]'s `POST /api/v1/events`; the sources that run on their own
//! (the file tailer, Sanplex's database) live here.

pub mod sanplex_db;
pub mod tail;

use std::sync::Arc;

use actix::Addr;

use crate::dispatch::{Dispatcher, Enqueue};
use crate::event::ActionEvent;
use crate::metrics::Metrics;
use crate::route::{RouteBatch, Router};
use crate::store::{Checkpoint, IngestBatch, QuarantineItem, Status, Store};
use crate::Error;

/// What one submitted batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct IngestSummary {
    /// New events, durably queued.
    pub accepted: usize,
    /// Events already seen (by `id`), including repeats inside the batch.
    pub duplicates: usize,
    /// (event, webhook) deliveries created.
    pub deliveries: usize,
}

/// The one path every source's events take into the outbox.
#[derive(Clone)]
pub struct Intake {
    pub(crate) store: Store,
    pub(crate) router: Addr<Router>,
    pub(crate) dispatcher: Addr<Dispatcher>,
    pub(crate) metrics: Arc<Metrics>,
    /// Each source's state for `/healthz`: `None` running, `Some(reason)` paused on an error.
    pub(crate) sources: Arc<dashmap::DashMap<String, Option<String>>>,
}

impl Intake {
    /// Records whether `source` is running (`None`) or paused on an error (`Some(reason)`).
    pub fn source_status(&self, source: &str, paused: Option<String>) {
        self.sources.insert(source.to_string(), paused);
    }

    /// Routes `events`, commits them with their deliveries (and the source's checkpoint and
    /// rejected input) in one durable transaction, then hands the deliveries to dispatch.
    /// Returns only after the commit.
    pub async fn submit(
        &self,
        source: &str,
        events: Vec<ActionEvent>,
        checkpoint: Option<Checkpoint>,
        quarantine: Vec<QuarantineItem>,
    ) -> Result<IngestSummary, Error> {
        // Commit and hand-off run as a task of their own: if the caller goes away (a client
        // disconnects mid-request), what was committed is still dispatched.
        let this = self.clone();
        let source = source.to_string();
        tokio::spawn(async move { this.commit(&source, events, checkpoint, quarantine).await })
            .await
            .map_err(|_| Error::Unavailable)?
    }

    async fn commit(
        &self,
        source: &str,
        events: Vec<ActionEvent>,
        checkpoint: Option<Checkpoint>,
        quarantine: Vec<QuarantineItem>,
    ) -> Result<IngestSummary, Error> {
        let (events, routes) = if events.is_empty() {
            (events, vec![])
        } else {
            self.router.send(RouteBatch(events)).await?
        };
        let quarantined = quarantine.len() as u64;
        let metric_source = source.split(':').next().unwrap_or(source).to_string();
        let res = self
            .store
            .ingest(IngestBatch {
                source: source.to_string(),
                events,
                routes,
                checkpoint,
                quarantine,
            })
            .await?;
        self.metrics.ingested(&metric_source, res.accepted as u64);
        if quarantined > 0 {
            self.metrics.quarantined(&metric_source, quarantined);
        }
        let summary = IngestSummary {
            accepted: res.accepted,
            duplicates: res.duplicates,
            deliveries: res.deliveries.len(),
        };
        if !res.deliveries.is_empty() {
            self.metrics
                .delivery(Status::Pending, res.deliveries.len() as u64);
            self.dispatcher.do_send(Enqueue {
                deliveries: res.deliveries,
                now: false,
                resumed: false,
            });
        }
        Ok(summary)
    }
}
