//! What the import reads from Sanplex's database: `zt_webhook` (every row), the user bindings
//! in `zt_oauth`, and the message setting in `zt_config` with the trigger settings in it.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::Conn;
use serde_json::Value;

use crate::client::api::cut;
use crate::sanplex::{comma_list, select, ConnectError, Database, Record};
use crate::webhook::Triggers;

/// What was read from Sanplex's database.
pub(super) struct Sanplex {
    /// The database URL without its password.
    pub shown_url: String,
    /// `zt_webhook`, deleted rows included, by id.
    pub webhooks: Vec<Record>,
    /// zt_webhook id → (account, openID), as stored.
    pub bindings: BTreeMap<u64, Vec<(String, String)>>,
    /// The `zt_config` message setting's value, when there is one.
    pub setting: Option<String>,
}

impl Sanplex {
    /// Reads the three tables; an error says what could not be read.
    pub async fn read(url: &str, timeout: Duration) -> Result<Sanplex, String> {
        let db = Database::parse(url, "--db")?;
        let shown_url = db.shown.clone();
        let fail = |what: &str, e: mysql_async::Error| {
            format!("cannot read {what} from Sanplex's database {shown_url}: {e}")
        };
        let mut conn = db.connect(timeout).await.map_err(|e| match e {
            ConnectError::Timeout(_) => {
                format!("Sanplex's database {shown_url} did not answer within {timeout:?}")
            }
            ConnectError::Db(e) => fail("anything", e),
        })?;
        let webhooks = select(&mut conn, "SELECT * FROM `zt_webhook` ORDER BY `id`".into())
            .await
            .map_err(|e| fail("zt_webhook", e))?;
        let bindings = read_bindings(&mut conn)
            .await
            .map_err(|e| fail("zt_oauth", e))?;
        let setting = read_setting(&mut conn)
            .await
            .map_err(|e| fail("zt_config", e))?;
        // Everything is read: a failed goodbye changes nothing.
        let _ = conn.disconnect().await;
        Ok(Sanplex {
            shown_url,
            webhooks,
            bindings,
            setting,
        })
    }

    /// Why bindings of `zt_webhook` row `id` have no sanhook webhook to go to.
    pub fn why_not_imported(&self, id: u64) -> &'static str {
        if self.webhooks.iter().any(|r| r.uint("id") == Some(id)) {
            "its webhook was not imported (see above)"
        } else {
            "no zt_webhook row has this id"
        }
    }
}

/// The webhook bindings of `zt_oauth`, by zt_webhook id; rows without an account, an openID
/// or a numeric provider are left out.
async fn read_bindings(
    conn: &mut Conn,
) -> Result<BTreeMap<u64, Vec<(String, String)>>, mysql_async::Error> {
    let rows = select(
        conn,
        "SELECT `account`, `openID`, `providerID` FROM `zt_oauth` \
         WHERE `providerType` = 'webhook' ORDER BY `providerID`, `account`"
            .into(),
    )
    .await?;
    let mut bindings: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for r in &rows {
        let (Some(account), Some(open_id), Some(provider)) = (
            r.get("account").map(str::trim),
            r.get("openID").map(str::trim),
            r.uint("providerID"),
        ) else {
            continue;
        };
        if account.is_empty() || open_id.is_empty() {
            continue;
        }
        bindings
            .entry(provider)
            .or_default()
            .push((account.to_string(), open_id.to_string()));
    }
    Ok(bindings)
}

/// The value of the `zt_config` message setting, when Sanplex has saved one.
async fn read_setting(conn: &mut Conn) -> Result<Option<String>, mysql_async::Error> {
    let configs = select(
        conn,
        "SELECT * FROM `zt_config` WHERE `owner` = 'system' AND `module` = 'message' \
         AND `section` = '' AND `key` = 'setting'"
            .into(),
    )
    .await?;
    // Sanplex 16+ keeps a row per vision; the main (`rnd`, or no vision) one holds what
    // its Admin page shows.
    Ok(["", "rnd"]
        .iter()
        .find_map(|v| configs.iter().find(|c| c.get("vision").unwrap_or("") == *v))
        .or(configs.first())
        .and_then(|c| c.get("value").map(str::to_string)))
}

/// The `webhook` part of Sanplex's message setting as trigger settings; `None` when the
/// setting has no such part.
pub(super) fn parse_setting(value: &str) -> Result<Option<Triggers>, String> {
    let v: Value = serde_json::from_str(value)
        .map_err(|e| format!("zt_config message setting is not JSON: {e}"))?;
    let Some(setting) = v.get("webhook").and_then(|w| w.get("setting")) else {
        return Ok(None);
    };
    let obj = setting.as_object().ok_or_else(|| {
        format!(
            "zt_config webhook.setting is not an object of action lists: {}",
            cut(&setting.to_string())
        )
    })?;
    let mut out = Triggers::new();
    for (object_type, actions) in obj {
        let list = action_list(actions).ok_or_else(|| {
            format!(
                "zt_config webhook.setting.{object_type} is not a list of actions: {}",
                cut(&actions.to_string())
            )
        })?;
        out.insert(object_type.clone(), list);
    }
    Ok(Some(out))
}

/// One object type's actions in the setting, trimmed, empty ones dropped; `None` when the
/// value is no list of actions.
fn action_list(actions: &Value) -> Option<Vec<String>> {
    // PHP writes a list with holes as an object ({"0":"opened","2":"closed"}); older
    // versions a comma string.
    let list: Vec<&str> = match actions {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        Value::Object(o) => o.values().filter_map(Value::as_str).collect(),
        Value::String(s) => comma_list(s).collect(),
        _ => return None,
    };
    Some(
        list.into_iter()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_settings_accept_the_shapes_php_writes() {
        let t = parse_setting(
            r#"{"mail":{"setting":{"bug":["opened"]}},"webhook":{"setting":{"bug":["opened","resolved"],"task":{"0":"started","3":"finished"},"story":"opened,closed"}}}"#,
        )
        .expect("parses")
        .expect("has webhook");
        assert_eq!(t["bug"], vec!["opened", "resolved"]);
        assert_eq!(t["task"], vec!["started", "finished"]);
        assert_eq!(t["story"], vec!["opened", "closed"]);
        assert_eq!(parse_setting(r#"{"mail":{}}"#), Ok(None));
        assert!(parse_setting("nope").is_err());
        let err = parse_setting(r#"{"webhook":{"setting":{"bug":3}}}"#).expect_err("not a list");
        assert_eq!(
            err,
            "zt_config webhook.setting.bug is not a list of actions: 3"
        );
    }
}
