//! The delivery log, retries, flush, quarantine.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{ApiError, AppState};
use crate::store::{DeliveryQuery, DeliveryRecord, Status};

/// Default and largest page of the delivery log.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/deliveries", web::get().to(list))
        .route("/deliveries/{id}", web::get().to(get))
        .route("/deliveries/{id}/retry", web::post().to(retry))
        .route("/outbox/flush", web::post().to(flush))
        .route("/quarantine", web::get().to(quarantine));
}

/// Unix milliseconds as an RFC 3339 UTC time (null if out of range).
pub(super) fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// A delivery as the API shows it.
pub fn delivery_json(d: &DeliveryRecord) -> Value {
    let s = &d.state;
    let request = s.request.as_ref().map(|r| {
        let headers: Map<String, Value> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({"url": r.url, "headers": headers, "body": r.body})
    });
    let response = s
        .response
        .as_ref()
        .map(|r| json!({"status": r.status, "body": r.body}));
    json!({
        "id": d.id,
        "webhookId": d.webhook_id,
        "eventId": d.event.id,
        "objectType": d.event.object_type,
        "objectID": d.event.object_id,
        "action": d.event.action,
        "status": s.status.as_str(),
        "attempts": s.attempts,
        "createdAt": rfc3339(d.created_at),
        "lastAttemptAt": s.last_attempt_at.map(rfc3339),
        "nextAttemptAt": s.next_attempt_at.map(rfc3339),
        "lastStatus": s.last_status,
        "lastError": s.last_error,
        "request": request,
        "response": response,
        "progress": s.progress,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    webhook: Option<String>,
    status: Option<String>,
    limit: Option<String>,
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
    Ok(HttpResponse::Ok().json(rows.iter().map(delivery_json).collect::<Vec<_>>()))
}

async fn get(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(delivery_json(&state.engine.delivery(*id).await?)))
}

async fn retry(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let rec = state.engine.retry_delivery(*id).await?;
    Ok(HttpResponse::Accepted().json(delivery_json(&rec)))
}

async fn flush(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.engine.flush().await?;
    Ok(HttpResponse::Accepted().json(json!({"flushed": true})))
}

#[derive(Deserialize)]
struct QuarantineQuery {
    limit: Option<String>,
}

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
