//! `details: true`: the action's changes ("Status: active → resolved") and its comment,
//! appended to a chat message in the platform's markdown, and the cut that keeps a message
//! within the platform's size limit.

use super::text;
use crate::config::Lang;
use crate::event::ActionEvent;

/// The longest comment shown, in characters (after HTML is stripped).
pub const COMMENT_MAX: usize = 500;
/// The longest old or new value of a change shown, in characters (descriptions are HTML pages).
pub const VALUE_MAX: usize = 200;

/// The markup a message is written in, and so its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// DingTalk markdown (group bot and work message): lists and quotes.
    DingTalk,
    /// WeCom group-bot markdown: no lists, quotes allowed.
    WeComMarkdown,
    /// WeCom app-message markdown: as the group bot's, with a smaller limit.
    WeComApp,
    /// Lark/Feishu card markdown: no quotes.
    Lark,
    /// Plain text (a WeCom group message that @-mentions people).
    Plain,
}

impl Markup {
    /// The most bytes of text one message may carry. DingTalk and Lark limit the whole body
    /// (20,000 bytes, 20 KB: room is left for the rest of it), WeCom the content itself.
    pub fn max_text(self) -> usize {
        match self {
            Markup::DingTalk => 18_000,
            Markup::WeComMarkdown => super::chat::WECOM_MARKDOWN_MAX,
            Markup::WeComApp | Markup::Plain => super::chat::WECOM_TEXT_MAX,
            Markup::Lark => 18_000,
        }
    }
}

/// Appends the event's changes and comment to `out` (nothing when it has neither).
pub fn append(out: &mut String, ev: &ActionEvent, lang: Lang, markup: Markup) {
    let empty = match lang {
        Lang::En => "(empty)",
        Lang::ZhCn => "（空）",
    };
    let shown = |v: &str| {
        let v = cut_chars(&strip_html(v), VALUE_MAX);
        if v.is_empty() {
            empty.to_string()
        } else {
            v
        }
    };
    let changes = ev.changes.as_deref().unwrap_or_default();
    if !changes.is_empty() {
        out.push_str("\n\n");
        for (i, c) in changes.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let label = text::field_label(&c.field, lang);
            let line = match markup {
                Markup::DingTalk => format!("- **{label}**: {} → {}", shown(&c.old), shown(&c.new)),
                Markup::WeComMarkdown | Markup::WeComApp | Markup::Lark => {
                    format!("**{label}**: {} → {}", shown(&c.old), shown(&c.new))
                }
                Markup::Plain => format!("{label}: {} → {}", shown(&c.old), shown(&c.new)),
            };
            out.push_str(&line);
        }
    }
    let comment = cut_chars(&strip_html(&ev.comment), COMMENT_MAX);
    if !comment.is_empty() {
        out.push_str("\n\n");
        match markup {
            Markup::DingTalk | Markup::WeComMarkdown | Markup::WeComApp => {
                out.push_str("> ");
                out.push_str(&comment);
            }
            Markup::Lark | Markup::Plain => out.push_str(&comment),
        }
    }
}

/// Cuts `s` to at most `max` characters, ending in `…` when cut.
fn cut_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => {
            let mut out = s[..at].to_string();
            out.pop();
            out.push('…');
            out
        }
        None => s.to_string(),
    }
}

/// Text without HTML: tags dropped (a `<br>` or block end becomes a space), entities decoded,
/// runs of whitespace made one space, trimmed. Sanplex comments and descriptions are HTML.
pub fn strip_html(s: &str) -> String {
    let mut plain = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(lt) = rest.find('<') {
        plain.push_str(&rest[..lt]);
        match rest[lt..].find('>') {
            Some(gt) => {
                plain.push(' ');
                rest = &rest[lt + gt + 1..];
            }
            // A lone `<` is text.
            None => {
                plain.push_str(&rest[lt..]);
                rest = "";
            }
        }
    }
    plain.push_str(rest);
    let decoded = decode_entities(&plain);
    let mut out = String::with_capacity(decoded.len());
    for word in decoded.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Decodes `&amp;`-style and numeric entities; an unknown one stays as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let decoded = tail
            .find(';')
            .filter(|semi| *semi <= 10)
            .and_then(|semi| entity(&tail[1..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    let named = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" | "#39" => '\'',
        "nbsp" => ' ',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            return char::from_u32(code);
        }
    };
    Some(named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Change;

    fn event(changes: Option<Vec<(&str, &str, &str)>>, comment: &str) -> ActionEvent {
        ActionEvent {
            changes: changes.map(|cs| {
                cs.into_iter()
                    .map(|(f, o, n)| Change {
                        field: f.into(),
                        old: o.into(),
                        new: n.into(),
                    })
                    .collect()
            }),
            comment: comment.into(),
            ..ActionEvent::default()
        }
    }

    fn appended(ev: &ActionEvent, lang: Lang, markup: Markup) -> String {
        let mut s = String::from("T");
        append(&mut s, ev, lang, markup);
        s
    }

    /// The changes and the comment in every platform's markup, both languages.
    #[test]
    fn changes_and_comment_per_platform() {
        let ev = event(
            Some(vec![
                ("status", "active", "resolved"),
                ("resolution", "", "fixed"),
            ]),
            "<p>Done &amp; <b>tested</b></p>",
        );
        let cases = [
            (
                Markup::DingTalk,
                Lang::En,
                "T\n\n- **Status**: active → resolved\n- **Resolution**: (empty) → fixed\n\n> Done & tested",
            ),
            (
                Markup::DingTalk,
                Lang::ZhCn,
                "T\n\n- **状态**: active → resolved\n- **解决方案**: （空） → fixed\n\n> Done & tested",
            ),
            (
                Markup::WeComMarkdown,
                Lang::En,
                "T\n\n**Status**: active → resolved\n**Resolution**: (empty) → fixed\n\n> Done & tested",
            ),
            (
                Markup::WeComApp,
                Lang::ZhCn,
                "T\n\n**状态**: active → resolved\n**解决方案**: （空） → fixed\n\n> Done & tested",
            ),
            (
                Markup::Lark,
                Lang::En,
                "T\n\n**Status**: active → resolved\n**Resolution**: (empty) → fixed\n\nDone & tested",
            ),
            (
                Markup::Plain,
                Lang::En,
                "T\n\nStatus: active → resolved\nResolution: (empty) → fixed\n\nDone & tested",
            ),
        ];
        for (markup, lang, want) in cases {
            assert_eq!(appended(&ev, lang, markup), want, "{markup:?} {lang:?}");
        }
    }

    #[test]
    fn nothing_to_add_adds_nothing() {
        for ev in [event(None, ""), event(Some(vec![]), "  <br/> ")] {
            assert_eq!(appended(&ev, Lang::En, Markup::DingTalk), "T");
        }
        let ev = event(Some(vec![("lastEditedBy", "a", "b")]), "");
        assert_eq!(
            appended(&ev, Lang::En, Markup::Plain),
            "T\n\nlastEditedBy: a → b"
        );
    }

    #[test]
    fn long_comments_and_values_are_cut() {
        let long = "字".repeat(COMMENT_MAX + 10);
        let ev = event(Some(vec![("spec", &"x".repeat(500), "y")]), &long);
        let s = appended(&ev, Lang::En, Markup::Lark);
        let comment = s.rsplit("\n\n").next().expect("comment paragraph");
        assert_eq!(comment.chars().count(), COMMENT_MAX);
        assert!(comment.ends_with('…'));
        assert!(
            s.contains(&format!("{}… → y", "x".repeat(VALUE_MAX - 1))),
            "{s}"
        );
    }

    #[test]
    fn html_is_stripped_and_entities_decoded() {
        assert_eq!(
            strip_html("<p>a&lt;b&gt;&#39;c&#x4e2d;&nbsp;d</p><br>e & f <g"),
            "a<b>'c中 d e & f <g"
        );
        assert_eq!(strip_html("&unknown; &amp"), "&unknown; &amp");
    }
}
