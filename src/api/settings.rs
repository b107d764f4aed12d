//! `GET`/`PUT /api/v1/settings/triggers`.

use actix_web::{get, put, web, HttpResponse};
use serde_json::Value;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{parse_json, read_body, ApiError, AppState, ErrorBody};
use crate::webhook::Triggers;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_triggers).service(put_triggers);
}

/// The global trigger settings: `{objectType: [action, ...]}`.
#[utoipa::path(
    tag = "settings", operation_id = "getTriggers",
    responses((status = 200, description = "Object type → actions that fire", body = BTreeMap<String, Vec<String>>))
)]
#[get("/settings/triggers")]
async fn get_triggers(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.engine.triggers())
}

/// Checks a `{objectType: [action, ...]}` object, naming the offending key.
pub fn parse_triggers(v: &Value, what: &str) -> Result<Triggers, ApiError> {
    let obj = v.as_object().ok_or_else(|| {
        ApiError::bad(format!(
            "{what} must be an object {{objectType: [action, ...]}}"
        ))
    })?;
    let mut out = Triggers::new();
    for (k, list) in obj {
        let arr = list.as_array().ok_or_else(|| {
            ApiError::bad(format!(
                "{what}.{k} must be an array of action names, got {list}"
            ))
        })?;
        let mut actions = Vec::with_capacity(arr.len());
        for a in arr {
            match a.as_str() {
                Some(s) if !s.is_empty() => actions.push(s.to_string()),
                _ => {
                    return Err(ApiError::bad(format!(
                        "{what}.{k}: action names must be non-empty strings, got {a}"
                    )))
                }
            }
        }
        out.insert(k.clone(), actions);
    }
    Ok(out)
}

/// Replaces the global trigger settings.
#[utoipa::path(
    tag = "settings", operation_id = "putTriggers",
    request_body(content = BTreeMap<String, Vec<String>>, description = "Object type → actions that fire"),
    responses(
        (status = 200, description = "The stored settings", body = BTreeMap<String, Vec<String>>),
        (status = 400, description = "Not an object of action-name arrays", body = ErrorBody),
    )
)]
#[put("/settings/triggers")]
async fn put_triggers(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let t = parse_triggers(&parse_json(&body)?, "triggers")?;
    state.engine.set_triggers(t).await?;
    Ok(HttpResponse::Ok().json(state.engine.triggers()))
}
