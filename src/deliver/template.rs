//! Users' own message templates (docs/reference.md §4 `template`), in MiniJinja syntax.
//!
//! A chat webhook may replace its title and text, a `default` webhook its whole JSON body. The
//! variables are the event's keys plus what the built-in text is made of ([`Vars`]). In a body
//! template every value is written JSON-escaped: a string's characters are escaped for use
//! inside a JSON string literal (the template writes the quotes), numbers and booleans as they
//! are, lists and objects as JSON; so a `"` in a title cannot break the body.
//!
//! Templates are checked when a webhook is saved ([`check`]: syntax, then a render of a sample
//! event, so that an unknown filter is found then and not at send time), and rendered per send
//! ([`render`]); an error there names the line and column. Besides MiniJinja's built-in
//! filters there is Jinja2's `striptags` (Sanplex comments are HTML). Rendering is bounded (fuel and
//! recursion limits) so a template cannot stall a dispatch worker.

use std::sync::OnceLock;

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, Value};
use serde::Serialize;

use super::text::{self, Rendered};
use crate::config::Lang;
use crate::event::{ActionEvent, Change};
use crate::webhook::WebhookType;

/// The longest template source accepted, in bytes.
pub const MAX_SOURCE: usize = 16 * 1024;
/// The longest output kept, in bytes: more than any platform takes (the channels cut further).
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How values are written into a template's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are (chat titles and texts).
    Text,
    /// JSON-escaped (`default` bodies).
    Json,
}

/// One environment per escape mode, built once: only configuration, no state.
fn env(escape: Escape) -> &'static Environment<'static> {
    static TEXT: OnceLock<Environment<'static>> = OnceLock::new();
    static JSON: OnceLock<Environment<'static>> = OnceLock::new();
    let cell = match escape {
        Escape::Text => &TEXT,
        Escape::Json => &JSON,
    };
    cell.get_or_init(|| {
        let mut env = Environment::new();
        env.set_debug(true);
        // A loop over a huge range or deep recursion ends with an error instead of a stall.
        env.set_fuel(Some(200_000));
        env.set_recursion_limit(64);
        // Jinja2's `striptags`, as `details` strips comments: tags out, entities decoded.
        env.add_filter("striptags", |s: &str| super::details::strip_html(s));
        match escape {
            Escape::Text => env.set_formatter(|out, _state, value| {
                if value.is_undefined() || value.is_none() {
                    return Ok(());
                }
                write(out, &bounded_text(value)?)
            }),
            Escape::Json => env.set_formatter(|out, _state, value| write(out, &json_piece(value)?)),
        }
        env
    })
}

/// A `fmt::Write`/`io::Write` sink that refuses to grow past [`MAX_OUTPUT`].
///
/// Why: a value can be far larger as text than it cost to build. MiniJinja charges fuel for
/// text only once it is written, after `Display` made all of it, so a list holding one long list
/// many times (`[r, r, r, ...]`) would otherwise be turned into gigabytes of text first.
/// Stopping at the first byte past what is kept bounds the work to [`MAX_OUTPUT`].
#[derive(Default)]
struct Bounded(Vec<u8>);

impl Bounded {
    fn take(&mut self, bytes: &[u8]) -> bool {
        if self.0.len() + bytes.len() > MAX_OUTPUT {
            return false;
        }
        self.0.extend_from_slice(bytes);
        true
    }
}

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.take(s.as_bytes()).then_some(()).ok_or(std::fmt::Error)
    }
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.take(buf) {
            true => Ok(buf.len()),
            false => Err(std::io::ErrorKind::OutOfMemory.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_large() -> Error {
    Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("a value is over {MAX_OUTPUT} bytes as text; write less of it"),
    )
}

/// `value` as text ([`Escape::Text`]), at most [`MAX_OUTPUT`] bytes of it.
fn bounded_text(value: &Value) -> Result<String, Error> {
    let mut sink = Bounded::default();
    std::fmt::write(&mut sink, format_args!("{value}")).map_err(|_| too_large())?;
    String::from_utf8(sink.0).map_err(|_| too_large())
}

/// `value` as JSON, at most [`MAX_OUTPUT`] bytes of it.
fn bounded_json(value: &impl Serialize) -> Result<String, Error> {
    let mut sink = Bounded::default();
    serde_json::to_writer(&mut sink, value).map_err(|_| too_large())?;
    String::from_utf8(sink.0).map_err(|_| too_large())
}

fn write(out: &mut minijinja::Output<'_>, s: &str) -> Result<(), Error> {
    out.write_str(s)
        .map_err(|e| Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
}

/// A value as written into a JSON body: see the module comment.
fn json_piece(value: &Value) -> Result<String, Error> {
    if value.is_safe() {
        // `tojson` and `safe` output: already what the author wants.
        return bounded_text(value);
    }
    Ok(match value.kind() {
        ValueKind::Undefined | ValueKind::None => String::new(),
        ValueKind::String => {
            let quoted = bounded_json(&value.as_str().unwrap_or_default())?;
            quoted[1..quoted.len() - 1].to_string()
        }
        ValueKind::Number | ValueKind::Bool => value.to_string(),
        _ => bounded_json(value)?,
    })
}

/// One change as templates see it: the event's `{field, old, new}` plus the field's label.
#[derive(Serialize)]
struct ChangeVar<'a> {
    field: &'a str,
    label: &'a str,
    old: &'a str,
    new: &'a str,
}

/// The variables of a template (docs/reference.md §4): every event key, the built-in title and text,
/// the labels and the language.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Vars<'a> {
    id: Option<u64>,
    object_type: &'a str,
    #[serde(rename = "objectID")]
    object_id: u64,
    product: &'a [u64],
    project: u64,
    execution: u64,
    actor: &'a str,
    action: &'a str,
    date: &'a str,
    comment: &'a str,
    extra: &'a str,
    /// `""` when the event has none.
    object_name: &'a str,
    /// Falls back to `actor`, as in the built-in text.
    actor_name: &'a str,
    /// The object's link (the event's own or the one built for it).
    url: &'a str,
    #[serde(rename = "kanbanID")]
    kanban_id: Option<u64>,
    to_list: &'a [String],
    mentions: &'a [String],
    /// Empty when not known.
    changes: Vec<ChangeVar<'a>>,
    label: &'a str,
    type_label: &'a str,
    title: &'a str,
    text: &'a str,
    lang: &'a str,
}

fn vars<'a>(ev: &'a ActionEvent, built: &'a Rendered, lang: Lang) -> Vars<'a> {
    let changes = ev
        .changes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|c: &'a Change| ChangeVar {
            field: &c.field,
            label: text::field_label(&c.field, lang),
            old: &c.old,
            new: &c.new,
        })
        .collect();
    Vars {
        id: ev.id,
        object_type: &ev.object_type,
        object_id: ev.object_id,
        product: &ev.product,
        project: ev.project,
        execution: ev.execution,
        actor: &ev.actor,
        action: &ev.action,
        date: &ev.date,
        comment: &ev.comment,
        extra: &ev.extra,
        object_name: ev.object_name.as_deref().unwrap_or_default(),
        actor_name: ev
            .actor_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&ev.actor),
        url: &built.url,
        kanban_id: ev.kanban_id,
        to_list: &ev.to_list,
        mentions: &ev.mentions,
        changes,
        label: text::action_label(&ev.action, lang),
        type_label: text::object_type_name(&ev.object_type, lang),
        title: &built.title,
        text: &built.text,
        lang: lang.as_str(),
    }
}

/// Renders `source` for `ev`; `built` is the built-in rendering (its title, text and link are
/// variables). The error names the line and column.
pub fn render(
    source: &str,
    escape: Escape,
    ev: &ActionEvent,
    built: &Rendered,
    lang: Lang,
) -> Result<String, String> {
    let env = env(escape);
    refuse_repetition(source)?;
    let tmpl = env
        .template_from_str(source)
        .map_err(|e| describe(source, &e))?;
    let mut out = tmpl
        .render(Value::from(minijinja::value::Serde(vars(ev, built, lang))))
        .map_err(|e| describe(source, &e))?;
    crate::cut::truncate(&mut out, MAX_OUTPUT);
    Ok(out)
}

/// Refuses the `*` operator except to repeat a quoted string (`'-' * 20`, `20 * '='`).
///
/// Why: MiniJinja 3.1 repeats a list lazily, so `[1] * 100000000` costs no fuel to build, and
/// neither does turning it into text, comparing or joining it afterwards: one such expression
/// in a template ran for minutes and took gigabytes (found by the `template` fuzz target). A
/// quoted string's repetition is charged before it is built, and multiplying numbers has no
/// use in a message. Checked on the tokens, so `*` inside a string or a comment is not seen.
/// Syntax errors are left to the compiler, which names them.
fn refuse_repetition(source: &str) -> Result<(), String> {
    use minijinja::machinery::{tokenize, Token};
    let quoted = |t: &Token<'_>| matches!(t, Token::Str(_) | Token::String(_));
    let mut prev_quoted = false;
    // A `*` whose left operand was not a quoted string: its right one must be.
    let mut pending: Option<u32> = None;
    for token in tokenize(source, false, Default::default()) {
        let Ok((token, span)) = token else {
            break;
        };
        let is_quoted = quoted(&token);
        if let Some(at) = pending.take() {
            if !is_quoted {
                let (line, column) = line_column(source, at as usize);
                return Err(format!(
                    "line {line}, column {column}: `*` only repeats a quoted string here \
                     (e.g. '-' * 20); repeating lists and multiplying values are not supported"
                ));
            }
        }
        if matches!(token, Token::Mul) && !prev_quoted {
            pending = Some(span.start_offset);
        }
        prev_quoted = is_quoted;
    }
    Ok(())
}

/// A template error as users read it: where, then what.
fn describe(source: &str, e: &Error) -> String {
    let what = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    match (e.line(), e.range()) {
        (_, Some(range)) if range.start <= source.len() => {
            let (line, column) = line_column(source, range.start);
            format!("line {line}, column {column}: {what}")
        }
        (Some(line), _) => format!("line {line}: {what}"),
        _ => what,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
fn line_column(source: &str, mut offset: usize) -> (usize, usize) {
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The event templates are tried on when saved, and `preview` shows without a body: Alice
/// resolving bug 12 with three changed fields and a comment.
pub fn sample_event() -> ActionEvent {
    let change = |field: &str, old: &str, new: &str| Change {
        field: field.into(),
        old: old.into(),
        new: new.into(),
    };
    ActionEvent {
        id: Some(1050),
        object_type: "bug".into(),
        object_id: 12,
        product: vec![1],
        project: 2,
        execution: 5,
        actor: "alice".into(),
        action: "resolved".into(),
        date: "2026-01-05 18:35:21".into(),
        comment: "<p>Fixed in <b>build 42</b> &amp; deployed.</p>".into(),
        object_name: Some("Login fails with \"quotes\"".into()),
        actor_name: Some("Alice".into()),
        changes: Some(vec![
            change("status", "active", "resolved"),
            change("resolution", "", "fixed"),
            change("assignedTo", "alice", "bob"),
        ]),
        ..ActionEvent::default()
    }
}

/// Checks a template at save time: its size, its syntax, and a render of [`sample_event`]
/// (for a `default` body: that the result is JSON). `field` names it in the message.
pub fn check(field: &str, source: &str, kind: WebhookType) -> Result<(), String> {
    if source.len() > MAX_SOURCE {
        return Err(format!(
            "{field} is {} bytes; at most {MAX_SOURCE} are accepted",
            source.len()
        ));
    }
    let escape = if kind == WebhookType::Default {
        Escape::Json
    } else {
        Escape::Text
    };
    let ev = sample_event();
    let built = text::render(&ev, "", "http://sanplex.example.com", Lang::En);
    let out = render(source, escape, &ev, &built, Lang::En).map_err(|e| format!("{field}: {e}"))?;
    if escape == Escape::Json {
        json_check(&out).map_err(|e| format!("{field}: the sample event renders {e}"))?;
    }
    Ok(())
}

/// Checks that a rendered body is JSON; the error quotes where it stops being JSON.
pub fn json_check(out: &str) -> Result<(), String> {
    match serde_json::from_str::<serde::de::IgnoredAny>(out) {
        Ok(_) => Ok(()),
        Err(e) => {
            let shown: String = out.chars().take(200).collect();
            Err(format!(
                "text that is not JSON ({e} of the output): {shown:?}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(ev: &ActionEvent, lang: Lang) -> Rendered {
        text::render(ev, "", "http://pm.example.com", lang)
    }

    fn text(source: &str, lang: Lang) -> Result<String, String> {
        let ev = sample_event();
        render(source, Escape::Text, &ev, &built(&ev, lang), lang)
    }

    /// Every variable of docs/reference.md §4, in both languages.
    #[test]
    fn every_variable_in_both_languages() {
        let cases: &[(&str, &str, &str)] = &[
            ("{{ id }}", "1050", "1050"),
            ("{{ objectType }}", "bug", "bug"),
            ("{{ objectID }}", "12", "12"),
            ("{{ product }}", "[1]", "[1]"),
            ("{{ project }}/{{ execution }}", "2/5", "2/5"),
            ("{{ actor }}", "alice", "alice"),
            ("{{ action }}", "resolved", "resolved"),
            ("{{ date }}", "2026-01-05 18:35:21", "2026-01-05 18:35:21"),
            (
                "{{ objectName }}",
                "Login fails with \"quotes\"",
                "Login fails with \"quotes\"",
            ),
            ("{{ actorName }}", "Alice", "Alice"),
            (
                "{{ url }}",
                "http://pm.example.com/bug-view-12.html",
                "http://pm.example.com/bug-view-12.html",
            ),
            ("{{ label }}", "resolved", "解决了"),
            ("{{ typeLabel }}", "Bug", "Bug"),
            ("{{ lang }}", "en", "zh-cn"),
            ("{{ title }}", "Alice resolved Bug", "Alice解决了Bug"),
            ("{{ changes | length }}", "3", "3"),
            (
                "{% for c in changes %}{{ c.label }}: {{ c.old }}→{{ c.new }};{% endfor %}",
                "Status: active→resolved;Resolution: →fixed;Assigned To: alice→bob;",
                "状态: active→resolved;解决方案: →fixed;指派给: alice→bob;",
            ),
            (
                "{{ kanbanID }}{{ toList | length }}{{ mentions | length }}{{ extra }}",
                "00",
                "00",
            ),
            (
                "{{ comment | striptags }}",
                "Fixed in build 42 & deployed.",
                "Fixed in build 42 & deployed.",
            ),
        ];
        for (source, en, zh) in cases {
            assert_eq!(text(source, Lang::En).as_deref(), Ok(*en), "{source} (en)");
            assert_eq!(
                text(source, Lang::ZhCn).as_deref(),
                Ok(*zh),
                "{source} (zh-cn)"
            );
        }
        let t = text("{{ text }}", Lang::En).expect("renders");
        assert_eq!(
            t,
            "Alice resolved Bug [#12::Login fails with \"quotes\"](http://pm.example.com/bug-view-12.html)"
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = text("line one\n  {{ objectID | nosuchfilter }}", Lang::En).unwrap_err();
        assert!(e.starts_with("line 2, column "), "{e}");
        assert!(e.contains("nosuchfilter"), "{e}");
        let e = text("{% if %}", Lang::En).unwrap_err();
        assert!(e.starts_with("line 1, column "), "{e}");
        assert!(e.contains("syntax error"), "{e}");
        let e = check("template.text", "ok\n{{ x", WebhookType::Dinggroup).unwrap_err();
        assert!(e.starts_with("template.text: line 2, column "), "{e}");
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let e = text(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            Lang::En,
        )
        .unwrap_err();
        assert!(e.contains("fuel"), "{e}");
    }

    /// Inputs the `template` fuzz target found stalling a render for seconds (a lazily
    /// repeated list written out), and their neighbours: refused quickly with a message.
    #[test]
    fn list_repetition_is_refused_and_huge_values_are_not_written() {
        for source in [
            "{{ range(20) | list * 21001 }}",
            "{{ [1] * 100000000 }}",
            "{{ 'a' ~ ([1] * 100000000) }}",
            "{{ ([1] * 100000000) | tojson }}",
            "{{ 2 * objectID }}",
            "{{ ('-' * 2) * 1000 }}",
        ] {
            let e = text(source, Lang::En).unwrap_err();
            assert!(
                e.contains("`*` only repeats a quoted string"),
                "{source}: {e}"
            );
            assert!(e.starts_with("line 1, column "), "{source}: {e}");
        }
        assert_eq!(
            text("{{ '-' * 3 }}{{ 2 * '=' }}", Lang::En).as_deref(),
            Ok("---==")
        );
        assert_eq!(
            text("{# a * b #}{{ 'a * b' }}", Lang::En).as_deref(),
            Ok("a * b")
        );
        // One long list many times over: gigabytes as text, refused past MAX_OUTPUT.
        let many = format!(
            "{{% set r = range(100000) | list %}}{{% set x = [{}] %}}",
            vec!["r"; 1000].join(", ")
        );
        let e = text(&format!("{many}{{{{ x }}}}"), Lang::En).unwrap_err();
        assert!(e.contains("bytes as text"), "{e}");
        let ev = sample_event();
        let e = render(
            &format!("{many}{{\"a\": {{{{ x }}}}}}"),
            Escape::Json,
            &ev,
            &built(&ev, Lang::En),
            Lang::En,
        )
        .unwrap_err();
        assert!(e.contains("bytes as text"), "{e}");
    }

    #[test]
    fn json_bodies_escape_every_value() {
        let ev = sample_event();
        let b = built(&ev, Lang::En);
        let body = render(
            r#"{"text": "{{ text }}", "id": {{ objectID }}, "products": {{ product }}, "changes": {{ changes }}, "name": {{ objectName | tojson }}}"#,
            Escape::Json,
            &ev,
            &b,
            Lang::En,
        )
        .expect("renders");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["text"], b.text.as_str());
        assert_eq!(v["id"], 12);
        assert_eq!(v["products"], serde_json::json!([1]));
        assert_eq!(v["changes"][0]["new"], "resolved");
        assert_eq!(v["name"], "Login fails with \"quotes\"");
    }

    #[test]
    fn save_time_check_of_a_default_body() {
        assert_eq!(
            check(
                "template.body",
                r#"{"text": "{{ title }}"}"#,
                WebhookType::Default
            ),
            Ok(())
        );
        let e = check(
            "template.body",
            r#"{"text": {{ title }}}"#,
            WebhookType::Default,
        )
        .unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
        let e = check(
            "template.body",
            &"x".repeat(MAX_SOURCE + 1),
            WebhookType::Default,
        )
        .unwrap_err();
        assert!(e.contains("at most"), "{e}");
    }

    /// The examples in README's "Message text" section are webhooks that save.
    #[test]
    fn readme_examples_are_valid_webhooks() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("## Message text")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has the Message text section");
        let examples: Vec<&str> = section
            .split("```json\n")
            .skip(1)
            .filter_map(|s| s.split("\n```").next())
            .collect();
        assert_eq!(examples.len(), 2, "README's template examples moved");
        for ex in examples {
            let wh: crate::webhook::Webhook =
                serde_json::from_str(ex).unwrap_or_else(|e| panic!("{e}: {ex}"));
            assert!(wh.template.is_some(), "{ex}");
            wh.validate().unwrap_or_else(|e| panic!("{e}: {ex}"));
        }
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\n张三x", 9), (2, 3));
        assert_eq!(line_column("ab\n张三x", 8), (2, 2));
        assert_eq!(line_column("abc", 0), (1, 1));
    }
}
