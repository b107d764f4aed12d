//! Message bodies for the chat platforms (docs/sanplex.md "Payloads per type", docs/platforms.md).
//!
//! Each function builds exactly the documented shape, keys in the documented order (serde_json
//! is built with `preserve_order`), so the bodies match what Sanplex sends and what the
//! platforms' examples show. Signing, tokens and sending live elsewhere: these are pure.

use serde_json::{json, Map, Value};

/// DingTalk rejects a group-bot body over this many bytes (`460101`).
pub const DINGTALK_MAX_BYTES: usize = 20_000;
/// WeCom rejects markdown content over this many bytes (`40058`).
pub const WECOM_MARKDOWN_MAX: usize = 4096;
/// WeCom rejects text content (the @-mention form) over this many bytes (`40058`).
pub const WECOM_TEXT_MAX: usize = 2048;
/// Feishu rejects a bot body over this many bytes (`19036`).
pub const FEISHU_MAX_BYTES: usize = 20 * 1024;

/// DingTalk group-bot body (also the `msg` of a work message, without mentions).
///
/// With mentions, DingTalk only highlights a person whose `@{mobile}` appears in the text *and*
/// in `at.atMobiles`, so both are written; without mentions there is no `at` at all.
pub fn dingtalk_markdown(title: &str, text: &str, mentions: &[String]) -> Value {
    if mentions.is_empty() {
        return json!({
            "msgtype": "markdown",
            "markdown": { "title": title, "text": text },
        });
    }
    let mut full = String::with_capacity(text.len() + mentions.len() * 13);
    full.push_str(text);
    for mobile in mentions {
        full.push_str(" @");
        full.push_str(mobile);
    }
    json!({
        "msgtype": "markdown",
        "markdown": { "title": title, "text": full },
        "at": { "atMobiles": mentions, "isAtAll": false },
    })
}

/// The `msg` object of a DingTalk work message (`asyncsend_v2`).
///
/// The text ends with a paragraph of its own holding the action's `date`: DingTalk silently
/// drops a work message identical to one the user already got that day, and two edits of the
/// same bug by the same person would otherwise read the same. An empty `date` adds nothing.
pub fn dingtalk_work_markdown(title: &str, text: &str, date: &str) -> Value {
    let text = if date.is_empty() {
        text.to_string()
    } else {
        format!("{text}\n\n{date}")
    };
    json!({
        "msgtype": "markdown",
        "markdown": { "title": title, "text": text },
    })
}

/// The whole `asyncsend_v2` body: `agent_id` is a JSON integer and `userid_list` a
/// comma-separated string (at most 100 ids; splitting is the caller's job).
pub fn dingtalk_work_body(agent_id: u64, user_ids: &[&str], msg: Value) -> Value {
    json!({
        "agent_id": agent_id,
        "userid_list": user_ids.join(","),
        "msg": msg,
    })
}

/// WeCom group-bot body: markdown, or, to @-mention people, the text form.
///
/// WeCom's markdown cannot mention by mobile number; only the text message's
/// `mentioned_mobile_list` can, so mentions switch the message type (and its size limit,
/// [`WECOM_TEXT_MAX`]).
pub fn wecom_group(text: &str, mentions: &[String]) -> Value {
    if mentions.is_empty() {
        json!({ "msgtype": "markdown", "markdown": { "content": text } })
    } else {
        json!({
            "msgtype": "text",
            "text": { "content": text, "mentioned_mobile_list": mentions },
        })
    }
}

/// The `markdown` object of a WeCom app message: `{"content": TEXT}`. See [`wecom_app_body`]
/// for the whole request.
pub fn wecom_app(text: &str) -> Value {
    json!({ "content": text })
}

/// The whole WeCom `message/send` body: `touser` is `|`-separated (at most 1000 ids) and
/// `agentid` a JSON integer.
pub fn wecom_app_body(user_ids: &[&str], agent_id: u64, text: &str) -> Value {
    json!({
        "touser": user_ids.join("|"),
        "msgtype": "markdown",
        "agentid": agent_id,
        "markdown": wecom_app(text),
    })
}

/// The Feishu/Lark interactive card: a blue header with the title, one markdown element with
/// the text. Shared by the group bot (as an object) and the app API (as a string).
pub fn feishu_card(title: &str, text: &str) -> Value {
    json!({
        "header": {
            "title": { "tag": "plain_text", "content": title },
            "template": "blue",
        },
        "elements": [ { "tag": "markdown", "content": text } ],
    })
}

/// Feishu/Lark group-bot body. `timestamp` (seconds, sent as a string) and `sign` come from
/// `sign::feishu_sign` when the bot has a secret; each is omitted when `None`.
pub fn feishu_group_body(card: Value, timestamp_s: Option<i64>, sign: Option<String>) -> Value {
    let mut body = Map::with_capacity(4);
    if let Some(ts) = timestamp_s {
        body.insert("timestamp".into(), Value::String(ts.to_string()));
    }
    if let Some(sign) = sign {
        body.insert("sign".into(), Value::String(sign));
    }
    body.insert("msg_type".into(), Value::String("interactive".into()));
    body.insert("card".into(), card);
    Value::Object(body)
}

/// Feishu/Lark app-message body for one recipient (`open_id`). Unlike the bot, the message
/// API wants the card as a JSON-encoded *string* in `content`; an object there is rejected.
pub fn feishu_app_body(receive_id: &str, card: &Value) -> Value {
    json!({
        "receive_id": receive_id,
        "msg_type": "interactive",
        "content": card.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITLE: &str = "Alice resolved Bug";
    const TEXT: &str =
        "Alice resolved Bug [#12::Login fails](http://pm.example.com/bug-view-12.html)";

    /// Compares serialized bytes, so key order and value types both count.
    fn assert_json(got: &Value, want: &str) {
        assert_eq!(got.to_string(), want);
    }

    fn mobiles() -> Vec<String> {
        vec!["13800000001".into(), "13900000004".into()]
    }

    #[test]
    fn dingtalk_markdown_without_mentions_has_no_at() {
        assert_json(
            &dingtalk_markdown(TITLE, TEXT, &[]),
            r#"{"msgtype":"markdown","markdown":{"title":"Alice resolved Bug","text":"Alice resolved Bug [#12::Login fails](http://pm.example.com/bug-view-12.html)"}}"#,
        );
    }

    #[test]
    fn dingtalk_markdown_with_mentions() {
        assert_json(
            &dingtalk_markdown(TITLE, TEXT, &mobiles()),
            r#"{"msgtype":"markdown","markdown":{"title":"Alice resolved Bug","text":"Alice resolved Bug [#12::Login fails](http://pm.example.com/bug-view-12.html) @13800000001 @13900000004"},"at":{"atMobiles":["13800000001","13900000004"],"isAtAll":false}}"#,
        );
    }

    #[test]
    fn dingtalk_work_message_ends_with_the_date_paragraph() {
        assert_json(
            &dingtalk_work_markdown(
                "张三解决了Bug",
                "张三解决了Bug [#12::登录失败](http://pm.example.com/bug-view-12.html)",
                "2026-01-05 18:35:21",
            ),
            r#"{"msgtype":"markdown","markdown":{"title":"张三解决了Bug","text":"张三解决了Bug [#12::登录失败](http://pm.example.com/bug-view-12.html)\n\n2026-01-05 18:35:21"}}"#,
        );
        assert_json(
            &dingtalk_work_markdown("t", "x", ""),
            r#"{"msgtype":"markdown","markdown":{"title":"t","text":"x"}}"#,
        );
    }

    #[test]
    fn dingtalk_work_body_shape() {
        let msg = dingtalk_work_markdown("t", "x", "2026-01-05 18:35:21");
        assert_json(
            &dingtalk_work_body(2800123, &["u1", "u2"], msg),
            r#"{"agent_id":2800123,"userid_list":"u1,u2","msg":{"msgtype":"markdown","markdown":{"title":"t","text":"x\n\n2026-01-05 18:35:21"}}}"#,
        );
    }

    #[test]
    fn wecom_group_markdown_and_mention_forms() {
        assert_json(
            &wecom_group(TEXT, &[]),
            r#"{"msgtype":"markdown","markdown":{"content":"Alice resolved Bug [#12::Login fails](http://pm.example.com/bug-view-12.html)"}}"#,
        );
        assert_json(
            &wecom_group(TEXT, &mobiles()),
            r#"{"msgtype":"text","text":{"content":"Alice resolved Bug [#12::Login fails](http://pm.example.com/bug-view-12.html)","mentioned_mobile_list":["13800000001","13900000004"]}}"#,
        );
    }

    #[test]
    fn wecom_app_shapes() {
        assert_json(&wecom_app("x"), r#"{"content":"x"}"#);
        assert_json(
            &wecom_app_body(&["u1", "u2"], 1000002, "x"),
            r#"{"touser":"u1|u2","msgtype":"markdown","agentid":1000002,"markdown":{"content":"x"}}"#,
        );
    }

    #[test]
    fn feishu_card_shape() {
        assert_json(
            &feishu_card(TITLE, TEXT),
            r#"{"header":{"title":{"tag":"plain_text","content":"Alice resolved Bug"},"template":"blue"},"elements":[{"tag":"markdown","content":"Alice resolved Bug [#12::Login fails](http://pm.example.com/bug-view-12.html)"}]}"#,
        );
    }

    #[test]
    fn feishu_group_body_signed_and_unsigned() {
        let card = feishu_card("t", "x");
        assert_json(
            &feishu_group_body(
                card.clone(),
                Some(1599360473),
                Some("wSds2BzzFIIGf/WrhUO+NI1q/9j+FRJd3JNHKAq0NZY=".into()),
            ),
            r#"{"timestamp":"1599360473","sign":"wSds2BzzFIIGf/WrhUO+NI1q/9j+FRJd3JNHKAq0NZY=","msg_type":"interactive","card":{"header":{"title":{"tag":"plain_text","content":"t"},"template":"blue"},"elements":[{"tag":"markdown","content":"x"}]}}"#,
        );
        assert_json(
            &feishu_group_body(card, None, None),
            r#"{"msg_type":"interactive","card":{"header":{"title":{"tag":"plain_text","content":"t"},"template":"blue"},"elements":[{"tag":"markdown","content":"x"}]}}"#,
        );
    }

    #[test]
    fn feishu_app_body_carries_the_card_as_a_string() {
        let card = feishu_card("t", "x \"q\"");
        let body = feishu_app_body("ou_123", &card);
        assert_json(
            &body,
            r#"{"receive_id":"ou_123","msg_type":"interactive","content":"{\"header\":{\"title\":{\"tag\":\"plain_text\",\"content\":\"t\"},\"template\":\"blue\"},\"elements\":[{\"tag\":\"markdown\",\"content\":\"x \\\"q\\\"\"}]}"}"#,
        );
        let content = body["content"].as_str().expect("content is a string");
        let back: Value = serde_json::from_str(content).expect("content is JSON");
        assert_eq!(back, card);
    }
}
