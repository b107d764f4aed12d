//! The one-line notification text every webhook type sends (docs/sanplex.md "Notification text").
//!
//! Receivers parse Sanplex's `{title} [#{objectID}::{objectName}]({url})` form, so it is kept
//! byte for byte, with two deliberate fixes: the parts of the title are joined with spaces in
//! English (Sanplex glues them: "Adminopened Task"), and an event without `objectName` links as
//! `[#12]` instead of Sanplex's dangling `[#12::]`.
//!
//! Labels come from `fixtures/labels.tsv` (ZenTao's own lang files), embedded at build time and
//! parsed once, so rendering is pure: no IO, no clock.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use crate::config::Lang;
use crate::event::ActionEvent;

/// The label table, embedded so the binary needs no data files at run time.
const LABELS_TSV: &str = include_str!("../../fixtures/labels.tsv");
/// Field labels for changes (`details: true`), in the same format with kind `field`.
const FIELDS_TSV: &str = include_str!("../../fixtures/fields.tsv");
/// Labels of sanhook's operator events (objectType `sanhook`).
const OPERATOR_TSV: &str = include_str!("../../fixtures/sanhook-labels.tsv");

/// The text of one notification, rendered for one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `{actor} {label} {type name}`: DingTalk's markdown title and the Feishu card header,
    /// where the link would be noise.
    pub title: String,
    /// The full line, title plus link: what every webhook type sends as its text.
    pub text: String,
    /// The object's link on its own, for callers that need it outside the text.
    pub url: String,
}

/// An English and a Chinese label for one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label {
    en: &'static str,
    zh_cn: &'static str,
}

impl Label {
    fn get(self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::ZhCn => self.zh_cn,
        }
    }
}

/// The parsed label table: action code → verb, object code → type name, field code → name.
#[derive(Debug, Default)]
struct Labels {
    actions: HashMap<&'static str, Label>,
    objects: HashMap<&'static str, Label>,
    fields: HashMap<&'static str, Label>,
}

/// A line of the label table that could not be used; names the line so it can be fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelLineError {
    file: &'static str,
    line: usize,
    content: String,
    reason: &'static str,
}

impl fmt::Display for LabelLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line {}: {} ({:?}); expected `kind<TAB>code<TAB>en<TAB>zh-cn` \
             with kind `action`, `object` or `field`",
            self.file, self.line, self.reason, self.content
        )
    }
}

/// Parses the TSV leniently: bad lines are skipped and reported, so one typo in a label file
/// costs one label (shown as its raw code), not every notification. A test keeps the embedded
/// table free of such lines.
fn parse_labels(src: &'static str) -> (Labels, Vec<LabelLineError>) {
    let mut labels = Labels::default();
    let mut errors = Vec::new();
    parse_into(&mut labels, &mut errors, "fixtures/labels.tsv", src);
    (labels, errors)
}

/// Parses one file into `labels` (see [`parse_labels`]).
fn parse_into(
    labels: &mut Labels,
    errors: &mut Vec<LabelLineError>,
    file: &'static str,
    src: &'static str,
) {
    for (i, raw) in src.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("kind\t") {
            continue;
        }
        let err = |reason| LabelLineError {
            file,
            line: i + 1,
            content: line.to_string(),
            reason,
        };
        let fields: Vec<&'static str> = line.split('\t').collect();
        let [kind, code, en, zh_cn] = fields[..] else {
            errors.push(err("not exactly 4 tab-separated fields"));
            continue;
        };
        if code.is_empty() {
            errors.push(err("empty code"));
            continue;
        }
        let map = match kind {
            "action" => &mut labels.actions,
            "object" => &mut labels.objects,
            "field" => &mut labels.fields,
            _ => {
                errors.push(err("unknown kind"));
                continue;
            }
        };
        if map.insert(code, Label { en, zh_cn }).is_some() {
            errors.push(err("duplicate code (the later line wins)"));
        }
    }
}

/// The embedded table, parsed on first use.
fn labels() -> &'static Labels {
    static LABELS: OnceLock<Labels> = OnceLock::new();
    LABELS.get_or_init(|| {
        let (mut labels, mut errors) = parse_labels(LABELS_TSV);
        parse_into(&mut labels, &mut errors, "fixtures/fields.tsv", FIELDS_TSV);
        parse_into(
            &mut labels,
            &mut errors,
            "fixtures/sanhook-labels.tsv",
            OPERATOR_TSV,
        );
        for e in &errors {
            tracing::error!(error = %e, "skipping a bad label line");
        }
        labels
    })
}

/// Every label of the embedded tables as `(kind, code, en, zh-cn)`, kind `action`, `object` or
/// `field` (the web admin's catalog shows them).
pub fn all_labels() -> impl Iterator<Item = (&'static str, &'static str, &'static str, &'static str)>
{
    let l = labels();
    [
        ("action", &l.actions),
        ("object", &l.objects),
        ("field", &l.fields),
    ]
    .into_iter()
    .flat_map(|(kind, map)| {
        map.iter()
            .map(move |(code, v)| (kind, *code, v.en, v.zh_cn))
    })
}

/// The verb for an action code (`resolved` → "resolved" / "解决了"); an unknown code is shown
/// as is, because a raw code still tells the reader more than nothing.
pub fn action_label(code: &str, lang: Lang) -> &str {
    labels()
        .actions
        .get(code)
        .map_or(code, |label| label.get(lang))
}

/// The display name of an object type (`testtask` → "Test Build" / "测试单"); an unknown type
/// is shown as its raw code.
pub fn object_type_name(code: &str, lang: Lang) -> &str {
    labels()
        .objects
        .get(code)
        .map_or(code, |label| label.get(lang))
}

/// The name of a changed field (`assignedTo` → "Assigned To" / "指派给"); a field without a
/// label is shown as its code.
pub fn field_label(code: &str, lang: Lang) -> &str {
    labels()
        .fields
        .get(code)
        .map_or(code, |label| label.get(lang))
}

/// Treats `Some("")` like `None`: producers often send empty strings for missing values.
fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// The object's link: the event's own `url`, else one built like Sanplex builds it.
///
/// `domain` is the webhook's `domain` (may be empty); `base_url` is `sanplex.base_url`.
fn object_url(ev: &ActionEvent, domain: &str, base_url: &str) -> String {
    if let Some(url) = non_empty(ev.url.as_deref()) {
        return url.to_string();
    }
    let domain = if domain.is_empty() { base_url } else { domain };
    let domain = domain.trim_end_matches('/');
    match ev.object_type.as_str() {
        // A card has no page of its own; its board is where people look at it.
        "kanbancard" => match ev.kanban_id {
            Some(board) => format!("{domain}/kanban-view-{board}.html"),
            None => format!("{domain}/"),
        },
        // Test cases live in Sanplex's `testcase` module although the object type is `case`.
        "case" => format!("{domain}/testcase-view-{}.html", ev.object_id),
        module => format!("{domain}/{module}-view-{}.html", ev.object_id),
    }
}

/// Renders the notification for one event and one webhook.
///
/// `domain` is the webhook's `domain` ("" when unset) and wins over `base_url`
/// (`sanplex.base_url`); both may end in slashes. The title joins actor, verb and type name
/// with single spaces in English and with nothing in Chinese, skipping empty parts (ZenTao's
/// `space` action has an empty label) so that no double spaces appear.
pub fn render(ev: &ActionEvent, domain: &str, base_url: &str, lang: Lang) -> Rendered {
    let actor = non_empty(ev.actor_name.as_deref()).unwrap_or(&ev.actor);
    let parts = [
        actor,
        action_label(&ev.action, lang),
        object_type_name(&ev.object_type, lang),
    ];
    let sep = match lang {
        Lang::En => " ",
        Lang::ZhCn => "",
    };
    let mut title = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if !title.is_empty() {
            title.push_str(sep);
        }
        title.push_str(part);
    }

    let url = object_url(ev, domain, base_url);
    let text = match non_empty(ev.object_name.as_deref()) {
        Some(name) => format!("{title} [#{}::{name}]({url})", ev.object_id),
        None => format!("{title} [#{}]({url})", ev.object_id),
    };
    Rendered { title, text, url }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// One row of `fixtures/text/cases.json` → `render`.
    #[derive(Deserialize)]
    struct RenderCase {
        name: String,
        lang: String,
        #[serde(default)]
        domain: String,
        base_url: String,
        event: ActionEvent,
        title: String,
        text: String,
        url: String,
    }

    #[derive(Deserialize)]
    struct Cases {
        render: Vec<RenderCase>,
    }

    fn lang(s: &str) -> Lang {
        match s {
            "en" => Lang::En,
            "zh-cn" => Lang::ZhCn,
            other => panic!("cases.json: unknown lang {other:?}; use \"en\" or \"zh-cn\""),
        }
    }

    fn cases() -> Cases {
        serde_json::from_str(include_str!("../../fixtures/text/cases.json"))
            .unwrap_or_else(|e| panic!("fixtures/text/cases.json does not parse: {e}"))
    }

    #[test]
    fn render_cases_from_fixture() {
        let cases = cases().render;
        assert!(cases.len() >= 10, "the render table lost its rows");
        let mut failures = Vec::new();
        for c in &cases {
            let got = render(&c.event, &c.domain, &c.base_url, lang(&c.lang));
            let want = Rendered {
                title: c.title.clone(),
                text: c.text.clone(),
                url: c.url.clone(),
            };
            if got != want {
                failures.push(format!("{}:\n  got  {got:?}\n  want {want:?}", c.name));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn embedded_label_table_has_no_bad_lines() {
        let (labels, errors) = parse_labels(LABELS_TSV);
        let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(msgs.is_empty(), "{}", msgs.join("\n"));
        // Counted from the file: 188 actions, 77 object types.
        assert_eq!(labels.actions.len(), 188);
        assert_eq!(labels.objects.len(), 77);
        let (mut labels, mut errors) = (Labels::default(), Vec::new());
        parse_into(&mut labels, &mut errors, "fixtures/fields.tsv", FIELDS_TSV);
        let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(msgs.is_empty(), "{}", msgs.join("\n"));
        assert_eq!((labels.actions.len(), labels.fields.len()), (0, 49));
        parse_into(
            &mut labels,
            &mut errors,
            "fixtures/sanhook-labels.tsv",
            OPERATOR_TSV,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((labels.actions.len(), labels.objects.len()), (3, 1));
    }

    #[test]
    fn bad_label_lines_are_reported_with_their_line_number() {
        let src = "# comment\nkind\tcode\ten\tzh-cn\naction\topened\topened\t创建了\n\
                   action\tbroken\tonly three\nwidget\tx\tX\tX\naction\topened\tagain\t又\n";
        let (labels, errors) = parse_labels(src);
        let lines: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.reason)).collect();
        assert_eq!(
            lines,
            vec![
                (4, "not exactly 4 tab-separated fields"),
                (5, "unknown kind"),
                (6, "duplicate code (the later line wins)"),
            ]
        );
        assert_eq!(labels.actions.len(), 1);
        assert!(errors[0].to_string().contains("line 4"));
    }

    #[test]
    fn labels_by_language_and_unknown_codes() {
        assert_eq!(action_label("resolved", Lang::En), "resolved");
        assert_eq!(action_label("resolved", Lang::ZhCn), "解决了");
        assert_eq!(object_type_name("testtask", Lang::En), "Test Build");
        assert_eq!(object_type_name("testtask", Lang::ZhCn), "测试单");
        assert_eq!(action_label("teleported", Lang::ZhCn), "teleported");
        assert_eq!(object_type_name("spaceship", Lang::En), "spaceship");
        assert_eq!(field_label("assignedTo", Lang::En), "Assigned To");
        assert_eq!(field_label("assignedTo", Lang::ZhCn), "指派给");
        assert_eq!(field_label("lastEditedBy", Lang::ZhCn), "lastEditedBy");
    }
}
