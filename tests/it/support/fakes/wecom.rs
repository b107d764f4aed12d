//! A strict WeCom: group bots (`webhook/send`), app messages (`message/send`), tokens, the
//! directory (`department/list`, `user/simplelist`) and the per-member limit, past which WeCom
//! drops messages without saying so (the fake counts them in `dropped`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{str_of, Core, Fake, HasCore, Req, Resp, TokenCheck};

const MARKDOWN_MAX: usize = 4096;
const TEXT_MAX: usize = 2048;
const MAX_TOUSER: usize = 1000;

/// A WeCom app.
#[derive(Debug, Clone)]
pub struct WcApp {
    pub secret: String,
    pub agent_id: u64,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct State {
    pub core: Core,
    /// Bot keys.
    pub bots: HashSet<String>,
    /// corpid → app
    pub apps: HashMap<String, WcApp>,
    /// (id, name, parentid); include the root (1, parent 0).
    pub depts: Vec<(i64, String, i64)>,
    /// (userid, name, dept ids)
    pub users: Vec<(String, String, Vec<i64>)>,
    /// At most `count` messages per member in any `per`; past it WeCom drops silently.
    pub member_window: Option<(usize, Duration)>,
    member_sent: HashMap<String, VecDeque<Instant>>,
    /// (member, time) of every message dropped for the member limit.
    pub dropped: Vec<(String, Instant)>,
}

impl HasCore for State {
    fn core(&mut self) -> &mut Core {
        &mut self.core
    }
}

/// The WeCom fake.
pub type WeComFake = Fake<State>;

fn err(code: i64, msg: &str) -> Resp {
    Resp::ok(json!({"errcode": code, "errmsg": msg}))
}

impl Fake<State> {
    /// Starts an empty WeCom.
    pub fn start() -> WeComFake {
        Fake::serve(State::default(), handle)
    }

    /// Adds a group bot; returns its webhook url (`.../cgi-bin/webhook/send?key=...`).
    pub fn bot(&self, key: &str) -> String {
        self.state().bots.insert(key.into());
        format!("{}/cgi-bin/webhook/send?key={key}", self.base)
    }

    /// Adds an app.
    pub fn app(&self, corpid: &str, secret: &str, agent_id: u64) {
        self.state().apps.insert(
            corpid.into(),
            WcApp {
                secret: secret.into(),
                agent_id,
            },
        );
    }

    /// Sets the directory: departments `(id, name, parentid)` and users `(userid, name, depts)`.
    pub fn set_directory(&self, depts: &[(i64, &str, i64)], users: &[(&str, &str, &[i64])]) {
        let mut s = self.state();
        s.depts = depts
            .iter()
            .map(|(i, n, p)| (*i, n.to_string(), *p))
            .collect();
        s.users = users
            .iter()
            .map(|(u, n, d)| (u.to_string(), n.to_string(), d.to_vec()))
            .collect();
    }

    /// Sets the per-member limit of app messages.
    pub fn set_member_window(&self, count: usize, per: Duration) {
        self.state().member_window = Some((count, per));
    }

    /// Messages dropped for the per-member limit.
    pub fn dropped(&self) -> Vec<(String, Instant)> {
        self.state().dropped.clone()
    }
}

fn handle(s: &mut State, r: &Req) -> Resp {
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/cgi-bin/webhook/send") => bot_send(s, r),
        ("GET", "/cgi-bin/gettoken") => gettoken(s, r),
        ("POST", "/cgi-bin/message/send") => with_token(s, r, app_send),
        ("GET", "/cgi-bin/department/list") => with_token(s, r, department_list),
        ("GET", "/cgi-bin/user/simplelist") => with_token(s, r, simplelist),
        _ => Resp::status(404, json!({"errcode": 404, "errmsg": "not found"})),
    }
}

fn bot_send(s: &mut State, r: &Req) -> Resp {
    let key = r.q("key").to_string();
    if !s.bots.contains(&key) {
        s.core.refuse(&key, 93000, "invalid webhook url");
        return err(93000, "invalid webhook url, hint: [fake]");
    }
    let Some(body) = r.json() else {
        s.core.refuse(&key, 40035, "not JSON");
        return err(40035, "invalid parameter");
    };
    let problem = match str_of(&body, "msgtype") {
        Some("markdown") => match str_of(&body["markdown"], "content") {
            None | Some("") => Some((40035, "markdown.content missing".to_string())),
            Some(c) if c.len() > MARKDOWN_MAX => Some((
                40058,
                format!("markdown.content exceed max length {MARKDOWN_MAX}"),
            )),
            _ => None,
        },
        Some("text") => {
            let t = &body["text"];
            match str_of(t, "content") {
                None | Some("") => Some((40035, "text.content missing".to_string())),
                Some(c) if c.len() > TEXT_MAX => {
                    Some((40058, format!("text.content exceed max length {TEXT_MAX}")))
                }
                _ => match t.get("mentioned_mobile_list") {
                    Some(Value::Array(a)) if !a.iter().all(Value::is_string) => {
                        Some((40035, "mentioned_mobile_list must hold strings".to_string()))
                    }
                    Some(Value::Array(_)) | None => None,
                    Some(_) => Some((40035, "mentioned_mobile_list must be an array".into())),
                },
            }
        }
        _ => Some((40008, "invalid message type".to_string())),
    };
    if let Some((code, msg)) = problem {
        s.core.refuse(&key, code, &msg);
        return err(code, &msg);
    }
    if !s.core.admit(&key, Instant::now()) {
        s.core.refuse(&key, 45009, "api freq out of limit");
        return err(45009, "api freq out of limit");
    }
    s.core.accept(&key, &body, vec![], false);
    err(0, "ok")
}

fn gettoken(s: &mut State, r: &Req) -> Resp {
    s.core.token_calls += 1;
    let (corp, secret) = (r.q("corpid"), r.q("corpsecret"));
    match s.apps.get(corp) {
        None => {
            s.core.refuse(corp, 40013, "invalid corpid");
            err(40013, "invalid corpid")
        }
        Some(app) if app.secret != secret => {
            s.core.refuse(corp, 40001, "invalid credential");
            err(40001, "invalid credential")
        }
        Some(_) => {
            let t = s.core.issue_token("wc-", corp);
            Resp::ok(json!({
                "errcode": 0, "errmsg": "ok", "access_token": t,
                "expires_in": s.core.token_lifetime,
            }))
        }
    }
}

fn with_token(s: &mut State, r: &Req, f: fn(&mut State, &Req, &str) -> Resp) -> Resp {
    if s.core.deny_ip {
        return err(60020, "not allow to access from your ip, hint: [fake]");
    }
    match s.core.check_token(r.q("access_token")) {
        TokenCheck::Valid(app) => f(s, r, &app),
        TokenCheck::Expired => {
            s.core.refuse("", 42001, "access_token expired");
            err(42001, "access_token expired")
        }
        TokenCheck::Unknown => {
            s.core.refuse("", 40014, "invalid access_token");
            err(40014, "invalid access_token")
        }
    }
}

fn app_send(s: &mut State, r: &Req, corp: &str) -> Resp {
    let Some(body) = r.json() else {
        return err(40035, "invalid parameter");
    };
    let agent = s.apps.get(corp).map(|a| a.agent_id);
    if !body["agentid"].is_u64() || body["agentid"].as_u64() != agent {
        s.core.refuse(corp, 40056, "invalid agentid");
        return err(40056, "invalid agentid");
    }
    if str_of(&body, "msgtype") != Some("markdown") {
        s.core.refuse(corp, 40008, "invalid message type");
        return err(40008, "invalid message type");
    }
    match str_of(&body["markdown"], "content") {
        None | Some("") => return err(40035, "markdown.content missing"),
        Some(c) if c.len() > MARKDOWN_MAX => {
            return err(40058, "markdown.content exceed max length 4096")
        }
        _ => {}
    }
    let touser = str_of(&body, "touser").unwrap_or("");
    let users: Vec<&str> = touser.split('|').filter(|u| !u.is_empty()).collect();
    if users.is_empty() || users.len() > MAX_TOUSER {
        s.core.refuse(corp, 40058, "bad touser");
        return err(40058, "touser must list 1..1000 users");
    }
    let known: HashSet<&str> = s.users.iter().map(|u| u.0.as_str()).collect();
    let (valid, invalid): (Vec<&str>, Vec<&str>) = users.iter().partition(|u| known.contains(**u));
    if valid.is_empty() {
        s.core.refuse(corp, 81013, "user & party & tag all invalid");
        return err(81013, "user & party & tag all invalid");
    }
    let now = Instant::now();
    let mut reached = vec![];
    for u in valid {
        let ok = match s.member_window {
            None => true,
            Some((count, per)) => {
                let times = s.member_sent.entry(u.to_string()).or_default();
                while times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= per)
                {
                    times.pop_front();
                }
                if times.len() < count {
                    times.push_back(now);
                    true
                } else {
                    false
                }
            }
        };
        if ok {
            reached.push(u.to_string());
        } else {
            s.dropped.push((u.to_string(), now));
        }
    }
    s.core.accept(corp, &body, reached, false);
    Resp::ok(json!({
        "errcode": 0, "errmsg": "ok",
        "invaliduser": invalid.join("|"), "msgid": format!("msg-{}", s.core.messages.len()),
    }))
}

fn department_list(s: &mut State, _r: &Req, _corp: &str) -> Resp {
    let list: Vec<Value> = s
        .depts
        .iter()
        .map(|(id, name, p)| json!({"id": id, "name": name, "parentid": p}))
        .collect();
    Resp::ok(json!({"errcode": 0, "errmsg": "ok", "department": list}))
}

fn simplelist(s: &mut State, r: &Req, _corp: &str) -> Resp {
    let Ok(dept) = r.q("department_id").parse::<i64>() else {
        return err(40035, "department_id must be an integer");
    };
    if !s.depts.iter().any(|d| d.0 == dept) {
        return err(60003, "department not found");
    }
    let list: Vec<Value> = s
        .users
        .iter()
        .filter(|u| u.2.contains(&dept))
        .map(|(u, n, d)| json!({"userid": u, "name": n, "department": d}))
        .collect();
    Resp::ok(json!({"errcode": 0, "errmsg": "ok", "userlist": list}))
}
