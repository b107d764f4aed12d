//! Recipients of work/app messages, the per-recipient progress of a delivery, and WeCom's
//! per-member budget.
//!
//! Recipients are the event's `toList` minus the actor, mapped through the webhook's bindings
//! (SANPLEX.md "Recipients"). A delivery to several recipients may take several calls (DingTalk
//! chunks of 100, WeCom calls of 1,000, one Lark call per person); [`Progress`] records who has
//! been served or refused, and is stored with each attempt, so that a retry sends only to the
//! others and nobody gets a message twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Window;
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

    /// The recipients still to serve, in order.
    pub fn remaining<'a>(&self, userids: &'a [String]) -> Vec<&'a str> {
        userids
            .iter()
            .map(String::as_str)
            .filter(|u| !self.done(u))
            .collect()
    }

    /// Records users as served.
    pub fn serve<'a>(&mut self, users: impl IntoIterator<Item = &'a str>) {
        for u in users {
            if !self.done(u) {
                self.served.push(u.to_string());
            }
        }
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

/// Sliding windows per (credential set, member), for WeCom's "30 messages a minute to one
/// member per app". WeCom drops the excess without an error, so sanhook must hold back rather
/// than send.
#[derive(Debug, Default)]
pub struct MemberWindows {
    sent: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
    /// Apps whose saved send times were read back from the store already.
    loaded: Mutex<std::collections::HashSet<String>>,
}

impl MemberWindows {
    /// Whether `app`'s saved send times still have to be read (true once per app).
    pub fn needs_load(&self, app: &str) -> bool {
        self.loaded
            .lock()
            .map(|mut l| l.insert(app.to_string()))
            .unwrap_or(false)
    }

    /// Puts back saved send times (Unix ms per member), so a restart keeps each member's budget.
    pub fn import(&self, app: &str, saved: HashMap<String, Vec<i64>>, now: Instant, now_ms: i64) {
        let Ok(mut sent) = self.sent.lock() else {
            return;
        };
        for (member, times) in saved {
            let q = sent.entry((app.to_string(), member)).or_default();
            for t in times {
                let age = Duration::from_millis((now_ms - t).max(0) as u64);
                if let Some(at) = now.checked_sub(age) {
                    q.push_back(at);
                }
            }
            q.make_contiguous().sort();
        }
    }

    /// The send times of `app`'s members as Unix ms, to save.
    pub fn export(&self, app: &str, now: Instant, now_ms: i64) -> HashMap<String, Vec<i64>> {
        let Ok(sent) = self.sent.lock() else {
            return HashMap::new();
        };
        sent.iter()
            .filter(|((a, _), _)| a == app)
            .map(|((_, m), q)| {
                let times = q
                    .iter()
                    .map(|t| now_ms - now.saturating_duration_since(*t).as_millis() as i64)
                    .collect();
                (m.clone(), times)
            })
            .collect()
    }

    /// Takes a slot for each of `members` that has budget under every window and returns them;
    /// the others are returned with the time until their first slot frees.
    ///
    /// Taking the slots before sending keeps concurrent senders from overrunning a member; a
    /// send that then fails keeps its slots (erring on the side of the platform's limit).
    pub fn take<'a>(
        &self,
        app: &str,
        members: &[&'a str],
        windows: &[Window],
        now: Instant,
    ) -> (Vec<&'a str>, Vec<(&'a str, Duration)>) {
        let longest = windows.iter().map(|w| w.per).max().unwrap_or_default();
        let mut granted = vec![];
        let mut held = vec![];
        let Ok(mut sent) = self.sent.lock() else {
            // A poisoned lock only means another sender panicked; hold everyone back briefly.
            return (
                vec![],
                members
                    .iter()
                    .map(|m| (*m, Duration::from_secs(1)))
                    .collect(),
            );
        };
        for &m in members {
            let times = sent.entry((app.to_string(), m.to_string())).or_default();
            while times
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= longest)
            {
                times.pop_front();
            }
            let mut wait = Duration::ZERO;
            for w in windows {
                let in_window: Vec<&Instant> = times
                    .iter()
                    .filter(|t| now.saturating_duration_since(**t) < w.per)
                    .collect();
                if in_window.len() >= w.count as usize {
                    // The slot frees when the oldest send that still counts leaves the window.
                    let idx = in_window.len() - w.count as usize;
                    let frees = *in_window[idx] + w.per;
                    wait = wait.max(frees.saturating_duration_since(now));
                }
            }
            if wait.is_zero() {
                times.push_back(now);
                granted.push(m);
            } else {
                held.push((m, wait));
            }
        }
        (granted, held)
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

    #[test]
    fn member_budget_round_trips_through_a_checkpoint() {
        let windows = [Window {
            count: 2,
            per: Duration::from_secs(60),
        }];
        let (t0, ms0) = (Instant::now(), 1_000_000_i64);
        let before = MemberWindows::default();
        before.take("app", &["a", "a"], &windows, t0);
        let saved = before.export("app", t0 + Duration::from_secs(5), ms0 + 5_000);
        assert_eq!(saved.get("a").map(|v| v.len()), Some(2));
        // A new process, 10 s later on the wall clock.
        let after = MemberWindows::default();
        assert!(after.needs_load("app"));
        assert!(!after.needs_load("app"));
        let t1 = Instant::now() + Duration::from_secs(100);
        after.import("app", saved, t1, ms0 + 10_000);
        let (g, h) = after.take("app", &["a"], &windows, t1);
        assert!(g.is_empty(), "the restored budget is spent");
        assert_eq!(h[0].1, Duration::from_secs(50));
    }

    #[test]
    fn member_windows_hold_back_the_spent() {
        let w = MemberWindows::default();
        let windows = [Window {
            count: 2,
            per: Duration::from_secs(60),
        }];
        let t0 = Instant::now();
        let (g, h) = w.take("app", &["a", "b"], &windows, t0);
        assert_eq!((g.len(), h.len()), (2, 0));
        let (g, h) = w.take("app", &["a"], &windows, t0 + Duration::from_secs(10));
        assert_eq!((g.len(), h.len()), (1, 0));
        // `a` has had 2 in the last minute: held until the first one leaves the window.
        let (g, h) = w.take("app", &["a", "b"], &windows, t0 + Duration::from_secs(20));
        assert_eq!(g, vec!["b"]);
        assert_eq!(h, vec![("a", Duration::from_secs(40))]);
        // Another app has its own budget.
        let (g, _) = w.take("other", &["a"], &windows, t0 + Duration::from_secs(20));
        assert_eq!(g, vec!["a"]);
        let (g, _) = w.take("app", &["a"], &windows, t0 + Duration::from_secs(60));
        assert_eq!(g, vec!["a"]);
    }
}
