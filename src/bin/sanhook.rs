//! The `sanhook` command: thin over the library (clap, tracing, signals).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sanhook::{Config, Engine};

#[derive(Parser)]
#[command(
    name = "sanhook",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SANHOOK_COMMIT"), ")"),
    about = "Webhook dispatch engine for Sanplex (ZenTao) action logs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: HTTP API + ingestion + delivery, until SIGINT/SIGTERM.
    Serve {
        /// Config file (default ./config.toml; missing default = built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the config and print the effective values (secrets masked).
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Send NDJSON action files once to the running server (backfill).
    Replay {
        /// NDJSON files, one action event per line.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Import webhooks, bindings and trigger settings from Sanplex's database into the running server.
    ImportSanplex {
        /// e.g. mysql://reader:pw@127.0.0.1:3306/zentao
        #[arg(long)]
        db: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// End-to-end load test: an engine on a temporary store, a sink, N events over HTTP; prints
    /// intake and delivery rates, the ratio to the raw HTTP ceiling, latency, engine CPU and RSS.
    Loadtest(sanhook::client::loadtest::Opts),
}

fn main() -> ExitCode {
    sanhook::tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match load(config) {
            Ok(cfg) => {
                print!("{}", cfg.render_effective());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sanhook: {e}");
                ExitCode::from(2)
            }
        },
        Command::Replay { files, config } => match load(config) {
            Ok(cfg) => ExitCode::from(sanhook::client::replay::run(&cfg, &files) as u8),
            Err(e) => {
                eprintln!("sanhook: {e}");
                ExitCode::from(2)
            }
        },
        Command::ImportSanplex { db, config } => match load(config) {
            Ok(cfg) => ExitCode::from(sanhook::client::import::run(&cfg, &db) as u8),
            Err(e) => {
                eprintln!("sanhook: {e}");
                ExitCode::from(2)
            }
        },
        Command::Loadtest(opts) => ExitCode::from(sanhook::client::loadtest::run(opts) as u8),
        Command::Serve { config } => {
            init_tracing();
            let cfg = match load(config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sanhook: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(msg) = cfg.token_required_error() {
                eprintln!("sanhook: {msg}");
                return ExitCode::from(2);
            }
            match actix_rt::System::new().block_on(serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sanhook: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn load(path: Option<PathBuf>) -> Result<Config, String> {
    let cfg = Config::load(path.as_deref()).map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SANHOOK_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SANHOOK_LOG_FORMAT").is_ok_and(|v| v == "json");
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org): escape
    // codes in a service log or a pipe break grep and log shippers.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(cfg: Config) -> Result<(), String> {
    let mut signals = Signals::install();
    let listen = cfg.server.listen.clone();
    let listener = std::net::TcpListener::bind(&listen)
        .map_err(|e| format!("cannot listen on {listen} (server.listen): {e}"))?;
    let engine = Engine::start(cfg).await.map_err(|e| e.to_string())?;
    let server = sanhook::api::serve(engine.clone(), listener).map_err(|e| e.to_string())?;
    let handle = server.handle();
    tracing::info!(
        %listen,
        version = env!("CARGO_PKG_VERSION"),
        commit = env!("SANHOOK_COMMIT"),
        "sanhook serving"
    );
    let running = actix_rt::spawn(server);
    signals.wait().await;
    tracing::info!("shutting down: intake stopped, draining sends");
    handle.stop(true).await;
    let _ = running.await;
    engine.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM, registered before the port is bound so an early signal is never fatal.
struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let get = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch {name}");
                None
            }
        };
        Signals {
            int: get(SignalKind::interrupt(), "SIGINT"),
            term: get(SignalKind::terminate(), "SIGTERM"),
        }
    }

    async fn wait(&mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => {}
            _ = recv(&mut self.term) => {}
        }
    }
}
