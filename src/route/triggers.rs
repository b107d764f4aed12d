//! Trigger settings and the reference matching rule.

use crate::event::ActionEvent;
use crate::webhook::{Triggers, Webhook};

/// Sanplex's default trigger table (ZenTao 18.8 plus the 20.x additions), as docs/sanplex.md lists it.
const DEFAULT_TABLE: &[(&str, &[&str])] = &[
    ("product", &["opened", "edited", "closed", "undeleted"]),
    (
        "story",
        &[
            "opened",
            "edited",
            "commented",
            "frombug",
            "changed",
            "reviewed",
            "closed",
            "activated",
            "assigned",
            "submitreview",
        ],
    ),
    (
        "epic",
        &[
            "opened",
            "edited",
            "commented",
            "changed",
            "submitreview",
            "reviewed",
            "closed",
            "activated",
            "assigned",
        ],
    ),
    (
        "requirement",
        &[
            "opened",
            "edited",
            "commented",
            "changed",
            "submitreview",
            "reviewed",
            "closed",
            "activated",
            "assigned",
        ],
    ),
    ("productplan", &["opened", "edited"]),
    (
        "release",
        &["opened", "edited", "published", "changestatus"],
    ),
    (
        "project",
        &[
            "opened",
            "edited",
            "started",
            "delayed",
            "suspended",
            "closed",
            "activated",
            "undeleted",
        ],
    ),
    (
        "task",
        &[
            "opened",
            "edited",
            "commented",
            "assigned",
            "confirmed",
            "started",
            "finished",
            "paused",
            "canceled",
            "restarted",
            "closed",
            "activated",
        ],
    ),
    (
        "bug",
        &[
            "opened",
            "edited",
            "commented",
            "assigned",
            "confirmed",
            "bugconfirmed",
            "resolved",
            "closed",
            "activated",
        ],
    ),
    (
        "case",
        &["opened", "edited", "commented", "reviewed", "confirmed"],
    ),
    (
        "testtask",
        &[
            "opened",
            "edited",
            "started",
            "blocked",
            "closed",
            "activated",
        ],
    ),
    ("todo", &["opened", "edited"]),
    ("doc", &["created", "edited", "releaseddoc"]),
    (
        "kanbancard",
        &[
            "created",
            "edited",
            "finished",
            "activated",
            "archived",
            "restore",
            "deleted",
            "moved",
        ],
    ),
];

/// The global trigger settings a fresh install starts with: everything Sanplex can notify about
/// is on, so that a webhook created without further setup behaves as it would in Sanplex.
pub fn default_triggers() -> Triggers {
    DEFAULT_TABLE
        .iter()
        .map(|(ty, actions)| {
            let actions = actions.iter().map(|a| (*a).to_string()).collect();
            ((*ty).to_string(), actions)
        })
        .collect()
}

/// Whether `wh` fires for `ev` when the global trigger settings are `global`.
///
/// This is the reference semantics, kept deliberately simple (linear scans, no precomputation):
/// [`RuleIndex::route`](super::RuleIndex::route) must give the same answer, and the tests check it
/// against this function. A webhook fires iff it is enabled and not deleted, the event's
/// `(objectType, action)` is in its trigger list (its own `actions` when set — `{}` means nothing
/// fires — else `global`; exact, case-sensitive), and both scope filters pass.
pub fn matches(wh: &Webhook, global: &Triggers, ev: &ActionEvent) -> bool {
    if ev.object_type == OPERATOR {
        // sanhook's reports on itself: the webhook's own list alone decides.
        return wh.enabled
            && !wh.deleted
            && wh.actions.as_ref().is_some_and(|own| triggered(own, ev));
    }
    wh.enabled
        && !wh.deleted
        && triggered(wh.actions.as_ref().unwrap_or(global), ev)
        && products_pass(&wh.products, &ev.product)
        && execution_passes(&wh.executions, ev.execution)
        && !wh.ignore_actors.contains(&ev.actor)
        && !(wh.details && is_noop_edit(ev))
}

/// The `objectType` (and `actor`) of sanhook's reports on itself (docs/reference.md §4 "Operator events").
pub const OPERATOR: &str = "sanhook";

/// An `edited` action known to have changed nothing (its `changes` present and empty) and
/// without a comment: webhooks with `details: true` skip it. Absent `changes` means not known.
pub fn is_noop_edit(ev: &ActionEvent) -> bool {
    ev.action == "edited"
        && ev.changes.as_ref().is_some_and(Vec::is_empty)
        && ev.comment.trim().is_empty()
}

fn triggered(triggers: &Triggers, ev: &ActionEvent) -> bool {
    triggers
        .get(ev.object_type.as_str())
        .is_some_and(|actions| actions.contains(&ev.action))
}

/// Empty filter: every event passes. Otherwise any of the event's products must be listed; an
/// event without a product (Sanplex's `",0,"`) fails, and a stray 0 never counts as a product.
fn products_pass(filter: &[u64], products: &[u64]) -> bool {
    filter.is_empty() || products.iter().any(|p| *p != 0 && filter.contains(p))
}

/// Empty filter: every event passes. Otherwise the event's execution must be listed; execution 0
/// (product- or story-level actions) fails.
fn execution_passes(filter: &[u64], execution: u64) -> bool {
    filter.is_empty() || (execution != 0 && filter.contains(&execution))
}
