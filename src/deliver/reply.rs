//! Reading the chat platforms' answers and classifying them (docs/platforms.md "General rules").
//!
//! The platforms answer HTTP 200 even when they refuse a message, so the verdict comes from the
//! numeric code in the body (`errcode` for DingTalk and WeCom, `code` for Feishu/Lark), never
//! from the status alone and never from the message text. Each platform module maps its codes
//! to a [`Rule`]; [`classify`] turns status, headers, body and that rule into an [`Outcome`]
//! whose error text always starts with the platform's name, its code and its message
//! (`DingTalk errcode 310000: sign not match`), so the delivery log says what the platform said.

use std::time::Duration;

use serde_json::Value;

use super::Outcome;

/// The three chat platforms (Lark and Feishu are one API on two hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    DingTalk,
    WeCom,
    Feishu,
}

impl Platform {
    /// The name used in error messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            Platform::DingTalk => "DingTalk",
            Platform::WeCom => "WeCom",
            Platform::Feishu => "Feishu",
        }
    }

    /// The body key of the numeric result code.
    fn code_key(self) -> &'static str {
        match self {
            Platform::DingTalk | Platform::WeCom => "errcode",
            Platform::Feishu => "code",
        }
    }

    /// The body key of the result message.
    fn msg_key(self) -> &'static str {
        match self {
            Platform::DingTalk | Platform::WeCom => "errmsg",
            Platform::Feishu => "msg",
        }
    }
}

/// A platform's answer, read leniently: a body that is not JSON, or JSON without a code, is
/// still an answer (`code: None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub platform: Platform,
    /// The HTTP status.
    pub status: u16,
    /// `errcode` / `code`, when the body has one (a number or a numeric string).
    pub code: Option<i64>,
    /// `errmsg` / `msg` (empty when absent).
    pub msg: String,
    /// The body, when it is JSON.
    pub json: Option<Value>,
}

/// The most of a platform's message kept in an error: an answer that is not really the
/// platform's (a proxy, an internal service at a wrong `apiBase`) can say anything.
const MSG_MAX: usize = 200;

/// Reads a JSON value that platforms send as either a number or a numeric string.
pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Reply {
    /// Parses an answer of `platform`.
    pub fn read(platform: Platform, status: u16, body: &[u8]) -> Reply {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let code = json
            .as_ref()
            .and_then(|j| j.get(platform.code_key()))
            .and_then(as_i64);
        let msg = json
            .as_ref()
            .and_then(|j| j.get(platform.msg_key()))
            .and_then(Value::as_str)
            .map(shown_msg)
            .unwrap_or_default();
        Reply {
            platform,
            status,
            code,
            msg,
            json,
        }
    }

    /// `true` for HTTP 2xx with code 0: the only answer that means "accepted".
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.status) && self.code == Some(0)
    }

    /// A string field of the body (`sub_code`, `invaliduser`, ...), empty when absent.
    pub fn field(&self, key: &str) -> String {
        match self.json.as_ref().and_then(|j| j.get(key)) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }

    /// `DingTalk errcode 310000: sign not match`, the start of every error about this answer.
    pub fn describe(&self) -> String {
        let label = self.platform.code_key();
        match self.code {
            Some(code) if self.msg.is_empty() => {
                format!(
                    "{} {label} {code} (HTTP {})",
                    self.platform.name(),
                    self.status
                )
            }
            Some(code) => format!("{} {label} {code}: {}", self.platform.name(), self.msg),
            None => format!("{}: HTTP {}", self.platform.name(), self.status),
        }
    }
}

/// A platform's message as errors show it: credentials masked, cut to [`MSG_MAX`] characters.
fn shown_msg(msg: &str) -> String {
    let masked = crate::mask::text(msg);
    match masked.char_indices().nth(MSG_MAX) {
        Some((end, _)) => format!("{}…", &masked[..end]),
        None => masked.into_owned(),
    }
}

/// What a platform code means, decided per platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Try again later, after the given wait when the platform has a known one.
    Retry(Option<Duration>),
    /// Permanent: no retry can succeed until someone changes something. The text is a hint
    /// appended to the platform's own message (may be empty).
    Dead(&'static str),
    /// The access token was rejected: refresh it and retry once (app types). Reaching
    /// [`classify`] with it means the refreshed token failed too: retry later.
    Token,
    /// The message is over the platform's size limit: permanent for this message.
    TooLarge,
    /// A code this build does not know: retried (the retry schedule bounds it), since a lost
    /// message is worse than a late one.
    Unknown,
}

/// The hint for `60020`, which DingTalk and WeCom both use for a server IP not on the app's
/// whitelist.
pub const IP_WHITELIST_HINT: &str = " — this server's outbound IP is not on the app's trusted IP \
     whitelist (Sanplex calls it the \"server outbound IP\"); an admin must add it in the \
     platform's developer console, then retry the delivery";

/// The hint for every size-limit code.
const TOO_LARGE_HINT: &str = " — the message is over the platform's size limit; it cannot be \
     sent as it is (shorten the object's name or the digest)";

/// Classifies an answer of `platform` given its code `rule`s.
///
/// Order matters: HTTP 429 is a rate limit whatever the body says (its wait comes from
/// `x-ogw-ratelimit-reset` on Feishu, `Retry-After` elsewhere); then a code in the body decides
/// (code 0 with a non-2xx status is not trusted); without a code, 5xx and 408 are retried and
/// other 4xx are permanent.
pub fn classify(
    reply: &Reply,
    headers: &reqwest::header::HeaderMap,
    rule: impl Fn(&Reply, i64) -> Rule,
) -> Outcome {
    let what = reply.describe();
    if reply.status == 429 {
        return Outcome::Retry {
            after: rate_limit_wait(reply.platform, headers),
            error: format!("{what} (HTTP 429: rate limited)"),
        };
    }
    match reply.code {
        Some(0) if (200..300).contains(&reply.status) => Outcome::Delivered,
        Some(0) => Outcome::Retry {
            after: None,
            error: format!(
                "{}: HTTP {} with {} 0; not trusted as accepted",
                reply.platform.name(),
                reply.status,
                reply.platform.code_key()
            ),
        },
        Some(code) => match rule(reply, code) {
            Rule::Retry(after) => Outcome::Retry { after, error: what },
            Rule::Dead(hint) => Outcome::Dead(format!("{what}{hint}")),
            Rule::Token => Outcome::Retry {
                after: None,
                error: format!("{what} (the access token was rejected even after a refresh)"),
            },
            Rule::TooLarge => Outcome::Dead(format!("{what}{TOO_LARGE_HINT}")),
            Rule::Unknown => Outcome::Retry {
                after: None,
                error: what,
            },
        },
        // No code: not (or not yet) the platform speaking. Its body stays in the delivery
        // log's response, cut and masked, and out of the error, which reaches API answers.
        None => match reply.status {
            200..=299 => Outcome::Retry {
                after: None,
                error: format!(
                    "{what} without an {}; not trusted as accepted",
                    reply.platform.code_key()
                ),
            },
            408 | 500..=599 => Outcome::Retry {
                after: None,
                error: what,
            },
            _ => Outcome::Dead(format!(
                "{what}, not a {} answer (no {}): check the webhook's url or apiBase",
                reply.platform.name(),
                reply.platform.code_key()
            )),
        },
    }
}

/// The wait a 429 asks for: Feishu's `x-ogw-ratelimit-reset` (seconds), else `Retry-After`.
pub fn rate_limit_wait(
    platform: Platform,
    headers: &reqwest::header::HeaderMap,
) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if platform == Platform::Feishu {
        if let Some(wait) = header("x-ogw-ratelimit-reset").and_then(super::parse_seconds) {
            return Some(wait);
        }
    }
    header("retry-after").and_then(|v| super::parse_retry_after(v, std::time::SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_codes_as_numbers_or_strings() {
        let r = Reply::read(
            Platform::DingTalk,
            200,
            br#"{"errcode":"88","errmsg":"x","sub_code":"60011"}"#,
        );
        assert_eq!(r.code, Some(88));
        assert_eq!(r.field("sub_code"), "60011");
        let r = Reply::read(Platform::Feishu, 400, b"<html>");
        assert_eq!((r.code, &r.json), (None, &None));
        assert_eq!(r.describe(), "Feishu: HTTP 400");
    }

    #[test]
    fn an_answer_without_a_code_is_not_echoed_in_the_error() {
        let h = reqwest::header::HeaderMap::new();
        let internal = br#"{"db_password":"hunter2","rows":["internal data"]}"#;
        for status in [200, 403, 404, 500] {
            let r = Reply::read(Platform::WeCom, status, internal);
            let error = match classify(&r, &h, |_, _| Rule::Unknown) {
                Outcome::Retry { error, .. } | Outcome::Dead(error) => error,
                other => panic!("{other:?}"),
            };
            assert!(
                error.starts_with(&format!("WeCom: HTTP {status}")),
                "{error}"
            );
            assert!(
                !error.contains("internal data") && !error.contains("hunter2"),
                "{error}"
            );
        }
        let long = format!(r#"{{"errcode": 7, "errmsg": "{}"}}"#, "x".repeat(5000));
        let r = Reply::read(Platform::WeCom, 200, long.as_bytes());
        assert!(r.describe().chars().count() < 300, "{}", r.describe());
        let r = Reply::read(
            Platform::DingTalk,
            200,
            br#"{"errcode": 7, "errmsg": "see http://h/x?token=t0k"}"#,
        );
        assert!(!r.describe().contains("t0k"), "{}", r.describe());
    }

    #[test]
    fn non_2xx_with_code_zero_is_not_delivered() {
        let r = Reply::read(Platform::WeCom, 502, br#"{"errcode":0}"#);
        let h = reqwest::header::HeaderMap::new();
        assert!(matches!(
            classify(&r, &h, |_, _| Rule::Unknown),
            Outcome::Retry { .. }
        ));
    }
}
