//! `sanhook loadtest`: the end-to-end load test (docs/reference.md §1).
//!
//! One run, in this order:
//! 1. a sink: the built-in one (`sink`) on 127.0.0.1, or `--target`;
//! 2. an engine: this binary as `sanhook serve`, a child process on a durable store in a temp
//!    directory (`child`), with W `default` webhooks whose triggers match every generated event;
//! 3. P producers post N events in NDJSON batches (`produce`) while the run watches deliveries
//!    arrive (the sink's tally, or the engine's `/metrics` with `--target`) until all N × W are
//!    in, and reads the engine's CPU time and peak RSS from `/proc`;
//! 4. the engine is killed and the ceiling is measured: the engine's HTTP client settings
//!    straight at the same sink (`ceiling`);
//! 5. the report (`report`): text on stdout, JSON with `--json FILE`.
//!
//! Exit codes: 0 when every delivery arrived, 1 when the run failed (the engine died, a batch
//! was refused, no progress for 60 s), 2 for bad arguments or an unreachable `--target`,
//! 130 on Ctrl-C. The engine and the temp directory are removed on every path.

mod ceiling;
mod child;
mod produce;
mod report;
mod sink;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde::de::IgnoredAny;

use report::{EngineRun, Latency, Report};

use crate::client::api::Api;
use crate::webhook::{Webhook, WebhookType};

/// The run fails when no delivery arrives for this long.
const STALL: Duration = Duration::from_secs(60);

/// How often the run looks at the tally (and at `/metrics` with `--target`).
const TICK: Duration = Duration::from_millis(100);

/// The ceiling phase stops after this long even if its count is not reached.
const CEILING_LIMIT: Duration = Duration::from_secs(3);

/// The ceiling phase sends at least this many requests (unless the time limit ends it).
const CEILING_MIN_REQUESTS: u64 = 50_000;

/// The engine's default `max_in_flight`: the ceiling's concurrency when none is given.
const DEFAULT_IN_FLIGHT: u32 = 64;

/// The engine's default delivery timeout, used by the ceiling client too.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Threads of the built-in sink: one, like the one-worker nginx it is compared with.
const SINK_THREADS: usize = 1;

/// Threads of the producers and of the ceiling client.
const CLIENT_THREADS: usize = 2;

/// The most deliveries one run may expect (the tally keeps a bit and a latency for each).
const MAX_DELIVERIES: u64 = 200_000_000;

/// `sanhook loadtest` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Events to push.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// `default` webhooks to create; every one fires for every event.
    #[arg(long, default_value_t = 1)]
    pub webhooks: u64,
    /// Distinct objects the events are about (bugs, stories and tasks, round-robin).
    #[arg(long, default_value_t = 5000)]
    pub objects: u64,
    /// Events per NDJSON request.
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Concurrent producers.
    #[arg(long, default_value_t = 4)]
    pub producers: u64,
    /// Total events per second, paced (default: as fast as the engine takes them).
    /// `--batch 1 --rate 1000` is the single-event latency scenario.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Deliver to this URL instead of the built-in sink (latency and duplicates are then unknown).
    #[arg(long)]
    pub target: Option<String>,
    /// Also write the figures as a JSON object to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The engine's `[delivery] workers` (written into its config only when given).
    #[arg(long)]
    pub workers: Option<u32>,
    /// The engine's `[delivery] max_in_flight` (written only when given); also the ceiling's
    /// concurrency.
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// Requests in flight in the ceiling phase (default: --max-in-flight, else 64).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Measure only the ceiling (no engine), e.g. to compare it with wrk.
    #[arg(long)]
    pub ceiling_only: bool,
    /// Who measures the ceiling: `wrk` (the C load generator, the figure to divide by),
    /// `reqwest` (the engine's own HTTP client settings), or `auto`: wrk when it is installed.
    #[arg(long, value_enum, default_value_t = CeilingClient::Auto)]
    pub ceiling_client: CeilingClient,
}

/// Who measures the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CeilingClient {
    Auto,
    Wrk,
    Reqwest,
}

/// Why a run stopped, and its exit code.
struct Failure {
    code: i32,
    message: String,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// Runs the command; returns the process exit code.
pub fn run(opts: Opts) -> i32 {
    if let Err(f) = check(&opts) {
        eprintln!("sanhook loadtest: {}", f.message);
        return f.code;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CLIENT_THREADS)
        .thread_name("loadtest")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sanhook loadtest: cannot start the async runtime: {e}");
            return 2;
        }
    };
    let result = rt.block_on(loadtest(&opts));
    // Whatever is still running (a stuck producer) must not hold the exit.
    rt.shutdown_background();
    match result {
        Ok(report) => {
            print!("{}", report.text());
            if let Some(path) = &opts.json {
                let text = format!("{:#}\n", report.json());
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("sanhook loadtest: cannot write {}: {e}", path.display());
                    return 1;
                }
            }
            0
        }
        Err(f) => {
            eprintln!("sanhook loadtest: {}", f.message);
            f.code
        }
    }
}

/// Refuses options that cannot make a run (exit 2), naming the option.
fn check(o: &Opts) -> Result<(), Failure> {
    for (name, v) in [
        ("--events", o.events),
        ("--webhooks", o.webhooks),
        ("--objects", o.objects),
        ("--batch", o.batch),
        ("--producers", o.producers),
    ] {
        if v == 0 {
            return Err(usage(format!("{name} must be at least 1")));
        }
    }
    if o.producers > 1024 {
        return Err(usage("--producers must be at most 1024"));
    }
    if o.events.saturating_mul(o.webhooks) > MAX_DELIVERIES {
        return Err(usage(format!(
            "--events × --webhooks must be at most {MAX_DELIVERIES} (the sink keeps a latency per delivery)"
        )));
    }
    if let Some(r) = o.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(usage(format!(
                "--rate must be a positive number of events/s, got {r}"
            )));
        }
    }
    for (name, v) in [
        ("--workers", o.workers),
        ("--max-in-flight", o.max_in_flight),
        ("--concurrency", o.concurrency),
    ] {
        if v == Some(0) {
            return Err(usage(format!("{name} must be at least 1")));
        }
    }
    if let Some(t) = &o.target {
        match reqwest::Url::parse(t) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {}
            _ => {
                return Err(usage(format!(
                "--target {t:?} is not an absolute http(s) URL (e.g. http://127.0.0.1:8080/hook)"
            )))
            }
        }
    }
    Ok(())
}

async fn loadtest(opts: &Opts) -> Result<Report, Failure> {
    let epoch = Instant::now();
    let tally = Arc::new(sink::Tally::new(epoch, opts.events, opts.webhooks));
    // Kept alive for the whole run; dropped (its threads stopped) when the run returns.
    let own_sink = match &opts.target {
        Some(_) => None,
        None => Some(
            sink::Sink::start(tally.clone(), SINK_THREADS)
                .map_err(|e| fail(format!("cannot start the sink on 127.0.0.1: {e}")))?,
        ),
    };
    // The engine's own client settings (rustls, no redirects, timeout, User-Agent).
    let client = crate::deliver::http_client(DELIVERY_TIMEOUT).map_err(usage)?;
    let sink_base = own_sink.as_ref().map(|s| format!("http://{}", s.addr));
    if let Some(t) = &opts.target {
        // A refused connection now would otherwise show as a run that never delivers.
        if let Err(e) = client.post(t).body("{}").send().await {
            return Err(usage(format!(
                "no server answers at --target {t}: {e}; start it first"
            )));
        }
    }
    let ceiling_url = opts
        .target
        .clone()
        .or_else(|| sink_base.as_ref().map(|b| format!("{b}/ceiling")))
        .unwrap_or_default();
    let run = if opts.ceiling_only {
        None
    } else {
        Some(engine_run(opts, &tally, sink_base.as_deref()).await?)
    };
    let bar = progress_bar(0, "measuring the ceiling");
    let expected = opts.events * opts.webhooks;
    let concurrency = opts
        .concurrency
        .or(opts.max_in_flight)
        .unwrap_or(DEFAULT_IN_FLIGHT);
    let use_wrk = match opts.ceiling_client {
        CeilingClient::Wrk => true,
        CeilingClient::Reqwest => false,
        CeilingClient::Auto => ceiling::wrk_available(),
    };
    let ceiling = if use_wrk {
        let dir = child::TempDir::new()
            .map_err(|e| fail(format!("cannot create a temporary directory: {e}")))?;
        let (url, n, limit) = (ceiling_url.clone(), u64::from(concurrency), CEILING_LIMIT);
        let path = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || ceiling::measure_wrk(&url, n, limit, &path))
            .await
            .map_err(|e| fail(format!("wrk runner failed: {e}")))?
            .map_err(fail)?
    } else {
        ceiling::measure(
            &client,
            &ceiling_url,
            u64::from(concurrency),
            // Alone, the ceiling runs for its whole time limit: a steadier figure to compare.
            if opts.ceiling_only {
                u64::MAX
            } else {
                CEILING_MIN_REQUESTS.max(expected / 4)
            },
            CEILING_LIMIT,
        )
        .await
    };
    bar.finish_and_clear();
    Ok(Report {
        target: opts.target.clone(),
        run,
        ceiling,
    })
}

/// Starts the engine, pushes the events, waits for every delivery; the engine is gone on return.
async fn engine_run(
    opts: &Opts,
    tally: &Arc<sink::Tally>,
    sink_base: Option<&str>,
) -> Result<EngineRun, Failure> {
    let dir = child::TempDir::new()
        .map_err(|e| fail(format!("cannot create a temporary directory: {e}")))?;
    let knobs = child::Knobs {
        workers: opts.workers,
        max_in_flight: opts.max_in_flight,
    };
    // On every early return the engine (killed when dropped) goes before its directory.
    let mut engine = child::Engine::start(dir.path(), knobs)
        .await
        .map_err(fail)?;
    create_webhooks(&engine.api, opts, sink_base).await?;
    let intake = Arc::new(produce::Intake::default());
    let measured = push_and_watch(opts, &mut engine, tally, &intake, sink_base.is_some()).await?;
    engine.kill();
    drop(dir);
    Ok(figures(
        opts,
        knobs,
        tally,
        &intake,
        &measured,
        sink_base.is_some(),
    ))
}

/// What the engine did in a run, read before it is killed.
struct Measured {
    /// Deliveries that arrived.
    arrived: u64,
    /// When the producers started, and when the last delivery arrived (or the run saw the
    /// last one counted, with an external sink), in µs since the run's epoch.
    start_us: u64,
    end_us: u64,
    /// The engine's CPU time over the run.
    cpu_us: u64,
    rss_bytes: u64,
}

/// Runs the producers against the engine and waits until every delivery has arrived.
async fn push_and_watch(
    opts: &Opts,
    engine: &mut child::Engine,
    tally: &Arc<sink::Tally>,
    intake: &Arc<produce::Intake>,
    own_sink: bool,
) -> Result<Measured, Failure> {
    let expected = opts.events * opts.webhooks;
    let plan = produce::Plan {
        events: opts.events,
        objects: opts.objects,
        batch: opts.batch,
        producers: opts.producers,
        rate: opts.rate,
    };
    let pid = engine.pid();
    let cpu_before = child::cpu_us(pid).map_err(fail)?;
    let start_us = tally.now_us();
    let api = engine.api.clone();
    let mut producers = tokio::spawn(produce::produce(
        api.clone(),
        plan,
        tally.clone(),
        intake.clone(),
    ));
    let bar = progress_bar(expected, "deliveries");
    let watched = watch(
        engine,
        &mut producers,
        &api,
        tally,
        intake,
        expected,
        opts.webhooks,
        own_sink,
        &bar,
    )
    .await;
    bar.finish_and_clear();
    let arrived = watched?;
    let end_us = if own_sink {
        tally.last_arrival_us.load(Ordering::Relaxed)
    } else {
        tally.now_us()
    };
    Ok(Measured {
        arrived,
        start_us,
        end_us,
        cpu_us: child::cpu_us(pid).map_err(fail)?.saturating_sub(cpu_before),
        rss_bytes: child::peak_rss_bytes(pid).map_err(fail)?,
    })
}

/// The run's figures from what was measured.
fn figures(
    opts: &Opts,
    knobs: child::Knobs,
    tally: &sink::Tally,
    intake: &produce::Intake,
    m: &Measured,
    own_sink: bool,
) -> EngineRun {
    let secs = |us: u64| (us.saturating_sub(m.start_us) as f64 / 1e6).max(1e-6);
    let last_ack = intake.last_ack_us.load(Ordering::Relaxed);
    let latency = if own_sink {
        Latency::from_micros(&mut tally.take_latencies())
    } else {
        None
    };
    EngineRun {
        events: opts.events,
        webhooks: opts.webhooks,
        objects: opts.objects,
        batch: opts.batch,
        producers: opts.producers,
        rate: opts.rate,
        deliveries: m.arrived,
        duplicates: own_sink.then(|| tally.duplicates.load(Ordering::Relaxed)),
        intake_events_per_s: opts.events as f64 / secs(last_ack),
        deliveries_per_s: (opts.events * opts.webhooks) as f64 / secs(m.end_us),
        latency,
        engine_cpu_us_per_delivery: m.cpu_us as f64 / m.arrived.max(1) as f64,
        engine_peak_rss_bytes: m.rss_bytes,
        knobs,
        seconds: secs(m.end_us),
    }
}

/// Creates the W webhooks: all products, triggers listing every generated (type, action).
async fn create_webhooks(api: &Api, opts: &Opts, sink_base: Option<&str>) -> Result<(), Failure> {
    let triggers = produce::triggers();
    for k in 0..opts.webhooks {
        // The own sink tells webhooks apart by path; an external target gets them all alike.
        let url = match sink_base {
            Some(b) => format!("{b}{}{k}", sink::WEBHOOK_PATH),
            None => opts.target.clone().unwrap_or_default(),
        };
        let webhook = Webhook {
            name: format!("loadtest-{k}"),
            kind: WebhookType::Default,
            url,
            actions: Some(triggers.clone()),
            ..Webhook::default()
        };
        api.send::<_, IgnoredAny>(Method::POST, "/api/v1/webhooks", &webhook)
            .await
            .map_err(|e| fail(format!("cannot create webhook {k}: {e}")))?;
    }
    Ok(())
}

/// Waits until `expected` deliveries arrived; returns how many did.
#[allow(clippy::too_many_arguments)]
async fn watch(
    engine: &mut child::Engine,
    producers: &mut tokio::task::JoinHandle<Result<(), String>>,
    api: &Api,
    tally: &sink::Tally,
    intake: &produce::Intake,
    expected: u64,
    webhooks: u64,
    own_sink: bool,
    bar: &ProgressBar,
) -> Result<u64, Failure> {
    let mut last = 0;
    let mut last_change = Instant::now();
    let mut producing = true;
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let arrived = if own_sink {
            tally.arrived.load(Ordering::Relaxed)
        } else {
            delivered_metric(api).await.unwrap_or(last)
        };
        bar.set_position(arrived);
        if arrived >= expected {
            return Ok(arrived);
        }
        if producing && producers.is_finished() {
            producing = false;
            match (&mut *producers).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(fail(e)),
                Err(e) => return Err(fail(format!("the producers failed: {e}"))),
            }
            // A retried batch whose first 202 was lost comes back as duplicates, which create
            // nothing: compare with what the accepted events should have created.
            let accepted = intake.accepted.load(Ordering::Relaxed);
            let created = intake.deliveries.load(Ordering::Relaxed);
            if created != accepted * webhooks {
                return Err(fail(format!(
                    "the engine created {created} deliveries for {accepted} events × {webhooks} webhooks: the webhooks' triggers do not match the generated events"
                )));
            }
        }
        if arrived != last {
            last = arrived;
            last_change = Instant::now();
        } else if last_change.elapsed() > STALL {
            let unmatched = tally.unmatched.load(Ordering::Relaxed);
            let unmatched = if unmatched > 0 {
                format!(" ({unmatched} more requests reached the sink without a readable `lt:` marker in their body)")
            } else {
                String::new()
            };
            return Err(fail(format!(
                "no delivery arrived for {}s: {arrived} of {expected} arrived{unmatched}{}",
                STALL.as_secs(),
                engine.log_tail()
            )));
        }
        engine.check_alive().map_err(fail)?;
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = &mut interrupt => {
                return Err(Failure {
                    code: 130,
                    message: format!("interrupted: {arrived} of {expected} deliveries had arrived"),
                });
            }
        }
    }
}

/// `sanhook_deliveries_total{status="delivered"}` from the engine's `/metrics`.
async fn delivered_metric(api: &Api) -> Option<u64> {
    let text = api.get_text("/metrics").await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("sanhook_deliveries_total{status=\"delivered\"} "))
        .and_then(|v| v.trim().parse().ok())
}

/// A bar on a terminal, hidden otherwise (scripts and CI get only the summary).
fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    if len == 0 {
        let bar = ProgressBar::new_spinner();
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        return bar;
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{bar:30}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)"
    )) {
        bar.set_style(style);
    }
    bar
}
