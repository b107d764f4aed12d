//! A `zt_webhook` row as a sanhook [`Webhook`], and how it is laid over the webhook an earlier
//! import made from it.
//!
//! Sanplex owns the fields it has (name, type, url, the secrets and app credentials, domain,
//! sendType, products, executions, params, contentType, desc) and `sanplexId`: an import sets
//! each of them on every run ([`Desired::set_owned`]). Everything else (`enabled`, `actions`,
//! `apiBase`, templates, ...) is sanhook's own and is kept as it is.

use serde_json::{Map, Value};

use crate::sanplex::{comma_list, ids, Record};
use crate::webhook::{SendType, Webhook, WebhookType, DEFAULT_PARAMS};

/// A `zt_webhook` row as sanhook wants it.
#[derive(Debug)]
pub(super) struct Desired {
    pub sanplex_id: u64,
    /// The fields Sanplex owns, from the row, secrets in clear; the others are the defaults.
    pub webhook: Webhook,
    /// Things the summary should say (adjustments made on the way).
    pub notes: Vec<String>,
}

/// How a row is named in the summary.
pub(super) fn row_label(rec: &Record) -> String {
    format!(
        "webhook {} {:?} ({})",
        rec.get("id").unwrap_or("?"),
        rec.get("name").unwrap_or(""),
        rec.get("type").unwrap_or("")
    )
}

/// Why a row of a type whose service no longer exists is skipped (not failed).
pub(super) fn retired_type(name: &str) -> Option<&'static str> {
    match name {
        "bearychat" => {
            Some("type bearychat: the BearyChat service was shut down in 2021; nothing to send to")
        }
        _ => None,
    }
}

impl Desired {
    /// Maps a `zt_webhook` row; an error says why the row cannot be imported.
    pub fn from_row(rec: &Record) -> Result<Desired, String> {
        let sanplex_id = rec.uint("id").ok_or("the row has no id")?;
        let mut notes = Vec::new();
        let kind = webhook_type(rec.get("type").unwrap_or("").trim(), &mut notes)?;
        let text = |c: &str| rec.get(c).unwrap_or("").trim().to_string();
        let mut webhook = Webhook {
            name: text("name"),
            kind,
            url: if kind.needs_url() {
                text("url")
            } else {
                String::new()
            },
            domain: text("domain"),
            send_type: send_type(kind, &text("sendType"), &mut notes),
            products: id_column(rec, &["products"])?,
            // ZenTao before 15 called the column `projects`.
            executions: id_column(rec, &["executions", "projects"])?,
            desc: text("desc"),
            sanplex_id: Some(sanplex_id),
            ..Webhook::default()
        };
        set_secret(&mut webhook, rec.get("secret").unwrap_or("").trim())?;
        if kind == WebhookType::Default {
            webhook.params = default_params(&text("params"), &mut notes);
            webhook.content_type = content_type(&text("contentType"));
        }
        Ok(Desired {
            sanplex_id,
            webhook,
            notes,
        })
    }

    /// `what` followed by the notes, for the summary.
    pub fn with_notes(&self, what: String) -> String {
        if self.notes.is_empty() {
            what
        } else {
            format!("{what}; {}", self.notes.join("; "))
        }
    }

    /// Whether the row carries any secret (the API cannot show them, so they are sent on
    /// every run).
    pub fn has_secrets(&self) -> bool {
        let w = &self.webhook;
        [
            &w.secret,
            &w.app_secret,
            &w.wechat_corp_secret,
            &w.feishu_app_secret,
        ]
        .iter()
        .any(|s| !s.is_empty())
    }

    /// The webhook to send in place of `current` (the one an earlier import made, as the
    /// server shows it): sanhook's own fields kept, Sanplex's set from the row.
    pub fn merged(&self, current: &Webhook) -> Webhook {
        let mut w = current.clone();
        self.set_owned(&mut w);
        w
    }

    /// Sets every field Sanplex owns on `w` from the row.
    ///
    /// The owned fields are listed, not sanhook's own ones, so that a field sanhook adds
    /// later is kept by imports without anyone having to remember this function.
    fn set_owned(&self, w: &mut Webhook) {
        let d = &self.webhook;
        macro_rules! set {
            ($($field:ident),+) => { $( w.$field.clone_from(&d.$field); )+ };
        }
        set!(
            name,
            kind,
            url,
            secret,
            agent_id,
            app_key,
            app_secret,
            wechat_corp_id,
            wechat_corp_secret,
            wechat_agent_id,
            feishu_app_id,
            feishu_app_secret,
            domain,
            send_type,
            products,
            executions,
            params,
            content_type,
            desc,
            sanplex_id
        );
        if !d.kind.is_app() {
            // apiBase applies to app-message types only, and the type may have changed.
            w.api_base.clear();
        }
    }
}

/// The fields (wire names) in which `after` differs from `before` as the API shows webhooks:
/// secrets compare by presence and URLs with their credentials masked, since the server shows
/// nothing more of them.
pub(super) fn changes(before: &Webhook, after: &Webhook) -> Vec<String> {
    let (before, after) = (shown(before), shown(after));
    after
        .keys()
        .chain(before.keys().filter(|k| !after.contains_key(*k)))
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

/// A webhook as the API shows it, as a JSON object.
fn shown(w: &Webhook) -> Map<String, Value> {
    match serde_json::to_value(w.masked()) {
        Ok(Value::Object(m)) => m,
        // A webhook is a struct of strings, numbers, lists and string-keyed maps: it always
        // serialises to an object.
        _ => Map::new(),
    }
}

/// The row's type; an older name is taken with a note, an unknown one is an error.
fn webhook_type(name: &str, notes: &mut Vec<String>) -> Result<WebhookType, String> {
    // `dingding` was the DingTalk group bot before `dinggroup` and `dinguser` were split.
    if name == "dingding" {
        let kind = WebhookType::Dinggroup;
        notes.push(format!("legacy type {name:?} imported as {kind}"));
        return Ok(kind);
    }
    WebhookType::parse(name).ok_or_else(|| {
        format!("unknown type {name:?}; sanhook knows default, dinggroup, dinguser, wechatgroup, wechatuser, feishugroup and feishuuser")
    })
}

/// The row's `sendType`; DingTalk group bots are always sync in sanhook.
fn send_type(kind: WebhookType, raw: &str, notes: &mut Vec<String>) -> SendType {
    match raw {
        "async" if kind == WebhookType::Dinggroup => {
            notes.push(
                "sendType async imported as sync (DingTalk group bots are always sync in sanhook)"
                    .into(),
            );
            SendType::Sync
        }
        "async" => SendType::Async,
        _ => SendType::Sync,
    }
}

/// The first of `cols` the row has, as a comma list of ids (none: empty).
fn id_column(rec: &Record, cols: &[&str]) -> Result<Vec<u64>, String> {
    match cols.iter().find_map(|c| rec.get(c).map(|v| (*c, v))) {
        Some((col, raw)) => ids(col, raw),
        None => Ok(vec![]),
    }
}

/// Puts the row's `secret` column where the type keeps it: the signing secret of the group and
/// `default` types, or the JSON app credentials of the app-message types.
fn set_secret(w: &mut Webhook, secret: &str) -> Result<(), String> {
    let kind = w.kind;
    if !kind.is_app() {
        w.secret = secret.to_string();
        return Ok(());
    }
    let creds: Map<String, Value> = match serde_json::from_str(secret) {
        Ok(Value::Object(o)) => o,
        // Never print the value: it holds the app secret.
        _ => {
            return Err(format!(
                "secret is not the JSON credentials a {kind} webhook keeps there (expected an object such as {{\"agentId\",\"appKey\",\"appSecret\"}})"
            ))
        }
    };
    let fields: Vec<(&mut String, &str)> = match kind {
        WebhookType::Dinguser => vec![
            (&mut w.agent_id, "agentId"),
            (&mut w.app_key, "appKey"),
            (&mut w.app_secret, "appSecret"),
        ],
        // Sanplex stores WeCom's agent id, corp id and corp secret under DingTalk's key
        // names, in that order.
        WebhookType::Wechatuser => vec![
            (&mut w.wechat_agent_id, "agentId"),
            (&mut w.wechat_corp_id, "appKey"),
            (&mut w.wechat_corp_secret, "appSecret"),
        ],
        _ => vec![
            (&mut w.feishu_app_id, "appId"),
            (&mut w.feishu_app_secret, "appSecret"),
        ],
    };
    for (field, key) in fields {
        *field = credential(&creds, key);
    }
    Ok(())
}

/// A JSON credential value as text (Sanplex writes agent ids as numbers or strings).
fn credential(obj: &Map<String, Value>, key: &str) -> String {
    match obj.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A `default` webhook's payload keys: the ones sanhook sends, each once; the others are
/// dropped with a note.
fn default_params(raw: &str, notes: &mut Vec<String>) -> Vec<String> {
    let mut params: Vec<String> = Vec::new();
    let mut dropped = Vec::new();
    for p in comma_list(raw) {
        if !DEFAULT_PARAMS.contains(&p) {
            dropped.push(p);
        } else if !params.iter().any(|q| q == p) {
            params.push(p.to_string());
        }
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "params {} dropped (sanhook sends {})",
            dropped.join(", "),
            DEFAULT_PARAMS.join(", ")
        ));
    }
    params
}

/// A `default` webhook's Content-Type.
fn content_type(raw: &str) -> String {
    match raw {
        // ZenTao before 12 stored the short forms.
        "json" => "application/json".into(),
        "form" => "application/x-www-form-urlencoded".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wechatuser_credentials_map_in_sanplex_order() {
        let d = Desired::from_row(&Record::of(&[
            ("id", "5"),
            ("type", "wechatuser"),
            ("name", "WeCom app"),
            ("url", "ignored"),
            (
                "secret",
                r#"{"agentId":1000002,"appKey":"ww-corp","appSecret":"corp-secret"}"#,
            ),
            ("products", ",1,2,"),
            ("executions", ""),
            ("params", "text"),
            ("sendType", "async"),
            ("deleted", "0"),
        ]))
        .expect("row");
        let w = &d.webhook;
        assert_eq!(w.wechat_agent_id, "1000002");
        assert_eq!(w.wechat_corp_id, "ww-corp");
        assert_eq!(w.wechat_corp_secret, "corp-secret");
        assert_eq!((w.url.as_str(), w.secret.as_str()), ("", ""));
        assert_eq!(w.products, [1, 2]);
        assert!(w.executions.is_empty() && w.params.is_empty());
        assert_eq!(w.send_type, SendType::Async);
        assert_eq!(w.sanplex_id, Some(5));
    }

    #[test]
    fn dinggroup_async_becomes_sync_with_a_note_and_unknown_params_are_dropped() {
        let d = Desired::from_row(&Record::of(&[
            ("id", "2"),
            ("type", "dinggroup"),
            ("name", "Ding"),
            ("url", "https://oapi.dingtalk.com/robot/send?access_token=x"),
            ("secret", "SEC1"),
            ("sendType", "async"),
        ]))
        .expect("row");
        assert_eq!(d.webhook.send_type, SendType::Sync);
        assert_eq!(d.webhook.secret, "SEC1");
        assert!(d.notes[0].contains("async imported as sync"));
        let d = Desired::from_row(&Record::of(&[
            ("id", "1"),
            ("type", "default"),
            ("name", "JSON"),
            ("url", "http://x"),
            ("params", "objectType,objectID,bogus,text,objectID"),
            ("contentType", "json"),
            ("projects", "7"),
        ]))
        .expect("row");
        assert_eq!(d.webhook.params, ["objectType", "objectID", "text"]);
        assert_eq!(d.webhook.content_type, "application/json");
        assert_eq!(d.webhook.executions, [7]);
        assert!(d.notes[0].contains("bogus"));
    }

    #[test]
    fn rows_that_cannot_be_imported_say_why_without_the_secret() {
        let err = Desired::from_row(&Record::of(&[
            ("id", "3"),
            ("type", "dinguser"),
            ("secret", "{not json: topsecret"),
        ]))
        .expect_err("bad secret");
        assert!(
            err.contains("JSON credentials") && !err.contains("topsecret"),
            "{err}"
        );
        let err = Desired::from_row(&Record::of(&[("id", "3"), ("type", "slack")]))
            .expect_err("bad type");
        assert!(err.contains("unknown type \"slack\""), "{err}");
        let err = Desired::from_row(&Record::of(&[
            ("id", "3"),
            ("type", "default"),
            ("products", "1,x"),
        ]))
        .expect_err("bad products");
        assert!(err.contains("products"), "{err}");
    }

    #[test]
    fn changes_compare_secrets_by_presence_and_urls_masked() {
        let d = Desired::from_row(&Record::of(&[
            ("id", "4"),
            ("type", "feishugroup"),
            ("name", "Lark"),
            ("url", "https://open.feishu.cn/open-apis/bot/v2/hook/x"),
            ("secret", "s"),
        ]))
        .expect("row");
        // What the server shows after an import: secrets and the hook token masked.
        let shown = d.merged(&Webhook::default()).masked();
        let merged = d.merged(&shown);
        assert!(
            changes(&shown, &merged).is_empty(),
            "{:?}",
            changes(&shown, &merged)
        );
        let mut other = shown.clone();
        other.name = "Renamed".into();
        other.secret.clear();
        assert_eq!(changes(&other, &d.merged(&other)), ["name", "secret"]);
    }

    #[test]
    fn the_body_keeps_sanhook_only_fields() {
        let d = Desired::from_row(&Record::of(&[
            ("id", "4"),
            ("type", "default"),
            ("name", "JSON"),
            ("url", "http://x"),
        ]))
        .expect("row");
        let existing: Webhook = serde_json::from_value(json!({
            "id": 9, "name": "old", "enabled": false, "actions": {"bug": ["opened"]},
            "apiBase": "http://y", "details": true, "ignoreActors": ["system"]
        }))
        .expect("webhook");
        let body = d.merged(&existing);
        assert!(!body.enabled && body.details);
        assert_eq!(body.actions, existing.actions);
        assert_eq!(body.ignore_actors, ["system"]);
        assert_eq!((body.id, body.name.as_str()), (9, "JSON"));
        // apiBase applies to app-message types only.
        assert!(body.api_base.is_empty());
    }

    /// Every field Sanplex owns is set by an import, and nothing else.
    #[test]
    fn an_import_sets_exactly_the_fields_sanplex_owns() {
        let mut d = Desired::from_row(&Record::of(&[
            ("id", "6"),
            ("type", "default"),
            ("name", "n"),
            ("url", "http://u"),
            ("secret", "s"),
            ("domain", "http://d"),
            ("sendType", "async"),
            ("products", "1"),
            ("executions", "2"),
            ("params", "text"),
            ("contentType", "form"),
            ("desc", "d"),
        ]))
        .expect("row");
        // One row has no type with every credential: set the rest by hand.
        let w = &mut d.webhook;
        for (i, f) in [
            &mut w.agent_id,
            &mut w.app_key,
            &mut w.app_secret,
            &mut w.wechat_corp_id,
            &mut w.wechat_corp_secret,
            &mut w.wechat_agent_id,
            &mut w.feishu_app_id,
            &mut w.feishu_app_secret,
        ]
        .into_iter()
        .enumerate()
        {
            *f = i.to_string();
        }
        let blank = Webhook {
            kind: WebhookType::Feishugroup,
            ..Webhook::default()
        };
        let set: Vec<String> = changes(&blank, &d.merged(&blank));
        assert_eq!(
            set,
            [
                "name",
                "type",
                "url",
                "secret",
                "agentId",
                "appKey",
                "appSecret",
                "wechatCorpId",
                "wechatCorpSecret",
                "wechatAgentId",
                "feishuAppId",
                "feishuAppSecret",
                "domain",
                "sendType",
                "products",
                "executions",
                "params",
                "contentType",
                "desc",
                "sanplexId"
            ]
        );
    }
}
