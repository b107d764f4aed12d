//! Action events: the one typed form every source turns its input into.
//!
//! An action event mirrors a row of Sanplex's `zt_action` table plus the enrichment a sidecar
//! cannot look up itself (CONTRACT §3). Parsing is tolerant where Sanplex itself is (numbers as
//! strings, `",1,2,"` product lists) and precise everywhere else.

use serde::{Deserialize, Serialize};

/// One action ("alice resolved bug #12"), normalised.
///
/// Stored in the outbox in this form (compact JSON), so that deliveries can be rendered at send
/// time from the event alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActionEvent {
    /// The action's id in Sanplex: the idempotency key. `None` when the producer sent none;
    /// such events are never deduplicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// `bug`, `story`, `task`, ...
    pub object_type: String,
    /// The object's id.
    #[serde(rename = "objectID")]
    pub object_id: u64,
    /// Product ids, zeros removed; empty means "no product" (Sanplex's `",0,"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub product: Vec<u64>,
    /// The project id (ZenTao 15+); 0 when absent. Not sent in `default` payloads (SANPLEX.md).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub project: u64,
    /// Execution (sprint/stage) id; 0 means none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub execution: u64,
    /// The account that acted.
    pub actor: String,
    /// `opened`, `resolved`, ...
    pub action: String,
    /// `YYYY-MM-DD HH:MM:SS`, Sanplex server local time; filled with the ingestion time when absent.
    #[serde(default)]
    pub date: String,
    /// May contain HTML.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extra: String,
    /// The object's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_name: Option<String>,
    /// The actor's real name; text falls back to `actor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_name: Option<String>,
    /// Link to the object; when absent it is built from the webhook's domain or `sanplex.base_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `kanbancard` events: the card's board.
    #[serde(default, rename = "kanbanID", skip_serializing_if = "Option::is_none")]
    pub kanban_id: Option<u64>,
    /// Recipients (Sanplex accounts) for work/app-message webhooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_list: Vec<String>,
    /// Mobile numbers to @-mention in group-bot messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl ActionEvent {
    /// Sanplex's `",1,2,"` form of the product list (`",0,"` when there is none).
    pub fn product_string(&self) -> String {
        if self.product.is_empty() {
            return ",0,".to_string();
        }
        let mut s = String::from(",");
        for p in &self.product {
            s.push_str(&p.to_string());
            s.push(',');
        }
        s
    }
}

// TEMP-STUB-BEGIN (replaced by the parsing branch)
/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Auto,
    Ndjson,
}
/// Error for a body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    pub index: Option<usize>,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}
/// Parses a body.
pub fn parse_body(
    body: &mut [u8],
    _f: BodyFormat,
    now: &str,
) -> Result<Vec<ActionEvent>, BodyError> {
    let mut out = vec![];
    for (i, l) in body.split(|b| *b == b'\n').enumerate() {
        if l.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let mut ev: ActionEvent = serde_json::from_slice(l).map_err(|e| BodyError {
            index: None,
            line: Some(i + 1),
            key: None,
            message: e.to_string(),
        })?;
        if ev.date.is_empty() {
            ev.date = now.to_string();
        }
        out.push(ev);
    }
    Ok(out)
}
/// Error for one event.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct EventError {
    pub key: Option<String>,
    pub message: String,
}
/// Parses one NDJSON line.
pub fn parse_line(line: &mut [u8], now: &str) -> Result<ActionEvent, EventError> {
    let mut ev: ActionEvent = serde_json::from_slice(line).map_err(|e| EventError {
        key: None,
        message: e.to_string(),
    })?;
    if ev.date.is_empty() {
        ev.date = now.to_string();
    }
    Ok(ev)
}
// TEMP-STUB-END
