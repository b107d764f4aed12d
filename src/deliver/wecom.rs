//! WeCom (WeChat Work): the group bot (`wechatgroup`) and app messages (`wechatuser`), per
//! docs/platforms.md.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::app::{with_query, App, AppFields, Call};
use super::channel::{app_route, bot_route, Channel, Envelope, MemberDemand, Route};
use super::details::Markup;
use super::recipients::Progress;
use super::reply::{self, Platform, Reply, Rule, IP_WHITELIST_HINT};
use super::token::{Token, TokenFailure};
use super::{chat, Attempt, Deliverer, Outcome, RemoteUser};
use crate::config::Config;
use crate::event::ActionEvent;
use crate::webhook::Webhook;

/// `message/send` takes at most this many user ids in `touser`.
pub const APP_CHUNK: usize = 1000;

/// WeCom asks for at least a minute's pause after `45009`.
pub const FREQ_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The group bot (`wechatgroup`): markdown (text to @-mention), within `limits.wechatgroup`,
/// with digests.
pub struct Group;

impl Channel for Group {
    fn route(&self, wh: &Webhook, cfg: &Config) -> Route {
        bot_route(wh, &cfg.limits.wechatgroup)
    }

    fn attempt<'a>(&'a self, d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt> {
        Box::pin(send_group(d, &env.webhook, &env.event))
    }

    fn has_digests(&self) -> bool {
        true
    }

    fn digest_body(&self, header: &str, lines: &[String], mentions: &[String]) -> Option<Value> {
        let mut text = header.to_string();
        for l in lines {
            text.push('\n');
            text.push_str(l);
        }
        Some(chat::wecom_group(&text, mentions))
    }

    fn digest_size(&self, _wh: &Webhook, body: &Value) -> (usize, usize) {
        // WeCom limits the content, not the body: 4096 bytes of markdown, 2048 of text.
        if let Some(c) = body["markdown"]["content"].as_str() {
            (c.len(), chat::WECOM_MARKDOWN_MAX)
        } else {
            let c = body["text"]["content"].as_str().unwrap_or("");
            (c.len(), chat::WECOM_TEXT_MAX)
        }
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

/// App messages (`wechatuser`): calls of up to [`APP_CHUNK`] recipients, each member within
/// `limits.wechatuser_member` (a budget dispatch keeps: [`Channel::member_demand`]).
pub struct AppMessage;

impl Channel for AppMessage {
    fn route(&self, wh: &Webhook, _cfg: &Config) -> Route {
        app_route(wh, [&wh.wechat_corp_id, &wh.wechat_agent_id])
    }

    fn attempt<'a>(&'a self, d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt> {
        Box::pin(send_app(d, env))
    }

    fn needs_bindings(&self) -> bool {
        true
    }

    /// The bound recipients not yet served, under the app's budget (`rate:wecom-members:<app>`
    /// is the checkpoint dispatch keeps it in). WeCom drops messages past a member's limit
    /// without an error, so they must be held back before the send, not retried after it.
    fn member_demand(&self, env: &Envelope, cfg: &Config) -> Option<MemberDemand> {
        if cfg.limits.wechatuser_member.is_empty() {
            return None;
        }
        let app = self.app(&env.webhook, cfg).ok()?;
        let to = super::recipients::resolve(&env.event, &env.bindings, env.webhook.id).ok()?;
        let progress = super::recipients::Progress::from_value(env.progress.as_ref());
        Some(MemberDemand {
            budget: app.key,
            windows: cfg.limits.wechatuser_member.clone(),
            members: progress
                .remaining(&to.userids)
                .into_iter()
                .map(String::from)
                .collect(),
        })
    }

    fn app(&self, wh: &Webhook, cfg: &Config) -> Result<App, String> {
        App::from_fields(
            wh,
            AppFields {
                platform: Platform::WeCom,
                default_base: &cfg.platforms.wecom,
                id: &wh.wechat_corp_id,
                secret: &wh.wechat_corp_secret,
                agent: Some((&wh.wechat_agent_id, "wechatAgentId")),
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

/// What a WeCom code means (docs/platforms.md and WeCom's global code list).
pub fn rule(_reply: &Reply, code: i64) -> Rule {
    match code {
        45009 => Rule::Retry(Some(FREQ_LIMIT_WAIT)),
        -1 | 45033 => Rule::Retry(None),
        93000 => Rule::Dead(" — the bot key is invalid: check the webhook's url"),
        40058 => Rule::TooLarge,
        81013 => Rule::Dead(" — every recipient is invalid for this app"),
        40013 => Rule::Dead(" — check the webhook's wechatCorpId"),
        40001 => Rule::Dead(" — check the webhook's wechatCorpSecret"),
        40056 => Rule::Dead(" — check the webhook's wechatAgentId"),
        60020 => Rule::Dead(IP_WHITELIST_HINT),
        40008 => Rule::Dead(" — WeCom refused the message type"),
        48002 => Rule::Dead(" — the app may not call this API (check its permissions)"),
        40014 | 42001 => Rule::Token,
        _ => Rule::Unknown,
    }
}

/// Classifies a WeCom answer (group bot or app API).
pub fn classify_wecom(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Outcome {
    let reply = Reply::read(Platform::WeCom, status, body);
    reply::classify(&reply, headers, rule)
}

/// Sends one group-bot message: markdown, or text with `mentioned_mobile_list` to @-mention.
pub(crate) async fn send_group(d: &Deliverer, wh: &Webhook, ev: &ActionEvent) -> Attempt {
    let markup = if ev.mentions.is_empty() {
        Markup::WeComMarkdown
    } else {
        Markup::Plain
    };
    let r = match d.message(wh, ev, markup) {
        Ok(r) => r,
        Err(e) => return Attempt::failed_before_send(Outcome::Dead(e)),
    };
    post_group(d, wh, &chat::wecom_group(&r.text, &ev.mentions)).await
}

/// Posts a finished group-bot body to the webhook's url (WeCom bots are not signed).
pub(crate) async fn post_group(d: &Deliverer, wh: &Webhook, body: &Value) -> Attempt {
    let headers = vec![(
        "content-type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    let sent = d
        .post(&wh.url, headers, body.to_string().into_bytes())
        .await;
    let outcome = d.outcome_of(Platform::WeCom, &sent);
    sent.into_attempt(outcome)
}

/// `GET {wecom}/cgi-bin/gettoken?corpid=..&corpsecret=..`.
pub(crate) async fn fetch_token(d: &Deliverer, app: &App) -> Result<Token, TokenFailure> {
    let url = with_query(
        &format!("{}/cgi-bin/gettoken", app.base),
        &[("corpid", &app.id), ("corpsecret", &app.secret)],
    );
    let sent = d.get(&url, vec![]).await;
    d.token_from(Platform::WeCom, sent, "access_token", "expires_in")
}

/// Sends an app message to the bound recipients, at most [`APP_CHUNK`] per call, skipping
/// those served before. With a per-member limit (`limits.wechatuser_member`) only the members
/// dispatch granted a slot are sent to ([`Envelope::members`]); the others are held back for a
/// retry, since WeCom drops messages past it silently. Users WeCom names in `invaliduser` are
/// recorded as rejected; the others count as served.
async fn send_app(d: &Deliverer, env: &Envelope) -> Attempt {
    let (wh, ev) = (&env.webhook, &env.event);
    let (app, to, mut progress) = match d.prepare_app(env) {
        Ok(p) => (p.app, p.to, p.progress),
        Err(outcome) => return Attempt::failed_before_send(outcome),
    };
    let remaining = progress.remaining(&to.userids);
    // Only the granted, and only those still to serve: a grant is made for the same bindings
    // and progress, so this is the grant in the attempt's order.
    let (granted, held): (Vec<&str>, &[(String, Duration)]) = match &env.members {
        Some(grant) => {
            let granted: std::collections::HashSet<&str> =
                grant.granted.iter().map(String::as_str).collect();
            (
                remaining
                    .into_iter()
                    .filter(|u| granted.contains(u))
                    .collect(),
                &grant.held,
            )
        }
        None => (remaining, &[]),
    };
    let r = match d.message(wh, ev, Markup::WeComApp) {
        Ok(r) => r,
        Err(e) => return Attempt::failed_before_send(Outcome::Dead(e)),
    };
    let mut last: Option<Attempt> = None;
    for chunk in granted.chunks(APP_CHUNK) {
        let body = chat::wecom_app_body(chunk, app.agent, &r.text);
        let call = Call::post(&app, "/cgi-bin/message/send", body);
        let sent = match d.call_app(&app, &call).await {
            Ok(sent) => sent,
            Err(mut failed) => {
                failed.progress = Some(progress.to_value());
                return failed;
            }
        };
        let reply = sent.reply(Platform::WeCom);
        let outcome = d.outcome_of(Platform::WeCom, &sent);
        let mut attempt = sent.into_attempt(Outcome::Delivered);
        match (&outcome, &reply) {
            (Outcome::Delivered, Some(reply)) => served(&mut progress, wh.id, chunk, reply),
            (Outcome::Dead(e), Some(reply)) if reply.code == Some(81013) => {
                // Every user of this call is invalid: record them, go on with the others.
                for u in chunk {
                    progress.reject(u, 81013, e);
                }
            }
            _ => {
                attempt.outcome = outcome;
                attempt.progress = Some(progress.to_value());
                return attempt;
            }
        }
        last = Some(attempt);
    }
    let mut attempt = last.unwrap_or_else(|| Attempt::failed_before_send(Outcome::Delivered));
    attempt.progress = Some(progress.to_value());
    attempt.outcome = app_outcome(&progress, held);
    attempt
}

/// A chunk WeCom accepted: the users it names in `invaliduser` are rejected, the others served.
fn served(progress: &mut Progress, webhook: u64, chunk: &[&str], reply: &Reply) {
    let invalid: Vec<String> = reply
        .field("invaliduser")
        .split('|')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect();
    for u in &invalid {
        progress.reject(u, 0, "WeCom invaliduser: not a valid member for this app");
    }
    if !invalid.is_empty() {
        tracing::warn!(
            webhook,
            invalid = invalid.join("|"),
            "WeCom refused some recipients"
        );
    }
    progress.serve(
        chunk
            .iter()
            .copied()
            .filter(|u| !invalid.iter().any(|i| i == u)),
    );
}

/// The outcome once every granted chunk went: a retry while members were held back for the
/// per-member limit, dead when every recipient was rejected, delivered otherwise.
fn app_outcome(progress: &Progress, held: &[(String, Duration)]) -> Outcome {
    if let Some(wait) = held.iter().map(|(_, w)| *w).min() {
        let names: Vec<&str> = held.iter().map(|(u, _)| u.as_str()).collect();
        Outcome::Retry {
            after: Some(wait),
            error: format!(
                "held back for WeCom's per-member limit (limits.wechatuser_member): {}",
                names.join(", ")
            ),
        }
    } else if progress.served.is_empty() && !progress.rejected.is_empty() {
        Outcome::Dead(format!(
            "every recipient was rejected: {}",
            progress.rejected_summary()
        ))
    } else {
        Outcome::Delivered
    }
}

/// Lists every department (`department/list` returns the whole tree) and the members of each
/// (`user/simplelist`), each user once.
pub(crate) async fn directory(d: &Deliverer, app: &App) -> Result<Vec<RemoteUser>, String> {
    let v = d
        .directory_call(app, &Call::get(app, "/cgi-bin/department/list"))
        .await
        .map_err(|e| format!("{e} (listing departments)"))?;
    let depts: Vec<(i64, String)> = v["department"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let id = d.get("id").and_then(reply::as_i64)?;
            let name = d.get("name").and_then(Value::as_str).unwrap_or("");
            Some((id, name.to_string()))
        })
        .collect();
    let mut users: BTreeMap<String, RemoteUser> = BTreeMap::new();
    let mut order = vec![];
    for (dept, dept_name) in depts {
        let url = with_query(
            &format!("{}/cgi-bin/user/simplelist", app.base),
            &[("department_id", &dept.to_string())],
        );
        let call = Call {
            method: reqwest::Method::GET,
            url,
            body: None,
        };
        let v = d
            .directory_call(app, &call)
            .await
            .map_err(|e| format!("{e} (listing the users of department {dept})"))?;
        for u in v["userlist"].as_array().into_iter().flatten() {
            let Some(userid) = u.get("userid").and_then(Value::as_str) else {
                continue;
            };
            let name = u.get("name").and_then(Value::as_str).unwrap_or("");
            super::dingtalk::add_user(
                &mut users,
                &mut order,
                userid,
                name,
                (&dept.to_string(), &dept_name),
            );
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|id| users.remove(&id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (HTTP status, body, expected kind, text expected in the error)
    const CASES: &[(u16, &str, &str, &str)] = &[
        (200, r#"{"errcode":0,"errmsg":"ok"}"#, "delivered", ""),
        (
            200,
            r#"{"errcode":0,"errmsg":"ok","invaliduser":"u9","msgid":"m"}"#,
            "delivered",
            "",
        ),
        (
            200,
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
            "retry-60s",
            "WeCom errcode 45009: api freq out of limit",
        ),
        (
            200,
            r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
            "dead",
            "WeCom errcode 93000: invalid webhook url",
        ),
        (
            200,
            r#"{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}"#,
            "dead",
            "size limit",
        ),
        (
            200,
            r#"{"errcode":81013,"errmsg":"user & party & tag all invalid"}"#,
            "dead",
            "errcode 81013",
        ),
        (
            200,
            r#"{"errcode":40013,"errmsg":"invalid corpid"}"#,
            "dead",
            "wechatCorpId",
        ),
        (
            200,
            r#"{"errcode":40001,"errmsg":"invalid credential"}"#,
            "dead",
            "wechatCorpSecret",
        ),
        (
            200,
            r#"{"errcode":60020,"errmsg":"not allow to access from your ip"}"#,
            "dead",
            "whitelist",
        ),
        (
            200,
            r#"{"errcode":-1,"errmsg":"system busy"}"#,
            "retry",
            "errcode -1",
        ),
        (
            200,
            r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
            "retry",
            "42001",
        ),
        (503, "", "retry", "HTTP 503"),
        (429, "", "retry", "HTTP 429"),
    ];

    fn kind(o: &Outcome) -> &'static str {
        match o {
            Outcome::Delivered => "delivered",
            Outcome::Retry { after: Some(a), .. } if *a == FREQ_LIMIT_WAIT => "retry-60s",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead(_) => "dead",
            Outcome::Skipped(_) => "skipped",
        }
    }

    #[test]
    fn classification_table() {
        let h = reqwest::header::HeaderMap::new();
        let mut failures = vec![];
        for (status, body, want, text) in CASES {
            let got = classify_wecom(*status, &h, body.as_bytes());
            let err = super::super::app::outcome_text(&got);
            if kind(&got) != *want || !err.contains(text) {
                failures.push(format!(
                    "{status} {body}: got {got:?}, want {want} containing {text:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
