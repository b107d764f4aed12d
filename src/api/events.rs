//! `POST /api/v1/events`: one object, an array, or NDJSON; atomic; 202 only once committed.

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde_json::json;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{read_body, ApiError, AppState, ErrorBody};
use crate::event::{local_now, parse_body_at_most, BodyFormat};
use crate::ingest::IngestSummary;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(post_events);
}

/// One action event as producers send it (docs/reference.md §3): Sanplex's `zt_action` row with
/// its object. Lists may be given as Sanplex writes them (`",1,2,"`) or as JSON arrays.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Event, example = json!({
    "id": 1050, "objectType": "bug", "objectID": 12, "product": ",1,", "actor": "alice",
    "actorName": "Alice", "action": "resolved", "date": "2026-01-05 18:35:21",
    "objectName": "Login fails"
}))]
#[allow(dead_code)] // A description only: events are parsed by `crate::event`.
struct EventIn {
    /// The action's id in Sanplex: the idempotency key (events without one are never
    /// deduplicated).
    id: Option<u64>,
    /// `bug`, `story`, `task`, ...
    #[schema(min_length = 1)]
    object_type: String,
    #[serde(rename = "objectID")]
    object_id: u64,
    /// Product ids: `",1,2,"` or `[1, 2]`.
    product: Option<serde_json::Value>,
    project: Option<u64>,
    execution: Option<u64>,
    /// The account that acted.
    #[schema(min_length = 1)]
    actor: String,
    /// `opened`, `resolved`, ...
    #[schema(min_length = 1)]
    action: String,
    /// `YYYY-MM-DD HH:MM:SS`, Sanplex server local time; the time of intake when absent.
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")]
    date: Option<String>,
    /// May hold HTML.
    comment: Option<String>,
    extra: Option<String>,
    object_name: Option<String>,
    actor_name: Option<String>,
    url: Option<String>,
    /// Accounts to notify (app types): `",alice,bob,"` or `["alice", "bob"]`.
    to_list: Option<serde_json::Value>,
}

/// A request body of events: one event or an array of them (`application/json`), or one event
/// per line (`application/x-ndjson`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = Events)]
#[allow(dead_code)] // A description only.
enum EventsIn {
    One(Box<EventIn>),
    Many(Vec<EventIn>),
}

/// Queues events for delivery, atomically: 202 once every event is committed to disk, or an
/// error naming the index (array) or line (NDJSON) and key, with nothing queued.
#[utoipa::path(
    tag = "events",
    request_body(
        content((EventsIn = "application/json"), (EventsIn = "application/x-ndjson")),
        description = "One event, an array of events, or NDJSON"
    ),
    responses(
        (status = 202, description = "Committed: new events, duplicates, deliveries created", body = IngestSummary),
        (status = 400, description = "An event is not valid: `index` or `line`, and `key`", body = ErrorBody),
        (status = 413, description = "More than server.max_events events, or a body over server.max_body", body = ErrorBody),
    )
)]
#[post("/events")]
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
