//! `POST /api/v1/events`: one object, an array, or NDJSON; atomic; 202 only once committed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{read_body, ApiError, AppState};
use crate::event::{parse_body, BodyFormat};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::post().to(post_events));
}

/// Local time as Sanplex writes it: the default `date` of events that carry none.
pub fn local_now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

async fn post_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let engine = &state.engine;
    let mut body = read_body(payload, engine.config().server.max_body).await?;
    let ndjson = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("ndjson") || v.contains("jsonlines"));
    let format = if ndjson {
        BodyFormat::Ndjson
    } else {
        BodyFormat::Auto
    };
    let events = parse_body(&mut body, format, &local_now()).map_err(|e| {
        let mut details = json!({});
        if let Some(i) = e.index {
            details["index"] = json!(i);
        }
        if let Some(l) = e.line {
            details["line"] = json!(l);
        }
        if let Some(k) = &e.key {
            details["key"] = json!(k);
        }
        ApiError::new(StatusCode::BAD_REQUEST, e.message.clone(), details)
    })?;
    let summary = engine.submit("http", events).await?;
    Ok(HttpResponse::Accepted().json(summary))
}
