//! The HTTP API (docs/reference.md §4): actix-web handlers, one file per resource.

mod bindings;
mod deliveries;
mod events;
mod openapi;
mod ops;
mod preview;
mod remote_users;
mod settings;
mod stats;
mod webhooks;

/// Public for the `webhook_json` fuzz target and its corpus replay (tests/it/fuzz_corpus.rs).
pub use webhooks::parse_webhook;

/// The OpenAPI description served at `/api/v1/openapi.json`.
pub use openapi::document as openapi_document;

use std::net::TcpListener;
use std::time::Duration;
use subtle::ConstantTimeEq;

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

/// The `Retry-After` (seconds) of a 503 while the store cannot commit.
const STORE_RETRY_AFTER: u64 = 5;

/// The body of every error answer: `error` says what went wrong; other keys, when present,
/// name where (`field`, `key`, `index`, `line`, `column`, `retryAfter`, ...).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub error: String,
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
        let mut body = json!(ErrorBody {
            error: message.into()
        });
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
            // Nothing was acknowledged; the store recovers by itself.
            Error::Store(
                crate::store::StoreError::Commit(_) | crate::store::StoreError::Unavailable { .. },
            ) => {
                tracing::warn!(error = %e, "refused: the store cannot commit");
                let mut e =
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), Value::Null);
                e.retry_after = Some(STORE_RETRY_AFTER);
                return e;
            }
            Error::BindingConflict {
                userid,
                bound_to,
                account,
            } => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    e.to_string(),
                    json!({"userid": userid, "boundTo": bound_to, "account": account}),
                )
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
        // Constant time, so that response timing does not tell how much of a guess was right.
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
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

/// The media types a request body may have on `path`: JSON everywhere, NDJSON too for events.
fn accepted_media(path: &str) -> &'static [&'static str] {
    if path.trim_end_matches('/').ends_with("/events") {
        &[
            "application/json",
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonlines",
            "application/x-jsonlines",
        ]
    } else {
        &["application/json"]
    }
}

/// Whether a request carries a body: a `Content-Length` above zero or any `Transfer-Encoding`
/// (HTTP/1.1 requests have no body otherwise).
fn has_body(headers: &actix_web::http::header::HeaderMap) -> bool {
    use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Whether an `Origin` is this server's own: its host and port (the scheme left aside) equal
/// to the request's `Host`. `null` (a sandboxed or `file:` page) is never.
fn same_origin(origin: &str, host: &str) -> bool {
    let authority = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    !authority.is_empty() && !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// A header value as an error may show it: text only, cut.
fn shown_header(v: &actix_web::http::header::HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes())
        .chars()
        .take(200)
        .collect()
}

/// What keeps web pages from driving the API through a browser (docs/reference.md §4): a request whose
/// `Origin` is not this server's own is a 403 (a page on another site, even one on this
/// host), and a body must say it is JSON (415 otherwise), which no page can send to another
/// origin without the browser asking first. Clients that are not browsers send no `Origin`.
async fn browsers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::http::header::{CONTENT_TYPE, HOST, ORIGIN};
    let headers = req.headers();
    if let Some(origin) = headers.get(ORIGIN) {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same_origin(origin.to_str().unwrap_or(""), host) {
            let shown = shown_header(origin);
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Origin {shown} is not this server ({host}): the API cannot be used from \
                     another web page"
                ),
                json!({ "origin": shown }),
            )
            .into());
        }
    }
    if has_body(headers) {
        let accepted = accepted_media(req.path());
        let sent = headers.get(CONTENT_TYPE);
        let media = sent
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !accepted.contains(&media.as_str()) {
            let (what, shown) = match sent {
                Some(v) => {
                    let shown = shown_header(v);
                    (
                        format!("Content-Type {shown} is not accepted"),
                        json!(shown),
                    )
                }
                None => (
                    "a request body needs a Content-Type".to_string(),
                    Value::Null,
                ),
            };
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{what}: send {}", accepted.join(" or ")),
                json!({ "contentType": shown }),
            )
            .into());
        }
    }
    next.call(req).await
}

/// Path segments that do not parse (`/webhooks/abc`): 404 in the API's error shape.
fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e, _| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such object: {e}"),
            Value::Null,
        )
        .into()
    })
}

/// A query string that does not parse: 400 in the API's error shape.
fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| ApiError::bad(format!("invalid query string: {e}")).into())
}

/// The described part of the server: `/healthz`, `/metrics`, `/api/v1/openapi.json` and the
/// API under `/api/v1`. Registering it also collects the OpenAPI description ([`openapi`]).
fn api(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(ops::healthz)
        .service(ops::metrics)
        // Before the `/api/v1` scope, so that it needs no token.
        .service(openapi::openapi_json)
        .service(
            utoipa_actix_web::scope("/api/v1")
                .app_data(path_config())
                .app_data(query_config())
                .wrap(from_fn(auth))
                // Outermost, so that it runs first: a foreign page gets 403 with or without a
                // token.
                .wrap(from_fn(browsers))
                .configure(events::routes)
                .configure(webhooks::routes)
                .configure(bindings::routes)
                .configure(remote_users::routes)
                .configure(settings::routes)
                .configure(preview::routes)
                .configure(deliveries::routes)
                .configure(stats::routes),
        );
}

/// Registers every route on an actix-web app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // The web admin (no token for the page; it calls the API like any client).
    cfg.configure(crate::admin::routes);
    api(&mut utoipa_actix_web::service_config::ServiceConfig::new(
        cfg,
    ));
    cfg.default_service(web::to(|| async {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(same_origin("http://127.0.0.1:8930", "127.0.0.1:8930"));
        assert!(same_origin(
            "https://Sanhook.example.com",
            "sanhook.example.com"
        ));
        assert!(same_origin("http://[::1]:8930", "[::1]:8930"));
        assert!(!same_origin("http://127.0.0.1:8931", "127.0.0.1:8930"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:8930"));
        assert!(!same_origin(
            "http://127.0.0.1:8930.evil.example",
            "127.0.0.1:8930"
        ));
        assert!(!same_origin("null", "127.0.0.1:8930"));
        assert!(!same_origin("http://127.0.0.1:8930", ""));
    }
}
