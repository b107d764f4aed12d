//! Group-bot signatures for DingTalk and Lark/Feishu (docs/platforms.md).
//!
//! The two platforms use the same ingredients differently, which is the classic way to get a
//! `310000` / `19021` "sign mismatch": DingTalk keys the HMAC with the secret and signs
//! `"{ms}\n{secret}"`, takes milliseconds, and wants the result URL-encoded in the query;
//! Feishu keys the HMAC with `"{s}\n{secret}"` over an empty message, takes seconds, and wants
//! the plain Base64 in the JSON body. Each has its own function so the difference stays visible.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

/// HMAC-SHA256 of the concatenated `parts` under `key`, shared by every signer in `deliver`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length (long ones are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC-SHA256 accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// DingTalk group-bot signature: Base64 of HMAC-SHA256 keyed by `secret` over
/// `"{timestamp_ms}\n{secret}"`. Not URL-encoded; see [`dingtalk_signed_url`].
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let ts = timestamp_ms.to_string();
    let mac = hmac_sha256(
        secret.as_bytes(),
        &[ts.as_bytes(), b"\n", secret.as_bytes()],
    );
    STANDARD.encode(mac)
}

/// The URL to post a DingTalk group-bot message to: `url` plus `timestamp` and the signature,
/// URL-encoded exactly once (encoding twice is a common cause of `310000`).
///
/// Appends with `&` when `url` already has a query (the usual `?access_token=...`), with `?`
/// otherwise. Without a secret the bot is unsigned and `url` is returned unchanged.
pub fn dingtalk_signed_url(url: &str, secret: &str, timestamp_ms: i64) -> String {
    if secret.is_empty() {
        return url.to_string();
    }
    let sign = dingtalk_sign(secret, timestamp_ms);
    let sep = if url.ends_with('?') || url.ends_with('&') {
        ""
    } else if url.contains('?') {
        "&"
    } else {
        "?"
    };
    let mut out = String::with_capacity(url.len() + 80);
    out.push_str(url);
    out.push_str(sep);
    out.push_str("timestamp=");
    out.push_str(&timestamp_ms.to_string());
    out.push_str("&sign=");
    percent_encode_into(&sign, &mut out);
    out
}

/// Everything but RFC 3986 unreserved characters is percent-encoded; for Base64 that means
/// `+`, `/` and `=`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode_into(s: &str, out: &mut String) {
    out.extend(utf8_percent_encode(s, NOT_UNRESERVED));
}

/// Lark/Feishu group-bot signature: Base64 of HMAC-SHA256 keyed by `"{timestamp_s}\n{secret}"`
/// over an empty message. Sent as the body's `sign` next to `"timestamp": "<seconds>"`, not
/// URL-encoded.
pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    STANDARD.encode(hmac_sha256(key.as_bytes(), &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_vector_from_platforms_md() {
        assert_eq!(
            dingtalk_sign("SEC000000000000000000000", 1577836800000),
            "+nNCK5RddMDikgXSXJcDpPb9RZqSQXlesQPy6NpNYUk="
        );
    }

    #[test]
    fn dingtalk_signed_url_encodes_once() {
        let url = "https://oapi.dingtalk.com/robot/send?access_token=abc";
        assert_eq!(
            dingtalk_signed_url(url, "SEC000000000000000000000", 1577836800000),
            "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1577836800000\
             &sign=%2BnNCK5RddMDikgXSXJcDpPb9RZqSQXlesQPy6NpNYUk%3D"
        );
    }

    #[test]
    fn dingtalk_signed_url_without_query_or_secret() {
        assert_eq!(
            dingtalk_signed_url(
                "http://127.0.0.1:9/robot",
                "SEC000000000000000000000",
                1577836800000
            ),
            "http://127.0.0.1:9/robot?timestamp=1577836800000\
             &sign=%2BnNCK5RddMDikgXSXJcDpPb9RZqSQXlesQPy6NpNYUk%3D"
        );
        assert_eq!(
            dingtalk_signed_url(
                "http://127.0.0.1:9/robot?",
                "SEC000000000000000000000",
                1577836800000
            ),
            "http://127.0.0.1:9/robot?timestamp=1577836800000\
             &sign=%2BnNCK5RddMDikgXSXJcDpPb9RZqSQXlesQPy6NpNYUk%3D"
        );
        let url = "https://oapi.dingtalk.com/robot/send?access_token=abc";
        assert_eq!(dingtalk_signed_url(url, "", 1577836800000), url);
    }

    #[test]
    fn percent_encoding_covers_every_base64_symbol() {
        let mut out = String::new();
        percent_encode_into("aZ09+/=-_.~", &mut out);
        assert_eq!(out, "aZ09%2B%2F%3D-_.~");
    }

    #[test]
    fn feishu_vector_from_platforms_md() {
        let sign = feishu_sign("test-secret", 1599360473);
        assert_eq!(sign, "wSds2BzzFIIGf/WrhUO+NI1q/9j+FRJd3JNHKAq0NZY=");
        // Keying by the secret (DingTalk's way) gives this value, which Feishu rejects.
        assert_ne!(sign, "bwOSU6XMEexAHKuyN31krxa2lbNEg4trOnn0f+E2pPs=");
        let wrong_way = STANDARD.encode(hmac_sha256(b"test-secret", &[b"1599360473\ntest-secret"]));
        assert_eq!(wrong_way, "bwOSU6XMEexAHKuyN31krxa2lbNEg4trOnn0f+E2pPs=");
    }
}
