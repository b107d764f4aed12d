//! Sanplex's (ZenTao's) database as sanhook reads it, shared by the database source
//! ([`crate::ingest::sanplex_db`]: `zt_action` and the tables that enrich it) and the importer
//! ([`crate::client::import`]: `zt_webhook`, `zt_oauth`, `zt_config`).
//!
//! What both need to know about Sanplex's schema lives here: a row is read as text
//! ([`Record`]), lists of ids and accounts are comma lists (`",1,2,"`, [`comma_list`], [`ids`]),
//! flags are `'0'`/`'1'` enums ([`Record::flag`]), and the database is named by a `mysql://`
//! URL that must name the database and is shown without its password ([`Database`]).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};

/// How much of a row's JSON [`Record::to_raw`] keeps.
const RAW_LIMIT: usize = 4096;

/// What a `mysql://` URL for Sanplex's database looks like, for error messages.
const URL_FORM: &str = "mysql://user:password@host:3306/database";

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

    /// A column holding an id or a count; `None` when it is absent, `NULL` or not a
    /// non-negative integer.
    pub fn uint(&self, col: &str) -> Option<u64> {
        self.get(col).and_then(|v| v.trim().parse().ok())
    }

    /// A Sanplex flag (`enum('0','1')`, such as `deleted`): set when it is `'1'`.
    pub fn flag(&self, col: &str) -> bool {
        self.get(col).is_some_and(|v| v.trim() == "1")
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

#[cfg(test)]
impl Record {
    /// A row of the given columns, none of them `NULL`.
    pub(crate) fn of(cols: &[(&str, &str)]) -> Record {
        Record(
            cols.iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        )
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

/// A comma list of ids (`",1,2,"`, `",0,"`, `"3"`, empty) read from column `col`, as ids:
/// zeros (Sanplex's "none") and repeats removed, the first of each kept, in linear time. The
/// error names the column and its value.
pub fn ids(col: &str, raw: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in comma_list(raw) {
        let id: u64 = p
            .parse()
            .map_err(|_| format!("{col} is not a comma list of ids: {raw:?}"))?;
        if id != 0 && seen.insert(id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Runs `sql` (which has no parameters) and reads every row.
pub async fn select(conn: &mut Conn, sql: String) -> Result<Vec<Record>, mysql_async::Error> {
    let rows: Vec<Row> = conn.query(sql).await?;
    Ok(rows.iter().map(Record::from_row).collect())
}

/// Sanplex's database, as named by a `mysql://` URL.
#[derive(Debug, Clone)]
pub struct Database {
    pub opts: Opts,
    /// The URL without its password, for logs and messages.
    pub shown: String,
}

/// Why [`Database::connect`] gave no connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Db(#[from] mysql_async::Error),
}

impl Database {
    /// Reads a `mysql://` URL, which must name the database. `key` says where the URL came from
    /// (`sanplex_db.url`, `--db`); errors name it and never show the password.
    pub fn parse(url: &str, key: &str) -> Result<Database, String> {
        let opts = Opts::from_url(url.trim()).map_err(|e| {
            format!(
                "{key}: {}; expected {URL_FORM}",
                crate::mask::text(&e.to_string())
            )
        })?;
        let shown = format!(
            "mysql://{}@{}:{}/{}",
            opts.user().unwrap_or(""),
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.db_name().unwrap_or("")
        );
        if opts.db_name().is_none_or(str::is_empty) {
            return Err(format!(
                "{key} {shown} names no database; add it as the path, e.g. mysql://reader:pw@127.0.0.1:3306/zentao"
            ));
        }
        Ok(Database { opts, shown })
    }

    /// Opens a connection, failing after `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Conn, ConnectError> {
        // The URL may ask for TLS (`?require_ssl=true`): rustls needs its provider installed.
        crate::tls::install_crypto_provider();
        tokio::time::timeout(timeout, Conn::new(self.opts.clone()))
            .await
            .map_err(|_| ConnectError::Timeout(timeout))?
            .map_err(ConnectError::Db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_read_as_ids_flags_and_lists() {
        let r = Record(vec![
            ("ID".into(), Some(" 42 ".into())),
            ("deleted".into(), Some("1".into())),
            ("hidden".into(), Some("0".into())),
            ("owner".into(), None),
            ("mailto".into(), Some(",alice, bob,,".into())),
        ]);
        assert_eq!(r.uint("id"), Some(42));
        assert_eq!((r.uint("owner"), r.uint("mailto")), (None, None));
        assert!(r.flag("deleted") && !r.flag("hidden") && !r.flag("absent"));
        let mailto: Vec<&str> = comma_list(r.get("mailto").unwrap_or("")).collect();
        assert_eq!(mailto, ["alice", "bob"]);
    }

    #[test]
    fn id_lists_drop_zeros_and_repeats_and_name_a_bad_column() {
        assert_eq!(ids("product", ",1,2,0,1,"), Ok(vec![1, 2]));
        assert_eq!(ids("product", ",0,"), Ok(vec![]));
        assert_eq!(ids("product", ""), Ok(vec![]));
        let err = ids("executions", "1,x").expect_err("not ids");
        assert_eq!(err, "executions is not a comma list of ids: \"1,x\"");
    }

    #[test]
    fn raw_json_is_cut_on_a_char_boundary() {
        let long = "é".repeat(RAW_LIMIT);
        let r = Record(vec![("comment".into(), Some(long)), ("extra".into(), None)]);
        let raw = r.to_raw();
        assert!(raw.len() <= RAW_LIMIT);
        assert!(raw.starts_with("{\"comment\":\"é"));
        let short = Record(vec![
            ("id".into(), Some("1".into())),
            ("extra".into(), None),
        ]);
        assert_eq!(short.to_raw(), r#"{"id":"1","extra":null}"#);
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

    #[test]
    fn urls_must_name_a_database_and_never_show_the_password() {
        let db =
            Database::parse(" mysql://reader:s3cret@db.local:3307/zentao ", "--db").expect("valid");
        assert_eq!(db.shown, "mysql://reader@db.local:3307/zentao");
        let err = Database::parse("mysql://reader:s3cret@db.local/", "sanplex_db.url")
            .expect_err("no database");
        assert!(
            err.starts_with("sanplex_db.url mysql://reader@db.local:3306/ names no database"),
            "{err}"
        );
        let err =
            Database::parse("postgres://reader:s3cret@db.local/x", "--db").expect_err("not mysql");
        assert!(
            err.starts_with("--db: ") && !err.contains("s3cret"),
            "{err}"
        );
    }
}
