//! Recipients of work/app messages and the per-recipient progress of a delivery. (WeCom's
//! per-member budget is dispatch's: `dispatch::limiter::Keyed`.)
//!
//! Recipients are the event's `toList` minus the actor, mapped through the webhook's bindings
//! (docs/sanplex.md "Recipients"). A delivery to several recipients may take several calls (DingTalk
//! chunks of 100, WeCom calls of 1,000, one Lark call per person); [`Progress`] records who has
//! been served or refused, and is stored with each attempt, so that a retry sends only to the
//! others and nobody gets a message twice.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::event::ActionEvent;

/// Who a work message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients {
    /// Platform user ids, in `toList` order, each once.
    pub userids: Vec<String>,
    /// Accounts of `toList` (actor excluded) without a binding on this webhook.
    pub unbound: Vec<String>,
}

/// Maps `ev.toList` minus the actor through `bindings` (`(account, userid)` pairs).
///
/// `Err` is the reason there is nobody to send to, for `Outcome::Skipped`.
pub fn resolve(
    ev: &ActionEvent,
    bindings: &[(String, String)],
    webhook: u64,
) -> Result<Recipients, String> {
    let by_account: HashMap<&str, &str> = bindings
        .iter()
        .map(|(a, u)| (a.as_str(), u.as_str()))
        .collect();
    let mut seen_accounts = HashSet::new();
    let mut seen_users = HashSet::new();
    let mut out = Recipients {
        userids: vec![],
        unbound: vec![],
    };
    for account in &ev.to_list {
        let account = account.trim();
        if account.is_empty() || account == ev.actor || !seen_accounts.insert(account) {
            continue;
        }
        match by_account.get(account) {
            Some(userid) => {
                if seen_users.insert(*userid) {
                    out.userids.push((*userid).to_string());
                }
            }
            None => out.unbound.push(account.to_string()),
        }
    }
    if !out.userids.is_empty() {
        return Ok(out);
    }
    Err(if ev.to_list.is_empty() {
        "no bound recipients: the event has no toList".to_string()
    } else if out.unbound.is_empty() {
        format!(
            "no bound recipients: toList holds only the actor ({}), who is never notified of their own action",
            ev.actor
        )
    } else {
        format!(
            "no bound recipients: {} not bound on webhook {webhook} (bind with PUT /api/v1/webhooks/{webhook}/bindings)",
            out.unbound.join(", ")
        )
    })
}

/// A recipient the platform refused (WeCom `invaliduser`, Lark `230001`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub userid: String,
    /// The platform's code (0 when the platform named the user without a code of its own).
    pub code: i64,
    /// The platform's message.
    pub error: String,
}

/// What a delivery to several recipients has done so far; kept in `DeliveryState.progress`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Users the platform accepted the message for: never sent to again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served: Vec<String>,
    /// Users the platform refused: not sent to again either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejected>,
}

impl Progress {
    /// Reads the progress of a previous attempt; anything unreadable counts as none (the worst
    /// case is a repeat, never a loss).
    pub fn from_value(v: Option<&serde_json::Value>) -> Progress {
        v.and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// The JSON kept with the attempt.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// `true` if `userid` was served or refused already.
    pub fn done(&self, userid: &str) -> bool {
        self.served.iter().any(|u| u == userid) || self.rejected.iter().any(|r| r.userid == userid)
    }

    /// Every user served or refused, as a set (linear in the progress, for checks in a loop).
    fn done_set(&self) -> HashSet<&str> {
        self.served
            .iter()
            .map(String::as_str)
            .chain(self.rejected.iter().map(|r| r.userid.as_str()))
            .collect()
    }

    /// The recipients still to serve, in order.
    pub fn remaining<'a>(&self, userids: &'a [String]) -> Vec<&'a str> {
        let done = self.done_set();
        userids
            .iter()
            .map(String::as_str)
            .filter(|u| !done.contains(u))
            .collect()
    }

    /// Records users as served.
    pub fn serve<'a>(&mut self, users: impl IntoIterator<Item = &'a str>) {
        let new: Vec<String> = {
            let done = self.done_set();
            let mut added = HashSet::new();
            users
                .into_iter()
                .filter(|u| !done.contains(u) && added.insert(*u))
                .map(str::to_owned)
                .collect()
        };
        self.served.extend(new);
    }

    /// Records a user as refused.
    pub fn reject(&mut self, userid: &str, code: i64, error: &str) {
        if !self.done(userid) {
            self.rejected.push(Rejected {
                userid: userid.to_string(),
                code,
                error: error.to_string(),
            });
        }
    }

    /// `userid (message)` for each refused user, for error texts.
    pub fn rejected_summary(&self) -> String {
        self.rejected
            .iter()
            .map(|r| format!("{} ({})", r.userid, r.error))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(actor: &str, to: &[&str]) -> ActionEvent {
        ActionEvent {
            actor: actor.into(),
            to_list: to.iter().map(|s| s.to_string()).collect(),
            ..ActionEvent::default()
        }
    }

    fn b(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, u)| (a.to_string(), u.to_string()))
            .collect()
    }

    #[test]
    fn to_list_minus_actor_through_bindings() {
        let r = resolve(
            &ev("alice", &["bob", "alice", "carol", "bob", "dave"]),
            &b(&[("alice", "u-a"), ("bob", "u-b"), ("dave", "u-d")]),
            3,
        )
        .expect("some");
        assert_eq!(r.userids, vec!["u-b", "u-d"]);
        assert_eq!(r.unbound, vec!["carol"]);
    }

    #[test]
    fn nobody_left_says_why() {
        let e = resolve(&ev("alice", &["alice"]), &b(&[("alice", "u")]), 3).unwrap_err();
        assert!(
            e.starts_with("no bound recipients:") && e.contains("only the actor"),
            "{e}"
        );
        let e = resolve(&ev("alice", &["bob", "carol"]), &[], 3).unwrap_err();
        assert!(e.contains("bob, carol not bound on webhook 3"), "{e}");
        let e = resolve(&ev("alice", &[]), &[], 3).unwrap_err();
        assert!(e.contains("no toList"), "{e}");
    }

    #[test]
    fn progress_round_trip_and_remaining() {
        let mut p = Progress::default();
        p.serve(["u1", "u2"]);
        p.reject("u3", 230001, "invalid receive_id");
        let users: Vec<String> = ["u1", "u2", "u3", "u4"].map(String::from).to_vec();
        let back = Progress::from_value(Some(&p.to_value()));
        assert_eq!(back, p);
        assert_eq!(back.remaining(&users), vec!["u4"]);
        assert_eq!(
            Progress::from_value(Some(&serde_json::json!("junk"))),
            Progress::default()
        );
    }
}
