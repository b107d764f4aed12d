//! `POST /webhooks/{id}/preview` (what would be sent, nothing sent) and `POST /webhooks/{id}/test`
//! (one message now, outside the queue and the log, with the platform's verdict).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::events::local_now;
use super::{read_body, ApiError, AppState};
use crate::deliver::Outcome;
use crate::event::ActionEvent;
use crate::store::Status;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/{id}/preview", web::post().to(preview))
        .route("/webhooks/{id}/test", web::post().to(test));
}

/// The optional event of the body: none (or only whitespace) means the sample event.
fn event_of(mut body: Vec<u8>) -> Result<Option<ActionEvent>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    crate::event::parse_event(&mut body, &local_now())
        .map(Some)
        .map_err(|e| {
            let details = match &e.key {
                Some(k) => json!({ "key": k }),
                None => Value::Null,
            };
            ApiError::new(StatusCode::BAD_REQUEST, e.message, details)
        })
}

async fn preview(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let p = state.engine.preview(*id, event_of(body)?).await?;
    let headers: Map<String, Value> = p
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "request": {"method": p.method, "url": p.url, "headers": headers, "body": p.body}
    })))
}

async fn test(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let attempt = state.engine.test_send(*id, event_of(body)?).await?;
    let (status, error) = match &attempt.outcome {
        Outcome::Delivered => (Status::Delivered, None),
        Outcome::Retry { error, .. } => (Status::Retrying, Some(error.clone())),
        Outcome::Dead(e) => (Status::Dead, Some(e.clone())),
        Outcome::Skipped(e) => (Status::Skipped, Some(e.clone())),
    };
    let response = attempt
        .response
        .as_ref()
        .map(|r| json!({"status": r.status, "body": r.body}));
    Ok(HttpResponse::Ok().json(json!({
        "ok": status == Status::Delivered,
        "status": status.as_str(),
        "lastError": error,
        "response": response,
    })))
}
