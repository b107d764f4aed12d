//! Digests: several events for one group bot merged into one message.
//!
//! A bot allows about 20 messages a minute; when more wait, the dispatcher merges them into one
//! message: a header with the count ("3 updates" / "3 条动态"), then one line per event (its
//! notification text), oldest first so the newest is last, the way a chat reads. A digest must
//! stay within the platform's size limit ([`digest_fits`] says how many events fit); the
//! dispatcher splits the rest into further digests.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::channel::{channel, Channel};
use super::{Attempt, Deliverer, Outcome};
use crate::config::Lang;
use crate::event::ActionEvent;
use crate::webhook::{Webhook, WebhookType};

/// The header line of a digest of `n` events.
pub fn digest_header(n: usize, lang: Lang) -> String {
    match lang {
        Lang::En if n == 1 => "1 update".to_string(),
        Lang::En => format!("{n} updates"),
        Lang::ZhCn => format!("{n} 条动态"),
    }
}

/// Every mobile number any of the events mentions, each once, in order of appearance. Linear:
/// a digest may merge many events' mentions, and this runs on the dispatch thread.
fn mentions(events: &[&ActionEvent]) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::new();
    events
        .iter()
        .flat_map(|ev| &ev.mentions)
        .filter(|m| seen.insert(m.as_str()))
        .cloned()
        .collect()
}

/// The body for `kind` from already rendered lines; `Null` for a type without digests.
fn build(kind: WebhookType, lines: &[String], mentions: &[String], lang: Lang) -> Value {
    let header = digest_header(lines.len(), lang);
    channel(kind)
        .digest_body(&header, lines, mentions)
        .unwrap_or(Value::Null)
}

/// Builds ONE group-bot message for `events` (oldest first): a header with the count, then
/// one line per event, newest last; @-mentions are the union of the events' mentions.
/// `kind` is one of the group types (`Null` for any other); `wh` gives the link domain.
/// Feishu bodies come unsigned: the signature is added when the digest is sent.
pub fn digest_body(
    kind: WebhookType,
    wh: &Webhook,
    events: &[&ActionEvent],
    base_url: &str,
    lang: Lang,
) -> Value {
    let lines: Vec<String> = events
        .iter()
        .map(|ev| super::digest_line(wh, ev, base_url, lang))
        .collect();
    build(kind, &lines, &mentions(events), lang)
}

/// The size that counts against the platform's limit, and that limit.
fn measure(kind: WebhookType, wh: &Webhook, body: &Value) -> (usize, usize) {
    channel(kind).digest_size(wh, body)
}

/// How many of `events` (a prefix, oldest first) fit in one digest within the platform's
/// size limit: DingTalk 20,000 bytes of body, WeCom 4,096 bytes of markdown (2,048 of text
/// when someone is @-mentioned), Lark 20 KB of body. 0 when not even the first fits (send it
/// alone: the platform will refuse it with its size code) or `kind` has no digests.
pub fn digest_fits(
    kind: WebhookType,
    wh: &Webhook,
    events: &[&ActionEvent],
    base_url: &str,
    lang: Lang,
) -> usize {
    let lines: Vec<String> = events
        .iter()
        .map(|ev| super::digest_line(wh, ev, base_url, lang))
        .collect();
    let fits = |n: usize| {
        let body = build(kind, &lines[..n], &mentions(&events[..n]), lang);
        let (size, limit) = measure(kind, wh, &body);
        limit > 0 && size <= limit
    };
    if events.is_empty() || !fits(1) {
        return 0;
    }
    if fits(events.len()) {
        return events.len();
    }
    // Sizes grow with n: find the largest n that fits.
    let (mut lo, mut hi) = (1, events.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Signs and sends one digest (see [`Deliverer::attempt_digest`]) through `ch`.
pub(crate) async fn send(
    d: &Deliverer,
    ch: &dyn Channel,
    wh: &Webhook,
    events: &[Arc<ActionEvent>],
) -> Attempt {
    if events.is_empty() {
        return Attempt::failed_before_send(Outcome::Skipped("empty digest".into()));
    }
    let refs: Vec<&ActionEvent> = events.iter().map(|e| e.as_ref()).collect();
    let body = digest_body(
        wh.kind,
        wh,
        &refs,
        &d.cfg.sanplex.base_url,
        d.cfg.sanplex.lang,
    );
    ch.post_digest(d, wh, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::chat;

    fn ev(id: u64, name: &str) -> ActionEvent {
        ActionEvent {
            object_type: "bug".into(),
            object_id: id,
            actor: "alice".into(),
            actor_name: Some("Alice".into()),
            action: "resolved".into(),
            object_name: Some(name.into()),
            ..ActionEvent::default()
        }
    }

    fn wh(kind: WebhookType) -> Webhook {
        Webhook {
            kind,
            ..Webhook::default()
        }
    }

    #[test]
    fn dingtalk_digest_shape() {
        let (a, b) = (ev(1, "One"), ev(2, "Two"));
        let body = digest_body(
            WebhookType::Dinggroup,
            &wh(WebhookType::Dinggroup),
            &[&a, &b],
            "http://pm",
            Lang::En,
        );
        assert_eq!(
            body.to_string(),
            r#"{"msgtype":"markdown","markdown":{"title":"2 updates","text":"**2 updates**\n\nAlice resolved Bug [#1::One](http://pm/bug-view-1.html)\n\nAlice resolved Bug [#2::Two](http://pm/bug-view-2.html)"}}"#
        );
    }

    /// A webhook's text template makes each line; a line that fails to render falls back to
    /// the built-in text rather than holding back the digest.
    #[test]
    fn digest_lines_use_the_text_template() {
        let (a, mut b) = (ev(1, "One"), ev(2, "Two"));
        b.changes = Some(vec![crate::event::Change {
            field: "status".into(),
            old: "active".into(),
            new: "resolved".into(),
        }]);
        let w = Webhook {
            template: Some(crate::webhook::Template {
                text: "#{{ objectID }} {{ changes[0].new }}".into(),
                ..Default::default()
            }),
            ..wh(WebhookType::Dinggroup)
        };
        let body = digest_body(WebhookType::Dinggroup, &w, &[&b, &a], "http://pm", Lang::En);
        assert_eq!(
            body["markdown"]["text"],
            "**2 updates**\n\n#2 resolved\n\nAlice resolved Bug [#1::One](http://pm/bug-view-1.html)"
        );
    }

    #[test]
    fn wecom_and_feishu_digest_shapes() {
        let (mut a, b) = (ev(1, "One"), ev(2, "Two"));
        let w = wh(WebhookType::Wechatgroup);
        let body = digest_body(
            WebhookType::Wechatgroup,
            &w,
            &[&a, &b],
            "http://pm",
            Lang::ZhCn,
        );
        assert_eq!(
            body["markdown"]["content"],
            "2 条动态\nAlice解决了Bug [#1::One](http://pm/bug-view-1.html)\nAlice解决了Bug [#2::Two](http://pm/bug-view-2.html)"
        );
        a.mentions = vec!["13800000001".into()];
        let body = digest_body(
            WebhookType::Wechatgroup,
            &w,
            &[&a, &b],
            "http://pm",
            Lang::En,
        );
        assert_eq!(body["msgtype"], "text");
        assert_eq!(body["text"]["mentioned_mobile_list"][0], "13800000001");
        let f = wh(WebhookType::Feishugroup);
        let body = digest_body(
            WebhookType::Feishugroup,
            &f,
            &[&a, &b],
            "http://pm",
            Lang::En,
        );
        assert_eq!(body["msg_type"], "interactive");
        assert_eq!(body["card"]["header"]["title"]["content"], "2 updates");
        assert_eq!(
            body["card"]["elements"][0]["content"],
            "Alice resolved Bug [#1::One](http://pm/bug-view-1.html)\nAlice resolved Bug [#2::Two](http://pm/bug-view-2.html)"
        );
    }

    /// Issue 8: a digest's mentions are the union of its events', each once, in order of first
    /// appearance — in linear time (events at the 1,000-entry cap, overlapping).
    #[test]
    fn digest_mentions_are_a_union_in_first_seen_order() {
        let events: Vec<ActionEvent> = (0..20u64)
            .map(|i| ActionEvent {
                mentions: (i * 500..i * 500 + 1000)
                    .map(|m| format!("138{m:08}"))
                    .collect(),
                ..ev(i, "x")
            })
            .collect();
        let refs: Vec<&ActionEvent> = events.iter().collect();
        let got = mentions(&refs);
        let want: Vec<String> = (0..19 * 500 + 1000).map(|m| format!("138{m:08}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn fits_within_each_platforms_limit() {
        let long = "x".repeat(900);
        let events: Vec<ActionEvent> = (0..60).map(|i| ev(i, &long)).collect();
        let refs: Vec<&ActionEvent> = events.iter().collect();
        for (kind, limit) in [
            (WebhookType::Dinggroup, chat::DINGTALK_MAX_BYTES),
            (WebhookType::Wechatgroup, chat::WECOM_MARKDOWN_MAX),
            (WebhookType::Feishugroup, chat::FEISHU_MAX_BYTES),
        ] {
            let w = Webhook {
                secret: "s".into(),
                ..wh(kind)
            };
            let n = digest_fits(kind, &w, &refs, "http://pm", Lang::En);
            assert!(n >= 1 && n < refs.len(), "{kind}: {n}");
            let (size, lim) = measure(
                kind,
                &w,
                &digest_body(kind, &w, &refs[..n], "http://pm", Lang::En),
            );
            assert_eq!(lim, limit);
            assert!(size <= limit, "{kind}: {size} > {limit}");
            let (over, _) = measure(
                kind,
                &w,
                &digest_body(kind, &w, &refs[..n + 1], "http://pm", Lang::En),
            );
            assert!(over > limit, "{kind}: one more would still fit ({over})");
        }
        let few = &refs[..3];
        assert_eq!(
            digest_fits(
                WebhookType::Dinggroup,
                &wh(WebhookType::Dinggroup),
                few,
                "http://pm",
                Lang::En
            ),
            3
        );
        assert_eq!(
            digest_fits(
                WebhookType::Dinguser,
                &wh(WebhookType::Dinguser),
                few,
                "http://pm",
                Lang::En
            ),
            0
        );
    }
}
