//! Per-webhook delivery counts: `/api/v1/stats`.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::deliveries::rfc3339;
use super::AppState;
use crate::engine::WebhookStats;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats", web::get().to(list));
}

/// One webhook's counts as the API shows them.
fn stats_json(s: &WebhookStats) -> Value {
    let c = &s.counters;
    json!({
        "webhookId": s.webhook_id,
        "name": s.name,
        "pending": c.pending,
        "retrying": c.retrying,
        "delivered": c.delivered,
        "dead": c.dead,
        "skipped": c.skipped,
        "lastSuccessAt": c.last_success_at.map(rfc3339),
        "lastFailureAt": c.last_failure_at.map(rfc3339),
        "lastError": c.last_error,
    })
}

/// Every webhook's counts, by id: read from memory, so cheap with thousands of webhooks.
async fn list(state: web::Data<AppState>) -> HttpResponse {
    let rows: Vec<Value> = state.engine.stats().iter().map(stats_json).collect();
    HttpResponse::Ok().json(rows)
}
