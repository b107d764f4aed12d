//! Delivery: build the body, sign it, send it, classify the reply. The only code that makes
//! outbound HTTP.
//!
//! A deliverer makes one attempt and says what happened ([`Outcome`]); when to try again is the
//! dispatcher's business. What differs between webhook kinds is each kind's [`Channel`]. Nothing
//! here touches the store: dispatch reads what an attempt needs (bindings, member budgets)
//! beforehand and passes it in the [`Envelope`].

pub mod addr;
mod app;
pub mod channel;
pub mod chat;
pub mod default;
pub mod details;
pub mod digest;
pub mod dingtalk;
pub mod feishu;
pub mod payload;
pub mod recipients;
pub mod reply;
pub mod sign;
pub mod template;
pub mod text;
pub mod token;
pub mod wecom;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::event::ActionEvent;
use crate::store::{RequestLog, ResponseLog};
use crate::webhook::Webhook;

/// The most of a response body that is read; the rest is dropped unread.
pub const RESPONSE_MAX: usize = 64 * 1024;

/// The most of a platform directory answer that is read: WeCom lists every department, and
/// every member of a department, in one answer each.
pub const DIRECTORY_RESPONSE_MAX: usize = 64 * 1024 * 1024;

pub use app::App;
pub use channel::{channel, Channel, Envelope, MemberDemand, MemberGrant, Route};
pub use default::classify_default;
pub use digest::{digest_body, digest_fits};
pub use dingtalk::classify_dingtalk;
pub use feishu::classify_feishu;
pub use reply::{Platform, Reply};
pub use wecom::classify_wecom;

/// Bodies kept in the delivery log are cut to this many bytes.
pub const LOG_BODY_MAX: usize = 4096;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The destination accepted it.
    Delivered,
    /// Try again later; `after` is the destination's own wait (Retry-After and the like), which
    /// replaces the scheduled delay.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// Never going to work as it stands: give up now and say why.
    Dead(String),
    /// Nothing to send, on purpose (and not an error).
    Skipped(String),
}

/// One attempt, as the log keeps it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: Outcome,
    pub request: Option<RequestLog>,
    pub response: Option<ResponseLog>,
    /// Progress to keep for the next attempt (recipients already served, ...).
    pub progress: Option<serde_json::Value>,
}

impl Attempt {
    /// An attempt that ended before anything was sent (nothing to log but the outcome).
    pub(crate) fn failed_before_send(outcome: Outcome) -> Attempt {
        Attempt {
            outcome,
            request: None,
            response: None,
            progress: None,
        }
    }
}

/// Sends deliveries. One per engine; cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    cfg: Arc<Config>,
    /// The store's instance id: part of every `webhook-id`, so ids never repeat across stores.
    instance: Arc<str>,
    /// Access tokens of the app-message types, one per credential set, shared by every send.
    tokens: token::TokenCache,
    /// Destination URLs parsed and masked once, not per send.
    urls: Arc<UrlCache>,
    /// Tests and benches only ([`Deliverer::with_channel`]): the channel every attempt goes
    /// through instead of its kind's, e.g. one that answers at once without a network.
    stand_in: Option<Arc<dyn Channel>>,
    /// Set on a preview's copy ([`Deliverer::preview`]): the first request is kept here instead
    /// of being sent.
    capture: Option<Arc<std::sync::Mutex<Option<Preview>>>>,
}

/// A request as it would be sent (`POST /webhooks/{id}/preview`): credentials masked, the body
/// whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Preview {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A destination URL, parsed, and as the log shows it.
struct ParsedUrl {
    url: reqwest::Url,
    masked: String,
}

/// Parsed URLs by their text. Bounded: emptied when it grows past [`UrlCache::MAX`] (signed
/// bot URLs carry a timestamp and never repeat, so they are not kept at all).
#[derive(Default)]
struct UrlCache(std::sync::Mutex<std::collections::HashMap<String, Arc<ParsedUrl>>>);

impl UrlCache {
    const MAX: usize = 4096;

    fn get(&self, url: &str) -> Result<Arc<ParsedUrl>, String> {
        let cacheable = !url.contains("timestamp=");
        if cacheable {
            if let Some(p) = self.0.lock().ok().and_then(|m| m.get(url).cloned()) {
                return Ok(p);
            }
        }
        let parsed = Arc::new(ParsedUrl {
            url: reqwest::Url::parse(url)
                .map_err(|e| format!("bad URL {:?}: {e}", crate::mask::url(url)))?,
            masked: crate::mask::url(url),
        });
        if cacheable {
            if let Ok(mut m) = self.0.lock() {
                if m.len() >= Self::MAX {
                    m.clear();
                }
                m.insert(url.to_string(), parsed.clone());
            }
        }
        Ok(parsed)
    }
}

/// One person in a platform's directory, for binding (docs/reference.md §4 "User binding").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RemoteUser {
    /// The id bindings hold: DingTalk/WeCom `userid`, Lark/Feishu `open_id`.
    pub userid: String,
    /// The display name.
    pub name: String,
    /// The ids of the departments the user was found in (as strings: Lark's are not numbers).
    pub departments: Vec<String>,
    /// Their names, in the same order (empty where the platform gave none, e.g. the root).
    #[serde(rename = "departmentNames")]
    pub department_names: Vec<String>,
}

/// The `User-Agent` of every outgoing request.
pub fn user_agent() -> String {
    format!("sanhook/{}", env!("CARGO_PKG_VERSION"))
}

/// Builds the one outgoing HTTP client: TLS verified, redirects not followed, no proxy from the
/// environment (`HTTP(S)_PROXY`, which reqwest would otherwise follow: `delivery.proxy` is
/// the only proxy).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    client_builder(timeout)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(user_agent())
}

/// The delivery client: as [`http_client`], through `delivery.proxy` when one is set. Without
/// a proxy its resolver answers only with addresses the address checks allow
/// ([`addr::Checked`]), so the address checked is the address connected to. With one, the
/// proxy resolves and connects: its own address is the operator's choice and is not checked,
/// and destinations are checked before each request ([`addr::admit`]).
fn delivery_client(cfg: &Config) -> Result<reqwest::Client, String> {
    // Idle keep-alive connections per host are not capped: several destinations (ten webhooks
    // on one receiver) each keep `max_in_flight` sends going to the same host, and a cap below
    // their sum closes connections only to open new ones a moment later. Idle ones close
    // after reqwest's idle timeout.
    let b = client_builder(cfg.delivery.timeout);
    let b = if cfg.delivery.proxy.is_empty() {
        b.dns_resolver(Arc::new(addr::Checked(addr::Policy::of(&cfg.delivery))))
    } else {
        let proxy = reqwest::Proxy::all(cfg.delivery.proxy.as_str()).map_err(|e| {
            format!(
                "delivery.proxy {}: {e}",
                crate::mask::url(&cfg.delivery.proxy)
            )
        })?;
        b.proxy(proxy)
    };
    b.build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

impl Deliverer {
    /// A deliverer for this configuration; `instance` is the store's instance id
    /// ([`crate::store::Store::instance`]), part of every `webhook-id`.
    pub fn new(cfg: Arc<Config>, instance: &str) -> Result<Deliverer, String> {
        Ok(Deliverer {
            client: delivery_client(&cfg)?,
            cfg,
            instance: instance.into(),
            tokens: token::TokenCache::new(),
            urls: Arc::default(),
            stand_in: None,
            capture: None,
        })
    }

    /// The same deliverer sending every attempt through `channel` whatever the webhook's kind.
    /// For tests and benches that measure everything but the network; nothing in the
    /// configuration or the API reaches it.
    #[doc(hidden)]
    pub fn with_channel(self, channel: Arc<dyn Channel>) -> Deliverer {
        Deliverer {
            stand_in: Some(channel),
            ..self
        }
    }

    /// The same deliverer with an HTTP client (and connection pool) of its own: each dispatch
    /// worker has one, so that its connections are driven by its own thread. Tokens stay shared.
    pub fn with_own_client(&self) -> Result<Deliverer, String> {
        Ok(Deliverer {
            client: delivery_client(&self.cfg)?,
            urls: Arc::default(),
            ..self.clone()
        })
    }

    /// What one attempt of `env` would send first, without sending anything: the request of a
    /// `default` webhook or a group bot, or an app type's first message call (its token is not
    /// fetched: it shows masked). `Err` says why nothing would be sent (a template that fails,
    /// nobody bound to send to, ...).
    pub async fn preview(&self, env: &Envelope) -> Result<Preview, String> {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let dry = Deliverer {
            capture: Some(slot.clone()),
            ..self.clone()
        };
        let attempt = dry.attempt(env).await;
        let captured = slot.lock().ok().and_then(|mut s| s.take());
        match (captured, attempt.outcome) {
            (Some(p), _) => Ok(p),
            (None, Outcome::Dead(why) | Outcome::Skipped(why)) => {
                Err(format!("nothing would be sent: {why}"))
            }
            (None, Outcome::Retry { error, .. }) => Err(format!("nothing would be sent: {error}")),
            (None, Outcome::Delivered) => Err("nothing would be sent".into()),
        }
    }

    /// Whether this is a preview's copy: app types then use a stand-in token.
    pub(crate) fn is_preview(&self) -> bool {
        self.capture.is_some()
    }

    /// The Standard Webhooks `webhook-id` of a delivery: stable across retries and restarts.
    pub fn message_id(&self, delivery_id: u64) -> String {
        format!("msg_{}_{}", self.instance, delivery_id)
    }

    /// Makes one attempt to deliver `env`, through its kind's [`Channel`].
    pub async fn attempt(&self, env: &Envelope) -> Attempt {
        match &self.stand_in {
            Some(c) => c.attempt(self, env).await,
            None => channel(env.webhook.kind).attempt(self, env).await,
        }
    }

    /// Sends one digest of `events` (oldest first) to a group bot: one message with a count
    /// header and a line per event, signed and classified like a single message. The caller
    /// (the dispatcher's coalescing) keeps it within the size limit with [`digest_fits`].
    pub async fn attempt_digest(
        &self,
        wh: &Webhook,
        events: &[Arc<ActionEvent>],
        _delivery_id: u64,
    ) -> Attempt {
        match &self.stand_in {
            Some(c) => digest::send(self, c.as_ref(), wh, events).await,
            None => digest::send(self, channel(wh.kind), wh, events).await,
        }
    }

    /// Lists the platform directory of an app-message webhook: every department (recursively),
    /// every page, each user once.
    pub async fn remote_users(&self, wh: &Webhook) -> Result<Vec<RemoteUser>, crate::Error> {
        let app = app::App::of(wh, &self.cfg).map_err(crate::Error::BadRequest)?;
        let users = channel(wh.kind).directory(self, &app).await;
        users.map_err(|e| {
            crate::Error::Upstream(format!("listing the directory of webhook {}: {e}", wh.id))
        })
    }

    /// The text of `ev` for `wh`, in the configured language.
    pub(crate) fn render(&self, wh: &Webhook, ev: &ActionEvent) -> text::Rendered {
        text::render(
            ev,
            &wh.domain,
            &self.cfg.sanplex.base_url,
            self.cfg.sanplex.lang,
        )
    }

    /// The title and text of a chat message of `wh` for `ev`: the webhook's templates over the
    /// built-in ones, `details` appended, cut to what `markup`'s platform takes. `Err` is a
    /// template that fails to render (the delivery ends `dead` with it).
    pub(crate) fn message(
        &self,
        wh: &Webhook,
        ev: &ActionEvent,
        markup: details::Markup,
    ) -> Result<text::Rendered, String> {
        let lang = self.cfg.sanplex.lang;
        let mut r = self.render(wh, ev);
        if let Some(t) = &wh.template {
            let built = r.clone();
            let escape = template::Escape::Text;
            if !t.title.is_empty() {
                r.title = template::render(&t.title, escape, ev, &built, lang)
                    .map_err(|e| format!("template.title: {e}"))?;
            }
            if !t.text.is_empty() {
                r.text = template::render(&t.text, escape, ev, &built, lang)
                    .map_err(|e| format!("template.text: {e}"))?;
            }
        }
        if wh.details {
            details::append(&mut r.text, ev, lang, markup);
        }
        r.text = crate::cut::with_ellipsis(r.text, markup.max_text());
        Ok(r)
    }

    /// The body of a `default` webhook: its `template.body` when set (it must render JSON),
    /// else Sanplex's payload.
    pub(crate) fn default_body(&self, wh: &Webhook, ev: &ActionEvent) -> Result<Vec<u8>, String> {
        let built = self.render(wh, ev);
        match wh.template.as_ref().filter(|t| !t.body.is_empty()) {
            None => Ok(payload::default_payload(
                ev,
                &wh.payload_keys(),
                &built.text,
            )),
            Some(t) => {
                let lang = self.cfg.sanplex.lang;
                let body = template::render(&t.body, template::Escape::Json, ev, &built, lang)
                    .map_err(|e| format!("template.body: {e}"))?;
                template::json_check(&body).map_err(|e| format!("template.body rendered {e}"))?;
                Ok(body.into_bytes())
            }
        }
    }

    /// POSTs `body` to `url`, recording the request and response for the log.
    pub async fn post(&self, url: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Sent {
        self.request(reqwest::Method::POST, url, headers, body)
            .await
    }

    /// GETs `url` (platform token and directory calls), recording it like [`Deliverer::post`].
    pub async fn get(&self, url: &str, headers: Vec<(String, String)>) -> Sent {
        self.request(reqwest::Method::GET, url, headers, vec![])
            .await
    }

    /// Makes one request, recording the request (credentials masked) and the response (at most
    /// [`RESPONSE_MAX`] bytes of it).
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Sent {
        self.request_limited(method, url, headers, body, RESPONSE_MAX)
            .await
    }

    /// [`Deliverer::request`], reading at most `max_response` bytes of the answer.
    pub async fn request_limited(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        max_response: usize,
    ) -> Sent {
        let parsed = self.urls.get(url);
        let request = RequestLog {
            url: match &parsed {
                Ok(p) => p.masked.clone(),
                Err(_) => crate::mask::url(url),
            },
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), crate::mask::header(k, v)))
                .collect(),
            body: cut(&body),
        };
        if let Some(slot) = &self.capture {
            if let Ok(mut slot) = slot.lock() {
                slot.get_or_insert_with(|| Preview {
                    method: method.to_string(),
                    url: request.url.clone(),
                    headers: request.headers.clone(),
                    body: crate::mask::body(&String::from_utf8_lossy(&body)).into_owned(),
                });
            }
            return Sent {
                request,
                result: Err("preview: not sent".into()),
            };
        }
        let result = match parsed {
            Ok(p) => {
                self.send_raw(method, &p.url, &headers, body, max_response)
                    .await
            }
            Err(e) => Err(e),
        };
        Sent { request, result }
    }

    async fn send_raw(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        headers: &[(String, String)],
        body: Vec<u8>,
        max_response: usize,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), String> {
        let proxied = !self.cfg.delivery.proxy.is_empty();
        addr::admit(addr::Policy::of(&self.cfg.delivery), proxied, url).await?;
        let parsed = url.clone();
        let with_body = method != reqwest::Method::GET;
        let mut req = self.client.request(method, parsed);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if with_body {
            req = req.body(body);
        }
        let mut resp = req.send().await.map_err(describe_reqwest)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // Keep what the log and reply parsing need; a huge answer is not buffered whole.
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(describe_reqwest)? {
            let room = max_response.saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if bytes.len() >= max_response {
                break;
            }
        }
        Ok((status, headers, bytes))
    }
}

/// A request that was made (or tried), with what came back.
pub struct Sent {
    pub request: RequestLog,
    /// `(status, headers, body)`, or why no answer came.
    pub result: Result<(u16, reqwest::header::HeaderMap, Vec<u8>), String>,
}

impl Sent {
    /// The platform's answer, when one came.
    pub fn reply(&self, platform: Platform) -> Option<Reply> {
        self.result
            .as_ref()
            .ok()
            .map(|(status, _, body)| Reply::read(platform, *status, body))
    }

    /// The outcome of this request given a classifier for answers; no answer (timeout,
    /// connection refused, ...) is retried.
    pub fn outcome(
        &self,
        platform: Platform,
        classify: impl Fn(u16, &reqwest::header::HeaderMap, &[u8]) -> Outcome,
    ) -> Outcome {
        match &self.result {
            Ok((status, headers, body)) => classify(*status, headers, body),
            Err(e) => Outcome::Retry {
                after: None,
                error: format!("{}: {e}", platform.name()),
            },
        }
    }

    /// The attempt for the log, with `outcome` decided by the caller.
    pub fn into_attempt(self, outcome: Outcome) -> Attempt {
        let response = self
            .result
            .as_ref()
            .ok()
            .map(|(status, _, body)| ResponseLog {
                status: *status,
                body: cut(body),
            });
        Attempt {
            outcome,
            request: Some(self.request),
            response,
            progress: None,
        }
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date.
///
/// The value comes from the receiver and may be anything: a number of seconds too large for a
/// `u64` saturates (it is "very long", and dispatch cuts every wait to
/// `delivery.max_retry_after`), a date in the past is zero.
pub fn parse_retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Some(wait) = parse_seconds(v) {
        return Some(wait);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A wait given as a plain number of seconds (`Retry-After`, Lark's `x-ogw-ratelimit-reset`):
/// ASCII digits only, saturating at `u64::MAX` seconds rather than failing on a huge value.
pub fn parse_seconds(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)))
}

fn describe_reqwest(e: reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    crate::mask::text(&msg).into_owned()
}

/// How many of `events` (in order, oldest first) one message to `wh` can carry: for group bots
/// as many as fit in one digest within the platform's size limit ([`digest_fits`], at least 1:
/// an event too large even alone is sent alone and refused with the platform's size code);
/// for every other type 1.
pub fn digest_capacity(wh: &Webhook, events: &[&ActionEvent], cfg: &Config) -> usize {
    if events.is_empty() {
        return 0;
    }
    if !channel(wh.kind).has_digests() {
        return 1;
    }
    digest_fits(wh.kind, wh, events, &cfg.sanplex.base_url, cfg.sanplex.lang).max(1)
}

/// One line of a digest for `ev`: the webhook's text template when it has one (the built-in
/// text when that fails, so that one event cannot hold back the rest), without details.
pub fn digest_line(
    wh: &Webhook,
    ev: &ActionEvent,
    base_url: &str,
    lang: crate::config::Lang,
) -> String {
    let built = text::render(ev, &wh.domain, base_url, lang);
    match wh.template.as_ref().filter(|t| !t.text.is_empty()) {
        None => built.text,
        Some(t) => template::render(&t.text, template::Escape::Text, ev, &built, lang)
            .unwrap_or_else(|e| {
                tracing::warn!(webhook = wh.id, error = %e, "template.text failed in a digest; the line uses the built-in text");
                built.text
            }),
    }
}

/// A body as the log keeps it: credentials masked ([`crate::mask::body`]), cut at a character
/// boundary.
pub fn cut(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let s = crate::mask::body(&text);
    if s.len() <= LOG_BODY_MAX {
        return s.into_owned();
    }
    let head = crate::cut::prefix(&s, LOG_BODY_MAX);
    format!("{head}…[cut, {} bytes in all]", body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template's output, `details` included, is cut to what each platform takes.
    #[test]
    fn messages_are_cut_to_the_platforms_limit() {
        use crate::webhook::{Template, Webhook, WebhookType};
        let cfg = Arc::new(Config::from_toml_str("").expect("config"));
        let d = Deliverer::new(cfg, "test").expect("deliverer");
        let wh = Webhook {
            kind: WebhookType::Dinggroup,
            details: true,
            template: Some(Template {
                text: "{% for i in range(3000) %}长文本{% endfor %}".into(),
                ..Template::default()
            }),
            ..Webhook::default()
        };
        let ev = template::sample_event();
        for markup in [
            details::Markup::DingTalk,
            details::Markup::WeComMarkdown,
            details::Markup::WeComApp,
            details::Markup::Lark,
            details::Markup::Plain,
        ] {
            let r = d.message(&wh, &ev, markup).expect("renders");
            assert!(
                r.text.len() <= markup.max_text(),
                "{markup:?}: {}",
                r.text.len()
            );
            assert!(
                r.text.len() > markup.max_text() - 8,
                "{markup:?}: cut too short"
            );
            assert!(
                r.text.ends_with('…') && r.text.starts_with("长文本"),
                "{markup:?}"
            );
        }
        // Short messages are left whole.
        let plain = Webhook {
            kind: WebhookType::Dinggroup,
            ..Webhook::default()
        };
        let r = d
            .message(&plain, &ev, details::Markup::DingTalk)
            .expect("renders");
        assert!(!r.text.ends_with('…'), "{}", r.text);
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    /// Issue 8: whatever a receiver says, the parse neither panics nor gives up on a huge value
    /// (it saturates; dispatch cuts it to `max_retry_after`).
    #[test]
    fn retry_after_huge_values_saturate() {
        let now = std::time::SystemTime::now();
        let max = Duration::from_secs(u64::MAX);
        assert_eq!(parse_retry_after("18446744073709551615", now), Some(max));
        assert_eq!(
            parse_retry_after("99999999999999999999999999", now),
            Some(max)
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for bad in ["", "-1", "1.5", "+3", "1e9", "١٢"] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
        // The latest date HTTP can say: a long wait, no panic.
        let far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now).expect("a date");
        assert!(far > Duration::from_secs(200 * 365 * 86_400), "{far:?}");
        let past = parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now);
        assert_eq!(past, Some(Duration::ZERO));
    }
}
