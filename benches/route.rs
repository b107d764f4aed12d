//! Routing one event among 10,000 webhooks.
//!
//! The webhooks are spread over 200 products and 500 executions (each execution belongs to one
//! product), with product popularity skewed the way real installations are: a few busy products
//! carry many webhooks, most carry a few. A quarter have their own trigger lists. Three events:
//! one on the quietest product (about twenty fire), one on the busiest product (hundreds fire: the
//! cost then is mostly writing out the answer), and one whose action no trigger list names.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use sanhook::event::ActionEvent;
use sanhook::route::{default_triggers, RuleIndex};
use sanhook::webhook::{Triggers, Webhook};

const WEBHOOKS: u64 = 10_000;
const PRODUCTS: u64 = 200;
const EXECUTIONS: u64 = 500;

/// splitmix64, so that every run benches the same index.
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

    /// Products 1..=200, product 1 busiest: the square of a uniform draw.
    fn product(&mut self) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        1 + (u * u * PRODUCTS as f64) as u64
    }

    /// One of the (2 or 3) executions of `product`: `product`, `product + 200`, `product + 400`.
    fn execution_of(&mut self, product: u64) -> u64 {
        let count = (EXECUTIONS - product) / PRODUCTS + 1;
        product + PRODUCTS * self.below(count)
    }
}

fn own_actions(rng: &mut Rng, defaults: &Triggers) -> Triggers {
    let types: Vec<&String> = defaults.keys().collect();
    let mut own = Triggers::new();
    for _ in 0..1 + rng.below(3) {
        let ty = types[rng.below(types.len() as u64) as usize];
        let all = &defaults[ty];
        let actions = (0..2 + rng.below(3))
            .map(|_| all[rng.below(all.len() as u64) as usize].clone())
            .collect();
        own.insert(ty.clone(), actions);
    }
    own
}

fn webhooks() -> Vec<Arc<Webhook>> {
    let defaults = default_triggers();
    let mut rng = Rng(20_260_105);
    (1..=WEBHOOKS)
        .map(|id| {
            let mut wh = Webhook {
                id,
                name: format!("hook {id}"),
                enabled: rng.below(100) >= 3,
                ..Webhook::default()
            };
            if id % 2000 != 0 {
                match rng.below(100) {
                    0..=34 => wh.products = (0..1 + rng.below(2)).map(|_| rng.product()).collect(),
                    35..=74 => {
                        let p = rng.product();
                        wh.products = vec![p];
                        wh.executions =
                            (0..1 + rng.below(2)).map(|_| rng.execution_of(p)).collect();
                    }
                    _ => {
                        wh.executions = (0..1 + rng.below(3))
                            .map(|_| {
                                let p = rng.product();
                                rng.execution_of(p)
                            })
                            .collect();
                    }
                }
            } // else: one of the five webhooks that see everything.
            if rng.below(4) == 0 {
                wh.actions = Some(own_actions(&mut rng, &defaults));
            }
            Arc::new(wh)
        })
        .collect()
}

fn event(action: &str, product: u64, execution: u64) -> ActionEvent {
    ActionEvent {
        id: Some(1),
        object_type: "bug".into(),
        object_id: 12,
        product: vec![product],
        project: 3,
        execution,
        actor: "alice".into(),
        action: action.into(),
        date: "2026-01-05 18:35:21".into(),
        ..ActionEvent::default()
    }
}

fn bench_route(c: &mut Criterion) {
    let index = RuleIndex::default();
    index.extend(webhooks());
    let cases = [
        (
            "route/10k_webhooks/quiet_product",
            event("resolved", 200, 400),
        ),
        (
            "route/10k_webhooks/busiest_product",
            event("resolved", 1, 201),
        ),
        (
            "route/10k_webhooks/untriggered_action",
            event("deleted", 200, 400),
        ),
    ];
    let mut out = Vec::with_capacity(1024);
    for (name, ev) in &cases {
        out.clear();
        index.route(ev, &mut out);
        eprintln!("{name}: {} of {} webhooks fire", out.len(), index.len());
        c.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                index.route(black_box(ev), &mut out);
                black_box(out.len())
            })
        });
    }
}

criterion_group!(benches, bench_route);
criterion_main!(benches);
