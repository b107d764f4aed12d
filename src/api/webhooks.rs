//! Webhook CRUD: `/api/v1/webhooks[/{id}]`. Secrets are write-only.

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::settings::parse_triggers;
use super::{parse_json, read_body, ApiError, AppState, ErrorBody};
use crate::webhook::{Webhook, WebhookType};

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(show)
        .service(replace)
        .service(remove)
        .service(recover);
}

/// The body of a recover request.
#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)] // A description only: `parse_since` reads it, naming what is wrong.
struct RecoverBody {
    /// RFC 3339: dead deliveries created since then are re-queued.
    #[schema(format = DateTime, example = "2026-01-05T09:00:00Z")]
    since: String,
}

/// What a recover re-queued.
#[derive(Serialize, ToSchema)]
struct Recovered {
    /// Dead deliveries moved back to `pending`.
    requeued: u64,
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
    serde_path_to_error::deserialize::<_, Webhook>(&v).map_err(|e| {
        // The top-level key the failing value sits under (`toList` for `toList[3]`): the form
        // field to show the error beside.
        let key = e.path().iter().find_map(|seg| match seg {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        });
        match key {
            Some(k) => {
                // The value as sent, unless it is (or holds) a credential.
                let shown: String = if crate::mask::is_secret_key(&k) {
                    crate::mask::MASK.to_string()
                } else {
                    let val = v.get(&k).map(Value::to_string).unwrap_or_default();
                    crate::mask::text(&val).chars().take(100).collect()
                };
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("invalid value for {}: {shown}: {}", e.path(), e.inner()),
                    json!({"field": k}),
                )
            }
            None => ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid webhook: {}", e.inner()),
                Value::Null,
            ),
        }
    })
}

/// Creates a webhook (secrets are write-only: answers show them as `******`).
#[utoipa::path(
    tag = "webhooks", operation_id = "createWebhook",
    request_body = Webhook,
    responses(
        (status = 201, description = "The stored webhook, with its id", body = Webhook),
        (status = 400, description = "A field is not valid: `field` names it", body = ErrorBody),
        (status = 409, description = "Another webhook holds this `sanplexId`", body = ErrorBody),
    )
)]
#[post("/webhooks")]
async fn create(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let wh = state.engine.create_webhook(parse_webhook(&body)?).await?;
    Ok(HttpResponse::Created().json(wh.masked()))
}

/// Every webhook, by id.
#[utoipa::path(
    tag = "webhooks", operation_id = "listWebhooks",
    responses((status = 200, description = "Every webhook, secrets masked", body = Vec<Webhook>))
)]
#[get("/webhooks")]
async fn list(state: web::Data<AppState>) -> HttpResponse {
    let all: Vec<Webhook> = state
        .engine
        .webhooks()
        .iter()
        .map(Webhook::masked)
        .collect();
    HttpResponse::Ok().json(all)
}

/// One webhook.
#[utoipa::path(
    tag = "webhooks", operation_id = "getWebhook",
    params(("id" = u64, Path, description = "The webhook's id")),
    responses((status = 200, description = "The webhook, secrets masked", body = Webhook))
)]
#[get("/webhooks/{id}")]
async fn show(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.webhook(*id)?.masked()))
}

/// Replaces a webhook whole (a secret sent back as `******` keeps the stored one).
#[utoipa::path(
    tag = "webhooks", operation_id = "replaceWebhook",
    params(("id" = u64, Path, description = "The webhook's id")),
    request_body = Webhook,
    responses(
        (status = 200, description = "The stored webhook", body = Webhook),
        (status = 400, description = "A field is not valid: `field` names it", body = ErrorBody),
        (status = 409, description = "Another webhook holds this `sanplexId`", body = ErrorBody),
    )
)]
#[put("/webhooks/{id}")]
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

/// Deletes a webhook: its pending deliveries end `skipped`.
#[utoipa::path(
    tag = "webhooks", operation_id = "deleteWebhook",
    params(("id" = u64, Path, description = "The webhook's id")),
    responses((status = 204, description = "Deleted"))
)]
#[delete("/webhooks/{id}")]
async fn remove(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    state.engine.delete_webhook(*id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What a recover body must look like, for error messages.
const RECOVER_BODY: &str =
    r#"send {"since": "<RFC 3339 time>"}, e.g. {"since": "2026-01-05T09:00:00Z"}"#;

/// The `since` of a recover body, as Unix milliseconds; errors name the key and the value.
fn parse_since(body: &[u8]) -> Result<i64, ApiError> {
    let field = |message: String, details: Value| {
        let mut d = json!({"field": "since"});
        if let (Some(d), Value::Object(more)) = (d.as_object_mut(), details) {
            d.extend(more);
        }
        ApiError::new(StatusCode::BAD_REQUEST, message, d)
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(field(format!("missing body: {RECOVER_BODY}"), Value::Null));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        field(
            format!("the body is not JSON ({e}): {RECOVER_BODY}"),
            json!({"line": e.line(), "column": e.column()}),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(field(
            format!("the body must be a JSON object: {RECOVER_BODY}"),
            Value::Null,
        ));
    };
    match obj.get("since") {
        None | Some(Value::Null) => Err(field(
            format!("since is missing: {RECOVER_BODY}"),
            Value::Null,
        )),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                field(
                    format!(
                        "since: {s:?} is not an RFC 3339 time ({e}); e.g. \"2026-01-05T09:00:00Z\""
                    ),
                    json!({"value": s}),
                )
            }),
        Some(other) => {
            let shown: String = other.to_string().chars().take(100).collect();
            Err(field(
                format!("since: expected an RFC 3339 time as a string, got {shown}"),
                json!({"value": other}),
            ))
        }
    }
}

/// `POST /webhooks/{id}/recover {"since"}`: re-queues the webhook's dead deliveries created
/// since then, in their original order; answers once their move to `pending` is committed.
#[utoipa::path(
    tag = "webhooks", operation_id = "recoverWebhook",
    params(("id" = u64, Path, description = "The webhook's id")),
    request_body = RecoverBody,
    responses(
        (status = 202, description = "Re-queued and committed", body = Recovered),
        (status = 400, description = "`since` is missing or not an RFC 3339 time", body = ErrorBody),
    )
)]
#[post("/webhooks/{id}/recover")]
async fn recover(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.engine.webhook(*id)?;
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let since = parse_since(&body)?;
    let requeued = state.engine.recover(*id, since).await?;
    Ok(HttpResponse::Accepted().json(Recovered { requeued }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> Value {
        match parse_since(body.as_bytes()) {
            Ok(t) => panic!("{body} parsed as {t}"),
            Err(e) => e.body,
        }
    }

    #[test]
    fn since_is_an_rfc3339_time() {
        assert_eq!(
            parse_since(br#"{"since": "2026-01-05T09:00:00Z"}"#).ok(),
            Some(1_767_603_600_000)
        );
        assert_eq!(
            parse_since(br#"{"since": "2026-01-05T17:00:00+08:00"}"#).ok(),
            Some(1_767_603_600_000)
        );
    }

    #[test]
    fn a_bad_since_is_named_with_its_value() {
        let e = err(r#"{"since": "yesterday"}"#);
        assert_eq!(e["field"], "since");
        assert_eq!(e["value"], "yesterday");
        let msg = e["error"].as_str().unwrap_or("");
        assert!(
            msg.contains("since") && msg.contains("yesterday") && msg.contains("RFC 3339"),
            "{msg}"
        );
        let e = err(r#"{"since": 1767603600}"#);
        assert!(
            e["error"].as_str().unwrap_or("").contains("1767603600"),
            "{e}"
        );
        for body in [
            "",
            "{}",
            r#"{"since": null}"#,
            "[1]",
            "not json",
            r#"{"since": "2026-01-05"}"#,
        ] {
            let e = err(body);
            assert_eq!(e["field"], "since", "{body}: {e}");
            assert!(
                e["error"].as_str().unwrap_or("").contains("since"),
                "{body}: {e}"
            );
        }
        assert!(err("not json")["error"]
            .as_str()
            .unwrap_or("")
            .contains("not JSON"));
    }
}
