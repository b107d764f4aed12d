//! Webhooks as users configure them (field names follow Sanplex's `zt_webhook`, docs/reference.md §4).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a secret looks like in every response: secrets are write-only.
pub use crate::mask::MASK;

/// Trigger settings: `{objectType: [action, ...]}`.
pub type Triggers = BTreeMap<String, Vec<String>>;

/// The seven webhook types Sanplex knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookType {
    /// Custom JSON to any URL ("Others" in Sanplex).
    #[default]
    Default,
    Dinggroup,
    Dinguser,
    Wechatgroup,
    Wechatuser,
    Feishugroup,
    Feishuuser,
}

impl WebhookType {
    /// Every type, in Sanplex's order.
    pub const ALL: [WebhookType; 7] = [
        WebhookType::Default,
        WebhookType::Dinggroup,
        WebhookType::Dinguser,
        WebhookType::Wechatgroup,
        WebhookType::Wechatuser,
        WebhookType::Feishugroup,
        WebhookType::Feishuuser,
    ];

    /// The wire name (`default`, `dinggroup`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookType::Default => "default",
            WebhookType::Dinggroup => "dinggroup",
            WebhookType::Dinguser => "dinguser",
            WebhookType::Wechatgroup => "wechatgroup",
            WebhookType::Wechatuser => "wechatuser",
            WebhookType::Feishugroup => "feishugroup",
            WebhookType::Feishuuser => "feishuuser",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<WebhookType> {
        WebhookType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Group-bot and `default` types post to the webhook's own `url`.
    pub fn needs_url(self) -> bool {
        matches!(
            self,
            WebhookType::Default
                | WebhookType::Dinggroup
                | WebhookType::Wechatgroup
                | WebhookType::Feishugroup
        )
    }

    /// Work/app-message types send to bound users.
    pub fn is_app(self) -> bool {
        matches!(
            self,
            WebhookType::Dinguser | WebhookType::Wechatuser | WebhookType::Feishuuser
        )
    }
}

impl fmt::Display for WebhookType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a webhook's deliveries are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SendType {
    /// As soon as the delivery is committed.
    #[default]
    Sync,
    /// At the next `async_interval` flush (or `POST /api/v1/outbox/flush`).
    Async,
}

/// The payload keys a `default` webhook may send, in Sanplex's fixed order.
pub const DEFAULT_PARAMS: [&str; 10] = [
    "objectType",
    "objectID",
    "product",
    "project",
    "execution",
    "action",
    "actor",
    "date",
    "comment",
    "text",
];

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One webhook. Secrets are kept in clear here; [`Webhook::masked`] is what the API shows, and
/// what `Debug` prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "name": "ci", "type": "default", "url": "http://127.0.0.1:9/hook", "products": [1],
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
}))]
#[schema(
    description = "A webhook (field names follow Sanplex's `zt_webhook`). Secrets are \
    write-only: answers show them as `******`, and a PUT that sends `******` keeps the stored one."
)]
pub struct Webhook {
    /// Assigned by the store; ignored on input.
    #[serde(default)]
    pub id: u64,
    /// Required (not blank).
    #[serde(default)]
    #[schema(required = true, min_length = 1, pattern = r"\S")]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: WebhookType,
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_secret: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wechat_corp_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wechat_corp_secret: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wechat_agent_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub feishu_app_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub feishu_app_secret: String,
    /// Overrides the `[platforms]` base for app-message types.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_base: String,
    /// Base URL for object links in this webhook's messages.
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub send_type: SendType,
    /// Empty = all products.
    #[serde(default)]
    pub products: Vec<u64>,
    /// Empty = all executions.
    #[serde(default)]
    pub executions: Vec<u64>,
    /// `default` type only: payload keys; empty = all of them.
    #[serde(default)]
    pub params: Vec<String>,
    /// `default` type only: the Content-Type header; empty = `application/json`.
    #[serde(default)]
    pub content_type: String,
    /// Per-webhook trigger list `{objectType: [action, ...]}`; absent or null: the global
    /// trigger settings; `{}`: nothing fires.
    #[serde(default)]
    #[schema(inline)]
    pub actions: Option<Triggers>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub desc: String,
    /// The `zt_webhook` row this webhook was imported from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanplex_id: Option<u64>,
    /// Set when a webhook is deleted: kept only so that in-flight deliveries can say why they stop.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schema(ignore)]
    pub deleted: bool,
    /// MiniJinja templates replacing the built-in title/text (chat types) or body (`default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// Chat types: append the action's changes and comment to the message.
    #[serde(default)]
    pub details: bool,
    /// Actions by these accounts never fire this webhook.
    #[serde(default)]
    pub ignore_actors: Vec<String>,
    /// Read-only: why sanhook disabled this webhook itself (`delivery.disable_after`); cleared
    /// when it is enabled again.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub disabled_reason: String,
}

impl fmt::Debug for Webhook {
    /// The webhook as the API shows it: secrets and URL credentials masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(&self.masked()) {
            Ok(json) => write!(f, "Webhook {json}"),
            Err(_) => write!(f, "Webhook {{ id: {}, .. }}", self.id),
        }
    }
}

/// A webhook's own message templates (docs/reference.md §4 `template`): `title`/`text` for chat types,
/// `body` for `default`; an empty one means the built-in one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
}

/// The most accounts `ignoreActors` may list.
pub const MAX_IGNORED_ACTORS: usize = 1000;

impl Default for Webhook {
    /// An enabled, sync `default` webhook with every other field empty.
    fn default() -> Webhook {
        Webhook {
            id: 0,
            name: String::new(),
            kind: WebhookType::Default,
            url: String::new(),
            secret: String::new(),
            agent_id: String::new(),
            app_key: String::new(),
            app_secret: String::new(),
            wechat_corp_id: String::new(),
            wechat_corp_secret: String::new(),
            wechat_agent_id: String::new(),
            feishu_app_id: String::new(),
            feishu_app_secret: String::new(),
            api_base: String::new(),
            domain: String::new(),
            send_type: SendType::Sync,
            products: vec![],
            executions: vec![],
            params: vec![],
            content_type: String::new(),
            actions: None,
            enabled: true,
            desc: String::new(),
            sanplex_id: None,
            deleted: false,
            template: None,
            details: false,
            ignore_actors: vec![],
            disabled_reason: String::new(),
        }
    }
}

impl Webhook {
    /// The secret fields, for masking and keep-on-`"******"` handling.
    fn secrets_mut(&mut self) -> [&mut String; 4] {
        [
            &mut self.secret,
            &mut self.app_secret,
            &mut self.wechat_corp_secret,
            &mut self.feishu_app_secret,
        ]
    }

    /// A copy with every secret replaced by [`MASK`], and the credentials inside its URLs (a
    /// bot's `access_token` or `key`, a Lark hook token, a password) masked.
    pub fn masked(&self) -> Webhook {
        let mut w = self.clone();
        for s in w.secrets_mut() {
            if !s.is_empty() {
                *s = MASK.to_string();
            }
        }
        w.url = crate::mask::url(&w.url);
        w.api_base = crate::mask::url(&w.api_base);
        w.domain = crate::mask::url(&w.domain);
        w
    }

    /// On PUT: a secret sent as `"******"` keeps the stored value, and so does a URL sent as
    /// the API shows it (its credentials masked).
    ///
    /// An app type's secret goes to its platform's token endpoint, so a masked one is kept only
    /// while that place stays the same: the same `type`, `apiBase` and app id / corp id.
    /// Otherwise it is an error naming the secret ("send the secret again"): the stored secret
    /// must never follow a webhook to a host it was not written for. Signing secrets (`secret`)
    /// never leave sanhook and are kept whatever changed. A URL that still holds a masked
    /// credential but is not the stored URL is an error too.
    pub fn keep_masked_secrets(&mut self, stored: &Webhook) -> Result<(), ValidationError> {
        if self.secret == MASK {
            self.secret = stored.secret.clone();
        }
        self.keep_masked_urls(stored)?;
        self.keep_masked_app_secrets(stored)
    }

    /// URLs that still show a masked credential: the stored URL, if that is what it masks.
    fn keep_masked_urls(&mut self, stored: &Webhook) -> Result<(), ValidationError> {
        for (field, fixed, stored_url) in [
            ("url", &mut self.url, &stored.url),
            ("apiBase", &mut self.api_base, &stored.api_base),
            ("domain", &mut self.domain, &stored.domain),
        ] {
            if !fixed.contains(MASK) {
                continue;
            }
            if *fixed == crate::mask::url(stored_url) {
                fixed.clone_from(stored_url);
            } else {
                return Err(ValidationError {
                    field,
                    message: format!(
                        "{field} holds a masked credential ({MASK}) but is not the stored \
                         {field}: send the whole {field} again, credentials included"
                    ),
                });
            }
        }
        Ok(())
    }

    /// App secrets sent masked: kept while they go to the same place (type, apiBase, app id).
    fn keep_masked_app_secrets(&mut self, stored: &Webhook) -> Result<(), ValidationError> {
        let base = |b: &str| b.trim().trim_end_matches('/').to_string();
        let same_base = self.kind == stored.kind && base(&self.api_base) == base(&stored.api_base);
        let apps = [
            (
                "appSecret",
                "appKey",
                &mut self.app_secret,
                &self.app_key,
                &stored.app_secret,
                &stored.app_key,
                WebhookType::Dinguser,
            ),
            (
                "wechatCorpSecret",
                "wechatCorpId",
                &mut self.wechat_corp_secret,
                &self.wechat_corp_id,
                &stored.wechat_corp_secret,
                &stored.wechat_corp_id,
                WebhookType::Wechatuser,
            ),
            (
                "feishuAppSecret",
                "feishuAppId",
                &mut self.feishu_app_secret,
                &self.feishu_app_id,
                &stored.feishu_app_secret,
                &stored.feishu_app_id,
                WebhookType::Feishuuser,
            ),
        ];
        for (field, id_field, secret, id, stored_secret, stored_id, uses) in apps {
            if *secret != MASK {
                continue;
            }
            if same_base && id.trim() == stored_id.trim() {
                secret.clone_from(stored_secret);
                continue;
            }
            if self.kind != uses {
                // Not this type's secret: nothing would use it, and it must not be kept for a
                // place it was not written for.
                secret.clear();
                continue;
            }
            let mut changed = vec![];
            if self.kind != stored.kind {
                changed.push("type");
            }
            if base(&self.api_base) != base(&stored.api_base) {
                changed.push("apiBase");
            }
            if id.trim() != stored_id.trim() {
                changed.push(id_field);
            }
            return Err(ValidationError {
                field,
                message: format!(
                    "{field} is masked ({MASK}) but {} changed: send the secret again (a \
                     stored secret is only kept while it goes to the same place)",
                    changed.join(", ")
                ),
            });
        }
        Ok(())
    }

    /// The payload keys this webhook sends (`default` type), in Sanplex's order, `text` always.
    pub fn payload_keys(&self) -> Vec<&'static str> {
        DEFAULT_PARAMS
            .iter()
            .copied()
            .filter(|k| {
                *k == "text" || self.params.is_empty() || self.params.iter().any(|p| p == k)
            })
            .collect()
    }

    /// Checks the rules of docs/reference.md §4; the error names the field and what to do.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let err = |field: &'static str, message: String| Err(ValidationError { field, message });
        if self.name.trim().is_empty() {
            return err("name", "name is required".into());
        }
        if self.kind.needs_url() {
            if self.url.trim().is_empty() {
                return err("url", format!("url is required for type {}", self.kind));
            }
            match reqwest::Url::parse(&self.url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => {
                    return err(
                        "url",
                        format!(
                            "url {:?} is not an absolute http:// or https:// URL",
                            crate::mask::url(&self.url)
                        ),
                    )
                }
            }
        }
        self.validate_credentials()?;
        if self.kind == WebhookType::Dinggroup && self.send_type == SendType::Async {
            return err(
                "sendType",
                "dinggroup webhooks are always sync (DingTalk group bot delivery cannot be changed to async)".into(),
            );
        }
        self.validate_addresses()?;
        self.validate_lists()?;
        if let Some(t) = &self.template {
            self.validate_template(t)?;
        }
        Ok(())
    }

    /// Each type's required fields, and the agent ids that must be numbers.
    fn validate_credentials(&self) -> Result<(), ValidationError> {
        let err = |field: &'static str, message: String| Err(ValidationError { field, message });
        let required: &[(&'static str, &String)] = match self.kind {
            WebhookType::Dinguser => &[
                ("agentId", &self.agent_id),
                ("appKey", &self.app_key),
                ("appSecret", &self.app_secret),
            ],
            WebhookType::Wechatuser => &[
                ("wechatCorpId", &self.wechat_corp_id),
                ("wechatCorpSecret", &self.wechat_corp_secret),
                ("wechatAgentId", &self.wechat_agent_id),
            ],
            WebhookType::Feishuuser => &[
                ("feishuAppId", &self.feishu_app_id),
                ("feishuAppSecret", &self.feishu_app_secret),
            ],
            _ => &[],
        };
        for (field, value) in required {
            if value.trim().is_empty() {
                return err(field, format!("{field} is required for type {}", self.kind));
            }
        }
        for (field, value) in [
            ("agentId", &self.agent_id),
            ("wechatAgentId", &self.wechat_agent_id),
        ] {
            if !value.is_empty() && value.trim().parse::<u64>().is_err() {
                return err(field, format!("{field} must be a number, got {value:?}"));
            }
        }
        Ok(())
    }

    /// `apiBase` (app types only) and `domain`: absolute URLs.
    fn validate_addresses(&self) -> Result<(), ValidationError> {
        let err = |field: &'static str, message: String| Err(ValidationError { field, message });
        if !self.api_base.is_empty() {
            if !self.kind.is_app() {
                return err(
                    "apiBase",
                    format!(
                        "apiBase applies to app-message types only, not {}",
                        self.kind
                    ),
                );
            }
            let http = reqwest::Url::parse(&self.api_base).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            });
            if !http {
                return err(
                    "apiBase",
                    format!(
                        "apiBase {:?} is not an absolute http:// or https:// URL",
                        crate::mask::url(&self.api_base)
                    ),
                );
            }
        }
        if !self.domain.is_empty() && reqwest::Url::parse(&self.domain).is_err() {
            return err(
                "domain",
                format!(
                    "domain {:?} is not an absolute URL",
                    crate::mask::url(&self.domain)
                ),
            );
        }
        Ok(())
    }

    /// `params` (type default only, known keys) and `ignoreActors` (bounded, no blanks).
    fn validate_lists(&self) -> Result<(), ValidationError> {
        let err = |field: &'static str, message: String| Err(ValidationError { field, message });
        if self.kind == WebhookType::Default {
            for p in &self.params {
                if !DEFAULT_PARAMS.contains(&p.as_str()) {
                    return err(
                        "params",
                        format!(
                            "unknown param {p:?}; allowed: {}",
                            DEFAULT_PARAMS.join(", ")
                        ),
                    );
                }
            }
        } else if !self.params.is_empty() {
            return err(
                "params",
                format!("params apply to type default only, not {}", self.kind),
            );
        }
        if self.ignore_actors.len() > MAX_IGNORED_ACTORS {
            return err(
                "ignoreActors",
                format!(
                    "ignoreActors lists {} accounts; at most {MAX_IGNORED_ACTORS} are accepted",
                    self.ignore_actors.len()
                ),
            );
        }
        if let Some(i) = self.ignore_actors.iter().position(|a| a.trim().is_empty()) {
            return err(
                "ignoreActors",
                format!("ignoreActors[{i}] is empty; list Sanplex accounts, e.g. [\"system\"]"),
            );
        }
        Ok(())
    }

    /// The template fields that apply to this type, each compiled and tried on a sample event.
    fn validate_template(&self, t: &Template) -> Result<(), ValidationError> {
        let err = |field: &'static str, message: String| Err(ValidationError { field, message });
        let chat = [("template.title", &t.title), ("template.text", &t.text)];
        let body = [("template.body", &t.body)];
        let (used, unused): (&[Field<'_>], &[Field<'_>]) = if self.kind == WebhookType::Default {
            (&body, &chat)
        } else {
            (&chat, &body)
        };
        for (field, value) in unused {
            if !value.is_empty() {
                let applies = if *field == "template.body" {
                    "type default"
                } else {
                    "the chat types"
                };
                return err(
                    field,
                    format!("{field} applies to {applies}, not {}", self.kind),
                );
            }
        }
        for (field, source) in used {
            if let Err(message) = crate::deliver::template::check(field, source, self.kind) {
                return err(field, message);
            }
        }
        Ok(())
    }
}

/// A field's wire name and value.
type Field<'a> = (&'static str, &'a String);

/// Why a webhook was refused: the field and a message that says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// The offending field, as named on the wire.
    pub field: &'static str,
    pub message: String,
}
