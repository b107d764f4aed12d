//! Per-webhook delivery counts: `/api/v1/stats`.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::deliveries::rfc3339;
use super::AppState;
use crate::engine::WebhookStats;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(minutes);
}

/// Deliveries that reached each status during one minute.
#[derive(Serialize, ToSchema)]
struct Minute {
    /// The minute's start (RFC 3339).
    #[schema(format = DateTime)]
    at: Option<String>,
    /// Created.
    pending: u64,
    /// Began retrying (their first failed attempt that will be tried again).
    retrying: u64,
    delivered: u64,
    dead: u64,
    skipped: u64,
}

/// One webhook's counts (since the start of the retention) and its latest outcomes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Stats {
    webhook_id: u64,
    name: String,
    pending: u64,
    retrying: u64,
    delivered: u64,
    dead: u64,
    skipped: u64,
    /// When the latest `delivered` outcome was committed (RFC 3339).
    #[schema(format = DateTime)]
    last_success_at: Option<String>,
    /// When the latest failed attempt (retrying or dead) was committed (RFC 3339).
    #[schema(format = DateTime)]
    last_failure_at: Option<String>,
    /// The latest failed attempt's error.
    last_error: Option<String>,
}

impl Stats {
    fn of(s: &WebhookStats) -> Stats {
        let c = &s.counters;
        Stats {
            webhook_id: s.webhook_id,
            name: s.name.clone(),
            pending: c.pending,
            retrying: c.retrying,
            delivered: c.delivered,
            dead: c.dead,
            skipped: c.skipped,
            last_success_at: c.last_success_at.and_then(rfc3339),
            last_failure_at: c.last_failure_at.and_then(rfc3339),
            last_error: c.last_error.clone(),
        }
    }
}

/// Every webhook's counts, by id: read from memory, so cheap with thousands of webhooks.
#[utoipa::path(
    tag = "operations", operation_id = "stats",
    responses((status = 200, description = "One row per webhook", body = Vec<Stats>))
)]
#[get("/stats")]
async fn list(state: web::Data<AppState>) -> HttpResponse {
    let rows: Vec<Stats> = state.engine.stats().iter().map(Stats::of).collect();
    HttpResponse::Ok().json(rows)
}

/// Deliveries that reached each status in each of the last 60 minutes, oldest first, quiet
/// minutes at zero: the dashboard's chart. Counted in memory since this process started.
#[utoipa::path(
    tag = "operations", operation_id = "statsByMinute",
    responses((status = 200, description = "60 minutes, oldest first", body = Vec<Minute>))
)]
#[get("/stats/minutes")]
async fn minutes(state: web::Data<AppState>) -> HttpResponse {
    let rows: Vec<Minute> = state
        .engine
        .metrics()
        .minutes(crate::clock::now_ms())
        .into_iter()
        .map(
            |(at, [pending, retrying, delivered, dead, skipped])| Minute {
                at: rfc3339(at),
                pending,
                retrying,
                delivered,
                dead,
                skipped,
            },
        )
        .collect();
    HttpResponse::Ok().json(rows)
}
