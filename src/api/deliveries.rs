//! The delivery log, retries, flush, quarantine.

use std::collections::BTreeMap;

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, ErrorBody};
use crate::store::{DeliveryQuery, DeliveryRecord, QuarantineItem, ResponseLog, Status};

/// Default and largest page of the delivery log.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(show)
        .service(retry)
        .service(flush)
        .service(quarantine);
}

/// Unix milliseconds as an RFC 3339 UTC time (none if out of range).
pub(super) fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The last request sent, as the log keeps it (body cut, credentials masked).
#[derive(Serialize, ToSchema)]
struct RequestView {
    url: String,
    headers: BTreeMap<String, String>,
    /// The request body as text.
    body: String,
}

/// A delivery: one event to one webhook, and where it stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    id: u64,
    webhook_id: u64,
    /// The event's id (none when the producer sent none).
    event_id: Option<u64>,
    object_type: String,
    #[serde(rename = "objectID")]
    object_id: u64,
    action: String,
    /// `pending`, `retrying`, `delivered`, `dead` or `skipped`.
    #[schema(value_type = String)]
    status: &'static str,
    attempts: u32,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    #[schema(format = DateTime)]
    last_attempt_at: Option<String>,
    /// Set while `retrying`.
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    /// The last answer's HTTP status.
    last_status: Option<u16>,
    /// Why the last attempt failed; for `dead` and `skipped`, why it ended.
    last_error: Option<String>,
    request: Option<RequestView>,
    response: Option<ResponseLog>,
    /// Per-recipient progress of app types (recipients already served).
    progress: Option<serde_json::Value>,
    /// The last attempts (up to 5), oldest first.
    history: Vec<AttemptView>,
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
struct AttemptView {
    #[schema(format = DateTime)]
    at: Option<String>,
    /// The answer's HTTP status; none when nothing answered.
    status: Option<u16>,
    /// Why it failed (cut to 300 bytes).
    error: Option<String>,
}

impl Delivery {
    /// A delivery as the API shows it.
    pub fn of(d: &DeliveryRecord) -> Delivery {
        let s = &d.state;
        Delivery {
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event.id,
            object_type: d.event.object_type.clone(),
            object_id: d.event.object_id,
            action: d.event.action.clone(),
            status: s.status.as_str(),
            attempts: s.attempts,
            created_at: rfc3339(d.created_at),
            last_attempt_at: s.last_attempt_at.and_then(rfc3339),
            next_attempt_at: s.next_attempt_at.and_then(rfc3339),
            last_status: s.last_status,
            last_error: s.last_error.clone(),
            request: s.request.as_ref().map(|r| RequestView {
                url: r.url.clone(),
                headers: r.headers.iter().cloned().collect(),
                body: r.body.clone(),
            }),
            response: s.response.clone(),
            progress: s.progress.clone(),
            history: s
                .history
                .iter()
                .map(|a| AttemptView {
                    at: rfc3339(a.at),
                    status: a.status,
                    error: a.error.clone(),
                })
                .collect(),
        }
    }
}

/// That the async outbox was flushed.
#[derive(Serialize, ToSchema)]
struct Flushed {
    flushed: bool,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this webhook's deliveries.
    #[param(value_type = Option<u64>)]
    webhook: Option<String>,
    /// `pending`, `retrying`, `delivered`, `dead` or `skipped`.
    #[param(value_type = Option<String>)]
    status: Option<String>,
    /// Page size: 50 by default, at most 1,000.
    #[param(value_type = Option<u64>)]
    limit: Option<String>,
    /// Only deliveries with a smaller id (the next page back).
    #[param(value_type = Option<u64>)]
    before: Option<String>,
}

fn num(key: &str, v: &Option<String>) -> Result<Option<u64>, ApiError> {
    v.as_deref()
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| ApiError::bad(format!("query {key}: expected a number, got {s:?}")))
        })
        .transpose()
}

/// The delivery log, newest first.
#[utoipa::path(
    tag = "deliveries", operation_id = "listDeliveries",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of deliveries, newest first", body = Vec<Delivery>),
        (status = 400, description = "A query value is not valid: the message names it", body = ErrorBody),
    )
)]
#[get("/deliveries")]
async fn list(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::bad(format!(
                    "query status: unknown status {s:?}; expected pending, retrying, delivered, dead or skipped"
                ))
            })
        })
        .transpose()?;
    let query = DeliveryQuery {
        webhook: num("webhook", &q.webhook)?,
        status,
        limit: num("limit", &q.limit)?
            .map(|l| (l as usize).clamp(1, MAX_LIMIT))
            .unwrap_or(DEFAULT_LIMIT),
        before: num("before", &q.before)?,
    };
    let rows = state.engine.deliveries(query).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(Delivery::of).collect::<Vec<_>>()))
}

/// One delivery.
#[utoipa::path(
    tag = "deliveries", operation_id = "getDelivery",
    params(("id" = u64, Path, description = "The delivery's id")),
    responses((status = 200, description = "The delivery", body = Delivery))
)]
#[get("/deliveries/{id}")]
async fn show(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(Delivery::of(&state.engine.delivery(*id).await?)))
}

/// Re-queues a dead, skipped or delivered delivery now (behind a send in flight of its object).
#[utoipa::path(
    tag = "deliveries", operation_id = "retryDelivery",
    params(("id" = u64, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "Re-queued and committed", body = Delivery),
        (status = 409, description = "It is still pending or retrying", body = ErrorBody),
    )
)]
#[post("/deliveries/{id}/retry")]
async fn retry(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let rec = state.engine.retry_delivery(*id).await?;
    Ok(HttpResponse::Accepted().json(Delivery::of(&rec)))
}

/// Sends every queued async delivery now (as the `async_interval` timer does).
#[utoipa::path(
    tag = "deliveries", operation_id = "flushOutbox",
    responses((status = 202, description = "Flushed", body = Flushed))
)]
#[post("/outbox/flush")]
async fn flush(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.engine.flush().await?;
    Ok(HttpResponse::Accepted().json(Flushed { flushed: true }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct QuarantineQuery {
    /// Page size: 50 by default, at most 1,000.
    #[param(value_type = Option<u64>)]
    limit: Option<String>,
}

/// Input that could not be ingested from files or the database, newest first.
#[utoipa::path(
    tag = "operations", operation_id = "quarantine",
    params(QuarantineQuery),
    responses(
        (status = 200, description = "Quarantined lines and rows (raw cut to a few KB)", body = Vec<QuarantineItem>),
        (status = 400, description = "`limit` is not a number", body = ErrorBody),
    )
)]
#[get("/quarantine")]
async fn quarantine(
    state: web::Data<AppState>,
    q: web::Query<QuarantineQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = num("limit", &q.limit)?
        .map(|l| (l as usize).clamp(1, MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT);
    let store = state.engine.store().clone();
    let items = web::block(move || store.quarantine(limit))
        .await
        .map_err(|_| crate::Error::Unavailable)?
        .map_err(crate::Error::from)?;
    Ok(HttpResponse::Ok().json(items))
}
