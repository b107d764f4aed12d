//! The one client of a running sanhook's HTTP API, for every CLI command that talks to one:
//! `replay` and `import-sanplex` (the server of the config) and `loadtest` (the engine it
//! starts).
//!
//! It holds the base URL, the token (sent as a bearer token when set) and an HTTP client with a
//! timeout; it sends and reads JSON, retries posts while the server is unreachable or failing
//! (5xx) when asked to, and its errors name the URL, the status and what to do.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::backoff::Backoff;
use crate::Config;

/// How much of an unexpected answer an error shows.
const SHOWN_BODY: usize = 200;

/// A running sanhook's API.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
    /// What an unreachable server's error adds: how to start the server the config names.
    hint: &'static str,
}

/// An answer that was not an error: its status and body (JSON, or the text as a string).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// How often a request is tried while the server is unreachable or answers 5xx.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub tries: u32,
    /// The pauses between tries.
    pub backoff: Backoff,
}

/// Why a call gave no answer to work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Nothing answered at the base URL.
    Unreachable {
        base: String,
        cause: String,
        hint: &'static str,
    },
    /// The server refused the token (401).
    Unauthorized { base: String },
    /// The server answered a status the call does not take; `message` is its `error`.
    Status {
        method: Method,
        url: String,
        status: u16,
        message: String,
    },
    /// Every try failed: no answer, or 5xx.
    GaveUp {
        method: Method,
        url: String,
        tries: u32,
        last: String,
    },
    /// A success whose body is not what the call expects.
    Answer {
        method: Method,
        url: String,
        message: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unreachable { base, cause, hint } => {
                write!(f, "no server answers at {base} ({cause}){hint}")
            }
            ApiError::Unauthorized { base } => write!(
                f,
                "the server at {base} refused the token: set server.token in the config (or SANHOOK_SERVER_TOKEN) to the server's token"
            ),
            ApiError::Status {
                method,
                url,
                status,
                message,
            } => write!(f, "{method} {url} answered {status}: {message}"),
            ApiError::GaveUp {
                method,
                url,
                tries,
                last,
            } => write!(f, "{method} {url} failed {tries} times (last: {last})"),
            ApiError::Answer {
                method,
                url,
                message,
            } => write!(f, "{method} {url} answered {message}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl Api {
    /// A client of the API at `base` (`http://host:port`); `token` empty = none.
    pub fn new(base: &str, token: &str, timeout: Duration) -> Result<Api, String> {
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: crate::deliver::http_client(timeout)?,
            hint: "",
        })
    }

    /// A client of the server `cfg` describes (`server.listen`, `server.token`).
    pub fn for_server(cfg: &Config, timeout: Duration) -> Result<Api, String> {
        let mut api = Api::new(&base_url(&cfg.server.listen), &cfg.server.token, timeout)?;
        api.hint = "; start it with `sanhook serve` using the same config (server.listen)";
        Ok(api)
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`, its JSON answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(Method::GET, path, None).await
    }

    /// `method path` with `body` as JSON, the JSON answer read as `T` (`Value` or
    /// `serde::de::IgnoredAny` when any answer will do).
    pub async fn send<B, T>(&self, method: Method, path: &str, body: &B) -> Result<T, ApiError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let json = serde_json::to_vec(body).map_err(|e| ApiError::Answer {
            method: method.clone(),
            url: self.url(path),
            message: format!("nothing: the request body could not be written as JSON ({e})"),
        })?;
        self.call(method, path, Some(("application/json", json)))
            .await
    }

    /// `GET path` as text (`/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String, ApiError> {
        let (status, text) = self.exchange(Method::GET, path, None).await?;
        if is_success(status) {
            Ok(text)
        } else {
            Err(self.refused(Method::GET, path, status, &json_or_text(text)))
        }
    }

    /// Fails unless `GET /healthz` answers 2xx.
    pub async fn healthy(&self) -> Result<(), ApiError> {
        self.get_text("/healthz").await.map(drop)
    }

    /// `POST path` with `body` (of `content_type`), tried again while no server answers or it
    /// answers 5xx; returns the first other answer whatever its status, except a refused token.
    pub async fn post_retrying(
        &self,
        path: &str,
        content_type: &'static str,
        body: &[u8],
        retry: Retry,
    ) -> Result<Reply, ApiError> {
        let mut backoff = retry.backoff;
        let mut last = String::new();
        for attempt in 1..=retry.tries {
            match self
                .exchange(Method::POST, path, Some((content_type, body.to_vec())))
                .await
            {
                Ok((status, text)) if status < 500 => {
                    return Ok(Reply {
                        status,
                        body: json_or_text(text),
                    })
                }
                Ok((status, _)) => last = format!("HTTP {status}"),
                Err(ApiError::Unreachable { cause, .. }) => last = cause,
                Err(e) => return Err(e),
            }
            if attempt < retry.tries {
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
        Err(ApiError::GaveUp {
            method: Method::POST,
            url: self.url(path),
            tries: retry.tries,
            last,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request whose answer must be 2xx JSON readable as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<T, ApiError> {
        let (status, text) = self.exchange(method.clone(), path, body).await?;
        if !is_success(status) {
            return Err(self.refused(method, path, status, &json_or_text(text)));
        }
        // No content (204) reads as JSON `null`.
        let json = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(json).map_err(|e| ApiError::Answer {
            method,
            url: self.url(path),
            message: format!(
                "something other than expected ({e}): {}; is it a sanhook server of this version?",
                cut(&text)
            ),
        })
    }

    /// Sends one request and reads the whole answer as text; a refused token is an error, any
    /// other status is the caller's to judge.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(u16, String), ApiError> {
        let mut req = self.http.request(method, self.url(path));
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let unreachable = |e: reqwest::Error| ApiError::Unreachable {
            base: self.base.clone(),
            cause: e.to_string(),
            hint: self.hint,
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(unreachable)?;
        if status == 401 {
            return Err(ApiError::Unauthorized {
                base: self.base.clone(),
            });
        }
        Ok((status, text))
    }

    /// The error for an answer of a status the call does not take.
    fn refused(&self, method: Method, path: &str, status: u16, body: &Value) -> ApiError {
        let message = match body.get("error").and_then(Value::as_str) {
            Some(e) => e.to_string(),
            None => match body {
                Value::String(s) => cut(s),
                other => cut(&other.to_string()),
            },
        };
        ApiError::Status {
            method,
            url: self.url(path),
            status,
            message,
        }
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// An answer's body as JSON, or as a JSON string when it is not JSON (`null` when empty).
fn json_or_text(text: String) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// The HTTP base of `server.listen`; an unspecified address (`0.0.0.0`, `[::]`) is reached
/// on loopback.
pub fn base_url(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut a) => {
            if a.ip().is_unspecified() {
                a.set_ip(if a.is_ipv4() {
                    Ipv4Addr::LOCALHOST.into()
                } else {
                    Ipv6Addr::LOCALHOST.into()
                });
            }
            format!("http://{a}")
        }
        Err(_) => format!("http://{listen}"),
    }
}

/// The start of `s` (at most [`SHOWN_BODY`] bytes), for messages.
pub fn cut(s: &str) -> String {
    crate::cut::prefix(s, SHOWN_BODY).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn the_base_reaches_unspecified_addresses_on_loopback() {
        assert_eq!(base_url("0.0.0.0:8930"), "http://127.0.0.1:8930");
        assert_eq!(base_url("[::]:8930"), "http://[::1]:8930");
        assert_eq!(base_url("10.0.0.5:80"), "http://10.0.0.5:80");
        assert_eq!(base_url("localhost:80"), "http://localhost:80");
    }

    #[test]
    fn errors_name_the_url_the_status_and_what_to_do() {
        let e = ApiError::Status {
            method: Method::PUT,
            url: "http://127.0.0.1:8930/api/v1/webhooks/3".into(),
            status: 400,
            message: "url is required for type default".into(),
        };
        assert_eq!(
            e.to_string(),
            "PUT http://127.0.0.1:8930/api/v1/webhooks/3 answered 400: url is required for type default"
        );
        let e = ApiError::Unauthorized {
            base: "http://127.0.0.1:8930".into(),
        };
        assert!(e
            .to_string()
            .contains("refused the token: set server.token"));
    }

    /// A server that answers each connection with the next (status line, JSON body), and
    /// counts the requests it read.
    async fn canned(answers: Vec<(&'static str, &'static str)>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                count.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (format!("http://{addr}"), served)
    }

    const FAILING: (&str, &str) = ("503 Service Unavailable", "");
    const ACCEPTED: (&str, &str) = ("202 Accepted", r#"{"accepted":1}"#);
    const REFUSED: (&str, &str) = ("400 Bad Request", r#"{"error":"bad","x":1}"#);

    fn quick(tries: u32) -> Retry {
        Retry {
            tries,
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(4)),
        }
    }

    #[tokio::test]
    async fn posts_are_retried_through_5xx_and_give_up_naming_the_url() {
        let (base, served) = canned(vec![FAILING, FAILING, ACCEPTED]).await;
        let api = Api::new(&base, "", Duration::from_secs(5)).expect("client");
        let reply = api
            .post_retrying("/api/v1/events", "application/x-ndjson", b"{}\n", quick(5))
            .await
            .expect("accepted on the third try");
        assert_eq!(reply.status, 202);
        assert_eq!(reply.body["accepted"], 1);
        assert_eq!(served.load(Ordering::SeqCst), 3);

        let (base, _) = canned(vec![FAILING, FAILING]).await;
        let api = Api::new(&base, "", Duration::from_secs(5)).expect("client");
        let e = api
            .post_retrying("/api/v1/events", "application/x-ndjson", b"{}\n", quick(2))
            .await
            .expect_err("fails twice");
        assert_eq!(
            e.to_string(),
            format!("POST {base}/api/v1/events failed 2 times (last: HTTP 503)")
        );
    }

    #[tokio::test]
    async fn json_calls_report_the_servers_error_and_unreachable_servers() {
        let (base, _) = canned(vec![REFUSED]).await;
        let api = Api::new(&base, "t", Duration::from_secs(5)).expect("client");
        let e = api.get::<Value>("/api/v1/webhooks").await.expect_err("400");
        assert_eq!(
            e.to_string(),
            format!("GET {base}/api/v1/webhooks answered 400: bad")
        );
        // Nothing listens on a port just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let cfg_base = format!("http://127.0.0.1:{port}");
        let mut api = Api::new(&cfg_base, "", Duration::from_secs(5)).expect("client");
        api.hint = "; start it";
        let e = api.healthy().await.expect_err("nothing there");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("no server answers at {cfg_base} ("))
                && shown.ends_with("; start it"),
            "{shown}"
        );
    }
}
