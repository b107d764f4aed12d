//! What the three app-message types share: credentials, where the API lives, and calls made
//! with a cached access token that is refreshed and retried once when the platform rejects it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::channel::{channel, Envelope};
use super::reply::{Platform, Reply};
use super::token::{token_key, Token, TokenFailure};
use super::{dingtalk, feishu, wecom, Attempt, Deliverer, Outcome, Sent};
use crate::config::Config;
use crate::webhook::Webhook;

/// A token response without a lifetime is taken to live this long, and one stating a longer
/// lifetime is cut to it (the platforms' documented maximum).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);

/// The lifetime a token response states in seconds (`expires_in`, Lark's `expire`), bounded:
/// a reply can say anything, and a token kept for "18446744073709551615 s" would never be
/// refreshed before it fails.
fn token_lifetime(secs: Option<i64>) -> Duration {
    match secs {
        Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()).min(DEFAULT_TOKEN_LIFETIME),
        _ => DEFAULT_TOKEN_LIFETIME,
    }
}

/// The credentials of an app-message webhook and the API base to use. `Debug` masks the secret.
#[derive(Clone)]
pub struct App {
    pub platform: Platform,
    /// `apiBase` of the webhook, else `[platforms]`; no trailing slash.
    pub base: String,
    /// `appKey` (DingTalk), `wechatCorpId` (WeCom), `feishuAppId` (Feishu).
    pub id: String,
    /// `appSecret`, `wechatCorpSecret`, `feishuAppSecret`.
    pub secret: String,
    /// `agentId` / `wechatAgentId` as the integer the APIs want (0 for Feishu).
    pub agent: u64,
    /// The token cache key of this credential set.
    pub key: String,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("platform", &self.platform)
            .field("base", &crate::mask::url(&self.base))
            .field("id", &self.id)
            .field("secret", &crate::mask::MASK)
            .field("agent", &self.agent)
            .field("key", &crate::mask::text(&self.key))
            .finish()
    }
}

/// The fields of a credential set as one kind names them (its [`super::Channel::app`]).
pub(crate) struct AppFields<'a> {
    pub platform: Platform,
    /// `[platforms]`' base for this platform, used when the webhook has no `apiBase`.
    pub default_base: &'a str,
    pub id: &'a str,
    pub secret: &'a str,
    /// The agent id and the name of its field (for the error); `None` where there is none.
    pub agent: Option<(&'a str, &'static str)>,
}

impl App {
    /// The app of `wh`; `Err` names the field that is wrong (webhooks are validated on input,
    /// so this only fails for a type that has no app).
    pub fn of(wh: &Webhook, cfg: &Config) -> Result<App, String> {
        channel(wh.kind).app(wh, cfg)
    }

    /// The app from the fields its kind names.
    pub(crate) fn from_fields(wh: &Webhook, f: AppFields) -> Result<App, String> {
        let agent = match f.agent {
            None => 0,
            Some((agent, field)) => agent.trim().parse::<u64>().map_err(|_| {
                format!(
                    "{field} of webhook {} must be a number, got {agent:?}",
                    wh.id
                )
            })?,
        };
        let base = if wh.api_base.is_empty() {
            f.default_base
        } else {
            wh.api_base.as_str()
        };
        let base = base.trim_end_matches('/').to_string();
        Ok(App {
            platform: f.platform,
            key: token_key(f.platform.name(), &base, f.id.trim(), f.secret),
            base,
            id: f.id.trim().to_string(),
            secret: f.secret.to_string(),
            agent,
        })
    }
}

/// `true` for the codes that say the access token is no good (docs/platforms.md): refresh, retry once.
pub(crate) fn token_invalid(platform: Platform, code: i64) -> bool {
    match platform {
        Platform::DingTalk | Platform::WeCom => matches!(code, 40014 | 42001),
        Platform::Feishu => matches!(code, 99991661 | 99991663 | 99991664 | 99991671),
    }
}

/// A call to an app API, before the token is added.
pub(crate) struct Call {
    pub method: reqwest::Method,
    /// The full URL without the token.
    pub url: String,
    /// The JSON body (POST); `None` for GET.
    pub body: Option<Value>,
}

impl Call {
    /// A GET of `path` under the app's base.
    pub fn get(app: &App, path: &str) -> Call {
        Call {
            method: reqwest::Method::GET,
            url: format!("{}{path}", app.base),
            body: None,
        }
    }

    /// A POST of `body` to `path` under the app's base.
    pub fn post(app: &App, path: &str, body: Value) -> Call {
        Call {
            method: reqwest::Method::POST,
            url: format!("{}{path}", app.base),
            body: Some(body),
        }
    }
}

/// Appends `key=value` to a URL's query, encoding the value.
pub(crate) fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(pairs);
            u.to_string()
        }
        // Not a URL: the request will fail and say so; keep the text for the error.
        Err(_) => url.to_string(),
    }
}

/// Puts an outcome's error behind `prefix` (so a token failure reads as one).
fn prefixed(outcome: Outcome, prefix: &str) -> Outcome {
    match outcome {
        Outcome::Retry { after, error } => Outcome::Retry {
            after,
            error: format!("{prefix}{error}"),
        },
        Outcome::Dead(e) => Outcome::Dead(format!("{prefix}{e}")),
        other => other,
    }
}

/// What every app-message send starts from: the credentials, the recipients (the event's
/// `toList` minus the actor, through the bindings) and what earlier attempts served.
pub(crate) struct Prepared {
    pub app: App,
    pub to: super::recipients::Recipients,
    pub progress: super::recipients::Progress,
}

impl Deliverer {
    /// Resolves credentials and recipients for an app-message send from what dispatch passed
    /// in; the `Err` is the outcome to report when there is nothing to send (bad credentials:
    /// dead; nobody bound: skipped).
    pub(crate) fn prepare_app(&self, env: &Envelope) -> Result<Prepared, Outcome> {
        let app = App::of(&env.webhook, &self.cfg).map_err(Outcome::Dead)?;
        let to = super::recipients::resolve(&env.event, &env.bindings, env.webhook.id)
            .map_err(Outcome::Skipped)?;
        Ok(Prepared {
            app,
            to,
            progress: super::recipients::Progress::from_value(env.progress.as_ref()),
        })
    }
}

impl Deliverer {
    /// Classifies an answer of `platform` with that platform's rules.
    pub(crate) fn classify(
        &self,
        platform: Platform,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Outcome {
        match platform {
            Platform::DingTalk => {
                dingtalk::classify_dingtalk(status, body, self.cfg.limits.dingtalk_throttle)
            }
            Platform::WeCom => wecom::classify_wecom(status, headers, body),
            Platform::Feishu => feishu::classify_feishu(status, headers, body),
        }
    }

    /// The outcome of one sent request of `platform`.
    pub(crate) fn outcome_of(&self, platform: Platform, sent: &Sent) -> Outcome {
        sent.outcome(platform, |s, h, b| self.classify(platform, s, h, b))
    }

    /// Reads a token response: `token_field` and `life_field` (seconds) on success.
    pub(crate) fn token_from(
        &self,
        platform: Platform,
        sent: Sent,
        token_field: &str,
        life_field: &str,
    ) -> Result<Token, TokenFailure> {
        const PREFIX: &str = "could not get an access token: ";
        let Some(reply) = sent.reply(platform) else {
            let outcome = prefixed(self.outcome_of(platform, &sent), PREFIX);
            return Err(TokenFailure(Box::new(sent.into_attempt(outcome))));
        };
        if reply.is_ok() {
            let value = reply.field(token_field);
            if !value.is_empty() {
                let secs = reply
                    .json
                    .as_ref()
                    .and_then(|j| j.get(life_field))
                    .and_then(super::reply::as_i64);
                return Ok(Token {
                    value,
                    lifetime: token_lifetime(secs),
                });
            }
            let outcome = Outcome::Retry {
                after: None,
                error: format!(
                    "{PREFIX}{} answered {} 0 without {token_field}",
                    platform.name(),
                    reply.describe()
                ),
            };
            return Err(TokenFailure(Box::new(sent.into_attempt(outcome))));
        }
        let outcome = prefixed(self.outcome_of(platform, &sent), PREFIX);
        Err(TokenFailure(Box::new(sent.into_attempt(outcome))))
    }

    /// The cached token of `app`, fetched when there is none (one fetch for all concurrent
    /// callers). `Err` is the failed token call as an attempt for the log.
    pub(crate) async fn token(&self, app: &App) -> Result<Arc<Token>, Attempt> {
        if self.is_preview() {
            return Ok(Arc::new(Token {
                value: crate::webhook::MASK.into(),
                lifetime: std::time::Duration::ZERO,
            }));
        }
        self.tokens
            .get(&app.key, async {
                match app.platform {
                    Platform::DingTalk => dingtalk::fetch_token(self, app).await,
                    Platform::WeCom => wecom::fetch_token(self, app).await,
                    Platform::Feishu => feishu::fetch_token(self, app).await,
                }
            })
            .await
            .map_err(|failure| (*failure.0).clone())
    }

    /// Makes `call` with the app's token. When the platform says the token is invalid, the
    /// token is dropped, a new one fetched and the call made once more. `Err` is a failed token
    /// call.
    pub(crate) async fn call_app(&self, app: &App, call: &Call) -> Result<Sent, Attempt> {
        self.call_app_limited(app, call, super::RESPONSE_MAX).await
    }

    /// [`Deliverer::call_app`], reading at most `max_response` bytes of the answer.
    async fn call_app_limited(
        &self,
        app: &App,
        call: &Call,
        max_response: usize,
    ) -> Result<Sent, Attempt> {
        let body = call
            .body
            .as_ref()
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
        let mut refreshed = false;
        loop {
            let token = self.token(app).await?;
            let mut headers = vec![];
            if call.body.is_some() {
                headers.push((
                    "content-type".to_string(),
                    "application/json; charset=utf-8".to_string(),
                ));
            }
            let url = match app.platform {
                Platform::DingTalk | Platform::WeCom => {
                    with_query(&call.url, &[("access_token", &token.value)])
                }
                Platform::Feishu => {
                    headers.push(("authorization".into(), format!("Bearer {}", token.value)));
                    call.url.clone()
                }
            };
            let sent = self
                .request_limited(
                    call.method.clone(),
                    &url,
                    headers,
                    body.clone(),
                    max_response,
                )
                .await;
            let rejected = sent
                .reply(app.platform)
                .and_then(|r: Reply| r.code)
                .is_some_and(|c| token_invalid(app.platform, c));
            if rejected && !refreshed {
                tracing::info!(
                    platform = app.platform.name(),
                    "access token rejected; refreshing it and retrying once"
                );
                self.tokens.invalidate_if(&app.key, &token).await;
                refreshed = true;
                continue;
            }
            return Ok(sent);
        }
    }

    /// Makes a directory call and returns its JSON body, or the error text (token, transport or
    /// platform error, with the platform's code).
    pub(crate) async fn directory_call(&self, app: &App, call: &Call) -> Result<Value, String> {
        let sent = self
            .call_app_limited(app, call, super::DIRECTORY_RESPONSE_MAX)
            .await
            .map_err(|a| outcome_text(&a.outcome))?;
        match sent.reply(app.platform) {
            Some(reply) if reply.is_ok() => Ok(reply.json.unwrap_or(Value::Null)),
            _ => Err(outcome_text(&self.outcome_of(app.platform, &sent))),
        }
    }
}

/// The error text of an outcome.
pub(crate) fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Retry { error, .. } => error.clone(),
        Outcome::Dead(e) | Outcome::Skipped(e) => e.clone(),
        Outcome::Delivered => "delivered".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::WebhookType;

    #[test]
    fn app_of_webhook_uses_api_base_and_integer_agent() {
        let cfg = Config::from_toml_str("").expect("defaults");
        let wh = Webhook {
            id: 7,
            kind: WebhookType::Wechatuser,
            wechat_corp_id: "corp".into(),
            wechat_corp_secret: "s".into(),
            wechat_agent_id: " 1000002 ".into(),
            ..Webhook::default()
        };
        let app = App::of(&wh, &cfg).expect("app");
        assert_eq!(app.base, "https://qyapi.weixin.qq.com");
        assert_eq!(app.agent, 1000002);
        let lark = Webhook {
            kind: WebhookType::Feishuuser,
            feishu_app_id: "cli".into(),
            feishu_app_secret: "s".into(),
            api_base: "https://open.larksuite.com/".into(),
            ..Webhook::default()
        };
        assert_eq!(
            App::of(&lark, &cfg).expect("lark").base,
            "https://open.larksuite.com"
        );
        assert!(App::of(&Webhook::default(), &cfg).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let cfg = Config::from_toml_str("").expect("defaults");
        let wh = Webhook {
            id: 7,
            name: "app".into(),
            kind: WebhookType::Wechatuser,
            url: "https://h/x?key=url-key-1".into(),
            wechat_corp_id: "corp".into(),
            wechat_corp_secret: "corp-secret-1".into(),
            wechat_agent_id: "1000002".into(),
            api_base: "https://u:base-pw-1@qy.example.com".into(),
            secret: "sign-secret-1".into(),
            ..Webhook::default()
        };
        let app = App::of(&wh, &cfg).expect("app");
        let route = channel(WebhookType::Wechatgroup).route(&wh, &cfg);
        let token = Token {
            value: "token-1".into(),
            lifetime: Duration::from_secs(1),
        };
        let shown = format!("{wh:?} {app:?} {route:?} {token:?}");
        for secret in [
            "url-key-1",
            "corp-secret-1",
            "base-pw-1",
            "sign-secret-1",
            "token-1",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("corp") && shown.contains("1000002"),
            "{shown}"
        );
    }

    #[test]
    fn token_lifetimes_are_bounded() {
        let s = Duration::from_secs;
        assert_eq!(token_lifetime(Some(600)), s(600));
        assert_eq!(token_lifetime(Some(7200)), s(7200));
        assert_eq!(token_lifetime(Some(i64::MAX)), s(7200));
        assert_eq!(token_lifetime(Some(0)), s(7200));
        assert_eq!(token_lifetime(Some(-5)), s(7200));
        assert_eq!(token_lifetime(None), s(7200));
    }

    #[test]
    fn token_codes() {
        assert!(token_invalid(Platform::WeCom, 42001));
        assert!(token_invalid(Platform::DingTalk, 40014));
        assert!(token_invalid(Platform::Feishu, 99991663));
        assert!(!token_invalid(Platform::Feishu, 40014));
        assert!(!token_invalid(Platform::WeCom, 40001));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query(
                "http://h/gettoken",
                &[("appkey", "a b"), ("appsecret", "x+/=")]
            ),
            "http://h/gettoken?appkey=a+b&appsecret=x%2B%2F%3D"
        );
    }
}
