//! The dispatch path alone: 10,000 deliveries over 1,000 objects (ten per object, so each
//! object's deliveries wait for one another's commits) to 1 or 10 `default` destinations,
//! through a channel that answers `Delivered` at once without any network. What is measured is
//! dispatch's own cost per delivery: the dispatcher's routing, the destinations' queues and job
//! bookkeeping, the event cache lookup, the state encoding and the group commits through a real
//! redb store on a temp dir. Intake (the store commit that creates the deliveries) is done
//! before the clock starts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use futures_util::future::BoxFuture;

use sanhook::config::Config;
use sanhook::deliver::{Attempt, Channel, Deliverer, Envelope, Outcome, Route};
use sanhook::dispatch::{DispatchCtx, Dispatcher, Enqueue, EventCache, Worker};
use sanhook::metrics::Metrics;
use sanhook::store::{IngestBatch, OpenDelivery, RequestLog, ResponseLog, Store};
use sanhook::{ActionEvent, Webhook};

const DELIVERIES: usize = 10_000;
const OBJECTS: u64 = 1_000;
/// Deliveries per intake batch (one store row each).
const BATCH: usize = 1_000;

/// A channel that answers at once, with a request and a response for the log the size of a
/// small real one, so that state encoding costs what it does in service.
struct Instant200 {
    attempts: AtomicUsize,
    body: String,
}

impl Channel for Instant200 {
    fn route(&self, wh: &Webhook, _cfg: &Config) -> Route {
        Route {
            name: format!("wh:{}", wh.id),
            windows: vec![],
        }
    }

    fn attempt<'a>(&'a self, _d: &'a Deliverer, env: &'a Envelope) -> BoxFuture<'a, Attempt> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let attempt = Attempt {
            outcome: Outcome::Delivered,
            request: Some(RequestLog {
                url: env.webhook.url.clone(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: self.body.clone(),
            }),
            response: Some(ResponseLog {
                status: 204,
                body: String::new(),
            }),
            progress: None,
        };
        Box::pin(async move { attempt })
    }
}

/// A dispatcher over a fresh store with `destinations` `default` webhooks, its workers sending
/// through `channel`.
struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    ctx: Arc<DispatchCtx>,
    dispatcher: Addr<Dispatcher>,
    channel: Arc<Instant200>,
    destinations: u64,
    next_event: AtomicU64,
}

impl Setup {
    fn new(destinations: u64) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("bench.redb")).expect("store");
        let cfg = Arc::new(Config::from_toml_str("").expect("config"));
        let webhooks = Arc::new(DashMap::new());
        for id in 1..=destinations {
            let wh = Webhook {
                id,
                name: format!("bench {id}"),
                url: format!("http://127.0.0.1:9/hook/{id}"),
                ..Webhook::default()
            };
            webhooks.insert(id, Arc::new(wh));
        }
        let ctx = Arc::new(DispatchCtx {
            cfg: cfg.clone(),
            store: store.clone(),
            events: EventCache::new(store.clone(), sanhook::dispatch::events::DEFAULT_CAPACITY),
            webhooks,
            metrics: Arc::new(Metrics::new()),
            clock: sanhook::clock::Clock::system(),
            in_flight: AtomicUsize::new(0),
            draining: Default::default(),
        });
        let channel = Arc::new(Instant200 {
            attempts: AtomicUsize::new(0),
            body: "x".repeat(600),
        });
        let deliverer = Deliverer::new(cfg.clone(), store.instance())
            .expect("deliverer")
            .with_channel(channel.clone());
        let workers = (0..cfg.dispatch_workers())
            .map(|_| Worker {
                arbiter: Arbiter::new().handle(),
                deliverer: deliverer.with_own_client().expect("client"),
            })
            .collect();
        let arbiter = Arbiter::new().handle();
        let shared = ctx.clone();
        let dispatcher = Dispatcher::start_in_arbiter(&arbiter, move |_| {
            Dispatcher::new(shared, workers, false)
        });
        Setup {
            _dir: dir,
            store,
            ctx,
            dispatcher,
            channel,
            destinations,
            next_event: AtomicU64::new(1),
        }
    }

    /// Commits `DELIVERIES` new events (one delivery each, objects round-robin, destinations
    /// round-robin) and returns their deliveries.
    async fn intake(&self) -> Vec<OpenDelivery> {
        let mut out = Vec::with_capacity(DELIVERIES);
        for b in 0..DELIVERIES / BATCH {
            let mut batch = IngestBatch {
                source: "bench".into(),
                ..IngestBatch::default()
            };
            for i in 0..BATCH {
                let n = (b * BATCH + i) as u64;
                let id = self.next_event.fetch_add(1, Ordering::Relaxed);
                batch.events.push(ActionEvent {
                    id: Some(id),
                    object_type: "bug".into(),
                    object_id: n % OBJECTS,
                    actor: "alice".into(),
                    action: "edited".into(),
                    object_name: Some(format!("Bug {}", n % OBJECTS)),
                    ..ActionEvent::default()
                });
                batch.routes.push(vec![n % self.destinations + 1]);
            }
            let result = self.store.ingest(batch).await.expect("ingest");
            out.extend(result.deliveries);
        }
        out
    }

    /// Hands `deliveries` to the dispatcher and waits until every outcome is committed.
    async fn dispatch(&self, deliveries: Vec<OpenDelivery>) -> Duration {
        let target = self.channel.attempts.load(Ordering::Relaxed) + deliveries.len();
        let start = Instant::now();
        self.dispatcher.do_send(Enqueue {
            deliveries,
            now: false,
            resumed: false,
        });
        // Every delivery attempted (so every one was queued), then every outcome on disk.
        while self.channel.attempts.load(Ordering::Relaxed) < target
            || self.ctx.metrics.queue_depth() > 0
        {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        start.elapsed()
    }
}

fn dispatch(c: &mut Criterion) {
    sanhook::tune_allocator();
    let system = actix_rt::System::new();
    let mut group = c.benchmark_group("dispatch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(DELIVERIES as u64));
    for destinations in [1u64, 10] {
        let setup = system.block_on(async { Setup::new(destinations) });
        group.bench_with_input(
            BenchmarkId::new("10k_deliveries_1k_objects", format!("{destinations}_dest")),
            &setup,
            |b, setup| {
                b.iter_custom(|iters| {
                    system.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let deliveries = setup.intake().await;
                            total += setup.dispatch(deliveries).await;
                        }
                        total
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
