//! `sanhook import-sanplex --db URL`: moves Sanplex's webhook configuration into a running
//! sanhook, through its API.
//!
//! It reads `zt_webhook` (every type; deleted rows skipped), the user bindings in `zt_oauth`
//! and the trigger settings in `zt_config`, and writes them with the same calls a user would
//! make: webhooks are found by `sanplexId` (the `zt_webhook` row id) and replaced with `PUT`,
//! or created with `POST`, so running it twice gives the same result. Fields only sanhook has
//! (`enabled`, `actions`, `apiBase`) are kept as they are. Secrets are write-only in the API,
//! so the real values from the database are sent on every run.
//!
//! Exit codes: 0 when every row was imported (or skipped with a reason), 1 when any row failed,
//! 2 when no server answers or the database cannot be read.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::sanplex::{comma_list, ids, select, ConnectError, Database, Record};
use crate::webhook::{Triggers, WebhookType, DEFAULT_PARAMS};
use crate::Config;

/// A connection attempt or a request that takes longer fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The webhook fields Sanplex owns: an import sets each of them on every run. Everything else
/// in a sanhook webhook is left as it was.
const OWNED: &[&str] = &[
    "name",
    "type",
    "url",
    "secret",
    "agentId",
    "appKey",
    "appSecret",
    "wechatCorpId",
    "wechatCorpSecret",
    "wechatAgentId",
    "feishuAppId",
    "feishuAppSecret",
    "domain",
    "sendType",
    "products",
    "executions",
    "params",
    "contentType",
    "desc",
    "sanplexId",
];

/// The owned fields that are secrets (the API shows them masked).
const SECRETS: &[&str] = &["secret", "appSecret", "wechatCorpSecret", "feishuAppSecret"];

/// Runs the command; returns the process exit code.
pub fn run(cfg: &Config, db: &str) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sanhook import-sanplex: cannot start the async runtime: {e}");
            return 2;
        }
    };
    rt.block_on(import(cfg, db))
}

async fn import(cfg: &Config, db: &str) -> i32 {
    let api = match Api::new(cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sanhook import-sanplex: {e}");
            return 2;
        }
    };
    let existing = match api.webhooks().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("sanhook import-sanplex: {e}");
            return 2;
        }
    };
    let sanplex = match Sanplex::read(db).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sanhook import-sanplex: {e}");
            return 2;
        }
    };
    println!("importing from {} into {}", sanplex.shown_url, api.base);
    let mut report = Report::default();
    let imported = import_webhooks(&api, &sanplex, &existing, &mut report).await;
    import_bindings(&api, &sanplex, &imported, &mut report).await;
    import_triggers(&api, &sanplex, &mut report).await;
    print!("{report}");
    if report.auth_refused {
        return 2;
    }
    if report.count(Outcome::Failed) > 0 {
        1
    } else {
        0
    }
}

/// The running server's API.
struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

/// Why an API call did not give an answer to work with.
#[derive(Debug)]
enum CallError {
    /// Nothing answered.
    Unreachable(String),
    /// The token was refused.
    Unauthorized(String),
    /// The server answered with an error status; the message is its `error`.
    Refused(u16, String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable(m) | CallError::Unauthorized(m) => f.write_str(m),
            CallError::Refused(status, m) => write!(f, "the server answered {status}: {m}"),
        }
    }
}

impl Api {
    fn new(cfg: &Config) -> Result<Api, String> {
        Ok(Api {
            base: server_base(&cfg.server.listen),
            token: cfg.server.token.clone(),
            client: crate::deliver::http_client(TIMEOUT)?,
        })
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            CallError::Unreachable(format!(
                "no sanhook server answers at {} ({e}); start it with `sanhook serve` using the same config (server.listen)",
                self.base
            ))
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| {
            CallError::Unreachable(format!(
                "the server at {} stopped answering: {e}",
                self.base
            ))
        })?;
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        match status {
            200..=299 => Ok(v),
            401 => Err(CallError::Unauthorized(format!(
                "the server at {} refused the token: set server.token in the config (or SANHOOK_SERVER_TOKEN) to the server's",
                self.base
            ))),
            _ => {
                let msg = v
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                Err(CallError::Refused(status, msg))
            }
        }
    }

    /// Every webhook (masked), which also proves that the server answers and takes the token.
    async fn webhooks(&self) -> Result<Vec<Value>, String> {
        match self.call("GET", "/api/v1/webhooks", None).await {
            Ok(Value::Array(a)) => Ok(a),
            Ok(other) => Err(format!(
                "{} answered GET /api/v1/webhooks with something other than a list: {}; is it a sanhook server?",
                self.base,
                cut(&other.to_string())
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The HTTP base of `server.listen`; an unspecified address (`0.0.0.0`, `[::]`) is reached
/// on loopback.
fn server_base(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut a) => {
            if a.ip().is_unspecified() {
                a.set_ip(if a.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            format!("http://{a}")
        }
        Err(_) => format!("http://{listen}"),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}

/// What was read from Sanplex's database.
struct Sanplex {
    shown_url: String,
    webhooks: Vec<Record>,
    /// zt_webhook id → (account, openID), as stored.
    bindings: BTreeMap<u64, Vec<(String, String)>>,
    /// The `zt_config` message setting's value, when there is one.
    setting: Option<String>,
}

impl Sanplex {
    /// Reads the three tables; an error says what could not be read.
    async fn read(url: &str) -> Result<Sanplex, String> {
        let db = Database::parse(url, "--db")?;
        let shown_url = db.shown.clone();
        let fail = |what: &str, e: mysql_async::Error| {
            format!("cannot read {what} from Sanplex's database {shown_url}: {e}")
        };
        let mut conn = db.connect(TIMEOUT).await.map_err(|e| match e {
            ConnectError::Timeout(_) => {
                format!("Sanplex's database {shown_url} did not answer within {TIMEOUT:?}")
            }
            ConnectError::Db(e) => fail("anything", e),
        })?;
        let webhooks = select(&mut conn, "SELECT * FROM `zt_webhook` ORDER BY `id`".into())
            .await
            .map_err(|e| fail("zt_webhook", e))?;
        let rows = select(
            &mut conn,
            "SELECT `account`, `openID`, `providerID` FROM `zt_oauth` \
             WHERE `providerType` = 'webhook' ORDER BY `providerID`, `account`"
                .into(),
        )
        .await
        .map_err(|e| fail("zt_oauth", e))?;
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
        let configs = select(
            &mut conn,
            "SELECT * FROM `zt_config` WHERE `owner` = 'system' AND `module` = 'message' \
             AND `section` = '' AND `key` = 'setting'"
                .into(),
        )
        .await
        .map_err(|e| fail("zt_config", e))?;
        // Sanplex 16+ keeps a row per vision; the main (`rnd`, or no vision) one holds what
        // its Admin page shows.
        let setting = ["", "rnd"]
            .iter()
            .find_map(|v| configs.iter().find(|c| c.get("vision").unwrap_or("") == *v))
            .or(configs.first())
            .and_then(|c| c.get("value").map(str::to_string));
        let _ = conn.disconnect().await;
        Ok(Sanplex {
            shown_url,
            webhooks,
            bindings,
            setting,
        })
    }
}

/// How one row (or setting) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    Skipped,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// The summary printed at the end.
#[derive(Default)]
struct Report {
    lines: Vec<(Outcome, String, String)>,
    /// The server refused the token mid-way.
    auth_refused: bool,
}

impl Report {
    fn add(&mut self, outcome: Outcome, what: impl Into<String>, why: impl Into<String>) {
        self.lines.push((outcome, what.into(), why.into()));
    }

    fn count(&self, o: Outcome) -> usize {
        self.lines.iter().filter(|(x, _, _)| *x == o).count()
    }

    /// Records an API failure; a refused token also ends the run with exit 2.
    fn failed(&mut self, what: String, e: CallError) {
        if matches!(e, CallError::Unauthorized(_)) {
            self.auth_refused = true;
        }
        self.add(Outcome::Failed, what, e.to_string());
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (o, what, why) in &self.lines {
            if why.is_empty() {
                writeln!(f, "{:<9} {what}", o.as_str())?;
            } else {
                writeln!(f, "{:<9} {what}: {why}", o.as_str())?;
            }
        }
        writeln!(
            f,
            "summary: {} created, {} updated, {} unchanged, {} skipped, {} failed",
            self.count(Outcome::Created),
            self.count(Outcome::Updated),
            self.count(Outcome::Unchanged),
            self.count(Outcome::Skipped),
            self.count(Outcome::Failed)
        )
    }
}

/// A `zt_webhook` row as sanhook wants it.
struct Desired {
    sanplex_id: u64,
    kind: WebhookType,
    /// The owned fields, secrets in clear.
    fields: Map<String, Value>,
    /// Things the summary should say (adjustments made on the way).
    notes: Vec<String>,
}

/// How a row is named in the summary.
fn row_label(rec: &Record) -> String {
    format!(
        "webhook {} {:?} ({})",
        rec.get("id").unwrap_or("?"),
        rec.get("name").unwrap_or(""),
        rec.get("type").unwrap_or("")
    )
}

/// A Sanplex comma list of ids (`"1,2"`, `",1,2,"`); zeros mean "none" and are dropped.
fn id_array(rec: &Record, cols: &[&str]) -> Result<Vec<u64>, String> {
    let Some((col, raw)) = cols.iter().find_map(|c| rec.get(c).map(|v| (*c, v))) else {
        return Ok(vec![]);
    };
    ids(col, raw)
}

/// The type an older Sanplex name stands for: `dingding` was the DingTalk group bot before
/// `dinggroup` and `dinguser` were split.
fn legacy_type(name: &str) -> Option<WebhookType> {
    match name {
        "dingding" => Some(WebhookType::Dinggroup),
        _ => None,
    }
}

/// Why a row of a type whose service no longer exists is skipped (not failed).
fn retired_type(name: &str) -> Option<&'static str> {
    match name {
        "bearychat" => {
            Some("type bearychat: the BearyChat service was shut down in 2021; nothing to send to")
        }
        _ => None,
    }
}

/// A JSON credential value as text (Sanplex writes agent ids as numbers or strings).
fn credential(obj: &Map<String, Value>, key: &str) -> String {
    match obj.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

impl Desired {
    /// Maps a `zt_webhook` row; an error says why the row cannot be imported.
    fn from_row(rec: &Record) -> Result<Desired, String> {
        let sanplex_id = rec.uint("id").ok_or("the row has no id")?;
        let type_name = rec.get("type").unwrap_or("").trim();
        let mut notes = Vec::new();
        let kind = match legacy_type(type_name) {
            Some(kind) => {
                notes.push(format!("legacy type {type_name:?} imported as {kind}"));
                kind
            }
            None => WebhookType::parse(type_name).ok_or_else(|| {
                format!("unknown type {type_name:?}; sanhook knows default, dinggroup, dinguser, wechatgroup, wechatuser, feishugroup and feishuuser")
            })?,
        };
        let text = |c: &str| rec.get(c).unwrap_or("").trim().to_string();
        let mut f = Map::new();
        f.insert("name".into(), json!(text("name")));
        f.insert("type".into(), json!(kind.as_str()));
        f.insert(
            "url".into(),
            json!(if kind.needs_url() {
                text("url")
            } else {
                String::new()
            }),
        );
        for k in [
            "secret",
            "agentId",
            "appKey",
            "appSecret",
            "wechatCorpId",
            "wechatCorpSecret",
            "wechatAgentId",
            "feishuAppId",
            "feishuAppSecret",
        ] {
            f.insert(k.into(), json!(""));
        }
        let secret = rec.get("secret").unwrap_or("").trim();
        if kind.is_app() {
            let creds: Map<String, Value> = match serde_json::from_str(secret) {
                Ok(Value::Object(o)) => o,
                // Never print the value: it holds the app secret.
                _ => {
                    return Err(format!(
                        "secret is not the JSON credentials a {kind} webhook keeps there (expected an object such as {{\"agentId\",\"appKey\",\"appSecret\"}})"
                    ))
                }
            };
            let pairs: &[(&str, &str)] = match kind {
                WebhookType::Dinguser => &[
                    ("agentId", "agentId"),
                    ("appKey", "appKey"),
                    ("appSecret", "appSecret"),
                ],
                // Sanplex stores WeCom's agent id, corp id and corp secret under DingTalk's
                // key names, in that order.
                WebhookType::Wechatuser => &[
                    ("wechatAgentId", "agentId"),
                    ("wechatCorpId", "appKey"),
                    ("wechatCorpSecret", "appSecret"),
                ],
                _ => &[("feishuAppId", "appId"), ("feishuAppSecret", "appSecret")],
            };
            for (field, key) in pairs {
                f.insert((*field).into(), json!(credential(&creds, key)));
            }
        } else {
            f.insert("secret".into(), json!(secret));
        }
        f.insert("domain".into(), json!(text("domain")));
        let send_type = match text("sendType").as_str() {
            "async" if kind == WebhookType::Dinggroup => {
                notes.push(
                    "sendType async imported as sync (DingTalk group bots are always sync in sanhook)"
                        .into(),
                );
                "sync"
            }
            "async" => "async",
            _ => "sync",
        };
        f.insert("sendType".into(), json!(send_type));
        f.insert("products".into(), json!(id_array(rec, &["products"])?));
        // ZenTao before 15 called the column `projects`.
        f.insert(
            "executions".into(),
            json!(id_array(rec, &["executions", "projects"])?),
        );
        let raw_params = text("params");
        let mut params = Vec::new();
        let mut content_type = String::new();
        if kind == WebhookType::Default {
            let raw = &raw_params;
            let mut dropped = Vec::new();
            for p in comma_list(raw) {
                if DEFAULT_PARAMS.contains(&p) {
                    if !params.contains(&p) {
                        params.push(p);
                    }
                } else {
                    dropped.push(p);
                }
            }
            if !dropped.is_empty() {
                notes.push(format!(
                    "params {} dropped (sanhook sends {})",
                    dropped.join(", "),
                    DEFAULT_PARAMS.join(", ")
                ));
            }
            content_type = match text("contentType").as_str() {
                // ZenTao before 12 stored the short forms.
                "json" => "application/json".into(),
                "form" => "application/x-www-form-urlencoded".into(),
                other => other.to_string(),
            };
        }
        f.insert("params".into(), json!(params));
        f.insert("contentType".into(), json!(content_type));
        f.insert("desc".into(), json!(text("desc")));
        f.insert("sanplexId".into(), json!(sanplex_id));
        Ok(Desired {
            sanplex_id,
            kind,
            fields: f,
            notes,
        })
    }

    /// Whether the row carries any secret.
    fn has_secrets(&self) -> bool {
        SECRETS.iter().any(|k| {
            self.fields
                .get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        })
    }

    /// The whole webhook to send: the existing one's sanhook-only fields, then the owned ones.
    fn body(&self, existing: Option<&Value>) -> Value {
        let mut body = existing
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        body.remove("id");
        if !self.kind.is_app() {
            // apiBase applies to app-message types only; the type may have changed.
            body.remove("apiBase");
        }
        for (k, v) in &self.fields {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }

    /// The owned fields that differ from what the server shows (secrets compare by presence,
    /// as the server only shows them masked).
    fn changes(&self, existing: &Value) -> Vec<&'static str> {
        OWNED
            .iter()
            .copied()
            .filter(|k| {
                let want = self.fields.get(*k).cloned().unwrap_or(Value::Null);
                let have = existing.get(*k).cloned().unwrap_or(Value::Null);
                if SECRETS.contains(k) {
                    let set = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
                    set(&want) != set(&have)
                } else if *k == "url" {
                    // The server shows a URL's credentials (a bot's key) masked.
                    let shown = want.as_str().map(crate::mask::url).map(Value::String);
                    normalise(shown.unwrap_or(want)) != normalise(have)
                } else {
                    normalise(want) != normalise(have)
                }
            })
            .collect()
    }
}

/// Treats an absent field as its empty value, as the API omits some empty ones.
fn normalise(v: Value) -> Value {
    match v {
        Value::Null => Value::String(String::new()),
        Value::Array(a) if a.is_empty() => Value::String(String::new()),
        other => other,
    }
}

/// Creates or updates a webhook per live `zt_webhook` row; returns zt_webhook id → (sanhook
/// id, type, label) of the rows now in sanhook.
async fn import_webhooks(
    api: &Api,
    sanplex: &Sanplex,
    existing: &[Value],
    report: &mut Report,
) -> BTreeMap<u64, (u64, WebhookType, String)> {
    let mut by_sanplex: BTreeMap<u64, &Value> = BTreeMap::new();
    for w in existing {
        if let Some(sid) = w.get("sanplexId").and_then(Value::as_u64) {
            by_sanplex.insert(sid, w);
        }
    }
    let mut imported = BTreeMap::new();
    for rec in &sanplex.webhooks {
        let label = row_label(rec);
        if rec.flag("deleted") {
            let why = match rec
                .uint("id")
                .and_then(|id| by_sanplex.get(&id))
                .and_then(|w| w.get("id"))
            {
                Some(id) => format!(
                    "deleted in Sanplex (sanhook webhook {id}, imported earlier, is left as it is)"
                ),
                None => "deleted in Sanplex".into(),
            };
            report.add(Outcome::Skipped, label, why);
            continue;
        }
        if let Some(why) = retired_type(rec.get("type").unwrap_or("").trim()) {
            report.add(Outcome::Skipped, label, why);
            continue;
        }
        let desired = match Desired::from_row(rec) {
            Ok(d) => d,
            Err(e) => {
                report.add(Outcome::Failed, label, e);
                continue;
            }
        };
        let notes = desired.notes.join("; ");
        let with_notes = |s: String| {
            if notes.is_empty() {
                s
            } else {
                format!("{s}; {notes}")
            }
        };
        let current = by_sanplex.get(&desired.sanplex_id).copied();
        let result = match current {
            Some(cur) => {
                let id = cur.get("id").and_then(Value::as_u64).unwrap_or(0);
                let changed = desired.changes(cur);
                match api
                    .call(
                        "PUT",
                        &format!("/api/v1/webhooks/{id}"),
                        Some(&desired.body(Some(cur))),
                    )
                    .await
                {
                    Ok(_) if changed.is_empty() => {
                        // The API cannot show secrets, so they are sent every time.
                        let resent = if desired.has_secrets() {
                            " (secrets re-sent)"
                        } else {
                            ""
                        };
                        report.add(
                            Outcome::Unchanged,
                            label.clone(),
                            with_notes(format!("sanhook webhook {id}{resent}")),
                        );
                        Ok(id)
                    }
                    Ok(_) => {
                        report.add(
                            Outcome::Updated,
                            label.clone(),
                            with_notes(format!(
                                "sanhook webhook {id}: {} changed",
                                changed.join(", ")
                            )),
                        );
                        Ok(id)
                    }
                    Err(e) => Err(e),
                }
            }
            None => match api
                .call("POST", "/api/v1/webhooks", Some(&desired.body(None)))
                .await
            {
                Ok(v) => {
                    let id = v.get("id").and_then(Value::as_u64).unwrap_or(0);
                    report.add(
                        Outcome::Created,
                        label.clone(),
                        with_notes(format!("sanhook webhook {id}")),
                    );
                    Ok(id)
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(id) => {
                imported.insert(desired.sanplex_id, (id, desired.kind, label));
            }
            Err(e) => report.failed(label, e),
        }
    }
    imported
}

/// Binds the `zt_oauth` accounts of each imported app-message webhook.
async fn import_bindings(
    api: &Api,
    sanplex: &Sanplex,
    imported: &BTreeMap<u64, (u64, WebhookType, String)>,
    report: &mut Report,
) {
    for (sid, pairs) in &sanplex.bindings {
        let n = pairs.len();
        let Some((id, kind, label)) = imported.get(sid) else {
            let why = if sanplex.webhooks.iter().any(|r| r.uint("id") == Some(*sid)) {
                "its webhook was not imported (see above)"
            } else {
                "no zt_webhook row has this id"
            };
            report.add(
                Outcome::Skipped,
                format!("{n} binding(s) of webhook {sid}"),
                why,
            );
            continue;
        };
        let what = format!("{n} binding(s) of {label}");
        if !kind.is_app() {
            report.add(
                Outcome::Skipped,
                what,
                format!("type {kind} sends to a group, not to bound users"),
            );
            continue;
        }
        let path = format!("/api/v1/webhooks/{id}/bindings");
        let current: BTreeMap<String, String> = match api.call("GET", &path, None).await {
            Ok(Value::Array(a)) => a
                .iter()
                .filter_map(|b| {
                    Some((
                        b.get("account")?.as_str()?.to_string(),
                        b.get("userid")?.as_str()?.to_string(),
                    ))
                })
                .collect(),
            Ok(_) => BTreeMap::new(),
            Err(e) => {
                report.failed(what, e);
                continue;
            }
        };
        let desired: Map<String, Value> = pairs
            .iter()
            .map(|(a, u)| (a.clone(), Value::String(u.clone())))
            .collect();
        let new = pairs
            .iter()
            .filter(|(a, _)| !current.contains_key(a))
            .count();
        let rebound = pairs
            .iter()
            .filter(|(a, u)| current.get(a).is_some_and(|c| c != u))
            .count();
        match api.call("PUT", &path, Some(&Value::Object(desired))).await {
            Ok(_) if new == 0 && rebound == 0 => {
                report.add(Outcome::Unchanged, what, format!("sanhook webhook {id}"))
            }
            Ok(_) if new == n => {
                report.add(Outcome::Created, what, format!("sanhook webhook {id}"))
            }
            Ok(_) => report.add(
                Outcome::Updated,
                what,
                format!("sanhook webhook {id}: {new} new, {rebound} re-bound"),
            ),
            Err(e) => report.failed(what, e),
        }
    }
}

/// The `webhook` part of Sanplex's message setting as trigger settings.
fn parse_setting(value: &str) -> Result<Option<Triggers>, String> {
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
        // PHP writes a list with holes as an object ({"0":"opened","2":"closed"}); older
        // versions a comma string.
        let list: Vec<String> = match actions {
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Value::Object(o) => o
                .values()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Value::String(s) => comma_list(s).map(str::to_string).collect(),
            other => {
                return Err(format!(
                    "zt_config webhook.setting.{object_type} is not a list of actions: {}",
                    cut(&other.to_string())
                ))
            }
        };
        let list: Vec<String> = list
            .into_iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        out.insert(object_type.clone(), list);
    }
    Ok(Some(out))
}

/// Replaces the global trigger settings with Sanplex's.
async fn import_triggers(api: &Api, sanplex: &Sanplex, report: &mut Report) {
    const WHAT: &str = "trigger settings (zt_config message setting)";
    let Some(value) = &sanplex.setting else {
        report.add(
            Outcome::Skipped,
            WHAT,
            "Sanplex has never saved them; sanhook's defaults (everything on, as Sanplex's) stay",
        );
        return;
    };
    let triggers = match parse_setting(value) {
        Ok(Some(t)) => t,
        Ok(None) => {
            report.add(
                Outcome::Skipped,
                WHAT,
                "the setting has no webhook part; sanhook's defaults stay",
            );
            return;
        }
        Err(e) => {
            report.add(Outcome::Failed, WHAT, e);
            return;
        }
    };
    let desired = match serde_json::to_value(&triggers) {
        Ok(v) => v,
        Err(e) => {
            report.add(Outcome::Failed, WHAT, e.to_string());
            return;
        }
    };
    let current = match api.call("GET", "/api/v1/settings/triggers", None).await {
        Ok(v) => v,
        Err(e) => {
            report.failed(WHAT.into(), e);
            return;
        }
    };
    if current == desired {
        report.add(
            Outcome::Unchanged,
            WHAT,
            format!("{} object types", triggers.len()),
        );
        return;
    }
    match api
        .call("PUT", "/api/v1/settings/triggers", Some(&desired))
        .await
    {
        Ok(_) => report.add(
            Outcome::Updated,
            WHAT,
            format!("{} object types", triggers.len()),
        ),
        Err(e) => report.failed(WHAT.into(), e),
    }
}

/// Masks every owned secret and the URL's credentials, as the API shows them.
#[cfg(test)]
fn masked(fields: &Map<String, Value>) -> Map<String, Value> {
    let mut m = fields.clone();
    for k in SECRETS {
        if m.get(*k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            m.insert((*k).into(), json!(crate::webhook::MASK));
        }
    }
    if let Some(url) = m.get("url").and_then(Value::as_str).map(crate::mask::url) {
        m.insert("url".into(), json!(url));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechatuser_credentials_map_in_sanplex_order() {
        let d = Desired::from_row(&Record::of(&[
            ("id", "5"),
            ("type", "wechatuser"),
            ("name", "WeCom app"),
            ("url", "ignored"),
            (
                "secret",
                r#"{"agentId":1000002,"appKey":"ww-corp","appSecret":"corp-secret"}"#,
            ),
            ("products", ",1,2,"),
            ("executions", ""),
            ("params", "text"),
            ("sendType", "async"),
            ("deleted", "0"),
        ]))
        .expect("row");
        assert_eq!(d.fields["wechatAgentId"], "1000002");
        assert_eq!(d.fields["wechatCorpId"], "ww-corp");
        assert_eq!(d.fields["wechatCorpSecret"], "corp-secret");
        assert_eq!(d.fields["url"], "");
        assert_eq!(d.fields["secret"], "");
        assert_eq!(d.fields["products"], json!([1, 2]));
        assert_eq!(d.fields["params"], json!([]));
        assert_eq!(d.fields["sendType"], "async");
        assert_eq!(d.fields["sanplexId"], 5);
    }

    #[test]
    fn dinggroup_async_becomes_sync_with_a_note_and_unknown_params_are_dropped() {
        let d = Desired::from_row(&Record::of(&[
            ("id", "2"),
            ("type", "dinggroup"),
            ("name", "Ding"),
            ("url", "https://oapi.dingtalk.com/robot/send?access_token=x"),
            ("secret", "SEC1"),
            ("sendType", "async"),
        ]))
        .expect("row");
        assert_eq!(d.fields["sendType"], "sync");
        assert_eq!(d.fields["secret"], "SEC1");
        assert!(d.notes[0].contains("async imported as sync"));
        let d = Desired::from_row(&Record::of(&[
            ("id", "1"),
            ("type", "default"),
            ("name", "JSON"),
            ("url", "http://x"),
            ("params", "objectType,objectID,bogus,text"),
            ("contentType", "json"),
            ("projects", "7"),
        ]))
        .expect("row");
        assert_eq!(
            d.fields["params"],
            json!(["objectType", "objectID", "text"])
        );
        assert_eq!(d.fields["contentType"], "application/json");
        assert_eq!(d.fields["executions"], json!([7]));
        assert!(d.notes[0].contains("bogus"));
    }

    #[test]
    fn rows_that_cannot_be_imported_say_why_without_the_secret() {
        let err = Desired::from_row(&Record::of(&[
            ("id", "3"),
            ("type", "dinguser"),
            ("secret", "{not json: topsecret"),
        ]))
        .err()
        .expect("bad secret");
        assert!(
            err.contains("JSON credentials") && !err.contains("topsecret"),
            "{err}"
        );
        let err = Desired::from_row(&Record::of(&[("id", "3"), ("type", "slack")]))
            .err()
            .expect("bad type");
        assert!(err.contains("unknown type \"slack\""), "{err}");
        let err = Desired::from_row(&Record::of(&[
            ("id", "3"),
            ("type", "default"),
            ("products", "1,x"),
        ]))
        .err()
        .expect("bad products");
        assert!(err.contains("products"), "{err}");
    }

    #[test]
    fn changes_compare_secrets_by_presence_and_empties_alike() {
        let d = Desired::from_row(&Record::of(&[
            ("id", "4"),
            ("type", "feishugroup"),
            ("name", "Lark"),
            ("url", "https://open.feishu.cn/open-apis/bot/v2/hook/x"),
            ("secret", "s"),
        ]))
        .expect("row");
        let mut shown = masked(&d.fields);
        // The API leaves out empty secrets and empty lists may come back as [].
        shown.remove("appSecret");
        let shown = Value::Object(shown);
        assert!(d.changes(&shown).is_empty(), "{:?}", d.changes(&shown));
        let mut other = shown.clone();
        other["name"] = json!("Renamed");
        other["secret"] = json!("");
        assert_eq!(d.changes(&other), vec!["name", "secret"]);
    }

    #[test]
    fn the_body_keeps_sanhook_only_fields() {
        let d = Desired::from_row(&Record::of(&[
            ("id", "4"),
            ("type", "default"),
            ("name", "JSON"),
            ("url", "http://x"),
        ]))
        .expect("row");
        let existing = json!({"id": 9, "name": "old", "enabled": false, "actions": {"bug": ["opened"]}, "apiBase": "http://y"});
        let body = d.body(Some(&existing));
        assert_eq!(body["enabled"], false);
        assert_eq!(body["actions"], json!({"bug": ["opened"]}));
        assert_eq!(body["name"], "JSON");
        assert!(body.get("id").is_none() && body.get("apiBase").is_none());
    }

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
    }

    #[test]
    fn the_server_base_reaches_unspecified_addresses_on_loopback() {
        assert_eq!(server_base("0.0.0.0:8930"), "http://127.0.0.1:8930");
        assert_eq!(server_base("[::]:8930"), "http://[::1]:8930");
        assert_eq!(server_base("10.0.0.5:80"), "http://10.0.0.5:80");
    }
}
