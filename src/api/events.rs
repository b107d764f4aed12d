//! `POST /api/v1/events`: one object, an array, or NDJSON; atomic; 202 only once committed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{read_body, ApiError, AppState};
use crate::event::{parse_body_at_most, BodyFormat};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::post().to(post_events));
}

pub use crate::event::local_now;

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
    let max_events = usize::try_from(engine.config().server.max_events).unwrap_or(usize::MAX);
    let events = parse_body_at_most(&mut body, format, &local_now(), max_events).map_err(|e| {
        if let Some(t) = e.too_many {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} events in one request, more than server.max_events ({}); split it",
                    t.events, t.limit
                ),
                json!({"events": t.events, "limit": t.limit}),
            );
        }
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
