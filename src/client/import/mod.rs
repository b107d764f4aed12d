//! `sanhook import-sanplex --db URL`: moves Sanplex's webhook configuration into a running
//! sanhook, through its API.
//!
//! It reads `zt_webhook` (every type; deleted rows skipped), the user bindings in `zt_oauth`
//! and the trigger settings in `zt_config` ([`source`]), and writes them with the same calls a
//! user would make: webhooks are found by `sanplexId` (the `zt_webhook` row id) and replaced
//! with `PUT`, or created with `POST`, so running it twice gives the same result. Fields only
//! sanhook has (`enabled`, `actions`, `apiBase`, ...) are kept as they are ([`row`]). Secrets
//! are write-only in the API, so the real values from the database are sent on every run.
//!
//! Webhooks travel as [`Webhook`] values, read and written with the crate's own serde: the
//! client and the server are one binary, so what one writes the other reads.
//!
//! Exit codes: 0 when every row was imported (or skipped with a reason), 1 when any row failed,
//! 2 when no server answers or the database cannot be read.

mod report;
mod row;
mod source;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde::de::IgnoredAny;
use serde::Deserialize;

use self::report::{Outcome, Report};
use self::row::{changes, retired_type, row_label, Desired};
use self::source::{parse_setting, Sanplex};
use super::api::{Api, ApiError};
use crate::sanplex::Record;
use crate::webhook::{Triggers, Webhook, WebhookType};
use crate::Config;

/// A connection attempt or a request that takes longer fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the command; returns the process exit code.
pub fn run(cfg: &Config, db: &str) -> i32 {
    super::block_on("import-sanplex", import(cfg, db))
}

async fn import(cfg: &Config, db: &str) -> i32 {
    let (api, existing, sanplex) = match connect(cfg, db).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sanhook import-sanplex: {e}");
            return 2;
        }
    };
    println!("importing from {} into {}", sanplex.shown_url, api.base());
    let mut report = Report::default();
    let imported = import_webhooks(&api, &sanplex, &existing, &mut report).await;
    import_bindings(&api, &sanplex, &imported, &mut report).await;
    import_triggers(&api, &sanplex, &mut report).await;
    print!("{report}");
    report.exit_code()
}

/// The server's API with its webhooks, and what Sanplex's database holds; the error says what
/// could not be reached.
async fn connect(cfg: &Config, db: &str) -> Result<(Api, Vec<Webhook>, Sanplex), String> {
    let api = Api::for_server(cfg, TIMEOUT)?;
    // Every webhook (masked), which also proves that the server answers and takes the token.
    let existing = api
        .get("/api/v1/webhooks")
        .await
        .map_err(|e| e.to_string())?;
    let sanplex = Sanplex::read(db, TIMEOUT).await?;
    Ok((api, existing, sanplex))
}

/// A `zt_webhook` row now in sanhook.
struct Imported {
    /// The sanhook webhook's id.
    id: u64,
    kind: WebhookType,
    /// The row as the summary names it.
    label: String,
}

/// Creates or updates a webhook per live `zt_webhook` row; returns the rows now in sanhook by
/// zt_webhook id.
async fn import_webhooks(
    api: &Api,
    sanplex: &Sanplex,
    existing: &[Webhook],
    report: &mut Report,
) -> BTreeMap<u64, Imported> {
    let by_sanplex: BTreeMap<u64, &Webhook> = existing
        .iter()
        .filter_map(|w| Some((w.sanplex_id?, w)))
        .collect();
    let mut imported = BTreeMap::new();
    for rec in &sanplex.webhooks {
        let label = row_label(rec);
        let desired = match prepare(rec, &by_sanplex) {
            Ok(d) => d,
            Err((outcome, why)) => {
                report.add(outcome, label, why);
                continue;
            }
        };
        let current = by_sanplex.get(&desired.sanplex_id).copied();
        match write_webhook(api, &desired, current).await {
            Ok((outcome, id, what)) => {
                report.add(outcome, label.clone(), desired.with_notes(what));
                let kind = desired.webhook.kind;
                imported.insert(desired.sanplex_id, Imported { id, kind, label });
            }
            Err(e) => report.failed(label, e),
        }
    }
    imported
}

/// The row as sanhook wants it, or why it is skipped (deleted in Sanplex, a retired type) or
/// failed (it cannot be mapped).
fn prepare(
    rec: &Record,
    by_sanplex: &BTreeMap<u64, &Webhook>,
) -> Result<Desired, (Outcome, String)> {
    if rec.flag("deleted") {
        let why = match rec.uint("id").and_then(|id| by_sanplex.get(&id)) {
            Some(w) => format!(
                "deleted in Sanplex (sanhook webhook {}, imported earlier, is left as it is)",
                w.id
            ),
            None => "deleted in Sanplex".into(),
        };
        return Err((Outcome::Skipped, why));
    }
    if let Some(why) = retired_type(rec.get("type").unwrap_or("").trim()) {
        return Err((Outcome::Skipped, why.into()));
    }
    Desired::from_row(rec).map_err(|e| (Outcome::Failed, e))
}

/// Replaces the webhook an earlier import made from the row (`current`), or creates it;
/// returns the outcome, the sanhook id and what the summary says.
async fn write_webhook(
    api: &Api,
    desired: &Desired,
    current: Option<&Webhook>,
) -> Result<(Outcome, u64, String), ApiError> {
    let Some(current) = current else {
        let created: Webhook = api
            .send(Method::POST, "/api/v1/webhooks", &desired.webhook)
            .await?;
        let id = created.id;
        return Ok((Outcome::Created, id, format!("sanhook webhook {id}")));
    };
    let id = current.id;
    let body = desired.merged(current);
    let changed = changes(current, &body);
    api.send::<_, IgnoredAny>(Method::PUT, &format!("/api/v1/webhooks/{id}"), &body)
        .await?;
    if !changed.is_empty() {
        let what = format!("sanhook webhook {id}: {} changed", changed.join(", "));
        return Ok((Outcome::Updated, id, what));
    }
    // The API cannot show secrets, so they are sent every time.
    let resent = if desired.has_secrets() {
        " (secrets re-sent)"
    } else {
        ""
    };
    Ok((
        Outcome::Unchanged,
        id,
        format!("sanhook webhook {id}{resent}"),
    ))
}

/// Binds the `zt_oauth` accounts of each imported app-message webhook.
async fn import_bindings(
    api: &Api,
    sanplex: &Sanplex,
    imported: &BTreeMap<u64, Imported>,
    report: &mut Report,
) {
    for (sid, pairs) in &sanplex.bindings {
        let n = pairs.len();
        let Some(hook) = imported.get(sid) else {
            let what = format!("{n} binding(s) of webhook {sid}");
            report.add(Outcome::Skipped, what, sanplex.why_not_imported(*sid));
            continue;
        };
        let what = format!("{n} binding(s) of {}", hook.label);
        if !hook.kind.is_app() {
            let why = format!("type {} sends to a group, not to bound users", hook.kind);
            report.add(Outcome::Skipped, what, why);
            continue;
        }
        match bind(api, hook.id, pairs).await {
            Ok((outcome, why)) => report.add(outcome, what, why),
            Err(e) => report.failed(what, e),
        }
    }
}

/// One binding as the API lists it.
#[derive(Deserialize)]
struct Binding {
    account: String,
    userid: String,
}

/// Binds `pairs` (account, platform user id) on sanhook webhook `id`; returns how its
/// bindings changed and what the summary says.
async fn bind(
    api: &Api,
    id: u64,
    pairs: &[(String, String)],
) -> Result<(Outcome, String), ApiError> {
    let path = format!("/api/v1/webhooks/{id}/bindings");
    let current: Vec<Binding> = api.get(&path).await?;
    let current: BTreeMap<String, String> =
        current.into_iter().map(|b| (b.account, b.userid)).collect();
    let new = pairs
        .iter()
        .filter(|(a, _)| !current.contains_key(a))
        .count();
    let rebound = pairs
        .iter()
        .filter(|(a, u)| current.get(a).is_some_and(|c| c != u))
        .count();
    let desired: BTreeMap<&str, &str> = pairs
        .iter()
        .map(|(a, u)| (a.as_str(), u.as_str()))
        .collect();
    api.send::<_, IgnoredAny>(Method::PUT, &path, &desired)
        .await?;
    let what = format!("sanhook webhook {id}");
    Ok(if new == 0 && rebound == 0 {
        (Outcome::Unchanged, what)
    } else if new == pairs.len() {
        (Outcome::Created, what)
    } else {
        (
            Outcome::Updated,
            format!("{what}: {new} new, {rebound} re-bound"),
        )
    })
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
    match replace_triggers(api, &triggers).await {
        Ok(outcome) => report.add(outcome, WHAT, format!("{} object types", triggers.len())),
        Err(e) => report.failed(WHAT, e),
    }
}

/// Puts `triggers` in place of the server's unless they are the same.
async fn replace_triggers(api: &Api, triggers: &Triggers) -> Result<Outcome, ApiError> {
    let current: Triggers = api.get("/api/v1/settings/triggers").await?;
    if current == *triggers {
        return Ok(Outcome::Unchanged);
    }
    api.send::<_, IgnoredAny>(Method::PUT, "/api/v1/settings/triggers", triggers)
        .await?;
    Ok(Outcome::Updated)
}
