//! Enrichment from Sanplex's own tables (docs/sanplex.md, "Sanplex's database"): the object's title,
//! the actor's real name, the recipients, the assignee's mobile, a kanban card's board.
//!
//! Lookups are batched: one query per table per poll (`WHERE id IN (...)`), never one per
//! action. Which columns exist is read from `information_schema` when the source connects, so
//! an older or newer Sanplex whose tables lack a column loses only that piece of enrichment
//! instead of failing every poll.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};

use crate::event::{ActionEvent, Change, MAX_CHANGES, MAX_ENTRIES};
use crate::sanplex::{comma_list, select, Record};

/// An object table: which action `objectType`s it holds, its title column, and the columns
/// that name people.
#[derive(Debug)]
pub struct ObjectTable {
    pub table: &'static str,
    pub types: &'static [&'static str],
    /// The title shown as `objectName`.
    pub name: &'static str,
    /// Optional columns: recipients (`assignedTo`, `owner`, `account`, `mailto`) and `kanban`.
    pub extra: &'static [&'static str],
}

/// The tables docs/sanplex.md names. Requirements and epics are rows of `zt_story`; executions
/// and programs are rows of `zt_project`. A kanban card's board is `zt_kanbancard.kanban`
/// (ZenTao's own schema, checked against ZenTao 16–20).
pub const OBJECT_TABLES: &[ObjectTable] = &[
    ObjectTable {
        table: "zt_bug",
        types: &["bug"],
        name: "title",
        extra: &["assignedTo", "mailto"],
    },
    ObjectTable {
        table: "zt_story",
        types: &["story", "requirement", "epic"],
        name: "title",
        extra: &["assignedTo", "mailto"],
    },
    ObjectTable {
        table: "zt_task",
        types: &["task"],
        name: "name",
        extra: &["assignedTo", "mailto"],
    },
    ObjectTable {
        table: "zt_product",
        types: &["product"],
        name: "name",
        extra: &[],
    },
    ObjectTable {
        table: "zt_project",
        types: &["project", "execution", "program"],
        name: "name",
        extra: &[],
    },
    ObjectTable {
        table: "zt_productplan",
        types: &["productplan"],
        name: "title",
        extra: &[],
    },
    ObjectTable {
        table: "zt_release",
        types: &["release"],
        name: "name",
        extra: &["mailto"],
    },
    ObjectTable {
        table: "zt_case",
        types: &["case"],
        name: "title",
        extra: &[],
    },
    ObjectTable {
        table: "zt_testtask",
        types: &["testtask"],
        name: "name",
        extra: &["owner", "mailto"],
    },
    ObjectTable {
        table: "zt_todo",
        types: &["todo"],
        name: "name",
        extra: &["assignedTo", "account"],
    },
    ObjectTable {
        table: "zt_doc",
        types: &["doc"],
        name: "title",
        extra: &["assignedTo", "mailto"],
    },
    ObjectTable {
        table: "zt_kanbancard",
        types: &["kanbancard"],
        name: "name",
        extra: &["assignedTo", "kanban"],
    },
];

/// Columns of `zt_action` the source cannot work without.
pub const ACTION_REQUIRED: &[&str] = &["id", "objectType", "objectID", "actor", "action"];
/// Columns of `zt_action` read when present (older ZenTao has no `execution`).
pub const ACTION_OPTIONAL: &[&str] = &[
    "product",
    "project",
    "execution",
    "date",
    "comment",
    "extra",
];
/// Columns of `zt_user` read when present (besides `account`).
const USER_OPTIONAL: &[&str] = &["realname", "mobile", "deleted"];

/// Columns of `zt_history` the source reads (all of them, or it reads no changes).
const HISTORY_COLUMNS: &[&str] = &["id", "action", "field", "old", "new"];

/// Columns that name people to notify, in the order they are added to `toList`.
const RECIPIENT_COLUMNS: &[&str] = &["assignedTo", "owner", "account", "mailto"];

/// Sanplex's pseudo-assignee of closed bugs, stories and tasks: nobody to notify.
const CLOSED: &str = "closed";

/// Most values bound in one `IN (...)`.
const IN_CHUNK: usize = 1000;

/// What the connected database offers: the columns to select per table.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `zt_action` columns to select.
    pub action: Vec<&'static str>,
    /// Object table → columns to select (`id` and the title first); absent = no lookup.
    pub objects: HashMap<&'static str, Vec<&'static str>>,
    /// `zt_user` columns to select (`account` first); empty = no user lookups.
    pub user: Vec<&'static str>,
    /// Whether `zt_history` is there to read the actions' changes from.
    pub history: bool,
    /// What is missing, for one log line.
    pub missing: Vec<String>,
}

impl Schema {
    /// Reads the columns of the tables the source uses. An error names what `zt_action` lacks.
    pub async fn discover(conn: &mut Conn) -> Result<Result<Schema, String>, mysql_async::Error> {
        let mut tables: Vec<&str> = OBJECT_TABLES.iter().map(|t| t.table).collect();
        tables.extend(["zt_action", "zt_user", "zt_history"]);
        let list = tables
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(",");
        let rows: Vec<(String, String)> = conn
            .query(format!(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({list})"
            ))
            .await?;
        let mut present: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (t, c) in rows {
            present
                .entry(t.to_ascii_lowercase())
                .or_default()
                .insert(c.to_ascii_lowercase());
        }
        Ok(Schema::from_columns(&present))
    }

    /// Builds the schema from `table → lower-case column names`.
    pub fn from_columns(present: &HashMap<String, BTreeSet<String>>) -> Result<Schema, String> {
        let has = |t: &str, c: &str| {
            present
                .get(t)
                .is_some_and(|cols| cols.contains(&c.to_ascii_lowercase()))
        };
        let mut schema = Schema::default();
        if !present.contains_key("zt_action") {
            return Err("the database has no zt_action table: is sanplex_db.url pointing at Sanplex's database?".into());
        }
        for c in ACTION_REQUIRED {
            if !has("zt_action", c) {
                return Err(format!(
                    "zt_action has no column {c}: is this Sanplex's database?"
                ));
            }
            schema.action.push(c);
        }
        for c in ACTION_OPTIONAL {
            if has("zt_action", c) {
                schema.action.push(c);
            } else {
                schema.missing.push(format!("zt_action.{c}"));
            }
        }
        for t in OBJECT_TABLES {
            if !has(t.table, "id") || !has(t.table, t.name) {
                schema.missing.push(format!("{}.{}", t.table, t.name));
                continue;
            }
            let mut cols = vec!["id", t.name];
            for c in t.extra {
                if has(t.table, c) {
                    cols.push(c);
                } else {
                    schema.missing.push(format!("{}.{c}", t.table));
                }
            }
            schema.objects.insert(t.table, cols);
        }
        if has("zt_user", "account") {
            schema.user.push("account");
            for c in USER_OPTIONAL {
                if has("zt_user", c) {
                    schema.user.push(c);
                } else {
                    schema.missing.push(format!("zt_user.{c}"));
                }
            }
        } else {
            schema.missing.push("zt_user.account".into());
        }
        schema.history = HISTORY_COLUMNS.iter().all(|c| has("zt_history", c));
        if !schema.history {
            schema.missing.push("zt_history (changes)".into());
        }
        Ok(schema)
    }

    /// `SELECT` list for `cols`, quoted.
    pub fn select_list(cols: &[&str]) -> String {
        cols.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The table holding objects of `object_type`.
pub fn table_for(object_type: &str) -> Option<&'static ObjectTable> {
    OBJECT_TABLES
        .iter()
        .find(|t| t.types.contains(&object_type))
}

/// A Sanplex user, as enrichment needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub realname: String,
    pub mobile: String,
    pub deleted: bool,
}

/// Everything looked up for one poll's actions.
#[derive(Debug, Default)]
pub struct Lookups {
    /// (table, id) → the object's row.
    pub objects: HashMap<(&'static str, u64), Record>,
    /// account → user.
    pub users: HashMap<String, User>,
    /// action id → its `zt_history` rows in id order; `None` when changes were not read.
    pub changes: Option<HashMap<u64, Vec<Change>>>,
}

/// Comma-joined ids for an `IN (...)` (integers: nothing to escape).
pub fn id_list(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The `zt_history` rows of `events`' actions (one query per thousand actions: one per poll),
/// by action id, in row order.
async fn history(
    conn: &mut Conn,
    events: &[ActionEvent],
) -> Result<HashMap<u64, Vec<Change>>, mysql_async::Error> {
    let ids: Vec<u64> = events.iter().filter_map(|ev| ev.id).collect();
    let mut out: HashMap<u64, Vec<Change>> = HashMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT `action`, `field`, `old`, `new` FROM `zt_history` WHERE `action` IN ({}) ORDER BY `action`, `id`",
            id_list(chunk)
        );
        for rec in select(conn, sql).await? {
            let Some(action) = rec.uint("action") else {
                continue;
            };
            let field = rec.get("field").unwrap_or("").trim();
            if field.is_empty() {
                continue;
            }
            out.entry(action).or_default().push(Change {
                field: field.to_string(),
                old: rec.get("old").unwrap_or("").to_string(),
                new: rec.get("new").unwrap_or("").to_string(),
            });
        }
    }
    Ok(out)
}

impl Lookups {
    /// Looks up the objects and people `events` mention: one query per table.
    pub async fn fetch(
        conn: &mut Conn,
        schema: &Schema,
        events: &[ActionEvent],
    ) -> Result<Lookups, mysql_async::Error> {
        let mut out = Lookups::default();
        let mut wanted: BTreeMap<&'static str, BTreeSet<u64>> = BTreeMap::new();
        for ev in events {
            if let Some(t) = table_for(&ev.object_type) {
                if schema.objects.contains_key(t.table) && ev.object_id > 0 {
                    wanted.entry(t.table).or_default().insert(ev.object_id);
                }
            }
        }
        for (table, ids) in wanted {
            let cols = &schema.objects[table];
            let ids: Vec<u64> = ids.into_iter().collect();
            for chunk in ids.chunks(IN_CHUNK) {
                let sql = format!(
                    "SELECT {} FROM `{table}` WHERE `id` IN ({})",
                    Schema::select_list(cols),
                    id_list(chunk)
                );
                for rec in select(conn, sql).await? {
                    if let Some(id) = rec.uint("id") {
                        out.objects.insert((table, id), rec);
                    }
                }
            }
        }
        if schema.history {
            out.changes = Some(history(conn, events).await?);
        }
        if schema.user.is_empty() {
            return Ok(out);
        }
        let mut accounts: BTreeSet<String> = BTreeSet::new();
        for ev in events {
            accounts.insert(ev.actor.clone());
        }
        for rec in out.objects.values() {
            for col in RECIPIENT_COLUMNS {
                for a in comma_list(rec.get(col).unwrap_or("")) {
                    accounts.insert(a.to_string());
                }
            }
        }
        let accounts: Vec<String> = accounts.into_iter().collect();
        for chunk in accounts.chunks(IN_CHUNK) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT {} FROM `zt_user` WHERE `account` IN ({marks})",
                Schema::select_list(&schema.user)
            );
            let params: Vec<Value> = chunk.iter().map(|a| Value::from(a.as_str())).collect();
            let rows: Vec<Row> = conn.exec(sql, Params::Positional(params)).await?;
            for row in &rows {
                let rec = Record::from_row(row);
                let Some(account) = rec.get("account") else {
                    continue;
                };
                out.users.insert(
                    account.to_string(),
                    User {
                        realname: rec.get("realname").unwrap_or("").trim().to_string(),
                        mobile: rec.get("mobile").unwrap_or("").trim().to_string(),
                        deleted: rec.flag("deleted"),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Fills in what the lookups found: `objectName`, `actorName`, `toList`, `mentions`,
    /// `kanbanID`. `url` stays empty so that each webhook's `domain` applies. Lists longer than
    /// an event carries are cut ([`keep_first_entries`]).
    pub fn apply(&self, ev: &mut ActionEvent) {
        self.fill(ev);
        keep_first_entries(ev);
    }

    fn fill(&self, ev: &mut ActionEvent) {
        if let (Some(changes), Some(id)) = (&self.changes, ev.id) {
            let mut mine = changes.get(&id).cloned().unwrap_or_default();
            if mine.len() > MAX_CHANGES {
                tracing::warn!(
                    action_id = id,
                    rows = mine.len(),
                    "zt_history has more rows for this action than an event carries; keeping the first {MAX_CHANGES}"
                );
                mine.truncate(MAX_CHANGES);
            }
            ev.changes = Some(mine);
        }
        if let Some(u) = self.users.get(&ev.actor) {
            if !u.realname.is_empty() {
                ev.actor_name = Some(u.realname.clone());
            }
        }
        let Some(table) = table_for(&ev.object_type) else {
            return;
        };
        let Some(obj) = self.objects.get(&(table.table, ev.object_id)) else {
            return;
        };
        if let Some(name) = obj.get(table.name).map(str::trim) {
            if !name.is_empty() {
                ev.object_name = Some(name.to_string());
            }
        }
        if let Some(k) = obj.uint("kanban") {
            if k > 0 {
                ev.kanban_id = Some(k);
            }
        }
        ev.to_list = self.recipients(obj, &ev.actor);
        ev.mentions = self.mentions(obj);
    }

    /// `toList`: assignee, owner, account and mailto, in that order; never the actor, never
    /// a deleted user or Sanplex's `closed` pseudo-assignee, each account once.
    fn recipients(&self, obj: &Record, actor: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for col in RECIPIENT_COLUMNS {
            for a in comma_list(obj.get(col).unwrap_or("")) {
                let deleted = self.users.get(a).is_some_and(|u| u.deleted);
                if a == actor || a == CLOSED || deleted || !seen.insert(a) {
                    continue;
                }
                out.push(a.to_string());
            }
        }
        out
    }

    /// `mentions`: the assignees' mobile numbers (as Sanplex @-mentions the assignee in group
    /// bots), skipping users without one and deleted users.
    fn mentions(&self, obj: &Record) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for a in comma_list(obj.get("assignedTo").unwrap_or("")) {
            if let Some(u) = self.users.get(a) {
                if !u.deleted && !u.mobile.is_empty() && seen.insert(&u.mobile) {
                    out.push(u.mobile.clone());
                }
            }
        }
        out
    }
}

/// Cuts `toList`, `mentions` and the product list to [`MAX_ENTRIES`] each, keeping the first,
/// with a warning: an event may carry no more (docs/reference.md §3), and an action in Sanplex's own
/// database is delivered cut rather than quarantined.
pub(crate) fn keep_first_entries(ev: &mut ActionEvent) {
    let id = ev.id.unwrap_or(0);
    let cut = |key: &str, len: usize| {
        tracing::warn!(
            action_id = id,
            key,
            entries = len,
            "the action has more {key} entries than an event carries; keeping the first {MAX_ENTRIES}"
        );
    };
    if ev.to_list.len() > MAX_ENTRIES {
        cut("toList", ev.to_list.len());
        ev.to_list.truncate(MAX_ENTRIES);
    }
    if ev.mentions.len() > MAX_ENTRIES {
        cut("mentions", ev.mentions.len());
        ev.mentions.truncate(MAX_ENTRIES);
    }
    if ev.product.len() > MAX_ENTRIES {
        cut("product", ev.product.len());
        ev.product.truncate(MAX_ENTRIES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(realname: &str, mobile: &str, deleted: bool) -> User {
        User {
            realname: realname.into(),
            mobile: mobile.into(),
            deleted,
        }
    }

    fn lookups() -> Lookups {
        let mut l = Lookups::default();
        l.objects.insert(
            ("zt_bug", 12),
            Record::of(&[
                ("id", "12"),
                ("title", "Login fails"),
                ("assignedTo", "bob"),
                ("mailto", ",alice,carol,,bob,gone,dave"),
            ]),
        );
        l.objects.insert(
            ("zt_kanbancard", 3),
            Record::of(&[
                ("id", "3"),
                ("name", "Card"),
                ("assignedTo", "carol,bob"),
                ("kanban", "9"),
            ]),
        );
        l.objects.insert(
            ("zt_task", 4),
            Record::of(&[("id", "4"), ("name", " "), ("assignedTo", "closed")]),
        );
        l.users
            .insert("alice".into(), user("Alice Smith", "13800000001", false));
        l.users
            .insert("bob".into(), user("Bob", "13900000002", false));
        l.users.insert("carol".into(), user("", "", false));
        l.users
            .insert("gone".into(), user("Gone", "13700000000", true));
        l
    }

    fn event(object_type: &str, object_id: u64, actor: &str) -> ActionEvent {
        ActionEvent {
            object_type: object_type.into(),
            object_id,
            actor: actor.into(),
            action: "edited".into(),
            ..ActionEvent::default()
        }
    }

    /// docs/reference.md §3: the database source keeps the first 1,000 of a longer list rather than
    /// quarantining the action; each list is built in linear time.
    #[test]
    fn long_lists_are_cut_to_the_first_1000() {
        let mut l = lookups();
        let many: Vec<String> = (0..3000).map(|i| format!("u{i}")).collect();
        // Every account twice: duplicates are dropped before the cut.
        let mailto = format!("{},{}", many.join(","), many.join(","));
        l.objects.insert(
            ("zt_bug", 13),
            Record::of(&[("id", "13"), ("title", "Big"), ("assignedTo", &mailto)]),
        );
        for (i, u) in many.iter().enumerate() {
            l.users
                .insert(u.clone(), user(u, &format!("138{i:08}"), false));
        }
        let mut ev = event("bug", 13, "alice");
        ev.product = (1..=2500).collect();
        l.apply(&mut ev);
        assert_eq!(ev.to_list.len(), MAX_ENTRIES);
        assert_eq!(ev.to_list[..2], ["u0", "u1"]);
        assert_eq!(ev.to_list[MAX_ENTRIES - 1], format!("u{}", MAX_ENTRIES - 1));
        assert_eq!(ev.mentions.len(), MAX_ENTRIES);
        assert_eq!(ev.mentions[0], "13800000000");
        assert_eq!(ev.product, (1..=MAX_ENTRIES as u64).collect::<Vec<_>>());

        // Without the object in the lookups the product list is cut all the same.
        let mut ev = event("bug", 99, "alice");
        ev.product = (1..=2500).collect();
        l.apply(&mut ev);
        assert_eq!(ev.product.len(), MAX_ENTRIES);
    }

    #[test]
    fn a_bug_gets_its_title_people_and_mentions() {
        let mut ev = event("bug", 12, "alice");
        lookups().apply(&mut ev);
        assert_eq!(ev.object_name.as_deref(), Some("Login fails"));
        assert_eq!(ev.actor_name.as_deref(), Some("Alice Smith"));
        // Assignee first; the actor, a deleted user, empties and repeats are left out;
        // unknown accounts stay (their bindings decide).
        assert_eq!(ev.to_list, vec!["bob", "carol", "dave"]);
        assert_eq!(ev.mentions, vec!["13900000002"]);
        assert_eq!(ev.kanban_id, None);
        assert_eq!(ev.url, None);
    }

    #[test]
    fn a_kanban_card_gets_its_board_and_every_assignee() {
        let mut ev = event("kanbancard", 3, "bob");
        lookups().apply(&mut ev);
        assert_eq!(ev.kanban_id, Some(9));
        assert_eq!(ev.to_list, vec!["carol"]);
        // Mentions follow Sanplex: the assignees, whoever acted; carol has no mobile.
        assert_eq!(ev.mentions, vec!["13900000002"]);
        assert_eq!(ev.actor_name.as_deref(), Some("Bob"));
    }

    #[test]
    fn blank_titles_closed_assignees_and_unknown_things_add_nothing() {
        let mut ev = event("task", 4, "carol");
        lookups().apply(&mut ev);
        assert_eq!(ev.object_name, None);
        assert!(ev.to_list.is_empty() && ev.mentions.is_empty());
        // carol has no real name: text falls back to the account.
        assert_eq!(ev.actor_name, None);
        let mut ev = event("bug", 99, "nobody");
        lookups().apply(&mut ev);
        assert_eq!(ev, event("bug", 99, "nobody"));
        let mut ev = event("meeting", 12, "alice");
        lookups().apply(&mut ev);
        assert_eq!(ev.object_name, None);
    }

    #[test]
    fn every_object_type_of_sanplex_has_one_table() {
        for t in [
            "bug",
            "story",
            "requirement",
            "epic",
            "task",
            "product",
            "project",
            "execution",
            "productplan",
            "release",
            "case",
            "testtask",
            "todo",
            "doc",
            "kanbancard",
        ] {
            assert!(table_for(t).is_some(), "{t}");
        }
        let mut seen = BTreeSet::new();
        for t in OBJECT_TABLES {
            for ty in t.types {
                assert!(seen.insert(*ty), "{ty} listed twice");
            }
        }
    }

    fn columns(spec: &[(&str, &[&str])]) -> HashMap<String, BTreeSet<String>> {
        spec.iter()
            .map(|(t, cols)| {
                (
                    t.to_string(),
                    cols.iter().map(|c| c.to_ascii_lowercase()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_schema_keeps_what_exists_and_names_what_does_not() {
        let s = Schema::from_columns(&columns(&[
            (
                "zt_action",
                &[
                    "id",
                    "objectType",
                    "objectID",
                    "actor",
                    "action",
                    "product",
                    "date",
                ],
            ),
            ("zt_bug", &["id", "title", "assignedTo"]),
            ("zt_user", &["account", "realname"]),
        ]))
        .expect("schema");
        assert_eq!(
            s.action,
            vec![
                "id",
                "objectType",
                "objectID",
                "actor",
                "action",
                "product",
                "date"
            ]
        );
        assert_eq!(
            s.objects.get("zt_bug"),
            Some(&vec!["id", "title", "assignedTo"])
        );
        assert!(!s.objects.contains_key("zt_story"));
        assert_eq!(s.user, vec!["account", "realname"]);
        for m in [
            "zt_action.execution",
            "zt_bug.mailto",
            "zt_story.title",
            "zt_user.mobile",
        ] {
            assert!(s.missing.iter().any(|x| x == m), "{m} in {:?}", s.missing);
        }
        let err = Schema::from_columns(&columns(&[("zt_action", &["id", "objectType"])]))
            .expect_err("no objectID");
        assert!(err.contains("objectID"), "{err}");
        let err = Schema::from_columns(&columns(&[])).expect_err("no table");
        assert!(err.contains("zt_action"), "{err}");
    }
}
