//! One [`Channel`] per webhook kind: everything that differs between kinds, in one place.
//!
//! A channel knows where its deliveries go (the destination's name and its rate windows), how
//! one attempt is built, signed, sent and classified, whether it needs the webhook's bindings or
//! a per-member budget, and, for group bots, how several events become one digest. The rest of
//! the crate asks [`channel`] for the kind's channel instead of matching on [`WebhookType`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::app::App;
use super::{Attempt, Deliverer, Outcome, RemoteUser};
use crate::config::{Config, Window};
use crate::event::ActionEvent;
use crate::webhook::{Webhook, WebhookType};

/// Everything one attempt needs besides the deliverer. Dispatch reads and reserves it before the
/// attempt, so that `deliver` never touches the store: the bindings as they are now, and for a
/// channel with per-member windows the members granted a slot.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub webhook: Arc<Webhook>,
    pub event: Arc<ActionEvent>,
    /// The delivery (part of the Standard Webhooks `webhook-id`).
    pub delivery_id: u64,
    /// What earlier attempts of this delivery did (recipients served, ...).
    pub progress: Option<Value>,
    /// The webhook's `(account, userid)` bindings, read at send time so that a change applies
    /// to the next attempt; empty for kinds without recipients.
    pub bindings: Vec<(String, String)>,
    /// For a channel with a per-member budget ([`Channel::member_demand`]): the members dispatch
    /// took a slot for, and the others. `None`: no per-member limit applies.
    pub members: Option<MemberGrant>,
}

impl Envelope {
    /// An envelope without bindings or member grant (the group and `default` kinds).
    pub fn new(webhook: Arc<Webhook>, event: Arc<ActionEvent>, delivery_id: u64) -> Envelope {
        Envelope {
            webhook,
            event,
            delivery_id,
            progress: None,
            bindings: vec![],
            members: None,
        }
    }
}

/// Where a webhook's deliveries go: deliveries of one destination share its order and budget.
/// `Debug` masks the bot URL in its name.
#[derive(Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination's name (`wh:<id>`, `bot:<kind>:<url>`, `app:<kind>:<credentials>`).
    pub name: String,
    /// Its sliding windows; empty = not a rate-limited lane.
    pub windows: Vec<Window>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &crate::mask::text(&self.name))
            .field("windows", &self.windows)
            .finish()
    }
}

/// What an attempt would take from a per-member budget (WeCom: 30 messages a minute to one
/// member per app), asked before the attempt so that dispatch can reserve and save the slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDemand {
    /// The budget's name: one per credential set.
    pub budget: String,
    /// The windows each member's sends must keep within.
    pub windows: Vec<Window>,
    /// The members the attempt would send to, in order.
    pub members: Vec<String>,
}

/// The members granted a slot of their budget, and those held back with the time until their
/// next slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberGrant {
    pub granted: Vec<String>,
    pub held: Vec<(String, Duration)>,
}

/// A webhook kind: build → sign → send → classify, and what dispatch must know of it.
///
/// Methods return boxed futures (not `async fn`) so that channels can be used as `dyn Channel`.
pub trait Channel: Send + Sync {
    /// Where `wh`'s deliveries go and the windows that destination keeps.
    fn route(&self, wh: &Webhook, cfg: &Config) -> Route;

    /// Makes one attempt to deliver `env`.
    fn attempt<'a>(&'a self, d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt>;

    /// Whether attempts read the webhook's bindings ([`Envelope::bindings`]).
    fn needs_bindings(&self) -> bool {
        false
    }

    /// The per-member budget an attempt of `env` must take slots from before it is sent;
    /// `None` when the kind has none (or there is nobody to send to).
    fn member_demand(&self, _env: &Envelope, _cfg: &Config) -> Option<MemberDemand> {
        None
    }

    /// The credentials of an app-message webhook; `Err` says why there are none.
    fn app(&self, wh: &Webhook, _cfg: &Config) -> Result<App, String> {
        Err(format!(
            "webhook {} is of type {}; the platform directory applies to dinguser, wechatuser and feishuuser",
            wh.id, wh.kind
        ))
    }

    /// Lists the platform directory of an app (every department, every page, each user once).
    fn directory<'a>(
        &'a self,
        _d: &'a Deliverer,
        app: &'a App,
    ) -> BoxFuture<'a, Result<Vec<RemoteUser>, String>> {
        Box::pin(async move {
            Err(format!(
                "{} has no directory for this type",
                app.platform.name()
            ))
        })
    }

    /// Whether several deliveries may be merged into one message ([`Channel::digest_body`]).
    fn has_digests(&self) -> bool {
        false
    }

    /// The body of one digest from the rendered `lines` (oldest first) under `header`, with
    /// the union of the events' @-mentions; `None` for a kind without digests.
    fn digest_body(&self, _header: &str, _lines: &[String], _mentions: &[String]) -> Option<Value> {
        None
    }

    /// The size of `body` that counts against the platform's limit, and that limit.
    fn digest_size(&self, _wh: &Webhook, _body: &Value) -> (usize, usize) {
        (0, 0)
    }

    /// Signs and posts a digest body built by [`Channel::digest_body`].
    fn post_digest<'a>(
        &'a self,
        _d: &'a Deliverer,
        wh: &'a Webhook,
        _body: Value,
    ) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            Attempt::failed_before_send(Outcome::Dead(format!(
                "digests apply to group bots only, not {}",
                wh.kind
            )))
        })
    }
}

/// The channel of a webhook kind.
pub fn channel(kind: WebhookType) -> &'static dyn Channel {
    use super::{default, dingtalk, feishu, wecom};
    match kind {
        WebhookType::Default => &default::Default,
        WebhookType::Dinggroup => &dingtalk::Group,
        WebhookType::Wechatgroup => &wecom::Group,
        WebhookType::Feishugroup => &feishu::Group,
        WebhookType::Dinguser => &dingtalk::Work,
        WebhookType::Wechatuser => &wecom::AppMessage,
        WebhookType::Feishuuser => &feishu::AppMessage,
    }
}

/// The route of a group bot: its URL without the per-request `timestamp`/`sign` parameters
/// (webhooks on one bot share its budget), within `windows`.
pub(crate) fn bot_route(wh: &Webhook, windows: &[Window]) -> Route {
    Route {
        name: format!("bot:{}:{}", wh.kind, bot_identity(&wh.url)),
        windows: windows.to_vec(),
    }
}

/// The route of an app-message webhook: one destination per credential set (`parts`).
pub(crate) fn app_route(wh: &Webhook, parts: [&str; 2]) -> Route {
    Route {
        name: format!("app:{}:{}:{}", wh.kind, parts[0], parts[1]),
        windows: vec![],
    }
}

/// A bot's identity: its URL without the per-request `timestamp`/`sign` parameters.
fn bot_identity(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "timestamp" && k != "sign")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                u.set_query(None);
            } else {
                u.query_pairs_mut().clear().extend_pairs(kept);
            }
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_routes_as_before() {
        let cfg = Config::from_toml_str("[limits]\ndinggroup = [\"20/60s\"]\n").expect("config");
        let route = |wh: Webhook| channel(wh.kind).route(&wh, &cfg);
        let r = route(Webhook {
            id: 4,
            ..Webhook::default()
        });
        assert_eq!((r.name.as_str(), r.windows.len()), ("wh:4", 0));
        let r = route(Webhook {
            kind: WebhookType::Dinggroup,
            url: "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1&sign=s".into(),
            ..Webhook::default()
        });
        assert_eq!(
            r.name,
            "bot:dinggroup:https://oapi.dingtalk.com/robot/send?access_token=t"
        );
        assert_eq!(r.windows, cfg.limits.dinggroup);
        let r = route(Webhook {
            kind: WebhookType::Wechatuser,
            wechat_corp_id: "corp".into(),
            wechat_agent_id: "7".into(),
            ..Webhook::default()
        });
        assert_eq!(r.name, "app:wechatuser:corp:7");
        assert!(r.windows.is_empty());
    }
}
