//! The body of a `default` ("Others") webhook and its optional Standard Webhooks signature.
//!
//! Receivers written against Sanplex expect its exact shape: the selected keys in Sanplex's fixed
//! order, every value a string as it comes out of Sanplex's database (docs/sanplex.md "Payloads per
//! type"). Pure functions: the caller passes the keys (`Webhook::payload_keys()`) and the text.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::sign::hmac_sha256;
use crate::event::ActionEvent;

/// The `default` webhook body: a JSON object with exactly `keys`, in their order.
///
/// Every value is a string: `objectID` `"12"`, `product` in Sanplex's `",1,2,"` form (`",0,"`
/// without a product), an absent number `"0"`, an absent string `""`. Both `project` and
/// `execution` carry the event's *execution* id: `project` is the pre-ZenTao-15 name of the same
/// field, and receivers written for it expect the execution there; the event's own `project`
/// is not sent.
///
/// A key outside `webhook::DEFAULT_PARAMS` is left out rather than sent with an invented
/// value; `Webhook::validate` refuses such params, so it can only come from a caller bug.
///
/// The JSON is written by hand (one pass, no intermediate map): it is built for every delivery
/// attempt. Non-ASCII text stays UTF-8; docs/sanplex.md allows that.
pub fn default_payload(ev: &ActionEvent, keys: &[&str], text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + text.len() + ev.comment.len() + ev.date.len());
    out.push(b'{');
    let mut first = true;
    for &key in keys {
        let owned;
        let value: &str = match key {
            "objectType" => &ev.object_type,
            "objectID" => {
                owned = ev.object_id.to_string();
                &owned
            }
            "product" => {
                owned = ev.product_string();
                &owned
            }
            // Deliberately the execution for both: see the doc comment above.
            "project" | "execution" => {
                owned = ev.execution.to_string();
                &owned
            }
            "action" => &ev.action,
            "actor" => &ev.actor,
            "date" => &ev.date,
            "comment" => &ev.comment,
            "text" => text,
            _ => continue,
        };
        if !first {
            out.push(b',');
        }
        first = false;
        push_json_str(&mut out, key);
        out.push(b':');
        push_json_str(&mut out, value);
    }
    out.push(b'}');
    out
}

/// Appends `s` as a JSON string literal: quotes, backslashes and control characters escaped,
/// everything else (including non-ASCII) copied as UTF-8.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The `webhook-signature` header value for a `default` webhook with a secret: Standard
/// Webhooks' `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`.
///
/// The key is the base64-decoded part after `whsec_` (the Standard Webhooks secret format).
/// Any other secret is used as its raw bytes, as Sanplex users type plain passwords. A secret
/// that starts with `whsec_` but whose rest is not valid base64 is also used as raw bytes, the
/// whole secret including the prefix: refusing it here would turn a config mistake into lost
/// deliveries, and a receiver configured with the same string can verify it the same way.
pub fn standard_webhooks_signature(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let decoded = secret
        .strip_prefix("whsec_")
        .and_then(|rest| STANDARD.decode(rest).ok());
    let key = decoded.as_deref().unwrap_or(secret.as_bytes());
    let ts = timestamp.to_string();
    let mac = hmac_sha256(key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    let mut sig = String::with_capacity(3 + 44);
    sig.push_str("v1,");
    STANDARD.encode_string(mac, &mut sig);
    sig
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{Webhook, WebhookType};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct PayloadCase {
        name: String,
        keys: Vec<String>,
        event: ActionEvent,
        text: String,
        body: String,
    }

    #[derive(Deserialize)]
    struct Cases {
        payload: Vec<PayloadCase>,
    }

    fn cases() -> Vec<PayloadCase> {
        let cases: Cases = serde_json::from_str(include_str!("../../fixtures/text/cases.json"))
            .unwrap_or_else(|e| panic!("fixtures/text/cases.json does not parse: {e}"));
        cases.payload
    }

    #[test]
    fn payload_cases_from_fixture() {
        let cases = cases();
        assert!(cases.len() >= 5, "the payload table lost its rows");
        for c in &cases {
            let keys: Vec<&str> = c.keys.iter().map(String::as_str).collect();
            let body = default_payload(&c.event, &keys, &c.text);
            let body = String::from_utf8(body).expect("payload is UTF-8");
            assert_eq!(body, c.body, "case {:?}", c.name);

            // Valid JSON, exactly the keys asked for, in order, every value a string.
            let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", c.name));
            let got_keys: Vec<&str> = parsed.keys().map(String::as_str).collect();
            assert_eq!(got_keys, keys, "case {:?}", c.name);
            assert!(parsed.values().all(|v| v.is_string()), "case {:?}", c.name);
            if let Some(text) = parsed.get("text") {
                assert_eq!(text.as_str(), Some(c.text.as_str()), "case {:?}", c.name);
            }
            if let Some(comment) = parsed.get("comment") {
                assert_eq!(
                    comment.as_str(),
                    Some(c.event.comment.as_str()),
                    "case {:?}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn webhook_params_subset_always_sends_text() {
        let ev = ActionEvent {
            object_type: "bug".into(),
            object_id: 12,
            product: vec![1],
            execution: 5,
            actor: "alice".into(),
            action: "resolved".into(),
            date: "2026-01-05 18:35:21".into(),
            ..ActionEvent::default()
        };
        let hook = Webhook {
            kind: WebhookType::Default,
            // Given out of order and without text: the body follows Sanplex's order, with text.
            params: vec!["actor".into(), "objectID".into()],
            ..Webhook::default()
        };
        let body = default_payload(&ev, &hook.payload_keys(), "t");
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"objectID":"12","actor":"alice","text":"t"}"#
        );
    }

    #[test]
    fn unknown_keys_are_left_out() {
        let ev = ActionEvent::default();
        let body = default_payload(&ev, &["bogus", "text", "extra"], "t");
        assert_eq!(String::from_utf8_lossy(&body), r#"{"text":"t"}"#);
        assert_eq!(default_payload(&ev, &[], "t"), b"{}");
    }

    #[test]
    fn every_control_character_round_trips() {
        let s: String = (0u8..0x80)
            .map(char::from)
            .chain("ü张\u{2028}".chars())
            .collect();
        let mut out = Vec::new();
        push_json_str(&mut out, &s);
        let back: String = serde_json::from_slice(&out).expect("valid JSON string");
        assert_eq!(back, s);
    }

    #[test]
    fn standard_webhooks_vector_from_platforms_md() {
        let sig = standard_webhooks_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn plain_and_malformed_secrets_key_with_their_raw_bytes() {
        let body = br#"{"text":"t"}"#;
        let sig = |secret: &str| standard_webhooks_signature(secret, "msg_1", 1614265330, body);
        let expected_raw = |key: &[u8]| {
            let mac = hmac_sha256(key, &[b"msg_1.1614265330.", body]);
            format!("v1,{}", STANDARD.encode(mac))
        };
        assert_eq!(sig("hunter2"), expected_raw(b"hunter2"));
        // Not base64 after the prefix: the whole string, prefix included, is the key.
        assert_eq!(sig("whsec_not base64!"), expected_raw(b"whsec_not base64!"));
        // Valid base64 after the prefix: the decoded bytes are the key, not the string.
        assert_eq!(sig("whsec_aGVsbG8="), expected_raw(b"hello"));
        assert_ne!(sig("whsec_aGVsbG8="), expected_raw(b"whsec_aGVsbG8="));
    }
}
