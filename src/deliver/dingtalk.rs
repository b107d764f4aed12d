//! DingTalk: the group bot (`dinggroup`) and work messages (`dinguser`), per docs/platforms.md.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde_json::{json, Value};

use futures_util::future::BoxFuture;

use super::app::{with_query, App, AppFields, Call};
use super::channel::{app_route, bot_route, Channel, Envelope, Route};
use super::details::Markup;
use super::reply::{self, Platform, Reply, Rule, IP_WHITELIST_HINT};
use super::token::{Token, TokenFailure};
use super::{chat, sign, Attempt, Deliverer, Outcome, RemoteUser};
use crate::config::Config;
use crate::event::ActionEvent;
use crate::webhook::Webhook;

/// `asyncsend_v2` takes at most this many user ids per call.
pub const WORK_CHUNK: usize = 100;

/// Users per directory page (DingTalk's maximum).
const PAGE_SIZE: u64 = 100;

/// A directory bigger than this many pages or departments is taken as a server looping.
const MAX_PAGES: usize = 100_000;

/// The group bot (`dinggroup`): signed markdown, within `limits.dinggroup`, with digests.
pub struct Group;

impl Channel for Group {
    fn route(&self, wh: &Webhook, cfg: &Config) -> Route {
        bot_route(wh, &cfg.limits.dinggroup)
    }

    fn attempt<'a>(&'a self, d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt> {
        Box::pin(send_group(d, &env.webhook, &env.event))
    }

    fn has_digests(&self) -> bool {
        true
    }

    fn digest_body(&self, header: &str, lines: &[String], mentions: &[String]) -> Option<Value> {
        // DingTalk markdown needs a blank line to break a line.
        let mut text = format!("**{header}**");
        for l in lines {
            text.push_str("\n\n");
            text.push_str(l);
        }
        Some(chat::dingtalk_markdown(header, &text, mentions))
    }

    fn digest_size(&self, _wh: &Webhook, body: &Value) -> (usize, usize) {
        (body.to_string().len(), chat::DINGTALK_MAX_BYTES)
    }

    fn post_digest<'a>(
        &'a self,
        d: &'a Deliverer,
        wh: &'a Webhook,
        body: Value,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move { post_group(d, wh, &body).await })
    }
}

/// Work messages (`dinguser`): one destination per app, recipients through the bindings.
pub struct Work;

impl Channel for Work {
    fn route(&self, wh: &Webhook, _cfg: &Config) -> Route {
        app_route(wh, [&wh.app_key, &wh.agent_id])
    }

    fn attempt<'a>(&'a self, d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt> {
        Box::pin(send_work(d, env))
    }

    fn needs_bindings(&self) -> bool {
        true
    }

    fn app(&self, wh: &Webhook, cfg: &Config) -> Result<App, String> {
        App::from_fields(
            wh,
            AppFields {
                platform: Platform::DingTalk,
                default_base: &cfg.platforms.dingtalk,
                id: &wh.app_key,
                secret: &wh.app_secret,
                agent: Some((&wh.agent_id, "agentId")),
            },
        )
    }

    fn directory<'a>(
        &'a self,
        d: &'a Deliverer,
        app: &'a App,
    ) -> BoxFuture<'a, Result<Vec<RemoteUser>, String>> {
        Box::pin(directory(d, app))
    }
}

/// What a DingTalk code means (docs/platforms.md and DingTalk's global code list).
pub fn rule(reply: &Reply, code: i64, throttle: Duration) -> Rule {
    match code {
        // The bot sent too fast and is now throttled for ten minutes.
        130101 => Rule::Retry(Some(throttle)),
        // System busy / too many calls: retry on the schedule.
        -1 | 90002 | 90005 | 90006 | 90018 => Rule::Retry(None),
        310000 => Rule::Dead(
            " — the bot refused the signature, keyword, timestamp or IP: check the webhook's \
             secret, the bot's keywords and this host's clock",
        ),
        300001 => Rule::Dead(" — the bot's access_token does not exist: check the webhook's url"),
        60020 => Rule::Dead(IP_WHITELIST_HINT),
        40089 | 40096 => Rule::Dead(" — check the webhook's appKey and appSecret"),
        40056 => Rule::Dead(" — check the webhook's agentId"),
        40035 => Rule::Dead(" — DingTalk refused the request's parameters"),
        460101 => Rule::TooLarge,
        40014 | 42001 => Rule::Token,
        // 88: look at the sub-code; permanent unless it says "busy" or "token".
        88 => match reply::as_i64(&Value::String(reply.field("sub_code"))) {
            Some(-1 | 90002 | 90005 | 90006 | 90018) => Rule::Retry(None),
            Some(40014 | 42001) => Rule::Token,
            Some(60020) => Rule::Dead(IP_WHITELIST_HINT),
            _ => Rule::Dead(""),
        },
        _ => Rule::Unknown,
    }
}

/// Classifies a DingTalk answer (group bot or open API). `130101` is retried after `throttle`
/// (`limits.dingtalk_throttle`), the time DingTalk keeps a bot silent.
pub fn classify_dingtalk(status: u16, body: &[u8], throttle: Duration) -> Outcome {
    let reply = Reply::read(Platform::DingTalk, status, body);
    let mut outcome = reply::classify(&reply, &reqwest::header::HeaderMap::new(), |r, c| {
        rule(r, c, throttle)
    });
    // Error 88 carries the real reason in sub_code / sub_msg.
    if reply.code == Some(88) {
        let sub = format!(
            " (sub_code {}: {})",
            reply.field("sub_code"),
            reply.field("sub_msg")
        );
        match &mut outcome {
            Outcome::Retry { error, .. } | Outcome::Dead(error) => error.push_str(&sub),
            _ => {}
        }
    }
    outcome
}

/// Sends one group-bot message: markdown, signed URL when the bot has a secret, @-mentions.
pub(crate) async fn send_group(d: &Deliverer, wh: &Webhook, ev: &ActionEvent) -> Attempt {
    let r = match d.message(wh, ev, Markup::DingTalk) {
        Ok(r) => r,
        Err(e) => return Attempt::failed_before_send(Outcome::Dead(e)),
    };
    let body = chat::dingtalk_markdown(&r.title, &r.text, &ev.mentions);
    post_group(d, wh, &body).await
}

/// Posts a finished group-bot body to the webhook's url, signed now.
pub(crate) async fn post_group(d: &Deliverer, wh: &Webhook, body: &Value) -> Attempt {
    let url = sign::dingtalk_signed_url(&wh.url, &wh.secret, chrono::Utc::now().timestamp_millis());
    let headers = vec![(
        "content-type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    let sent = d.post(&url, headers, body.to_string().into_bytes()).await;
    let outcome = d.outcome_of(Platform::DingTalk, &sent);
    sent.into_attempt(outcome)
}

/// `GET {dingtalk}/gettoken?appkey=..&appsecret=..`.
pub(crate) async fn fetch_token(d: &Deliverer, app: &App) -> Result<Token, TokenFailure> {
    let url = with_query(
        &format!("{}/gettoken", app.base),
        &[("appkey", &app.id), ("appsecret", &app.secret)],
    );
    let sent = d.get(&url, vec![]).await;
    d.token_from(Platform::DingTalk, sent, "access_token", "expires_in")
}

/// Sends a work message to the bound recipients in chunks of [`WORK_CHUNK`], skipping those
/// an earlier attempt served. The text ends with the action's date, so that DingTalk does not
/// drop it as a repeat of an earlier message of the day.
async fn send_work(d: &Deliverer, env: &Envelope) -> Attempt {
    let (wh, ev) = (&env.webhook, &env.event);
    let (app, to, mut progress) = match d.prepare_app(env) {
        Ok(p) => (p.app, p.to, p.progress),
        Err(outcome) => return Attempt::failed_before_send(outcome),
    };
    let remaining = progress.remaining(&to.userids);
    let r = match d.message(wh, ev, Markup::DingTalk) {
        Ok(r) => r,
        Err(e) => return Attempt::failed_before_send(Outcome::Dead(e)),
    };
    let msg = chat::dingtalk_work_markdown(&r.title, &r.text, &ev.date);
    let mut last: Option<Attempt> = None;
    for chunk in remaining.chunks(WORK_CHUNK) {
        let body = chat::dingtalk_work_body(app.agent, chunk, msg.clone());
        let call = Call::post(&app, "/topapi/message/corpconversation/asyncsend_v2", body);
        let sent = match d.call_app(&app, &call).await {
            Ok(sent) => sent,
            Err(mut failed) => {
                failed.progress = Some(progress.to_value());
                return failed;
            }
        };
        let outcome = d.outcome_of(Platform::DingTalk, &sent);
        let mut attempt = sent.into_attempt(Outcome::Delivered);
        if outcome != Outcome::Delivered {
            attempt.outcome = outcome;
            attempt.progress = Some(progress.to_value());
            return attempt;
        }
        progress.serve(chunk.iter().copied());
        last = Some(attempt);
    }
    let mut attempt = last.unwrap_or_else(|| Attempt::failed_before_send(Outcome::Delivered));
    attempt.outcome = Outcome::Delivered;
    attempt.progress = Some(progress.to_value());
    attempt
}

/// Lists every user of every department (from the root, 1), following `listsub` down and
/// `listsimple`'s cursor across pages.
pub(crate) async fn directory(d: &Deliverer, app: &App) -> Result<Vec<RemoteUser>, String> {
    let mut users: BTreeMap<String, RemoteUser> = BTreeMap::new();
    let mut order: Vec<String> = vec![];
    let mut seen = HashSet::from([1i64]);
    let mut queue = VecDeque::from([1i64]);
    let mut names: HashMap<i64, String> = HashMap::new();
    while let Some(dept) = queue.pop_front() {
        if seen.len() > MAX_PAGES {
            return Err("more than 100000 departments; giving up (is the server looping?)".into());
        }
        let v = d
            .directory_call(
                app,
                &Call::post(
                    app,
                    "/topapi/v2/department/listsub",
                    json!({ "dept_id": dept }),
                ),
            )
            .await
            .map_err(|e| format!("{e} (listing the sub-departments of {dept})"))?;
        for child in v["result"].as_array().into_iter().flatten() {
            if let Some(id) = child.get("dept_id").and_then(reply::as_i64) {
                if let Some(name) = child.get("name").and_then(Value::as_str) {
                    names.insert(id, name.to_string());
                }
                if seen.insert(id) {
                    queue.push_back(id);
                }
            }
        }
        let dept_name = names.get(&dept).map_or("", String::as_str);
        let mut cursor: i64 = 0;
        for page in 0.. {
            if page >= MAX_PAGES {
                return Err(format!("department {dept}: too many pages"));
            }
            let v = d
                .directory_call(
                    app,
                    &Call::post(
                        app,
                        "/topapi/user/listsimple",
                        json!({ "dept_id": dept, "cursor": cursor, "size": PAGE_SIZE }),
                    ),
                )
                .await
                .map_err(|e| format!("{e} (listing the users of department {dept})"))?;
            let result = &v["result"];
            for u in result["list"].as_array().into_iter().flatten() {
                let Some(userid) = u.get("userid").and_then(Value::as_str) else {
                    continue;
                };
                let name = u.get("name").and_then(Value::as_str).unwrap_or("");
                add_user(
                    &mut users,
                    &mut order,
                    userid,
                    name,
                    (&dept.to_string(), dept_name),
                );
            }
            let more = result["has_more"].as_bool().unwrap_or(false);
            let next = result.get("next_cursor").and_then(reply::as_i64);
            match next {
                Some(n) if more && n != cursor => cursor = n,
                Some(_) if more => {
                    return Err(format!(
                        "department {dept}: has_more without a new next_cursor ({cursor})"
                    ))
                }
                _ => break,
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|id| users.remove(&id))
        .collect())
}

/// Adds a user found in department `(id, name)` (or only the department, if already known).
pub(crate) fn add_user(
    users: &mut BTreeMap<String, RemoteUser>,
    order: &mut Vec<String>,
    userid: &str,
    name: &str,
    (dept, dept_name): (&str, &str),
) {
    let u = users.entry(userid.to_string()).or_insert_with(|| {
        order.push(userid.to_string());
        RemoteUser {
            userid: userid.to_string(),
            name: name.to_string(),
            departments: vec![],
            department_names: vec![],
        }
    });
    if !u.departments.iter().any(|d| d == dept) {
        u.departments.push(dept.to_string());
        u.department_names.push(dept_name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THROTTLE: Duration = Duration::from_secs(600);

    /// (body, expected outcome kind, expected text in the error)
    const CASES: &[(&str, &str, &str)] = &[
        (r#"{"errcode":0,"errmsg":"ok"}"#, "delivered", ""),
        (
            r#"{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}"#,
            "retry-throttle",
            "DingTalk errcode 130101: send too fast",
        ),
        (
            r#"{"errcode":310000,"errmsg":"sign not match"}"#,
            "dead",
            "DingTalk errcode 310000: sign not match",
        ),
        (
            r#"{"errcode":300001,"errmsg":"token is not exist"}"#,
            "dead",
            "DingTalk errcode 300001: token is not exist",
        ),
        (
            r#"{"errcode":460101,"errmsg":"message too long"}"#,
            "dead",
            "size limit",
        ),
        (
            r#"{"errcode":60020,"errmsg":"访问ip不在白名单之中"}"#,
            "dead",
            "whitelist",
        ),
        (
            r#"{"errcode":90002,"errmsg":"busy"}"#,
            "retry",
            "errcode 90002",
        ),
        (
            r#"{"errcode":-1,"errmsg":"系统繁忙"}"#,
            "retry",
            "errcode -1",
        ),
        (
            r#"{"errcode":88,"errmsg":"ding talk error","sub_code":"60011","sub_msg":"no permission"}"#,
            "dead",
            "sub_code 60011: no permission",
        ),
        (
            r#"{"errcode":88,"errmsg":"ding talk error","sub_code":"90018","sub_msg":"too fast"}"#,
            "retry",
            "sub_code 90018",
        ),
        (
            r#"{"errcode":40014,"errmsg":"invalid token"}"#,
            "retry",
            "rejected even after a refresh",
        ),
        (
            r#"{"errcode":40089,"errmsg":"invalid appkey"}"#,
            "dead",
            "appSecret",
        ),
        (
            r#"{"errcode":123456,"errmsg":"new"}"#,
            "retry",
            "errcode 123456: new",
        ),
    ];

    fn kind(o: &Outcome) -> &'static str {
        match o {
            Outcome::Delivered => "delivered",
            Outcome::Retry { after: Some(a), .. } if *a == THROTTLE => "retry-throttle",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead(_) => "dead",
            Outcome::Skipped(_) => "skipped",
        }
    }

    #[test]
    fn classification_table() {
        let mut failures = vec![];
        for (body, want, text) in CASES {
            let got = classify_dingtalk(200, body.as_bytes(), THROTTLE);
            let err = super::super::app::outcome_text(&got);
            if kind(&got) != *want || !err.contains(text) {
                failures.push(format!(
                    "{body}: got {got:?}, want {want} containing {text:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn http_level_answers() {
        assert!(matches!(
            classify_dingtalk(502, b"bad gateway", THROTTLE),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify_dingtalk(404, b"not found", THROTTLE),
            Outcome::Dead(_)
        ));
        // HTTP 200 without errcode is not delivered.
        assert!(matches!(
            classify_dingtalk(200, b"{}", THROTTLE),
            Outcome::Retry { .. }
        ));
    }
}
