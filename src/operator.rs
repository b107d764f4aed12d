//! sanhook's reports on itself (docs/reference.md §4 "Operator events"): action events with `objectType`
//! and `actor` `sanhook`, ingested through the engine's own intake, so that they reach the
//! webhooks whose `actions` name them (an admins' DingTalk group) and nothing else.
//!
//! A watch runs once a second: it reports a store outage once it has ended (it cannot be queued
//! durably while the store is failing), a webhook whose attempts have all failed for
//! `delivery.failing_after` (once per episode), and disables a webhook whose attempts have all
//! failed for `delivery.disable_after`, with the reason in its `disabledReason`.

use std::collections::HashMap;
use std::time::Duration;

use crate::engine::Engine;
use crate::event::ActionEvent;
use crate::route::OPERATOR;
use crate::store::Outage;

/// How often the watch looks.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What the watch remembers between looks.
#[derive(Default)]
pub struct Watch {
    /// Reports not yet committed (the store refused them): sent again at the next look.
    pending: Vec<ActionEvent>,
    /// Webhook → the failing episode (its start) already reported, so that it is reported once.
    reported: HashMap<u64, i64>,
}

/// An operator event about `object_id` (a webhook id, 0 for the store).
pub fn event(action: &str, object_id: u64, object_name: &str, comment: String) -> ActionEvent {
    ActionEvent {
        object_type: OPERATOR.into(),
        object_id,
        actor: OPERATOR.into(),
        action: action.into(),
        date: crate::event::local_now(),
        comment,
        object_name: Some(object_name.into()),
        ..ActionEvent::default()
    }
}

/// A Unix-milliseconds time as RFC 3339 (UTC, seconds).
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The `storeError` report of an outage that has ended.
fn store_error(o: &Outage) -> ActionEvent {
    let until = o.until.map(rfc3339).unwrap_or_else(|| "now".into());
    event(
        "storeError",
        0,
        "store",
        format!(
            "the store could not commit from {} to {until}: {}; writes were refused (503) meanwhile and nothing was lost",
            rfc3339(o.since),
            o.reason
        ),
    )
}

impl Watch {
    /// One look: see the module comment.
    pub async fn look(&mut self, engine: &Engine) {
        let store = engine.store();
        for o in store.take_ended_outages() {
            self.pending.push(store_error(&o));
        }
        if store.outage().is_some() {
            return;
        }
        self.endpoints(engine).await;
        if self.pending.is_empty() {
            return;
        }
        let events = self.pending.clone();
        match engine.submit(OPERATOR, events).await {
            Ok(_) => self.pending.clear(),
            Err(e) => tracing::warn!(error = %e, "operator events not stored yet; trying again"),
        }
    }

    /// Failing and disabled webhooks.
    async fn endpoints(&mut self, engine: &Engine) {
        let cfg = &engine.config().delivery;
        let now = engine.clock().wall_ms();
        let as_ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        // Only webhooks in a failing episode are looked at: no copy of every webhook and
        // counter each second.
        let failing = engine.store().failing();
        self.reported
            .retain(|id, _| failing.iter().any(|(f, _, _)| f == id));
        for (id, since, last_error) in failing {
            let Ok(wh) = engine.webhook(id) else {
                continue;
            };
            let failing_for = now.saturating_sub(since);
            if failing_for >= as_ms(cfg.failing_after) && self.reported.get(&wh.id) != Some(&since)
            {
                self.reported.insert(wh.id, since);
                self.pending.push(event(
                    "webhookFailing",
                    wh.id,
                    &wh.name,
                    format!(
                        "every attempt has failed since {}; last error: {last_error}",
                        rfc3339(since)
                    ),
                ));
            }
            if !cfg.disable_after.is_zero() && wh.enabled && failing_for >= as_ms(cfg.disable_after)
            {
                let reason = format!(
                    "disabled by sanhook: every attempt failed since {} (delivery.disable_after = {}); last error: {last_error}",
                    rfc3339(since),
                    humanize(cfg.disable_after)
                );
                match engine.disable_webhook(wh.id, reason.clone()).await {
                    Ok(()) => {
                        tracing::warn!(webhook = wh.id, %reason, "webhook disabled");
                        self.pending
                            .push(event("webhookDisabled", wh.id, &wh.name, reason));
                    }
                    Err(e) => {
                        tracing::warn!(webhook = wh.id, error = %e, "could not disable a failing webhook; trying again")
                    }
                }
            }
        }
    }
}

/// `5d`, `1h`, `90s`: a duration as config files write it.
fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if d.subsec_millis() != 0 || s == 0 => format!("{}ms", d.as_millis()),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_in_config_files() {
        assert_eq!(humanize(Duration::from_secs(5 * 86_400)), "5d");
        assert_eq!(humanize(Duration::from_secs(3600)), "1h");
        assert_eq!(humanize(Duration::from_secs(90)), "90s");
        assert_eq!(humanize(Duration::from_millis(500)), "500ms");
        assert_eq!(humanize(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn a_store_outage_names_its_times_and_cause() {
        let ev = store_error(&Outage {
            since: 1_767_600_000_000,
            until: Some(1_767_600_060_000),
            reason: "No space left on device".into(),
        });
        assert_eq!(
            (ev.object_type.as_str(), ev.actor.as_str()),
            ("sanhook", "sanhook")
        );
        assert_eq!((ev.action.as_str(), ev.object_id), ("storeError", 0));
        assert!(
            ev.comment.contains("2026-01-05T08:00:00Z")
                && ev.comment.contains("2026-01-05T08:01:00Z")
                && ev.comment.contains("No space left"),
            "{}",
            ev.comment
        );
    }
}
