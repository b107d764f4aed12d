//! `/healthz` and `/metrics` (no auth; nothing secret).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// 200 `ok`, or 503 `degraded` with the reason while the store cannot commit.
pub(super) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let sources = state.engine.sources();
    match state.engine.store().outage() {
        None => HttpResponse::Ok().json(json!({"status": "ok", "sources": sources})),
        Some(o) => {
            let since = chrono::DateTime::from_timestamp_millis(o.since)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "degraded",
                "reason": format!("the store cannot commit since {since}: {}", o.reason),
                "sources": sources,
            }))
        }
    }
}

pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(state.engine.metrics().render())
}
