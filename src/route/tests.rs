//! `matches` and `RuleIndex::route` against the fixture table, and against each other on random
//! webhooks, events and updates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{default_triggers, matches, RuleIndex};
use crate::event::ActionEvent;
use crate::webhook::{Triggers, Webhook};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[allow(dead_code)]
    about: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    global: Option<Triggers>,
    webhooks: Vec<Value>,
    steps: Vec<Step>,
}

/// One step; exactly one of `event` (with `expect`), `set_triggers`, `upsert`, `remove` is set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Step {
    event: Option<Value>,
    expect: Option<Vec<u64>>,
    set_triggers: Option<Triggers>,
    upsert: Option<Value>,
    remove: Option<u64>,
}

/// The reference: every webhook by id plus the global settings, checked with `matches`.
struct Model {
    global: Triggers,
    webhooks: BTreeMap<u64, Webhook>,
}

impl Model {
    fn fired(&self, ev: &ActionEvent) -> Vec<u64> {
        self.webhooks
            .values()
            .filter(|wh| matches(wh, &self.global, ev))
            .map(|wh| wh.id)
            .collect()
    }
}

fn routed(index: &RuleIndex, ev: &ActionEvent) -> Vec<u64> {
    let mut out = Vec::new();
    index.route(ev, &mut out);
    out
}

fn webhook(v: &Value, case: &str) -> Webhook {
    let mut v = v.clone();
    let Some(obj) = v.as_object_mut() else {
        panic!("case {case:?}: webhook {v} is not an object");
    };
    let name = format!("wh{}", obj.get("id").and_then(Value::as_u64).unwrap_or(0));
    obj.entry("name").or_insert(Value::String(name));
    match serde_json::from_value(v.clone()) {
        Ok(wh) => wh,
        Err(e) => panic!("case {case:?}: webhook {v}: {e}"),
    }
}

fn event(v: &Value, case: &str) -> ActionEvent {
    let mut v = v.clone();
    let Some(obj) = v.as_object_mut() else {
        panic!("case {case:?}: event {v} is not an object");
    };
    obj.entry("objectID").or_insert(Value::from(1));
    obj.entry("actor").or_insert(Value::from("admin"));
    obj.entry("date")
        .or_insert(Value::from("2026-01-05 18:35:21"));
    match serde_json::from_value(v.clone()) {
        Ok(ev) => ev,
        Err(e) => panic!("case {case:?}: event {v}: {e}"),
    }
}

fn load_table() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/routing/cases.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

#[test]
fn fixture_cases() {
    let table = load_table();
    assert!(table.cases.len() >= 10, "the table lost cases");
    let mut checked = 0;
    for case in &table.cases {
        let name = case.name.as_str();
        let global = case.global.clone().unwrap_or_else(default_triggers);
        let index = RuleIndex::new(global.clone());
        let mut model = Model {
            global,
            webhooks: BTreeMap::new(),
        };
        for v in &case.webhooks {
            let wh = webhook(v, name);
            index.upsert(Arc::new(wh.clone()));
            model.webhooks.insert(wh.id, wh);
        }
        for (i, step) in case.steps.iter().enumerate() {
            let kinds = [
                step.event.is_some(),
                step.set_triggers.is_some(),
                step.upsert.is_some(),
                step.remove.is_some(),
            ];
            assert_eq!(
                kinds.iter().filter(|k| **k).count(),
                1,
                "case {name:?} step {i}: set exactly one of event, setTriggers, upsert, remove"
            );
            if let Some(t) = &step.set_triggers {
                index.set_triggers(t.clone());
                model.global = t.clone();
                assert_eq!(index.triggers(), model.global, "case {name:?} step {i}");
            }
            if let Some(v) = &step.upsert {
                let wh = webhook(v, name);
                index.upsert(Arc::new(wh.clone()));
                model.webhooks.insert(wh.id, wh);
            }
            if let Some(id) = step.remove {
                index.remove(id);
                model.webhooks.remove(&id);
            }
            if let Some(v) = &step.event {
                let Some(expect) = &step.expect else {
                    panic!("case {name:?} step {i}: an event step needs `expect`");
                };
                let ev = event(v, name);
                assert_eq!(&model.fired(&ev), expect, "matches: case {name:?} step {i}");
                assert_eq!(
                    &routed(&index, &ev),
                    expect,
                    "route: case {name:?} step {i}"
                );
                checked += 1;
            } else {
                assert!(
                    step.expect.is_none(),
                    "case {name:?} step {i}: `expect` without an event"
                );
            }
            assert_eq!(
                index.len(),
                model.webhooks.len(),
                "len: case {name:?} step {i}"
            );
        }
    }
    assert!(checked >= 40, "only {checked} event checks ran");
}

#[test]
fn default_table_has_every_object_type() {
    let t = default_triggers();
    let types: Vec<&str> = t.keys().map(String::as_str).collect();
    let mut expected = vec![
        "product",
        "story",
        "epic",
        "requirement",
        "productplan",
        "release",
        "project",
        "task",
        "bug",
        "case",
        "testtask",
        "todo",
        "doc",
        "kanbancard",
    ];
    expected.sort_unstable();
    assert_eq!(types, expected);
    let count: usize = t.values().map(Vec::len).sum();
    assert_eq!(
        count,
        4 + 10 + 9 + 9 + 2 + 4 + 8 + 12 + 9 + 5 + 6 + 2 + 3 + 8
    );
    assert_eq!(t["bug"][6], "resolved");
    assert!(!t["bug"].iter().any(|a| a == "deleted"));
    assert!(RuleIndex::default().triggers() == t);
}

#[test]
fn route_appends_and_leaves_earlier_ids_alone() {
    let index = RuleIndex::default();
    for id in [3, 1, 2] {
        index.upsert(Arc::new(Webhook {
            id,
            enabled: true,
            products: vec![1, 2],
            ..Webhook::default()
        }));
    }
    let ev = ActionEvent {
        object_type: "bug".into(),
        action: "opened".into(),
        product: vec![2, 1],
        ..ActionEvent::default()
    };
    let mut out = vec![9, 1];
    index.route(&ev, &mut out);
    assert_eq!(out, [9, 1, 1, 2, 3]);
}

/// splitmix64: deterministic, good enough to spread test inputs, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` %.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// 0 to `max` ids below `range`, zeros and repeats included on purpose.
    fn ids(&mut self, max: u64, range: u64) -> Vec<u64> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.below(range)).collect()
    }
}

const TYPES: &[&str] = &["bug", "task", "story", "doc", "kanbancard", "widget", "Bug"];
const ACTIONS: &[&str] = &[
    "opened", "edited", "resolved", "deleted", "created", "closed", "started", "spun", "Opened",
];

fn random_triggers(rng: &mut Rng) -> Triggers {
    let mut t = Triggers::new();
    for _ in 0..rng.below(5) {
        let actions = (0..rng.below(4))
            .map(|_| rng.pick(ACTIONS).to_string())
            .collect();
        t.insert(rng.pick(TYPES).to_string(), actions);
    }
    t
}

fn random_global(rng: &mut Rng) -> Triggers {
    if rng.chance(30) {
        default_triggers()
    } else {
        random_triggers(rng)
    }
}

fn random_webhook(rng: &mut Rng, id: u64) -> Webhook {
    Webhook {
        id,
        name: format!("wh{id}"),
        products: if rng.chance(50) {
            rng.ids(3, 12)
        } else {
            vec![]
        },
        executions: if rng.chance(40) {
            rng.ids(2, 15)
        } else {
            vec![]
        },
        actions: match rng.below(10) {
            0..=5 => None,
            6 => Some(Triggers::new()),
            _ => Some(random_triggers(rng)),
        },
        enabled: rng.chance(90),
        deleted: rng.chance(5),
        ignore_actors: match rng.below(4) {
            0 => vec!["system".into()],
            1 => vec!["alice".into(), "system".into()],
            _ => vec![],
        },
        details: rng.chance(50),
        ..Webhook::default()
    }
}

fn random_event(rng: &mut Rng) -> ActionEvent {
    ActionEvent {
        object_type: rng.pick(TYPES).to_string(),
        action: rng.pick(ACTIONS).to_string(),
        product: rng.ids(3, 12),
        execution: if rng.chance(30) { 0 } else { rng.below(15) },
        actor: rng.pick(&["admin", "system", "alice"]).to_string(),
        changes: match rng.below(3) {
            0 => None,
            1 => Some(vec![]),
            _ => Some(vec![crate::event::Change {
                field: "pri".into(),
                old: "3".into(),
                new: "1".into(),
            }]),
        },
        comment: if rng.chance(20) {
            "c".into()
        } else {
            String::new()
        },
        ..ActionEvent::default()
    }
}

fn check_events(index: &RuleIndex, model: &Model, rng: &mut Rng, n: usize, round: usize) -> usize {
    let mut fired = 0;
    for i in 0..n {
        let ev = random_event(rng);
        let expect = model.fired(&ev);
        assert_eq!(
            routed(index, &ev),
            expect,
            "round {round} event {i}: {ev:?}"
        );
        fired += expect.len();
    }
    fired
}

#[test]
fn route_agrees_with_matches_on_random_input() {
    let mut rng = Rng(0x5A17_E1EC);
    let global = random_global(&mut rng);
    let index = RuleIndex::new(global.clone());
    let mut model = Model {
        global,
        webhooks: BTreeMap::new(),
    };
    // Half loaded as one batch, half one by one: both paths must file the same way.
    let mut batch = Vec::new();
    for id in 1..=2000 {
        let wh = random_webhook(&mut rng, id);
        if id % 2 == 0 {
            batch.push(Arc::new(wh.clone()));
        } else {
            index.upsert(Arc::new(wh.clone()));
        }
        model.webhooks.insert(id, wh);
    }
    index.extend(batch);
    assert_eq!(index.len(), 2000);
    let fired = check_events(&index, &model, &mut rng, 2000, 0);
    // Guard against a generator that makes every answer empty (or everything fire).
    assert!(fired > 2000 && fired < 2000 * 2000 / 4, "{fired} firings");

    for round in 1..=20 {
        for _ in 0..50 {
            match rng.below(10) {
                0..=5 => {
                    // Replacements mostly, some new ids.
                    let id = 1 + rng.below(2200);
                    let wh = random_webhook(&mut rng, id);
                    index.upsert(Arc::new(wh.clone()));
                    model.webhooks.insert(id, wh);
                }
                6..=8 => {
                    let id = 1 + rng.below(2200);
                    index.remove(id);
                    model.webhooks.remove(&id);
                }
                _ => {
                    let t = random_global(&mut rng);
                    index.set_triggers(t.clone());
                    model.global = t;
                }
            }
        }
        assert_eq!(index.len(), model.webhooks.len(), "round {round}");
        assert_eq!(index.triggers(), model.global, "round {round}");
        check_events(&index, &model, &mut rng, 100, round);
    }

    // Emptied out, nothing is left behind in any bucket.
    let ids: Vec<u64> = model.webhooks.keys().copied().collect();
    for id in ids {
        index.remove(id);
    }
    model.webhooks.clear();
    assert!(index.is_empty());
    assert_eq!(check_events(&index, &model, &mut rng, 200, 99), 0);
}

/// A webhook that fires under both its old and new version is never missed while it is being
/// replaced, even when the replacement moves it to other buckets.
#[test]
fn concurrent_route_never_misses_a_webhook_being_replaced() {
    let index = Arc::new(RuleIndex::default());
    let by_product = Webhook {
        id: 7,
        enabled: true,
        products: vec![1],
        ..Webhook::default()
    };
    let by_execution = Webhook {
        id: 7,
        enabled: true,
        executions: vec![5],
        actions: Some(BTreeMap::from([(
            "bug".to_string(),
            vec!["opened".to_string()],
        )])),
        ..Webhook::default()
    };
    index.upsert(Arc::new(by_product.clone()));
    let ev = ActionEvent {
        object_type: "bug".into(),
        action: "opened".into(),
        product: vec![1],
        execution: 5,
        ..ActionEvent::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (index, stop) = (Arc::clone(&index), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut routes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                out.clear();
                index.route(&ev, &mut out);
                assert_eq!(out, [7], "webhook 7 missed mid-replacement");
                routes += 1;
            }
            routes
        })
    };
    for i in 0..20_000 {
        let wh = if i % 2 == 0 {
            &by_execution
        } else {
            &by_product
        };
        index.upsert(Arc::new(wh.clone()));
    }
    stop.store(true, Ordering::Relaxed);
    match reader.join() {
        Ok(routes) => assert!(routes > 0),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[test]
fn index_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleIndex>();
}
