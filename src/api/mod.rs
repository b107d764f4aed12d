//! The HTTP API (CONTRACT §4): actix-web handlers, one file per resource.

mod bindings;
mod deliveries;
mod events;
mod ops;
mod preview;
mod remote_users;
mod settings;
mod stats;
mod webhooks;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::{Engine, Error};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
}

/// An error as the API answers it: `{"error": message, ...details}` with a status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a message and extra detail fields.
    pub fn new(status: StatusCode, message: impl Into<String>, details: Value) -> ApiError {
        let mut body = json!({ "error": message.into() });
        if let (Some(b), Value::Object(d)) = (body.as_object_mut(), details) {
            b.extend(d);
        }
        ApiError {
            status,
            body,
            retry_after: None,
        }
    }

    /// 400 with a message.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message, Value::Null)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            r.insert_header(("retry-after", secs.to_string()));
        }
        r.json(&self.body)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::Invalid(v) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    v.message.clone(),
                    json!({ "field": v.field }),
                )
            }
            Error::RateLimited {
                message,
                retry_after,
            } => {
                let secs = retry_after
                    .as_secs()
                    .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    message.clone(),
                    json!({ "retryAfter": secs }),
                );
                e.retry_after = Some(secs);
                return e;
            }
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
            Error::Store(crate::store::StoreError::TooManyDeliveries { .. }) => {
                StatusCode::BAD_REQUEST
            }
            Error::Store(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        ApiError::new(status, e.to_string(), Value::Null)
    }
}

/// How long a client may take to send a request's head (actix-web's `client_request_timeout`,
/// made explicit): past it the request is answered 408 and the connection closed.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two parts of a request body. actix-web bounds the head
/// ([`HEAD_TIMEOUT`]) but not the body: a client that sends a `Content-Length` and then nothing
/// would hold its connection (and the handler) for good. [`read_body`] answers 408 past it.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a whole request body may take (a client trickling a byte now and then): enough
/// for `max_body` (16 MiB) at ~140 KB/s.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(120);

fn body_timeout(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body {what}; send it whole and promptly"),
        Value::Null,
    )
}

/// Reads a request body up to `server.max_body` (413 past it), within [`BODY_IDLE_TIMEOUT`]
/// between parts and [`BODY_TIMEOUT`] in all (408 past them; actix-web then closes the
/// connection, since the body was not read to its end).
pub async fn read_body(mut payload: web::Payload, max: u64) -> Result<Vec<u8>, ApiError> {
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    let mut body = Vec::new();
    loop {
        let idle = tokio::time::Instant::now() + BODY_IDLE_TIMEOUT;
        let next = tokio::time::timeout_at(idle.min(deadline), payload.next()).await;
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err(body_timeout(&format!(
                    "took longer than {}s",
                    BODY_TIMEOUT.as_secs()
                )))
            }
            Err(_) => {
                return Err(body_timeout(&format!(
                    "stalled: nothing arrived for {}s",
                    BODY_IDLE_TIMEOUT.as_secs()
                )))
            }
        };
        let chunk = chunk.map_err(|e| ApiError::bad(format!("could not read the body: {e}")))?;
        if (body.len() + chunk.len()) as u64 > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than server.max_body ({max} bytes); split it"),
                Value::Null,
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses a JSON body, naming the line and column of a syntax error.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON: {e}"),
            json!({"line": e.line(), "column": e.column()}),
        )
    })
}

async fn auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let token = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.engine.config().server.token.clone())
        .unwrap_or_default();
    if !token.is_empty() {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (send Authorization: Bearer <server.token>)",
                Value::Null,
            )
            .into());
        }
    }
    next.call(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Registers every route on an actix-web app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/metrics", web::get().to(ops::metrics))
        .service(
            web::scope("/api/v1")
                .wrap(from_fn(auth))
                .configure(events::routes)
                .configure(webhooks::routes)
                .configure(bindings::routes)
                .configure(remote_users::routes)
                .configure(settings::routes)
                .configure(preview::routes)
                .configure(deliveries::routes)
                .configure(stats::routes),
        )
        .default_service(web::to(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such endpoint", Value::Null).error_response()
        }));
}

/// Starts the HTTP server on `listener` (signals are the caller's business).
pub fn serve(engine: Engine, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(AppState { engine });
    Ok(
        HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
            .workers(2)
            .client_request_timeout(HEAD_TIMEOUT)
            .disable_signals()
            .shutdown_timeout(10)
            .listen(listener)?
            .run(),
    )
}
