//! Strict fakes of DingTalk, WeCom and Lark/Feishu (docs/platforms.md), on 127.0.0.1:0 in the
//! test's actix System.
//!
//! They are the referee of the chat tests, so they check what the real platforms check and
//! answer with the real codes: signatures and their time window, bot keys, access tokens
//! (issued, counted, invalidated on demand), body shapes and sizes, directory paging, and
//! optionally a sliding-window limit per bot. Every accepted message is recorded with its
//! arrival time; every refusal too.
//!
//! Each fake is a [`Fake<S>`]: the common API is here (`received`, `refusals`, `token_calls`,
//! `invalidate_tokens`, `set_window`, ...), the platform's own setup (bots, apps, directory)
//! in its module.

pub mod dingtalk;
pub mod feishu;
pub mod wecom;

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

pub use dingtalk::DingTalkFake;
pub use feishu::FeishuFake;
pub use wecom::WeComFake;

/// One message a fake accepted.
#[derive(Debug, Clone)]
pub struct Message {
    /// The bot (DingTalk access_token, WeCom key, Lark hook token) or the app (app key, corp
    /// id, app id) it was sent to.
    pub bot: String,
    /// The request body.
    pub body: Value,
    /// App messages: the users it reached (after the platform's own filtering).
    pub to: Vec<String>,
    /// Whether it carried a (valid) signature.
    pub signed: bool,
    pub at: Instant,
}

impl Message {
    /// The visible text, whatever the shape: DingTalk `markdown.text` (bot) or `msg.markdown.text`
    /// (work message), WeCom `markdown.content` / `text.content`, Lark card elements (bot:
    /// `card`, app: the `content` string).
    pub fn text(&self) -> String {
        let b = &self.body;
        let direct = [
            &b["markdown"]["text"],
            &b["msg"]["markdown"]["text"],
            &b["markdown"]["content"],
            &b["text"]["content"],
        ];
        if let Some(t) = direct.iter().find_map(|v| v.as_str()) {
            return t.to_string();
        }
        let card = match b["content"].as_str() {
            Some(c) => serde_json::from_str(c).unwrap_or(Value::Null),
            None => b["card"].clone(),
        };
        card["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The object ids the text links to (`[#12::...]` or `[#12]`), in order: one for a single
    /// message, several for a digest.
    pub fn object_ids(&self) -> Vec<u64> {
        self.text()
            .split("[#")
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect()
    }
}

/// A request a fake refused, with the code it answered.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub bot: String,
    pub code: i64,
    pub msg: String,
    pub at: Instant,
}

/// What the fakes share: the record, tokens and the sliding window.
#[derive(Debug)]
pub struct Core {
    pub messages: Vec<Message>,
    pub refusals: Vec<Refusal>,
    /// token → (app, still valid)
    tokens: HashMap<String, (String, bool)>,
    next_token: u64,
    pub token_calls: usize,
    /// The `expires_in` / `expire` handed out with tokens.
    pub token_lifetime: u64,
    /// At most `count` accepted messages per bot in any `per`.
    window: Option<(usize, Duration)>,
    sent: HashMap<String, VecDeque<Instant>>,
    /// Answer the app APIs with "IP not whitelisted" (`60020` on DingTalk and WeCom).
    pub deny_ip: bool,
    /// Invalidate every token issued so far once this many messages were accepted (a token
    /// that expires in the middle of a burst).
    pub invalidate_at: Option<usize>,
}

impl Default for Core {
    fn default() -> Core {
        Core {
            messages: vec![],
            refusals: vec![],
            tokens: HashMap::new(),
            next_token: 0,
            token_calls: 0,
            token_lifetime: 7200,
            window: None,
            sent: HashMap::new(),
            deny_ip: false,
            invalidate_at: None,
        }
    }
}

/// What checking a token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid, for this app.
    Valid(String),
    /// Issued once, since invalidated.
    Expired,
    /// Never issued.
    Unknown,
}

impl Core {
    /// Issues a new token for `app` (counted).
    pub fn issue_token(&mut self, prefix: &str, app: &str) -> String {
        self.next_token += 1;
        let t = format!(
            "{prefix}{}-{}",
            self.next_token,
            rand_suffix(self.next_token)
        );
        self.tokens.insert(t.clone(), (app.to_string(), true));
        t
    }

    /// Checks a token.
    pub fn check_token(&self, token: &str) -> TokenCheck {
        match self.tokens.get(token) {
            Some((app, true)) => TokenCheck::Valid(app.clone()),
            Some((_, false)) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        }
    }

    /// Takes a slot of `bot`'s window; `false` when the window is full (the message must be
    /// refused with the platform's rate-limit code).
    pub fn admit(&mut self, bot: &str, now: Instant) -> bool {
        let Some((count, per)) = self.window else {
            return true;
        };
        let times = self.sent.entry(bot.to_string()).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= per)
        {
            times.pop_front();
        }
        if times.len() >= count {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Records an accepted message.
    pub fn accept(&mut self, bot: &str, body: &Value, to: Vec<String>, signed: bool) {
        self.messages.push(Message {
            bot: bot.to_string(),
            body: body.clone(),
            to,
            signed,
            at: Instant::now(),
        });
        if self.invalidate_at == Some(self.messages.len()) {
            for v in self.tokens.values_mut() {
                v.1 = false;
            }
        }
    }

    /// Records a refusal.
    pub fn refuse(&mut self, bot: &str, code: i64, msg: &str) {
        self.refusals.push(Refusal {
            bot: bot.to_string(),
            code,
            msg: msg.to_string(),
            at: Instant::now(),
        });
    }
}

/// A few letters that make tokens look like tokens (and differ between fakes' runs).
fn rand_suffix(n: u64) -> String {
    format!("{:x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40)
}

/// Gives the fakes' generic API access to their [`Core`].
pub trait HasCore: Send + 'static {
    fn core(&mut self) -> &mut Core;
}

/// A request as the fakes see it.
#[derive(Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// Query pairs, percent-decoded once (form rules: `+` is a space, as on the platforms).
    pub query: HashMap<String, String>,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Req {
    /// A query value, or "".
    pub fn q(&self, key: &str) -> &str {
        self.query.get(key).map(String::as_str).unwrap_or("")
    }

    /// The body as JSON, if it is JSON sent as JSON.
    pub fn json(&self) -> Option<Value> {
        let ct = self
            .headers
            .get("content-type")
            .map(String::as_str)
            .unwrap_or("");
        if !ct.starts_with("application/json") {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }
}

/// An answer: status, extra headers, JSON body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Resp {
    /// HTTP 200 with `body`.
    pub fn ok(body: Value) -> Resp {
        Resp {
            status: 200,
            headers: vec![],
            body,
        }
    }

    /// `status` with `body`.
    pub fn status(status: u16, body: Value) -> Resp {
        Resp {
            status,
            headers: vec![],
            body,
        }
    }
}

/// A running fake with state `S`.
pub struct Fake<S> {
    /// `http://127.0.0.1:PORT`: the API base for `[platforms]` / `apiBase`.
    pub base: String,
    state: Arc<Mutex<S>>,
    handle: actix_web::dev::ServerHandle,
}

impl<S: HasCore> Fake<S> {
    /// Starts a fake answering with `handler`.
    pub fn serve(state: S, handler: fn(&mut S, &Req) -> Resp) -> Fake<S> {
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let st = state.clone();
        let server = HttpServer::new(move || {
            let st = st.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let st = st.clone();
                async move {
                    let query = reqwest::Url::parse(&format!("http://x/?{}", req.query_string()))
                        .map(|u| u.query_pairs().into_owned().collect())
                        .unwrap_or_default();
                    let r = Req {
                        method: req.method().to_string(),
                        path: req.path().to_string(),
                        query,
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                        body: body.to_vec(),
                    };
                    let resp = {
                        let mut s = st.lock().expect("fake state");
                        handler(&mut s, &r)
                    };
                    let mut out = HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(resp.status).expect("status"),
                    );
                    for (k, v) in resp.headers {
                        out.insert_header((k, v));
                    }
                    out.content_type("application/json")
                        .body(resp.body.to_string())
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Fake {
            base,
            state,
            handle,
        }
    }

    /// The fake's state, for setup and inspection.
    pub fn state(&self) -> MutexGuard<'_, S> {
        self.state.lock().expect("fake state")
    }

    /// Every accepted message, in arrival order.
    pub fn received(&self) -> Vec<Message> {
        self.state().core().messages.clone()
    }

    /// Every refused request, in order.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.state().core().refusals.clone()
    }

    /// How many requests were refused with `code` (e.g. 130101: "never throttled").
    pub fn refused(&self, code: i64) -> usize {
        self.state()
            .core()
            .refusals
            .iter()
            .filter(|r| r.code == code)
            .count()
    }

    /// How many tokens were requested.
    pub fn token_calls(&self) -> usize {
        self.state().core().token_calls
    }

    /// Every access token issued so far (secrets: they must never show in sanhook's output).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state().core().tokens.keys().cloned().collect()
    }

    /// Invalidates every token issued so far (the next call with one is refused with the
    /// platform's token code).
    pub fn invalidate_tokens(&self) {
        for v in self.state().core().tokens.values_mut() {
            v.1 = false;
        }
    }

    /// Invalidates every token issued so far right after the `n`-th accepted message: the
    /// sends already under way with it are refused with the platform's token code.
    pub fn invalidate_tokens_after(&self, n: usize) {
        self.state().core().invalidate_at = Some(n);
    }

    /// Allows at most `count` messages per bot in any `per`; past it the platform's
    /// rate-limit code is answered.
    pub fn set_window(&self, count: usize, per: Duration) {
        self.state().core().window = Some((count, per));
    }

    /// The lifetime handed out with tokens, in seconds.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.state().core().token_lifetime = secs;
    }

    /// Makes the app APIs answer "server IP not whitelisted".
    pub fn deny_ip(&self, deny: bool) {
        self.state().core().deny_ip = deny;
    }

    /// Stops the server.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// Base64 of HMAC-SHA256 of `msg` under `key`, written here again (not taken from sanhook) so
/// that the fakes check the platforms' rules, not sanhook's reading of them.
pub fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(msg);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A string field of a JSON object, if it is a string.
pub fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}
