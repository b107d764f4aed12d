//! Masking credentials: the one place that decides what is a credential and how it is shown.
//!
//! Everything sanhook shows outside itself goes through here: the delivery log (request URL,
//! headers and bodies, response bodies), previews and test answers, webhooks in API answers
//! (URLs with bot keys), `check-config`, every log line that names a URL or a destination, and
//! every `Debug` of a type holding a secret. Masking works on the text as written: what is not
//! a credential comes back byte for byte, so a masked URL still reads like the one configured.
//!
//! When in doubt this masks too much rather than too little (a password with an unescaped `@`
//! or `/` is still hidden, at the cost of hiding part of the host too).

use std::borrow::Cow;

use serde_json::Value;

/// What a credential looks like wherever it is shown.
pub const MASK: &str = "******";

/// Query, fragment and JSON keys that name a credential whatever their case.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "key",
    "token",
    "sign",
    "sig",
    "signature",
    "apikey",
    "api_key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
];

/// A key that contains one of these (case-insensitive) names a credential too: `corpsecret`,
/// `app_secret`, `tenant_access_token`, `db_password`, `X-Api-Key`, ...
const SECRET_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "signature",
    "apikey",
    "api_key",
    "api-key",
];

/// Header names whose value is a credential.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// The path of a Lark/Feishu group-bot hook: the segment after it is the bot's token.
const LARK_HOOK: &str = "/bot/v2/hook/";

/// Whether a query, fragment or JSON key names a credential.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str()) || SECRET_PARTS.iter().any(|p| k.contains(p))
}

/// Whether a header's value is a credential (`Authorization`, `Cookie`, `X-Api-Key`, ...).
pub fn is_secret_header(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    SECRET_HEADERS.contains(&n.as_str()) || SECRET_PARTS.iter().any(|p| n.contains(p))
}

/// A URL with its credentials masked: the password of its user info, the values of credential
/// query (and fragment) keys ([`is_secret_key`]), and the token of a Lark/Feishu bot hook path.
/// Anything else is kept as written. Not a URL: returned as it is.
pub fn url(url: &str) -> String {
    let s = userinfo(url);
    let s = hook_path(&s);
    query(&s).into_owned()
}

/// A header value as it may be shown: [`MASK`] for a credential header, else the value with
/// any URL in it masked.
pub fn header(name: &str, value: &str) -> String {
    if is_secret_header(name) {
        MASK.to_string()
    } else {
        text(value).into_owned()
    }
}

/// Free text (an error message, a destination name, a log field) with every URL in it masked
/// as [`url`] does.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(i, |(j, _)| j);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{}\\`|".contains(c))
            .map_or(rest.len(), |e| i + e);
        let found = &rest[start..end];
        let masked = url(found);
        out.push_str(&rest[..start]);
        changed |= masked != found;
        out.push_str(&masked);
        rest = &rest[end..];
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A request or response body as it may be shown: in JSON, the string and number values of
/// credential keys ([`is_secret_key`]: `app_secret`, `access_token`, `sign`, ...) masked;
/// in any body, the URLs in it masked ([`text`]). A body with nothing to mask is returned as
/// it is.
pub fn body(s: &str) -> Cow<'_, str> {
    let json = json_keys(s);
    match text(&json) {
        Cow::Borrowed(_) => json,
        Cow::Owned(o) => Cow::Owned(o),
    }
}

/// The JSON credential values of `s` masked, when `s` is JSON and has any.
fn json_keys(s: &str) -> Cow<'_, str> {
    let looks_json = matches!(s.trim_start().as_bytes().first(), Some(b'{' | b'['));
    if !looks_json || !might_name_a_secret(s) {
        return Cow::Borrowed(s);
    }
    let Ok(mut v) = serde_json::from_str::<Value>(s) else {
        return Cow::Borrowed(s);
    };
    if mask_json(&mut v) {
        Cow::Owned(v.to_string())
    } else {
        Cow::Borrowed(s)
    }
}

/// A cheap test before parsing: whether any credential key could be in `s` at all.
fn might_name_a_secret(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    ["key", "sig", "token", "secret", "pass", "pwd", "credential"]
        .iter()
        .any(|n| memchr::memmem::find(lower.as_bytes(), n.as_bytes()).is_some())
}

/// Masks credential values in a JSON value; `true` when anything was masked.
fn mask_json(v: &mut Value) -> bool {
    match v {
        Value::Object(m) => {
            let mut changed = false;
            for (k, val) in m.iter_mut() {
                let secret_value = match val {
                    Value::String(s) => !s.is_empty() && s != MASK,
                    Value::Number(_) => true,
                    _ => false,
                };
                if secret_value && is_secret_key(k) {
                    *val = Value::String(MASK.into());
                    changed = true;
                } else {
                    changed |= mask_json(val);
                }
            }
            changed
        }
        Value::Array(a) => a.iter_mut().fold(false, |c, x| mask_json(x) | c),
        _ => false,
    }
}

/// Masks the password of the user info (`scheme://user:PASSWORD@host`).
///
/// The user info is taken to end at the last `@`, so a password with an unescaped `@`, `/` or
/// `?` is hidden whole. That reading is used only when the URL has a password as a parser sees
/// it (or does not parse), so `https://h:8080/a@b` stays as it is.
fn userinfo(s: &str) -> Cow<'_, str> {
    let Some(i) = s.find("://") else {
        return Cow::Borrowed(s);
    };
    let has_password = match reqwest::Url::parse(s) {
        Ok(u) => u.password().is_some(),
        Err(_) => true,
    };
    if !has_password {
        return Cow::Borrowed(s);
    }
    let start = i + 3;
    let rest = &s[start..];
    let Some(at) = rest.rfind('@') else {
        return Cow::Borrowed(s);
    };
    let Some(colon) = rest[..at].find(':') else {
        return Cow::Borrowed(s);
    };
    Cow::Owned(format!(
        "{}{}{MASK}{}",
        &s[..start],
        &rest[..=colon],
        &rest[at..]
    ))
}

/// Masks the token of a Lark/Feishu bot hook (`.../open-apis/bot/v2/hook/TOKEN`).
fn hook_path(s: &str) -> Cow<'_, str> {
    let path_end = s.find(['?', '#']).unwrap_or(s.len());
    let Some(i) = s[..path_end].find(LARK_HOOK) else {
        return Cow::Borrowed(s);
    };
    let from = i + LARK_HOOK.len();
    let to = s[from..path_end].find('/').map_or(path_end, |e| from + e);
    if from == to || &s[from..to] == MASK {
        return Cow::Borrowed(s);
    }
    Cow::Owned(format!("{}{MASK}{}", &s[..from], &s[to..]))
}

/// Masks the values of credential keys in the query and the fragment.
fn query(s: &str) -> Cow<'_, str> {
    let Some(q) = s.find(['?', '#']) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..q]);
    let mut changed = false;
    // Separators (`?`, `#`) are kept, and each part between them is a list of `k=v` pairs.
    let mut rest = &s[q..];
    while let Some(sep) = rest.chars().next() {
        out.push(sep);
        rest = &rest[sep.len_utf8()..];
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        for (n, pair) in rest[..end].split('&').enumerate() {
            if n > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, v)) if !v.is_empty() && v != MASK && is_secret_key(&decode(k)) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(MASK);
                    changed = true;
                }
                _ => out.push_str(pair),
            }
        }
        rest = &rest[end..];
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// Percent- and `+`-decodes a query key (keys only, and only to compare them: invalid
/// escapes stay as they are).
fn decode(k: &str) -> String {
    let b = k.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_everything_but_credentials() {
        // (URL, as shown)
        let cases = [
            (
                "https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1&sign=xyz",
                "https://oapi.dingtalk.com/robot/send?access_token=******&timestamp=1&sign=******",
            ),
            (
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K-1",
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=******",
            ),
            (
                "https://open.feishu.cn/open-apis/bot/v2/hook/tok-123",
                "https://open.feishu.cn/open-apis/bot/v2/hook/******",
            ),
            (
                "https://open.larksuite.com/open-apis/bot/v2/hook/tok-123?x=1",
                "https://open.larksuite.com/open-apis/bot/v2/hook/******?x=1",
            ),
            ("http://h/x?a=1", "http://h/x?a=1"),
            ("http://h/x?a=1&b", "http://h/x?a=1&b"),
            (
                "http://h/x?apikey=1&api_key=2&sig=3&password=4&passwd=5&secret=6",
                "http://h/x?apikey=******&api_key=******&sig=******&password=******&passwd=******&secret=******",
            ),
            (
                "https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F1&X-Amz-Signature=ff",
                "https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4&X-Amz-Credential=******&X-Amz-Signature=******",
            ),
            (
                "https://storage.googleapis.com/o?X-Goog-Signature=ab&X-Goog-Date=1",
                "https://storage.googleapis.com/o?X-Goog-Signature=******&X-Goog-Date=1",
            ),
            (
                "http://h/x?refresh_token=a&clientSecret=b&DB_PASSWORD=c&%73ecret=d",
                "http://h/x?refresh_token=******&clientSecret=******&DB_PASSWORD=******&%73ecret=******",
            ),
            ("http://h/cb#access_token=t&x=1", "http://h/cb#access_token=******&x=1"),
            ("http://h/x?token=", "http://h/x?token="),
            (
                "http://user:pw@h:8080/x?token=t",
                "http://user:******@h:8080/x?token=******",
            ),
            ("mysql://u:pw@h:3306/db", "mysql://u:******@h:3306/db"),
            ("mysql://u:p@ss/w@h/db", "mysql://u:******@h/db"),
            (
                "mysql://reader:p@ss:w0rd@db.internal:3306/zentao",
                "mysql://reader:******@db.internal:3306/zentao",
            ),
            ("mysql://u@h/db", "mysql://u@h/db"),
            ("mysql://h:3306/db", "mysql://h:3306/db"),
            ("https://h:8080/a@b", "https://h:8080/a@b"),
            ("http://h/x?mail=a@b.c", "http://h/x?mail=a@b.c"),
            ("", ""),
            ("not a url", "not a url"),
            ("http://h/a b?key=1", "http://h/a b?key=******"),
        ];
        for (u, shown) in cases {
            assert_eq!(url(u), shown, "{u}");
            // Masking what is masked changes nothing.
            assert_eq!(url(shown), shown, "{shown}");
        }
    }

    #[test]
    fn keys_that_name_credentials() {
        for k in [
            "access_token",
            "KEY",
            "Sign",
            "corpsecret",
            "appsecret",
            "tenant_access_token",
            "X-Amz-Security-Token",
            "x-api-key",
            "userPassword",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "timestamp",
            "id",
            "keyword",
            "msgtype",
            "signed_up",
            "appkey",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn headers() {
        for h in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "X-Api-Key",
            "x-auth-token",
            "X-Secret",
        ] {
            assert_eq!(header(h, "v"), MASK, "{h}");
        }
        assert_eq!(
            header("content-type", "application/json"),
            "application/json"
        );
        assert_eq!(header("webhook-id", "msg_1"), "msg_1");
        assert_eq!(
            header("link", "<http://h/x?token=t>; rel=next"),
            "<http://h/x?token=******>; rel=next"
        );
    }

    #[test]
    fn text_masks_every_url_in_it() {
        assert_eq!(
            text("bot:dinggroup:https://oapi.dingtalk.com/robot/send?access_token=AT"),
            "bot:dinggroup:https://oapi.dingtalk.com/robot/send?access_token=******"
        );
        assert_eq!(
            text("redirect to (http://u:pw@h/x?key=k) and http://h/ok"),
            "redirect to (http://u:******@h/x?key=******) and http://h/ok"
        );
        assert!(matches!(text("no urls here"), Cow::Borrowed(_)));
        assert!(matches!(text("see http://h/x?a=1"), Cow::Borrowed(_)));
    }

    #[test]
    fn bodies() {
        assert_eq!(
            body(r#"{"app_id":"cli","app_secret":"s3"}"#),
            r#"{"app_id":"cli","app_secret":"******"}"#
        );
        assert_eq!(
            body(
                r#"{"corpid":"c","corpsecret":"s","nested":[{"access_token":"t","expires_in":7200}]}"#
            ),
            r#"{"corpid":"c","corpsecret":"******","nested":[{"access_token":"******","expires_in":7200}]}"#
        );
        let lark = r#"{"timestamp":"1","sign":"abc=","msg_type":"text"}"#;
        assert_eq!(
            body(lark),
            r#"{"timestamp":"1","sign":"******","msg_type":"text"}"#
        );
        // Nothing to mask: the very same text.
        let plain = r#"{ "errcode": 0, "errmsg": "ok" }"#;
        assert!(matches!(body(plain), Cow::Borrowed(b) if b == plain));
        assert_eq!(
            body(r#"{"text":"[#1](http://u:pw@pms/x)"}"#),
            r#"{"text":"[#1](http://u:******@pms/x)"}"#
        );
        assert_eq!(body("token=abc"), "token=abc");
        assert_eq!(body("{not json, key"), "{not json, key");
    }
}
