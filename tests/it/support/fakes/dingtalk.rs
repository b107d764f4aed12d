//! A strict DingTalk: group bots (`/robot/send`), work messages (`asyncsend_v2`), tokens and
//! the directory (`listsub`, `listsimple`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{hmac_b64, str_of, Core, Fake, HasCore, Req, Resp, TokenCheck};

/// DingTalk's limits.
const MAX_BODY: usize = 20_000;
const MAX_USERS_PER_CALL: usize = 100;
const MAX_PAGE: u64 = 100;
/// Accepted clock skew of signed bot calls.
const SKEW_MS: i64 = 3_600_000;

/// A DingTalk app.
#[derive(Debug, Clone)]
pub struct DtApp {
    pub secret: String,
    pub agent_id: u64,
}

/// The fake's state.
#[derive(Debug, Default)]
pub struct State {
    pub core: Core,
    /// access_token → secret (None: unsigned bot)
    pub bots: HashMap<String, Option<String>>,
    /// appkey → app
    pub apps: HashMap<String, DtApp>,
    /// (dept_id, name, parent_id); the root (1) is implicit.
    pub depts: Vec<(i64, String, i64)>,
    /// (userid, name, dept ids)
    pub users: Vec<(String, String, Vec<i64>)>,
    /// Users per page at most (below the requested size), to force paging.
    pub page_cap: usize,
    /// How long a bot stays throttled after going past its window (DingTalk: 10 minutes).
    pub throttle: Duration,
    throttled_until: HashMap<String, Instant>,
    /// Directory calls made (listsub + listsimple).
    pub directory_calls: usize,
}

impl HasCore for State {
    fn core(&mut self) -> &mut Core {
        &mut self.core
    }
}

/// The DingTalk fake.
pub type DingTalkFake = Fake<State>;

fn err(code: i64, msg: &str) -> Resp {
    Resp::ok(json!({"errcode": code, "errmsg": msg}))
}

impl Fake<State> {
    /// Starts an empty DingTalk.
    pub fn start() -> DingTalkFake {
        let state = State {
            page_cap: 100,
            throttle: Duration::from_secs(600),
            ..State::default()
        };
        Fake::serve(state, handle)
    }

    /// Adds a group bot; returns its webhook url (`.../robot/send?access_token=...`).
    pub fn bot(&self, access_token: &str, secret: Option<&str>) -> String {
        self.state()
            .bots
            .insert(access_token.into(), secret.map(String::from));
        format!("{}/robot/send?access_token={access_token}", self.base)
    }

    /// Adds an app.
    pub fn app(&self, appkey: &str, secret: &str, agent_id: u64) {
        self.state().apps.insert(
            appkey.into(),
            DtApp {
                secret: secret.into(),
                agent_id,
            },
        );
    }

    /// Sets the directory: departments `(id, name, parent)` under the root 1, and users
    /// `(userid, name, departments)`.
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

    /// Users per directory page at most.
    pub fn set_page_cap(&self, n: usize) {
        self.state().page_cap = n;
    }

    /// How long a bot stays throttled after going past its window.
    pub fn set_throttle(&self, d: Duration) {
        self.state().throttle = d;
    }

    /// Directory calls so far.
    pub fn directory_calls(&self) -> usize {
        self.state().directory_calls
    }
}

fn handle(s: &mut State, r: &Req) -> Resp {
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/robot/send") => robot_send(s, r),
        ("GET", "/gettoken") => gettoken(s, r),
        ("POST", "/topapi/message/corpconversation/asyncsend_v2") => with_token(s, r, asyncsend),
        ("POST", "/topapi/v2/department/listsub") => with_token(s, r, listsub),
        ("POST", "/topapi/user/listsimple") => with_token(s, r, listsimple),
        _ => Resp::status(
            404,
            json!({"errcode": 404, "errmsg": "请求的URI地址不存在"}),
        ),
    }
}

fn robot_send(s: &mut State, r: &Req) -> Resp {
    let token = r.q("access_token").to_string();
    let Some(secret) = s.bots.get(&token).cloned() else {
        s.core.refuse(&token, 300001, "token is not exist");
        return err(300001, "token is not exist");
    };
    let mut signed = false;
    if let Some(secret) = secret {
        let ts = r.q("timestamp");
        let sign = r.q("sign");
        let Ok(ts_ms) = ts.parse::<i64>() else {
            s.core.refuse(&token, 310000, "missing or bad timestamp");
            return err(310000, "invalid timestamp");
        };
        if (chrono::Utc::now().timestamp_millis() - ts_ms).abs() > SKEW_MS {
            s.core.refuse(&token, 310000, "timestamp out of window");
            return err(310000, "invalid timestamp");
        }
        let want = hmac_b64(secret.as_bytes(), format!("{ts}\n{secret}").as_bytes());
        if sign != want {
            s.core.refuse(&token, 310000, "sign not match");
            return err(310000, "sign not match");
        }
        signed = true;
    }
    if r.body.len() > MAX_BODY {
        s.core.refuse(&token, 460101, "message too long");
        return err(460101, "message too long");
    }
    let Some(body) = r.json() else {
        s.core.refuse(&token, 40035, "not JSON");
        return err(40035, "缺少参数 json");
    };
    if let Err(e) = check_markdown(&body) {
        s.core.refuse(&token, 40035, &e);
        return err(40035, &e);
    }
    if let Some(at) = body.get("at") {
        let mobiles_ok = at["atMobiles"]
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string));
        if !mobiles_ok || !at["isAtAll"].is_boolean() {
            s.core.refuse(&token, 40035, "bad at");
            return err(40035, "at.atMobiles must be strings and at.isAtAll a bool");
        }
    }
    let now = Instant::now();
    if s.throttled_until.get(&token).is_some_and(|t| *t > now) {
        s.core.refuse(&token, 130101, "throttled");
        return err(130101, "send too fast, exceed 20 times per minute");
    }
    if !s.core.admit(&token, now) {
        let until = now + s.throttle;
        s.throttled_until.insert(token.clone(), until);
        s.core.refuse(&token, 130101, "send too fast");
        return err(130101, "send too fast, exceed 20 times per minute");
    }
    s.core.accept(&token, &body, vec![], signed);
    err(0, "ok")
}

/// `{"msgtype":"markdown","markdown":{"title":..,"text":..}}` with non-empty strings.
fn check_markdown(msg: &Value) -> Result<(), String> {
    if str_of(msg, "msgtype") != Some("markdown") {
        return Err(format!("msgtype must be markdown, got {}", msg["msgtype"]));
    }
    let md = &msg["markdown"];
    for key in ["title", "text"] {
        if str_of(md, key).is_none_or(str::is_empty) {
            return Err(format!("markdown.{key} must be a non-empty string"));
        }
    }
    Ok(())
}

fn gettoken(s: &mut State, r: &Req) -> Resp {
    s.core.token_calls += 1;
    let (key, secret) = (r.q("appkey"), r.q("appsecret"));
    match s.apps.get(key) {
        Some(app) if app.secret == secret => {
            let t = s.core.issue_token("dt-", key);
            Resp::ok(json!({
                "errcode": 0, "errmsg": "ok", "access_token": t,
                "expires_in": s.core.token_lifetime,
            }))
        }
        _ => {
            s.core.refuse(key, 40089, "bad appkey/appsecret");
            err(40089, "不合法的appkey或appsecret")
        }
    }
}

/// Checks the `access_token` query value, then runs `f` with the app key.
fn with_token(s: &mut State, r: &Req, f: fn(&mut State, &Req, &str) -> Resp) -> Resp {
    if s.core.deny_ip {
        return err(60020, "访问ip不在白名单之中");
    }
    match s.core.check_token(r.q("access_token")) {
        TokenCheck::Valid(app) => f(s, r, &app),
        TokenCheck::Expired | TokenCheck::Unknown => {
            s.core.refuse("", 40014, "invalid access_token");
            err(40014, "不合法的access_token")
        }
    }
}

fn asyncsend(s: &mut State, r: &Req, appkey: &str) -> Resp {
    let Some(body) = r.json() else {
        return err(40035, "缺少参数 json");
    };
    let agent = s.apps.get(appkey).map(|a| a.agent_id);
    let problem = if !body["agent_id"].is_u64() {
        Some(format!(
            "agent_id must be an integer, got {}",
            body["agent_id"]
        ))
    } else if body["agent_id"].as_u64() != agent {
        Some("agent_id does not belong to this app".to_string())
    } else if str_of(&body, "userid_list").is_none_or(str::is_empty) {
        Some("userid_list must be a non-empty comma-separated string".to_string())
    } else {
        check_markdown(&body["msg"]).err()
    };
    if let Some(p) = problem {
        s.core.refuse(appkey, 40035, &p);
        return err(40035, &p);
    }
    let users: Vec<String> = str_of(&body, "userid_list")
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect();
    if users.len() > MAX_USERS_PER_CALL {
        s.core.refuse(appkey, 40035, "too many users");
        return err(40035, "userid_list exceeds 100 users");
    }
    s.core.accept(appkey, &body, users, false);
    Resp::ok(json!({
        "errcode": 0, "errmsg": "ok",
        "task_id": s.core.messages.len(), "request_id": "req-fake",
    }))
}

fn listsub(s: &mut State, r: &Req, _app: &str) -> Resp {
    s.directory_calls += 1;
    let Some(dept) = r.json().and_then(|b| b["dept_id"].as_i64()) else {
        return err(40035, "dept_id must be an integer");
    };
    let result: Vec<Value> = s
        .depts
        .iter()
        .filter(|(_, _, p)| *p == dept)
        .map(|(id, name, p)| json!({"dept_id": id, "name": name, "parent_id": p}))
        .collect();
    Resp::ok(json!({"errcode": 0, "errmsg": "ok", "result": result}))
}

fn listsimple(s: &mut State, r: &Req, _app: &str) -> Resp {
    s.directory_calls += 1;
    let Some(b) = r.json() else {
        return err(40035, "缺少参数 json");
    };
    let (Some(dept), Some(cursor), Some(size)) = (
        b["dept_id"].as_i64(),
        b["cursor"].as_u64(),
        b["size"].as_u64(),
    ) else {
        return err(40035, "dept_id, cursor and size must be integers");
    };
    if size == 0 || size > MAX_PAGE {
        return err(40035, "size must be 1..100");
    }
    let known: HashSet<i64> = s.depts.iter().map(|d| d.0).chain([1]).collect();
    if !known.contains(&dept) {
        return err(60003, "部门不存在");
    }
    let members: Vec<&(String, String, Vec<i64>)> =
        s.users.iter().filter(|u| u.2.contains(&dept)).collect();
    let page = (size as usize).min(s.page_cap.max(1));
    let start = (cursor as usize).min(members.len());
    let end = (start + page).min(members.len());
    let list: Vec<Value> = members[start..end]
        .iter()
        .map(|(u, n, _)| json!({"userid": u, "name": n}))
        .collect();
    let has_more = end < members.len();
    let mut result = json!({"has_more": has_more, "list": list});
    if has_more {
        result["next_cursor"] = json!(end);
    }
    Resp::ok(json!({"errcode": 0, "errmsg": "ok", "result": result}))
}
