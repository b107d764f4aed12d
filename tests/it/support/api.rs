//! The one client of sanhook's HTTP API in the tests: of an in-process [`super::TestServer`]
//! (which derefs to it) and of a `sanhook serve` child ([`super::binary::Sanhook`]) alike.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::eventually_value;

/// A client of one sanhook's API, with its bearer token (none when empty).
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

/// One answer, whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON: `Null` when empty, the text as a JSON string when it is not JSON.
    pub fn json(&self) -> Value {
        if self.text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&self.text).unwrap_or_else(|_| Value::String(self.text.clone()))
        }
    }

    /// A header's value, when it is there and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    /// A client of the API at `base`; `token` is sent as the bearer token unless empty.
    /// Everything is on 127.0.0.1: no proxy from the environment is used.
    pub fn new(base: &str, token: &str) -> Api {
        sanhook::tls::install_crypto_provider();
        Api {
            base: base.to_string(),
            token: token.to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// The same API with another token (`""`: none).
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// A request to `path`, with the token; for what the helpers below do not send (an
    /// `Origin`, a body of another content type).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        if self.token.is_empty() {
            r
        } else {
            r.bearer_auth(&self.token)
        }
    }

    /// Sends a request (a JSON body when given) and reads the whole answer.
    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.request(m, path);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        read(r).await
    }

    /// Sends a JSON request; returns the status and the parsed body (see [`Reply::json`]).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let reply = self.send(method, path, body.as_ref()).await;
        (reply.status, reply.json())
    }

    /// Sends a request; returns the status and the answer's text as it came.
    pub async fn call_text(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let reply = self.send(method, path, body).await;
        (reply.status, reply.text)
    }

    /// Posts a raw body with a content type; returns the status and the JSON answer (`Null`
    /// when it is not JSON).
    pub async fn post_raw(&self, path: &str, content_type: &str, body: String) -> (u16, Value) {
        let reply = read(
            self.request(reqwest::Method::POST, path)
                .header("content-type", content_type)
                .body(body),
        )
        .await;
        let v = serde_json::from_str(&reply.text).unwrap_or(Value::Null);
        (reply.status, v)
    }

    /// Creates a webhook; panics unless 201.
    pub async fn webhook(&self, body: Value) -> u64 {
        let (s, v) = self.call("POST", "/api/v1/webhooks", Some(body)).await;
        assert_eq!(s, 201, "create webhook: {v}");
        v["id"].as_u64().expect("id")
    }

    /// Posts events (one JSON array); panics unless 202.
    pub async fn post_events(&self, events: Vec<Value>) -> Value {
        let (s, v) = self
            .call("POST", "/api/v1/events", Some(Value::Array(events)))
            .await;
        assert_eq!(s, 202, "post events: {v}");
        v
    }

    /// The delivery log of one webhook (up to 1,000, newest first).
    pub async fn deliveries(&self, webhook: u64) -> Vec<Value> {
        let (s, v) = self
            .call(
                "GET",
                &format!("/api/v1/deliveries?webhook={webhook}&limit=1000"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Waits until `pred` holds for the webhook's deliveries and returns them; panics after
    /// `timeout` with what the log holds.
    pub async fn wait_deliveries(
        &self,
        webhook: u64,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let pred = &pred;
        eventually_value(
            timeout,
            &format!("webhook {webhook}: {what}"),
            move || async move {
                let d = self.deliveries(webhook).await;
                if pred(&d) {
                    Ok(d)
                } else {
                    Err(brief(&d))
                }
            },
        )
        .await
    }

    /// `GET /stats` for one webhook (`Null` when it is not there).
    pub async fn stats(&self, webhook: u64) -> Value {
        let (s, v) = self.call("GET", "/api/v1/stats", None).await;
        assert_eq!(s, 200, "{v}");
        v.as_array()
            .into_iter()
            .flatten()
            .find(|w| w["webhookId"] == webhook)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

async fn read(r: reqwest::RequestBuilder) -> Reply {
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Reply {
        status,
        headers,
        text,
    }
}

/// A delivery log in a line: how many of each status, and the first not delivered.
fn brief(d: &[Value]) -> String {
    let mut by_status = BTreeMap::<String, usize>::new();
    for x in d {
        let st = x["status"].as_str().unwrap_or("?").to_string();
        *by_status.entry(st).or_default() += 1;
    }
    let odd = d
        .iter()
        .find(|x| x["status"] != "delivered")
        .map(|x| {
            format!(
                "; e.g. delivery {} event {} {} attempts={} {}",
                x["id"], x["eventId"], x["status"], x["attempts"], x["lastError"]
            )
        })
        .unwrap_or_default();
    format!("{} deliveries {by_status:?}{odd}", d.len())
}
