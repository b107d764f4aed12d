//! A strict Lark/Feishu: group bots (`/open-apis/bot/v2/hook/{token}`), app messages
//! (`/open-apis/im/v1/messages`), tenant tokens, the paged directory, HTTP 429 with
//! `x-ogw-ratelimit-reset`, and a flooded bot's HTTP 400 `9499` "too many request" (`set_window`).

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Value};

use super::{hmac_b64, str_of, Core, Fake, HasCore, Req, Resp, TokenCheck};

const MAX_BODY: usize = 20 * 1024;
const MAX_PAGE: usize = 50;
const SKEW_S: i64 = 3600;

/// The fake's state.
#[derive(Debug, Default)]
pub struct State {
    pub core: Core,
    /// hook token → secret (None: unsigned bot)
    pub bots: HashMap<String, Option<String>>,
    /// app_id → app_secret
    pub apps: HashMap<String, String>,
    /// (open_department_id, name, parent); the root is "0".
    pub depts: Vec<(String, String, String)>,
    /// (open_id, name, departments)
    pub users: Vec<(String, String, Vec<String>)>,
    /// Items per directory page at most.
    pub page_cap: usize,
    /// The next this many app-message calls answer HTTP 429 with this reset (seconds).
    pub rate_limited: (usize, u64),
    /// ... once this many messages were accepted (0: at once).
    pub rate_limited_after: usize,
    /// When each 429 was answered.
    pub limited_at: Vec<Instant>,
}

impl HasCore for State {
    fn core(&mut self) -> &mut Core {
        &mut self.core
    }
}

/// The Lark/Feishu fake.
pub type FeishuFake = Fake<State>;

fn code(status: u16, code: i64, msg: &str) -> Resp {
    Resp::status(status, json!({"code": code, "msg": msg}))
}

impl Fake<State> {
    /// Starts an empty Lark.
    pub fn start() -> FeishuFake {
        let state = State {
            page_cap: MAX_PAGE,
            ..State::default()
        };
        Fake::serve(state, handle)
    }

    /// Adds a group bot; returns its webhook url.
    pub fn bot(&self, token: &str, secret: Option<&str>) -> String {
        self.state()
            .bots
            .insert(token.into(), secret.map(String::from));
        format!("{}/open-apis/bot/v2/hook/{token}", self.base)
    }

    /// Adds an app.
    pub fn app(&self, app_id: &str, secret: &str) {
        self.state().apps.insert(app_id.into(), secret.into());
    }

    /// Sets the directory: departments `(open_department_id, name, parent)` under "0", and
    /// users `(open_id, name, departments)`.
    pub fn set_directory(&self, depts: &[(&str, &str, &str)], users: &[(&str, &str, &[&str])]) {
        let mut s = self.state();
        s.depts = depts
            .iter()
            .map(|(i, n, p)| (i.to_string(), n.to_string(), p.to_string()))
            .collect();
        s.users = users
            .iter()
            .map(|(u, n, d)| {
                (
                    u.to_string(),
                    n.to_string(),
                    d.iter().map(|x| x.to_string()).collect(),
                )
            })
            .collect();
    }

    /// Items per directory page at most.
    pub fn set_page_cap(&self, n: usize) {
        self.state().page_cap = n;
    }

    /// The next `calls` app-message calls answer 429 with `x-ogw-ratelimit-reset: reset_secs`.
    pub fn rate_limit(&self, calls: usize, reset_secs: u64) {
        self.state().rate_limited = (calls, reset_secs);
    }

    /// As [`Fake::rate_limit`], starting once `after` messages were accepted (in the middle of
    /// a burst).
    pub fn rate_limit_after(&self, after: usize, calls: usize, reset_secs: u64) {
        let mut s = self.state();
        s.rate_limited = (calls, reset_secs);
        s.rate_limited_after = after;
    }

    /// When each 429 was answered.
    pub fn limited_at(&self) -> Vec<Instant> {
        self.state().limited_at.clone()
    }
}

fn handle(s: &mut State, r: &Req) -> Resp {
    if let Some(token) = r.path.strip_prefix("/open-apis/bot/v2/hook/") {
        if r.method == "POST" {
            return bot_send(s, r, token);
        }
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/open-apis/auth/v3/tenant_access_token/internal") => tenant_token(s, r),
        ("POST", "/open-apis/im/v1/messages") => with_token(s, r, send_message),
        ("GET", "/open-apis/contact/v3/users/find_by_department") => {
            with_token(s, r, find_by_department)
        }
        ("GET", p)
            if p.starts_with("/open-apis/contact/v3/departments/") && p.ends_with("/children") =>
        {
            with_token(s, r, children)
        }
        _ => code(404, 404, "404 page not found"),
    }
}

/// `{"header":{"title":{"content":..}},"elements":[..]}`.
fn check_card(card: &Value) -> Result<(), String> {
    if str_of(&card["header"]["title"], "content").is_none_or(str::is_empty) {
        return Err("card.header.title.content must be a non-empty string".into());
    }
    if card["elements"].as_array().is_none_or(|a| a.is_empty()) {
        return Err("card.elements must be a non-empty array".into());
    }
    Ok(())
}

fn bot_send(s: &mut State, r: &Req, token: &str) -> Resp {
    let Some(secret) = s.bots.get(token).cloned() else {
        s.core.refuse(token, 19001, "invalid hook token");
        return code(
            200,
            19001,
            "param invalid: incoming webhook access token invalid",
        );
    };
    if r.body.len() > MAX_BODY {
        s.core.refuse(token, 19036, "too large");
        return code(200, 19036, "message too large");
    }
    let Some(body) = r.json() else {
        s.core.refuse(token, 9499, "not JSON");
        return code(400, 9499, "Bad Request");
    };
    let mut signed = false;
    if let Some(secret) = secret {
        // The timestamp is sent as a string of seconds; the key is "{ts}\n{secret}" over "".
        let ts = str_of(&body, "timestamp").unwrap_or("");
        let sign = str_of(&body, "sign").unwrap_or("");
        let fresh = ts
            .parse::<i64>()
            .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= SKEW_S);
        let want = hmac_b64(format!("{ts}\n{secret}").as_bytes(), b"");
        if !fresh || sign != want {
            s.core.refuse(token, 19021, "sign match fail");
            return code(
                200,
                19021,
                "sign match fail or timestamp is not within one hour from current time",
            );
        }
        signed = true;
    }
    if str_of(&body, "msg_type") != Some("interactive") || !body["card"].is_object() {
        s.core.refuse(token, 9499, "msg_type/card");
        return code(
            200,
            9499,
            "Bad Request: msg_type must be interactive with a card object",
        );
    }
    if let Err(e) = check_card(&body["card"]) {
        s.core.refuse(token, 9499, &e);
        return code(200, 9499, &e);
    }
    if !s.core.admit(token, Instant::now()) {
        // What a flooded bot answers (issue 8, seen live): HTTP 400, 9499 "too many request".
        s.core.refuse(token, 9499, "too many request");
        return Resp::status(
            400,
            json!({"code": 9499, "msg": "too many request", "data": {}}),
        );
    }
    s.core.accept(token, &body, vec![], signed);
    Resp::ok(json!({"StatusCode": 0, "StatusMessage": "success", "code": 0, "msg": "success"}))
}

fn tenant_token(s: &mut State, r: &Req) -> Resp {
    s.core.token_calls += 1;
    let Some(b) = r.json() else {
        return code(400, 9499, "Bad Request");
    };
    let (id, secret) = (
        str_of(&b, "app_id").unwrap_or(""),
        str_of(&b, "app_secret").unwrap_or(""),
    );
    match s.apps.get(id) {
        None => {
            s.core.refuse(id, 10003, "invalid param");
            code(400, 10003, "invalid param")
        }
        Some(want) if want != secret => {
            s.core.refuse(id, 10014, "app secret invalid");
            code(400, 10014, "app secret invalid")
        }
        Some(_) => {
            let t = s.core.issue_token("t-", id);
            Resp::ok(json!({
                "code": 0, "msg": "ok", "tenant_access_token": t,
                "expire": s.core.token_lifetime,
            }))
        }
    }
}

fn with_token(s: &mut State, r: &Req, f: fn(&mut State, &Req, &str) -> Resp) -> Resp {
    let Some(token) = r
        .headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        s.core.refuse("", 99991661, "missing token");
        return code(400, 99991661, "Missing access token for authorization");
    };
    match s.core.check_token(token) {
        TokenCheck::Valid(app) => f(s, r, &app),
        _ => {
            s.core.refuse("", 99991663, "invalid token");
            code(
                400,
                99991663,
                "Invalid access token for authorization. Please make a request with token attached.",
            )
        }
    }
}

fn send_message(s: &mut State, r: &Req, app: &str) -> Resp {
    if r.q("receive_id_type") != "open_id" {
        return code(400, 99992402, "field validation failed: receive_id_type");
    }
    let (left, reset) = s.rate_limited;
    if left > 0 && s.core.messages.len() >= s.rate_limited_after {
        s.rate_limited.0 -= 1;
        s.limited_at.push(Instant::now());
        s.core.refuse(app, 99991400, "rate limited");
        let mut resp = code(429, 99991400, "request trigger frequency limit");
        resp.headers
            .push(("x-ogw-ratelimit-reset".into(), reset.to_string()));
        return resp;
    }
    let Some(b) = r.json() else {
        return code(400, 9499, "Bad Request");
    };
    if str_of(&b, "msg_type") != Some("interactive") {
        return code(400, 99992402, "field validation failed: msg_type");
    }
    // The card must come as a JSON-encoded string, not an object.
    let card = str_of(&b, "content").and_then(|c| serde_json::from_str::<Value>(c).ok());
    let Some(card) = card else {
        s.core.refuse(app, 99992402, "content is not a JSON string");
        return code(
            400,
            99992402,
            "field validation failed: content must be a JSON string",
        );
    };
    if let Err(e) = check_card(&card) {
        s.core.refuse(app, 99992402, &e);
        return code(400, 99992402, &e);
    }
    let to = str_of(&b, "receive_id").unwrap_or("").to_string();
    if !s.users.iter().any(|u| u.0 == to) {
        s.core.refuse(app, 230001, &to);
        return code(
            400,
            230001,
            "Your request contains an invalid request parameter, ext=invalid receive_id",
        );
    }
    s.core.accept(app, &b, vec![to], false);
    Resp::ok(json!({
        "code": 0, "msg": "success",
        "data": {"message_id": format!("om_{}", s.core.messages.len())},
    }))
}

/// A page of `items` per `page_size` / `page_token` (the offset, as Lark's opaque token).
fn page(s: &State, r: &Req, items: Vec<Value>) -> Resp {
    let size = r.q("page_size").parse::<usize>().unwrap_or(20);
    if size == 0 || size > MAX_PAGE {
        return code(
            400,
            99992402,
            "field validation failed: page_size must be 1..50",
        );
    }
    let start = match r.q("page_token") {
        "" => 0,
        t => match t.strip_prefix("pt-").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return code(400, 99992402, "field validation failed: page_token"),
        },
    };
    let per = size.min(s.page_cap.max(1));
    let start = start.min(items.len());
    let end = (start + per).min(items.len());
    let has_more = end < items.len();
    let mut data = json!({"has_more": has_more, "items": items[start..end].to_vec()});
    if has_more {
        data["page_token"] = json!(format!("pt-{end}"));
    }
    Resp::ok(json!({"code": 0, "msg": "success", "data": data}))
}

fn children(s: &mut State, r: &Req, _app: &str) -> Resp {
    let id = r
        .path
        .trim_start_matches("/open-apis/contact/v3/departments/")
        .trim_end_matches("/children");
    if id != "0" && !s.depts.iter().any(|d| d.0 == id) {
        return code(400, 40003, "department not found");
    }
    let items: Vec<Value> = s
        .depts
        .iter()
        .filter(|d| d.2 == id)
        .map(|(i, n, p)| {
            json!({"open_department_id": i, "department_id": format!("d{i}"), "name": n, "parent_department_id": p})
        })
        .collect();
    page(s, r, items)
}

fn find_by_department(s: &mut State, r: &Req, _app: &str) -> Resp {
    let dept = r.q("department_id");
    if dept != "0" && !s.depts.iter().any(|d| d.0 == dept) {
        return code(400, 40003, "department not found");
    }
    let items: Vec<Value> = s
        .users
        .iter()
        .filter(|u| u.2.iter().any(|d| d == dept))
        .map(|(o, n, _)| json!({"open_id": o, "user_id": format!("uid-{o}"), "name": n}))
        .collect();
    page(s, r, items)
}
