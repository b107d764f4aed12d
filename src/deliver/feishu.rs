//! Lark/Feishu: the group bot (`feishugroup`) and app messages (`feishuuser`), per
//! docs/platforms.md. Lark and Feishu are one API on two hosts: the base comes from `[platforms]`
//! or the webhook's `apiBase` (app messages) and from the hook URL (bots).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::app::{with_query, App, AppFields, Call};
use super::channel::{app_route, bot_route, Channel, Envelope, Route};
use super::details::Markup;
use super::reply::{self, Platform, Reply, Rule};
use super::token::{Token, TokenFailure};
use super::{chat, sign, Attempt, Deliverer, Outcome, RemoteUser};
use crate::config::Config;
use crate::event::ActionEvent;
use crate::webhook::Webhook;

/// Directory page size (Lark's maximum for these endpoints).
const PAGE_SIZE: &str = "50";

/// A directory bigger than this many pages or departments is taken as a server looping.
const MAX_PAGES: usize = 100_000;

/// Codes that refuse one recipient of an app message, not the message: `230001` invalid
/// `receive_id`, `230013` the bot is not available to that user.
const RECIPIENT_CODES: [i64; 2] = [230001, 230013];

/// How long a Lark bot pauses after the platform says it is flooded (`11232`, or `9499` "too
/// many request"): its longest window is a minute (docs/platforms.md: 100 per minute), and sanhook's
/// own windows already keep within both, so a flood reply means someone else shares the bot;
/// sending again sooner would only be refused again. Cut to `delivery.max_retry_after`.
pub const THROTTLE_PAUSE: Duration = Duration::from_secs(60);

/// Whether a `9499` is Lark's flood answer ("too many request", HTTP 400 from a flooded bot)
/// rather than a bad request: the one code docs/platforms.md tells apart by its message.
fn is_flood(reply: &Reply) -> bool {
    reply.msg.to_ascii_lowercase().contains("too many request")
}

/// The group bot (`feishugroup`): a signed card, within `limits.feishugroup`, with digests.
pub struct Group;

impl Channel for Group {
    fn route(&self, wh: &Webhook, cfg: &Config) -> Route {
        bot_route(wh, &cfg.limits.feishugroup)
    }

    fn attempt<'a>(&'a self, d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt> {
        Box::pin(send_group(d, &env.webhook, &env.event))
    }

    fn has_digests(&self) -> bool {
        true
    }

    fn digest_body(&self, header: &str, lines: &[String], _mentions: &[String]) -> Option<Value> {
        let card = chat::feishu_card(header, &lines.join("\n"));
        Some(chat::feishu_group_body(card, None, None))
    }

    fn digest_size(&self, wh: &Webhook, body: &Value) -> (usize, usize) {
        // Measured signed: a 10-digit timestamp and a 44-character signature.
        let signed = group_body(wh, body["card"].clone(), 1_700_000_000);
        (signed.to_string().len(), chat::FEISHU_MAX_BYTES)
    }

    fn post_digest<'a>(
        &'a self,
        d: &'a Deliverer,
        wh: &'a Webhook,
        body: Value,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(post_group(d, wh, body["card"].clone()))
    }
}

/// App messages (`feishuuser`): one call per recipient, through the bindings.
pub struct AppMessage;

impl Channel for AppMessage {
    fn route(&self, wh: &Webhook, _cfg: &Config) -> Route {
        app_route(wh, [&wh.api_base, &wh.feishu_app_id])
    }

    fn attempt<'a>(&'a self, d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt> {
        Box::pin(send_app(d, env))
    }

    fn needs_bindings(&self) -> bool {
        true
    }

    fn app(&self, wh: &Webhook, cfg: &Config) -> Result<App, String> {
        App::from_fields(
            wh,
            AppFields {
                platform: Platform::Feishu,
                default_base: &cfg.platforms.feishu,
                id: &wh.feishu_app_id,
                secret: &wh.feishu_app_secret,
                agent: None,
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

/// What a Feishu/Lark code means (docs/platforms.md and Lark's generic code list).
pub fn rule(reply: &Reply, code: i64) -> Rule {
    match code {
        // The bot's rate limit: pause the bot, then retry.
        11232 => Rule::Retry(Some(THROTTLE_PAUSE)),
        9499 if is_flood(reply) => Rule::Retry(Some(THROTTLE_PAUSE)),
        // The app API's limit comes as HTTP 429 with its own wait (`x-ogw-ratelimit-reset`).
        99991400 => Rule::Retry(None),
        // Internal errors: try again.
        1500 | 1503 | 9999 => Rule::Retry(None),
        19021 => Rule::Dead(
            " — the bot refused the signature or timestamp: check the webhook's secret and this \
             host's clock",
        ),
        19022 => Rule::Dead(" — this server's IP is not on the bot's IP whitelist"),
        19024 => Rule::Dead(
            " — the message lacks the bot's keyword: add it or drop the bot's keyword check",
        ),
        19001 => Rule::Dead(" — the bot hook token is invalid: check the webhook's url"),
        9499 | 99992402 => Rule::Dead(" — Feishu refused the request's shape"),
        10003 | 10014 => Rule::Dead(" — check the webhook's feishuAppId and feishuAppSecret"),
        230001 => Rule::Dead(" — invalid receive_id (open_id)"),
        230013 => Rule::Dead(" — the app is not available to this user"),
        19036 | 230025 => Rule::TooLarge,
        99991661 | 99991663 | 99991664 | 99991671 => Rule::Token,
        _ => Rule::Unknown,
    }
}

/// Classifies a Feishu/Lark answer. HTTP 429 (code `99991400`) waits the seconds of
/// `x-ogw-ratelimit-reset`.
pub fn classify_feishu(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Outcome {
    let reply = Reply::read(Platform::Feishu, status, body);
    reply::classify(&reply, headers, rule)
}

/// Sends one group-bot message: the interactive card, signed in the body when the bot has a
/// secret.
pub(crate) async fn send_group(d: &Deliverer, wh: &Webhook, ev: &ActionEvent) -> Attempt {
    let r = match d.message(wh, ev, Markup::Lark) {
        Ok(r) => r,
        Err(e) => return Attempt::failed_before_send(Outcome::Dead(e)),
    };
    post_group(d, wh, chat::feishu_card(&r.title, &r.text)).await
}

/// The group-bot body for `card`, signed at `timestamp_s` when the bot has a secret.
pub(crate) fn group_body(wh: &Webhook, card: Value, timestamp_s: i64) -> Value {
    if wh.secret.is_empty() {
        chat::feishu_group_body(card, None, None)
    } else {
        let sign = sign::feishu_sign(&wh.secret, timestamp_s);
        chat::feishu_group_body(card, Some(timestamp_s), Some(sign))
    }
}

/// Posts a card to the webhook's bot, signed now.
pub(crate) async fn post_group(d: &Deliverer, wh: &Webhook, card: Value) -> Attempt {
    let body = group_body(wh, card, chrono::Utc::now().timestamp());
    let headers = vec![(
        "content-type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    let sent = d
        .post(&wh.url, headers, body.to_string().into_bytes())
        .await;
    let outcome = d.outcome_of(Platform::Feishu, &sent);
    sent.into_attempt(outcome)
}

/// `POST {feishu}/open-apis/auth/v3/tenant_access_token/internal`. The logged request shows
/// the app secret masked.
pub(crate) async fn fetch_token(d: &Deliverer, app: &App) -> Result<Token, TokenFailure> {
    let url = format!(
        "{}/open-apis/auth/v3/tenant_access_token/internal",
        app.base
    );
    let body = json!({ "app_id": app.id, "app_secret": app.secret });
    let headers = vec![(
        "content-type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    let mut sent = d.post(&url, headers, body.to_string().into_bytes()).await;
    sent.request.body = json!({ "app_id": app.id, "app_secret": crate::webhook::MASK }).to_string();
    d.token_from(Platform::Feishu, sent, "tenant_access_token", "expire")
}

/// Sends an app message to each bound recipient (one call per person), skipping those served
/// before. A recipient Lark refuses (`230001`) is recorded and the others still get theirs; a
/// rate limit stops the round and the retry goes on where it stopped.
async fn send_app(d: &Deliverer, env: &Envelope) -> Attempt {
    let (wh, ev) = (&env.webhook, &env.event);
    let (app, to, mut progress) = match d.prepare_app(env) {
        Ok(p) => (p.app, p.to, p.progress),
        Err(outcome) => return Attempt::failed_before_send(outcome),
    };
    let r = match d.message(wh, ev, Markup::Lark) {
        Ok(r) => r,
        Err(e) => return Attempt::failed_before_send(Outcome::Dead(e)),
    };
    let card = chat::feishu_card(&r.title, &r.text);
    let mut last: Option<Attempt> = None;
    for open_id in progress.remaining(&to.userids) {
        let url = with_query(
            &format!("{}/open-apis/im/v1/messages", app.base),
            &[("receive_id_type", "open_id")],
        );
        let call = Call {
            method: reqwest::Method::POST,
            url,
            body: Some(chat::feishu_app_body(open_id, &card)),
        };
        let sent = match d.call_app(&app, &call).await {
            Ok(sent) => sent,
            Err(mut failed) => {
                failed.progress = Some(progress.to_value());
                return failed;
            }
        };
        let reply = sent.reply(Platform::Feishu);
        let outcome = d.outcome_of(Platform::Feishu, &sent);
        let mut attempt = sent.into_attempt(Outcome::Delivered);
        match (&outcome, reply.as_ref().and_then(|r| r.code)) {
            (Outcome::Delivered, _) => progress.serve([open_id]),
            (Outcome::Dead(e), Some(code)) if RECIPIENT_CODES.contains(&code) => {
                tracing::warn!(webhook = wh.id, open_id, code, "Lark refused a recipient");
                progress.reject(open_id, code, e);
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
    attempt.outcome = if progress.served.is_empty() && !progress.rejected.is_empty() {
        Outcome::Dead(format!(
            "every recipient was rejected: {}",
            progress.rejected_summary()
        ))
    } else {
        Outcome::Delivered
    };
    attempt
}

/// Follows `page_token` until `has_more` is false, handing each page's `items` to `each`.
async fn paged(
    d: &Deliverer,
    app: &App,
    path: &str,
    query: &[(&str, &str)],
    what: &str,
    mut each: impl FnMut(&Value),
) -> Result<(), String> {
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("page_size", PAGE_SIZE));
        if !token.is_empty() {
            q.push(("page_token", &token));
        }
        let url = with_query(&format!("{}{path}", app.base), &q);
        let call = Call {
            method: reqwest::Method::GET,
            url,
            body: None,
        };
        let v = d
            .directory_call(app, &call)
            .await
            .map_err(|e| format!("{e} ({what})"))?;
        let data = &v["data"];
        for item in data["items"].as_array().into_iter().flatten() {
            each(item);
        }
        let more = data["has_more"].as_bool().unwrap_or(false);
        let next = data["page_token"].as_str().unwrap_or("");
        if !more {
            return Ok(());
        }
        if next.is_empty() || next == token {
            return Err(format!("{what}: has_more without a new page_token"));
        }
        token = next.to_string();
    }
    Err(format!("{what}: too many pages"))
}

/// Lists every department from the root (`0`) down and the users of each, all pages, each user
/// once. The `userid` is the `open_id`, which the message API takes.
pub(crate) async fn directory(d: &Deliverer, app: &App) -> Result<Vec<RemoteUser>, String> {
    let mut users: BTreeMap<String, RemoteUser> = BTreeMap::new();
    let mut order = vec![];
    let mut seen = HashSet::from(["0".to_string()]);
    let mut queue = VecDeque::from(["0".to_string()]);
    let mut names: HashMap<String, String> = HashMap::new();
    while let Some(dept) = queue.pop_front() {
        if seen.len() > MAX_PAGES {
            return Err("more than 100000 departments; giving up (is the server looping?)".into());
        }
        let mut children = vec![];
        paged(
            d,
            app,
            &format!("/open-apis/contact/v3/departments/{dept}/children"),
            &[],
            &format!("listing the sub-departments of {dept}"),
            |item| {
                let id = item
                    .get("open_department_id")
                    .and_then(Value::as_str)
                    .or_else(|| item.get("department_id").and_then(Value::as_str));
                if let Some(id) = id {
                    if let Some(name) = item.get("name").and_then(Value::as_str) {
                        names.insert(id.to_string(), name.to_string());
                    }
                    children.push(id.to_string());
                }
            },
        )
        .await?;
        for c in children {
            if seen.insert(c.clone()) {
                queue.push_back(c);
            }
        }
        let dept_name = names.get(&dept).cloned().unwrap_or_default();
        paged(
            d,
            app,
            "/open-apis/contact/v3/users/find_by_department",
            &[("department_id", &dept)],
            &format!("listing the users of department {dept}"),
            |item| {
                let Some(open_id) = item.get("open_id").and_then(Value::as_str) else {
                    return;
                };
                let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                super::dingtalk::add_user(
                    &mut users,
                    &mut order,
                    open_id,
                    name,
                    (&dept, &dept_name),
                );
            },
        )
        .await?;
    }
    Ok(order
        .into_iter()
        .filter_map(|id| users.remove(&id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (HTTP status, reset header, body, expected kind, text expected in the error)
    const CASES: &[(u16, Option<&str>, &str, &str, &str)] = &[
        (200, None, r#"{"code":0,"msg":"success"}"#, "delivered", ""),
        (
            200,
            None,
            r#"{"code":0,"data":{"message_id":"om_1"}}"#,
            "delivered",
            "",
        ),
        (
            200,
            None,
            r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
            "dead",
            "Feishu code 19021: sign match fail",
        ),
        (
            200,
            None,
            r#"{"code":19022,"msg":"Ip Not Allowed"}"#,
            "dead",
            "19022",
        ),
        (
            200,
            None,
            r#"{"code":19024,"msg":"Key Words Not Found"}"#,
            "dead",
            "keyword",
        ),
        (
            200,
            None,
            r#"{"code":11232,"msg":"frequency limited"}"#,
            "retry-pause",
            "code 11232",
        ),
        // A flooded bot (issue 8): HTTP 400, 9499 "too many request" is its rate limit.
        (
            400,
            None,
            r#"{"code":9499,"msg":"too many request","data":{}}"#,
            "retry-pause",
            "code 9499: too many request",
        ),
        (
            200,
            None,
            r#"{"code":9499,"msg":"Too Many Requests"}"#,
            "retry-pause",
            "code 9499",
        ),
        // Any other 9499 is a bad request: permanent.
        (
            400,
            None,
            r#"{"code":9499,"msg":"Bad Request"}"#,
            "dead",
            "code 9499: Bad Request",
        ),
        (
            200,
            None,
            r#"{"code":9499,"msg":"Bad Request: msg_type must be interactive"}"#,
            "dead",
            "refused the request's shape",
        ),
        (
            200,
            None,
            r#"{"code":19036,"msg":"message too large"}"#,
            "dead",
            "size limit",
        ),
        (
            400,
            None,
            r#"{"code":230001,"msg":"Your request contains an invalid request parameter, ext=invalid receive_id"}"#,
            "dead",
            "code 230001",
        ),
        (
            429,
            Some("7"),
            r#"{"code":99991400,"msg":"request trigger frequency limit"}"#,
            "retry-7s",
            "99991400",
        ),
        (429, None, "", "retry", "HTTP 429"),
        (
            400,
            None,
            r#"{"code":10014,"msg":"app secret invalid"}"#,
            "dead",
            "feishuAppSecret",
        ),
        (
            400,
            None,
            r#"{"code":99991663,"msg":"Invalid access token for authorization"}"#,
            "retry",
            "rejected even after a refresh",
        ),
        (500, None, "", "retry", "HTTP 500"),
    ];

    fn kind(o: &Outcome) -> &'static str {
        match o {
            Outcome::Delivered => "delivered",
            Outcome::Retry { after: Some(a), .. } if *a == Duration::from_secs(7) => "retry-7s",
            Outcome::Retry { after: Some(a), .. } if *a == THROTTLE_PAUSE => "retry-pause",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead(_) => "dead",
            Outcome::Skipped(_) => "skipped",
        }
    }

    #[test]
    fn classification_table() {
        let mut failures = vec![];
        for (status, reset, body, want, text) in CASES {
            let mut h = reqwest::header::HeaderMap::new();
            if let Some(r) = reset {
                h.insert("x-ogw-ratelimit-reset", r.parse().expect("header"));
            }
            let got = classify_feishu(*status, &h, body.as_bytes());
            let err = super::super::app::outcome_text(&got);
            if kind(&got) != *want || !err.contains(text) {
                failures.push(format!(
                    "{status} {body}: got {got:?}, want {want} containing {text:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn retry_after_is_not_the_lark_header() {
        // Lark names its wait x-ogw-ratelimit-reset; Retry-After is only a fallback.
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().expect("header"));
        h.insert("x-ogw-ratelimit-reset", "9".parse().expect("header"));
        assert!(matches!(
            classify_feishu(429, &h, b"{}"),
            Outcome::Retry { after: Some(a), .. } if a == Duration::from_secs(9)
        ));
    }
}
