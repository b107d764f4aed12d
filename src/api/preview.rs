//! `POST /webhooks/{id}/preview` (what would be sent, nothing sent), `POST /preview` (the same
//! for a webhook not saved yet: the web admin's live preview) and `POST /webhooks/{id}/test`
//! (one message now, outside the queue and the log, with the platform's verdict).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{parse_json, read_body, ApiError, AppState, ErrorBody};
use crate::deliver::Outcome;
use crate::event::local_now;
use crate::event::ActionEvent;
use crate::store::{ResponseLog, Status};
use crate::webhook::Webhook;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(preview).service(preview_draft).service(test);
}

/// A request as it would be sent, credentials masked.
#[derive(Serialize, ToSchema)]
struct PreviewRequest {
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
    /// The request body as text.
    body: String,
}

/// What a send would be; nothing was sent.
#[derive(Serialize, ToSchema)]
struct Preview {
    /// For app types, the first platform call (the token masked).
    request: PreviewRequest,
}

impl Preview {
    fn of(p: crate::deliver::Preview) -> Preview {
        Preview {
            request: PreviewRequest {
                method: p.method,
                url: p.url,
                headers: p.headers.into_iter().collect(),
                body: p.body,
            },
        }
    }
}

/// A webhook not saved yet, and the event to render it with.
#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)] // A description only: `preview_draft` reads it, naming what is wrong.
struct Draft {
    /// The webhook as it would be saved.
    webhook: Webhook,
    /// The webhook this draft edits: its stored secrets stand for ones sent as `******`, and
    /// its bindings give the recipients.
    id: Option<u64>,
    /// The event (the sample event when absent).
    #[schema(value_type = Option<Object>)]
    event: Option<Value>,
}

/// The platform's verdict on a test send.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TestResult {
    /// Whether the platform took the message.
    ok: bool,
    /// How a delivery with this answer would stand: `delivered`, `retrying`, `dead` or
    /// `skipped`.
    #[schema(value_type = String)]
    status: &'static str,
    /// Why it was not taken, in words (e.g. DingTalk 310000: the signature).
    last_error: Option<String>,
    /// The answer (body cut, credentials masked).
    response: Option<ResponseLog>,
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

/// Exactly what a send of the event (or a sample event) to this webhook would be; nothing is
/// sent.
#[utoipa::path(
    tag = "webhooks", operation_id = "previewWebhook",
    params(("id" = u64, Path, description = "The webhook's id")),
    request_body(content = Option<Object>, description = "An event; none: a sample event"),
    responses(
        (status = 200, description = "The request that would be sent", body = Preview),
        (status = 400, description = "The event is not valid, or the webhook cannot render it", body = ErrorBody),
    )
)]
#[post("/webhooks/{id}/preview")]
async fn preview(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let p = state.engine.preview(*id, event_of(body)?).await?;
    Ok(HttpResponse::Ok().json(Preview::of(p)))
}

/// What a send to a webhook not saved yet would be: the live preview of a form. The draft is
/// checked as a save would check it (errors name the `field`); nothing is stored or sent.
#[utoipa::path(
    tag = "webhooks", operation_id = "previewDraft",
    request_body = Draft,
    responses(
        (status = 200, description = "The request that would be sent", body = Preview),
        (status = 400, description = "The draft or the event is not valid (`field` or `key` names where)", body = ErrorBody),
        (status = 404, description = "No webhook has the `id` given", body = ErrorBody),
    )
)]
#[post("/preview")]
async fn preview_draft(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let v = parse_json(&body)?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad(r#"send {"webhook": {...}, "id": N, "event": {...}}"#))?;
    let webhook = match obj.get("webhook") {
        Some(w @ Value::Object(_)) => super::parse_webhook(w.to_string().as_bytes())?,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "webhook: expected the webhook as an object",
                json!({"key": "webhook"}),
            ))
        }
    };
    let base = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("id: expected the id of the webhook being edited, got {v}"),
                json!({"key": "id"}),
            )
        })?),
    };
    let event = match obj.get("event") {
        None | Some(Value::Null) => None,
        Some(e) => event_of(e.to_string().into_bytes())?,
    };
    let p = state.engine.preview_draft(webhook, base, event).await?;
    Ok(HttpResponse::Ok().json(Preview::of(p)))
}

/// Sends one message now, outside the queue and the log, and answers with the platform's
/// verdict. It counts against the destination's rate windows.
#[utoipa::path(
    tag = "webhooks", operation_id = "testWebhook",
    params(("id" = u64, Path, description = "The webhook's id")),
    request_body(content = Option<Object>, description = "An event; none: a sample event (app types need a `toList` of bound accounts)"),
    responses(
        (status = 200, description = "Sent; `ok` says whether the platform took it", body = TestResult),
        (status = 400, description = "The event is not valid", body = ErrorBody),
        (status = 429, description = "The destination's rate windows are spent: `retryAfter` seconds", body = ErrorBody),
    )
)]
#[post("/webhooks/{id}/test")]
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
    Ok(HttpResponse::Ok().json(TestResult {
        ok: status == Status::Delivered,
        status: status.as_str(),
        last_error: error,
        response: attempt.response,
    }))
}
