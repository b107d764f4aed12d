//! Rows read from Sanplex's tables, and a `zt_action` row turned into an [`ActionEvent`].

use mysql_async::{Row, Value};

use crate::event::ActionEvent;

/// How much of a bad row's JSON the quarantine keeps.
const RAW_LIMIT: usize = 4096;

/// One row as text: column name → value (`None` for SQL `NULL`), in the query's column order.
///
/// Everything is kept as text because that is how Sanplex itself treats its columns (ids in
/// `product` are a `",1,2,"` string, flags are `'0'`/`'1'` enums), and so a quarantined row
/// shows exactly what was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record(pub Vec<(String, Option<String>)>);

impl Record {
    /// Converts a driver row, whichever protocol (text or binary) produced it.
    pub fn from_row(row: &Row) -> Record {
        let cols = row.columns_ref();
        Record(
            cols.iter()
                .enumerate()
                .map(|(i, c)| (c.name_str().into_owned(), row.as_ref(i).and_then(text)))
                .collect(),
        )
    }

    /// The value of a column (names compare case-insensitively, as MySQL's do); `None` when
    /// the column is absent or `NULL`.
    pub fn get(&self, col: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(col))
            .and_then(|(_, v)| v.as_deref())
    }

    /// The row as a JSON object, cut to a few KB: the quarantine's `raw`.
    pub fn to_raw(&self) -> String {
        let obj: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Some(s) => serde_json::Value::String(s.clone()),
                    None => serde_json::Value::Null,
                };
                (k.clone(), v)
            })
            .collect();
        let mut s = serde_json::Value::Object(obj).to_string();
        if s.len() > RAW_LIMIT {
            let mut end = RAW_LIMIT;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    }
}

/// A driver value as the text MySQL would print for it.
fn text(v: &Value) -> Option<String> {
    Some(match v {
        Value::NULL => return None,
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Date(y, m, d, h, i, s, _) => {
            format!("{y:04}-{m:02}-{d:02} {h:02}:{i:02}:{s:02}")
        }
        Value::Time(neg, days, h, i, s, _) => {
            let sign = if *neg { "-" } else { "" };
            format!("{sign}{:02}:{i:02}:{s:02}", *days * 24 + u32::from(*h))
        }
    })
}

/// Splits a Sanplex comma list (`",a,b,"`, `"a, b"`), dropping empty items.
pub fn comma_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

/// A numeric column; absent, `NULL` or empty reads as 0.
fn number(rec: &Record, col: &str) -> Result<u64, String> {
    match rec.get(col).map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{col} is not a non-negative integer: {v:?}")),
    }
}

/// A text column that must not be empty.
fn required(rec: &Record, col: &str) -> Result<String, String> {
    match rec.get(col).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(format!("empty {col}")),
    }
}

/// Sanplex's `product` column (`",1,2,"`, `",0,"`, `"3"`, empty) as ids, zeros and repeats
/// removed (first seen kept, in linear time).
pub fn products(s: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in comma_list(s) {
        let id: u64 = p
            .parse()
            .map_err(|_| format!("product is not a comma list of ids: {s:?}"))?;
        if id != 0 && seen.insert(id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The action's date as `YYYY-MM-DD HH:MM:SS`; a missing or zero date becomes `now` (the
/// contract's default), fractional seconds are dropped.
fn date(rec: &Record, now: &str) -> String {
    match rec.get("date").map(str::trim) {
        None | Some("") => now.to_string(),
        Some(d) if d.starts_with("0000-00-00") => now.to_string(),
        Some(d) => d.get(..19).unwrap_or(d).to_string(),
    }
}

/// Turns one `zt_action` row into an event (not yet enriched), or says why it cannot be one.
pub fn to_event(rec: &Record, now: &str) -> Result<ActionEvent, String> {
    let id = match number(rec, "id")? {
        0 => return Err("id is missing or 0".into()),
        id => id,
    };
    Ok(ActionEvent {
        id: Some(id),
        object_type: required(rec, "objectType")?,
        object_id: number(rec, "objectID")?,
        product: products(rec.get("product").unwrap_or(""))?,
        project: number(rec, "project")?,
        execution: number(rec, "execution")?,
        actor: required(rec, "actor")?,
        action: required(rec, "action")?,
        date: date(rec, now),
        comment: rec.get("comment").unwrap_or("").to_string(),
        extra: rec.get("extra").unwrap_or("").to_string(),
        ..ActionEvent::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(cols: &[(&str, Option<&str>)]) -> Record {
        Record(
            cols.iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        )
    }

    fn action() -> Vec<(&'static str, Option<&'static str>)> {
        vec![
            ("id", Some("42")),
            ("objectType", Some("bug")),
            ("objectID", Some("12")),
            ("product", Some(",1,2,")),
            ("project", Some("3")),
            ("execution", Some("5")),
            ("actor", Some("alice")),
            ("action", Some("resolved")),
            ("date", Some("2026-01-05 18:35:21")),
            ("comment", None),
            ("extra", Some("fixed")),
        ]
    }

    #[test]
    fn a_row_becomes_an_event() {
        let ev = to_event(&rec(&action()), "2026-02-01 00:00:00").expect("event");
        assert_eq!(ev.id, Some(42));
        assert_eq!(ev.object_type, "bug");
        assert_eq!(ev.object_id, 12);
        assert_eq!(ev.product, vec![1, 2]);
        assert_eq!((ev.project, ev.execution), (3, 5));
        assert_eq!(
            (ev.actor.as_str(), ev.action.as_str()),
            ("alice", "resolved")
        );
        assert_eq!(ev.date, "2026-01-05 18:35:21");
        assert_eq!((ev.comment.as_str(), ev.extra.as_str()), ("", "fixed"));
        assert_eq!(ev.url, None);
    }

    #[test]
    fn missing_dates_and_products_take_the_defaults() {
        let mut cols = action();
        cols[3].1 = Some(",0,");
        cols[8].1 = Some("0000-00-00 00:00:00");
        let ev = to_event(&rec(&cols), "2026-02-01 00:00:00").expect("event");
        assert!(ev.product.is_empty());
        assert_eq!(ev.date, "2026-02-01 00:00:00");
        cols[8].1 = Some("2026-01-05 18:35:21.250000");
        cols[3].1 = None;
        let ev = to_event(&rec(&cols), "x").expect("event");
        assert_eq!(ev.date, "2026-01-05 18:35:21");
        assert!(ev.product.is_empty());
    }

    #[test]
    fn rows_that_cannot_be_events_say_why() {
        for (i, value, reason) in [
            (1, Some(""), "empty objectType"),
            (6, Some(" "), "empty actor"),
            (7, None, "empty action"),
            (3, Some(",1,x,"), "product is not a comma list of ids"),
            (2, Some("-1"), "objectID is not a non-negative integer"),
            (0, Some("0"), "id is missing or 0"),
        ] {
            let mut cols = action();
            cols[i].1 = value;
            let err = to_event(&rec(&cols), "now").expect_err(reason);
            assert!(err.contains(reason), "{err} should say {reason}");
        }
    }

    #[test]
    fn raw_json_is_cut_on_a_char_boundary() {
        let long = "é".repeat(RAW_LIMIT);
        let r = rec(&[("comment", Some(long.as_str())), ("extra", None)]);
        let raw = r.to_raw();
        assert!(raw.len() <= RAW_LIMIT);
        assert!(raw.starts_with("{\"comment\":\"é"));
        let short = rec(&[("id", Some("1")), ("extra", None)]).to_raw();
        assert_eq!(short, r#"{"id":"1","extra":null}"#);
    }

    #[test]
    fn values_print_as_mysql_would() {
        assert_eq!(text(&Value::NULL), None);
        assert_eq!(text(&Value::Int(-3)).as_deref(), Some("-3"));
        assert_eq!(
            text(&Value::Date(2026, 1, 5, 18, 35, 21, 0)).as_deref(),
            Some("2026-01-05 18:35:21")
        );
        assert_eq!(
            text(&Value::Bytes(b"alice".to_vec())).as_deref(),
            Some("alice")
        );
    }
}
