//! Webhook CRUD: `/api/v1/webhooks[/{id}]`. Secrets are write-only.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::settings::parse_triggers;
use super::{parse_json, read_body, ApiError, AppState};
use crate::webhook::{Webhook, WebhookType};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks", web::post().to(create))
        .route("/webhooks", web::get().to(list))
        .route("/webhooks/{id}", web::get().to(get))
        .route("/webhooks/{id}", web::put().to(replace))
        .route("/webhooks/{id}", web::delete().to(delete));
}

/// Parses a webhook body, with errors that name the field.
pub fn parse_webhook(body: &[u8]) -> Result<Webhook, ApiError> {
    let mut v = parse_json(body)?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::bad("a webhook must be a JSON object"))?;
    match obj.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if WebhookType::parse(t).is_some() => {}
        Some(other) => {
            let names: Vec<&str> = WebhookType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown webhook type {other}; expected one of {}",
                    names.join(", ")
                ),
                json!({"field": "type"}),
            ));
        }
    }
    if let Some(a) = obj.get("actions") {
        if !a.is_null() {
            parse_triggers(a, "actions")?;
        }
    }
    obj.remove("id");
    let fields = obj.clone();
    serde_json::from_value::<Webhook>(v).map_err(|e| {
        // serde does not say which field failed: find it by parsing each field alone.
        let culprit = fields.iter().find(|(k, val)| {
            let mut one = serde_json::Map::new();
            one.insert((*k).clone(), (*val).clone());
            serde_json::from_value::<Webhook>(Value::Object(one)).is_err()
        });
        match culprit {
            Some((k, val)) => {
                let shown: String = val.to_string().chars().take(100).collect();
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("invalid value for {k}: {shown}: {e}"),
                    json!({"field": k}),
                )
            }
            None => ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid webhook: {e}"),
                Value::Null,
            ),
        }
    })
}

async fn create(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let wh = state.engine.create_webhook(parse_webhook(&body)?).await?;
    Ok(HttpResponse::Created().json(wh.masked()))
}

async fn list(state: web::Data<AppState>) -> HttpResponse {
    let all: Vec<Webhook> = state
        .engine
        .webhooks()
        .iter()
        .map(Webhook::masked)
        .collect();
    HttpResponse::Ok().json(all)
}

async fn get(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.webhook(*id)?.masked()))
}

async fn replace(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let wh = state
        .engine
        .update_webhook(*id, parse_webhook(&body)?)
        .await?;
    Ok(HttpResponse::Ok().json(wh.masked()))
}

async fn delete(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    state.engine.delete_webhook(*id).await?;
    Ok(HttpResponse::NoContent().finish())
}
