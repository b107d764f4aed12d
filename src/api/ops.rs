//! `/healthz` and `/metrics` (no auth; nothing secret).

use actix_web::{route, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// How the server is: `ok`, or `degraded` while the store cannot commit.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each source (tail, database) by name: `{"status": "running"}` or
    /// `{"status": "paused", "reason": ...}`.
    #[schema(value_type = Object)]
    pub sources: serde_json::Value,
    /// When this process started (RFC 3339): the start of `/metrics` and `/api/v1/stats/minutes`.
    #[serde(rename = "startedAt")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
}

/// 200 `ok`, or 503 `degraded` with the reason while the store cannot commit.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Everything works", body = Health),
        (status = 503, description = "The store cannot commit", body = Health),
    )
)]
#[route("/healthz", method = "GET", method = "HEAD")]
pub(super) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let sources = state.engine.sources();
    let started_at = super::deliveries::rfc3339(state.engine.metrics().started_at());
    match state.engine.store().outage() {
        None => HttpResponse::Ok().json(Health {
            status: "ok",
            reason: None,
            sources,
            started_at,
        }),
        Some(o) => {
            let since = chrono::DateTime::from_timestamp_millis(o.since)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            HttpResponse::ServiceUnavailable().json(Health {
                status: "degraded",
                reason: Some(format!(
                    "the store cannot commit since {since}: {}",
                    o.reason
                )),
                sources,
                started_at,
            })
        }
    }
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String))
)]
#[route("/metrics", method = "GET", method = "HEAD")]
pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(state.engine.metrics().render())
}
