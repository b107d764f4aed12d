//! A `zt_action` row turned into an [`ActionEvent`].

use crate::event::ActionEvent;
use crate::sanplex::{ids, Record};

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
        product: ids("product", rec.get("product").unwrap_or(""))?,
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
}
