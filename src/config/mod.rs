//! Configuration: embedded defaults, then `config.toml`, then `SANHOOK_*` environment variables
//! (CONTRACT §1–2).
//!
//! The defaults are the repository's own commented `config.toml`, compiled in with
//! `include_str!` (as svix does), so the documented defaults and the effective ones cannot drift.
//! Each layer is a TOML table laid over the one below (a section key by key, `[[tail]]` and arrays
//! whole); the result is deserialised once into [`Config`], whose sections refuse unknown keys,
//! and [`Config::validate`] checks what the values mean together. Every error names the key
//! (`delivery.timeout`), the bad value, what was expected and where it was written (file, line
//! and column, or the environment variable), because a typo in a config must never be silently
//! ignored.
//!
//! The default table is also the registry of keys: environment overrides take a key's type
//! from its default, and a test keeps `config.toml` and the [`Config`] fields in step.

mod types;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use types::{duration, durations, size};
pub use types::{format_duration, parse_duration, Lang, Size, StartAt, Window};

/// The commented default configuration, exactly as shipped at the repository root.
///
/// Public so that the binary can print it as a starting point for users.
pub const DEFAULT_TOML: &str = include_str!("../../config.toml");

/// The file [`Config::load`] reads when no path is given; a missing one means built-in defaults.
pub const DEFAULT_PATH: &str = "config.toml";

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "SANHOOK_";

/// How secrets are shown by [`Config::render_effective`], `Debug` and error messages.
pub use crate::mask::MASK;

/// Default `start_at` of a `[[tail]]` entry that leaves it out (documented, commented out, in
/// [`DEFAULT_TOML`]; a test keeps the two in step).
pub const TAIL_DEFAULT_START_AT: StartAt = StartAt::Beginning;

/// Default `max_line` of a `[[tail]]` entry that leaves it out: 1 MiB.
pub const TAIL_DEFAULT_MAX_LINE: u64 = 1024 * 1024;

/// The smallest `server.max_body` accepted: below this even one action event may not fit.
pub const MIN_MAX_BODY: u64 = 1024;

/// The whole configuration, every key with its effective value; each key is documented where
/// its default is, in `config.toml`. `Debug` shows secrets masked, as `check-config` does;
/// `Serialize` writes them as they are (it is the inverse of loading).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub sanplex: SanplexConfig,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    pub platforms: PlatformsConfig,
    /// NDJSON files to follow; none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<TailConfig>,
    /// Parsed and checked only: nothing uses it yet.
    pub cluster: ClusterConfig,
    pub sanplex_db: SanplexDbConfig,
}

/// `[server]`: the HTTP API.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// Empty = no auth (refused unless `listen` is loopback: [`Config::token_required_error`]).
    pub token: String,
    #[serde(with = "size")]
    pub max_body: u64,
    pub max_events: u64,
}

/// `[storage]`: the redb file.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    #[serde(with = "duration")]
    pub retention: Duration,
}

/// `[sanplex]`: how links and labels look.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SanplexConfig {
    pub base_url: String,
    pub lang: Lang,
}

/// `[delivery]`: timeouts, retries, address checks, concurrency.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(with = "duration")]
    pub timeout: Duration,
    #[serde(with = "duration")]
    pub async_interval: Duration,
    #[serde(with = "durations")]
    pub retry_schedule: Vec<Duration>,
    #[serde(with = "duration")]
    pub max_retry_after: Duration,
    pub allow_private: bool,
    pub allow_link_local: bool,
    /// Empty = direct.
    pub proxy: String,
    /// 0 = one per core: [`Config::dispatch_workers`].
    pub workers: u64,
    pub max_in_flight: u64,
    /// Zero = never.
    #[serde(with = "duration")]
    pub disable_after: Duration,
    #[serde(with = "duration")]
    pub failing_after: Duration,
}

/// `[limits]`: per-destination sliding windows; every window of a list applies.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub dinggroup: Vec<Window>,
    pub wechatgroup: Vec<Window>,
    pub feishugroup: Vec<Window>,
    pub wechatuser_member: Vec<Window>,
    #[serde(with = "duration")]
    pub dingtalk_throttle: Duration,
}

/// `[platforms]`: API bases of the app-message types.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformsConfig {
    pub dingtalk: String,
    pub wecom: String,
    pub feishu: String,
}

/// One `[[tail]]` entry: a glob of NDJSON files to follow.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    pub path: String,
    #[serde(default = "tail_default_start_at")]
    pub start_at: StartAt,
    #[serde(default = "tail_default_max_line", with = "size")]
    pub max_line: u64,
}

/// A path as TOML text: one that is not UTF-8 (only an embedder can set one) is shown lossily
/// rather than failing `check-config`.
fn lossy<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

fn tail_default_start_at() -> StartAt {
    TAIL_DEFAULT_START_AT
}

fn tail_default_max_line() -> u64 {
    TAIL_DEFAULT_MAX_LINE
}

/// `[cluster]`: several nodes sharing one NATS JetStream.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Comma-separated server URLs; empty = a single node on redb.
    pub nats: String,
    pub name: String,
    /// Empty = the host name.
    pub node_id: String,
    pub shards: u64,
    #[serde(with = "duration")]
    pub lease: Duration,
}

/// `[sanplex_db]`: the optional database poller.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SanplexDbConfig {
    /// Empty = off.
    pub url: String,
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    pub start_at: StartAt,
    #[serde(with = "duration")]
    pub gap_grace: Duration,
}

/// `Debug` of a section: its keys as `check-config` shows them (in config units, secrets
/// masked), so that a secret never reaches a log or a panic message through `{:?}`.
macro_rules! masked_debug {
    ($($ty:ident $section:literal),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut d = f.debug_struct(stringify!($ty));
                if let Ok(Value::Table(mut table)) = Value::try_from(self) {
                    for (key, value) in table.iter_mut() {
                        mask(&format!("{}.{key}", $section), value);
                        d.field(key, &format_args!("{value}"));
                    }
                }
                d.finish()
            }
        }
    )*};
}

masked_debug!(
    ServerConfig "server", StorageConfig "storage", SanplexConfig "sanplex",
    DeliveryConfig "delivery", LimitsConfig "limits", PlatformsConfig "platforms",
    TailConfig "tail", ClusterConfig "cluster", SanplexDbConfig "sanplex_db"
);

/// Shows a value without its secrets: `server.token` as [`MASK`] (when set: an empty token
/// stays visibly empty), credentials in any URL masked ([`crate::mask::text`]).
fn mask(key: &str, value: &mut Value) {
    match value {
        Value::String(s) if key == "server.token" && !s.is_empty() => *s = MASK.to_string(),
        Value::String(s) => *s = crate::mask::text(s).into_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| mask(key, v)),
        Value::Table(t) => t.iter_mut().for_each(|(k, v)| match key {
            "" => mask(k, v),
            _ => mask(&format!("{key}.{k}"), v),
        }),
        _ => {}
    }
}

/// Where a configuration value came from, so an error can point the user at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file (`path: None`: a string with no file name); 1-based line and column.
    File {
        path: Option<PathBuf>,
        line: usize,
        column: usize,
    },
    /// An environment variable.
    Env { var: String },
    /// The merged configuration, checked by [`Config::validate`].
    Effective,
}

impl fmt::Display for Origin {
    /// Renders as a suffix (leading space included, or nothing) for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, column } => {
                if let Some(path) = path {
                    write!(f, " in {}", path.display())?;
                }
                write!(f, " at line {line}, column {column}")
            }
            Origin::Env { var } => write!(f, " (from environment variable {var})"),
            Origin::Effective => Ok(()),
        }
    }
}

/// Everything that can be wrong with a configuration. The messages are serde's and toml's
/// (or [`Config::validate`]'s), with the key, where it was written, and secrets masked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read: missing (only the implicit `./config.toml` may be), a
    /// directory, not UTF-8...
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML at all.
    #[error("TOML syntax error{origin}: {message}")]
    Syntax { origin: Origin, message: String },
    /// A key that is unknown, has a value of the wrong type or shape, or one that
    /// [`Config::validate`] refuses; the message names the value and what was expected.
    #[error("config key `{key}`{origin}: {message}")]
    Key {
        key: String,
        origin: Origin,
        message: String,
    },
    /// A `SANHOOK_*` variable that names no section, or whose value is not UTF-8.
    #[error("environment variable {var}: {message} (fix or unset it)")]
    Env { var: String, message: String },
}

impl ConfigError {
    /// The dotted config key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The 1-based line in the config file the error points at, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { origin, .. } | ConfigError::Key { origin, .. } => match origin {
                Origin::File { line, .. } => Some(*line),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The built-in defaults: [`DEFAULT_TOML`] as the table every layer is laid over (and the
/// registry of keys and their types for environment overrides), and as a `Config`.
static DEFAULTS: LazyLock<(Table, Config)> = LazyLock::new(|| {
    let table: Table = DEFAULT_TOML
        .parse()
        .expect("the embedded config.toml is TOML");
    let config = table
        .clone()
        .try_into()
        .expect("the embedded config.toml is valid");
    (table, config)
});

impl Default for Config {
    /// The values of the embedded [`DEFAULT_TOML`], which are the contract's defaults.
    fn default() -> Self {
        DEFAULTS.1.clone()
    }
}

impl Config {
    /// Dispatch workers to start: `delivery.workers`, or one per core when it is 0.
    pub fn dispatch_workers(&self) -> usize {
        match self.delivery.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    /// Loads the configuration the way `sanhook` does: built-in defaults, then the file, then
    /// `SANHOOK_*` environment variables, then [`Config::validate`].
    ///
    /// `None` reads `./config.toml` when it exists and otherwise keeps the defaults; an explicit
    /// path that does not exist is an error, since the user clearly meant a file to be read.
    /// The token-versus-listen check is left to the caller ([`Config::token_required_error`]),
    /// because `check-config` should still print the effective values in that case.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        // A non-UTF-8 value is an error rather than a panic (`std::env::vars`) or a silent skip.
        let vars = std::env::vars_os()
            .filter(|(name, _)| name.to_string_lossy().starts_with(ENV_PREFIX))
            .map(|(name, value)| {
                let var = name.to_string_lossy().into_owned();
                match value.into_string() {
                    Ok(value) => Ok((var, value)),
                    Err(_) => Err(ConfigError::Env {
                        var,
                        message: "not valid UTF-8".into(),
                    }),
                }
            });
        Self::load_with_env(path, vars.collect::<Result<Vec<_>, _>>()?)
    }

    /// [`Config::load`] with the environment given explicitly, so that tests (and embedders)
    /// need not touch the process environment.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = path.unwrap_or(Path::new(DEFAULT_PATH));
        let text = match std::fs::read_to_string(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.is_none() => None,
            read => Some(read.map_err(|source| ConfigError::Read {
                path: file.into(),
                source,
            })?),
        };
        let mut sources = Sources {
            file: text.as_deref().map(|text| (text, Some(file))),
            env: Vec::new(),
        };
        let config = sources.load(vars)?;
        config.validate().map_err(|e| match e {
            ConfigError::Key { key, message, .. } => ConfigError::Key {
                origin: sources.origin(&key, false),
                key,
                message,
            },
            e => e,
        })?;
        Ok(config)
    }

    /// Parses a config document on top of the defaults. Does not read the environment and does
    /// not [`validate`](Config::validate): it answers "what does this text say".
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        let mut sources = Sources {
            file: Some((s, None)),
            env: Vec::new(),
        };
        sources.load(std::iter::empty())
    }

    /// Checks what the values mean: addresses parse, URLs are absolute http(s), limits and
    /// intervals are positive. Returns the first problem, naming its key and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (server, delivery, cluster, db) = (
            &self.server,
            &self.delivery,
            &self.cluster,
            &self.sanplex_db,
        );
        let http = |url: &str| is_url(url, &["http", "https"]);
        let nats = |url: &str| is_url(url.trim(), &["nats", "tls", "ws", "wss"]);
        let word = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        };
        const URL: &str = "an absolute http:// or https:// URL, e.g. \"https://example.com\"";
        const ABOVE_ZERO: &str = "a duration above zero";
        #[rustfmt::skip]
        let mut checks: Vec<(String, bool, String)> = [
            ("server.listen", server.listen.parse::<SocketAddr>().is_ok(),
                "a socket address IP:PORT, e.g. \"127.0.0.1:8930\" or \"[::1]:8930\" (host names are not accepted)"),
            ("server.max_body", server.max_body >= MIN_MAX_BODY, "at least 1KiB"),
            ("server.max_events", server.max_events > 0, "at least 1, e.g. 20000"),
            ("storage.path", !self.storage.path.as_os_str().is_empty(), "a file path for the database"),
            ("sanplex.base_url", http(&self.sanplex.base_url), URL),
            ("platforms.dingtalk", http(&self.platforms.dingtalk), URL),
            ("platforms.wecom", http(&self.platforms.wecom), URL),
            ("platforms.feishu", http(&self.platforms.feishu), URL),
            ("delivery.proxy", delivery.proxy.is_empty() || http(&delivery.proxy),
                "an http:// or https:// proxy URL, e.g. \"http://proxy.example.com:3128\" (user:password@ allowed), or \"\" to connect directly"),
            ("delivery.retry_schedule", !delivery.retry_schedule.is_empty(), "at least one delay, e.g. [\"5s\", \"30s\"]"),
            ("delivery.max_in_flight", (1..=10_000).contains(&delivery.max_in_flight), "a number from 1 to 10000"),
            ("delivery.workers", delivery.workers <= 1024, "0 (one per core) or a number up to 1024"),
            ("delivery.timeout", !delivery.timeout.is_zero(), ABOVE_ZERO),
            ("delivery.async_interval", !delivery.async_interval.is_zero(), ABOVE_ZERO),
            ("cluster.lease", !cluster.lease.is_zero(), ABOVE_ZERO),
        ]
        .map(|(key, ok, expected)| (key.to_string(), ok, expected.to_string()))
        .into();
        let limits = &self.limits;
        for (name, windows) in [
            ("dinggroup", &limits.dinggroup),
            ("wechatgroup", &limits.wechatgroup),
            ("feishugroup", &limits.feishugroup),
            ("wechatuser_member", &limits.wechatuser_member),
        ] {
            checks.extend(windows.iter().enumerate().map(|(i, w)| {
                let expected =
                    "a window whose count and duration are both above zero, e.g. \"20/60s\"";
                (
                    format!("limits.{name}[{i}]"),
                    w.count > 0 && !w.per.is_zero(),
                    expected.into(),
                )
            }));
        }
        for (i, tail) in self.tail.iter().enumerate() {
            let glob = glob::Pattern::new(&tail.path).err();
            let why = glob.as_ref().map_or(String::new(), |e| format!(" ({e})"));
            let path_ok = !tail.path.trim().is_empty() && glob.is_none();
            let expected = format!("a non-empty file path or a valid glob{why}");
            checks.push((format!("tail[{i}].path"), path_ok, expected));
            checks.push((
                format!("tail[{i}].max_line"),
                tail.max_line > 0,
                "a size above zero".into(),
            ));
        }
        #[rustfmt::skip]
        checks.extend([
            ("cluster.nats", cluster.nats.is_empty() || cluster.nats.split(',').all(nats),
                "comma-separated nats://, tls://, ws:// or wss:// URLs, e.g. \"nats://10.0.0.5:4222,nats://10.0.0.6:4222\", or \"\" for a single node"),
            ("cluster.name", !cluster.name.is_empty() && word(&cluster.name),
                "letters, digits, - and _ (it names NATS streams), e.g. \"sanhook\""),
            ("cluster.node_id", word(&cluster.node_id),
                "letters, digits, - and _ (it names NATS subjects), or \"\" for the host name"),
            ("cluster.shards", (1..=4096).contains(&cluster.shards), "a number from 1 to 4096"),
            ("sanplex_db.url", db.url.is_empty() || db.url.starts_with("mysql://"),
                "a mysql:// URL, e.g. \"mysql://reader:pw@127.0.0.1:3306/zentao\", or \"\" to turn the poller off"),
            ("sanplex_db.poll_interval", db.url.is_empty() || !db.poll_interval.is_zero(), ABOVE_ZERO),
        ].map(|(key, ok, expected)| (key.to_string(), ok, expected.to_string())));
        match checks.into_iter().find(|(_, ok, _)| !ok) {
            None => Ok(()),
            Some((key, _, expected)) => Err(ConfigError::Key {
                message: format!(
                    "invalid value {}, expected {expected}",
                    shown(&self.to_table(), &key)
                ),
                key,
                origin: Origin::Effective,
            }),
        }
    }

    /// Whether `server.listen` is a loopback address, where running without a token is safe.
    /// An address that does not parse is not loopback.
    pub fn listen_is_loopback(&self) -> bool {
        self.server
            .listen
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }

    /// The reason `serve` must refuse to start, if any: an open API (empty token) reachable from
    /// other machines would let anyone rewrite webhooks and read delivery logs.
    pub fn token_required_error(&self) -> Option<String> {
        if !self.server.token.is_empty() || self.listen_is_loopback() {
            return None;
        }
        Some(format!(
            "server.token is empty but server.listen = \"{}\" is not a loopback address, so the \
             API would be open to anyone who can reach it: set server.token (or \
             SANHOOK_SERVER_TOKEN), or listen on 127.0.0.1",
            self.server.listen
        ))
    }

    /// Every effective value as a TOML document, in the units a person would write ("10s",
    /// "16MiB"), with secrets masked: `server.token` when set, and the credentials inside
    /// every URL (passwords, token query values). This is what `sanhook check-config` prints;
    /// without secrets it parses back to an equal `Config`.
    pub fn render_effective(&self) -> String {
        let mut doc = Value::Table(self.to_table());
        mask("", &mut doc);
        let text = toml::to_string(&doc).expect("a TOML table renders");
        format!("# sanhook effective configuration (secrets masked)\n\n{text}")
    }

    /// The configuration as a TOML table, in the documented order.
    fn to_table(&self) -> Table {
        Table::try_from(self).expect("a Config is a TOML table")
    }
}

/// The layers being loaded, to point an error at the file position or the environment
/// variable that set the key it is about.
struct Sources<'a> {
    /// The file's text, and its path when it has one.
    file: Option<(&'a str, Option<&'a Path>)>,
    /// (dotted key, variable) of each environment override applied.
    env: Vec<(String, String)>,
}

impl Sources<'_> {
    /// The defaults, the file laid over them (a section key by key, anything else whole), then
    /// the environment.
    fn load(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = DEFAULTS.0.clone();
        if let Some((text, path)) = self.file {
            let file: Table = text.parse().map_err(|e: toml::de::Error| {
                let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
                let path = path.map(Path::to_path_buf);
                let origin = Origin::File { path, line, column };
                let message = e.message().trim().replace('\n', "; ");
                ConfigError::Syntax { origin, message }
            })?;
            for (section, value) in file {
                match (table.get_mut(&section), value) {
                    (Some(Value::Table(base)), Value::Table(keys)) => base.extend(keys),
                    (_, value) => drop(table.insert(section, value)),
                }
            }
        }
        self.merge_env(&mut table, vars)?;
        self.deserialize(table)
    }

    /// Lays the `SANHOOK_<SECTION>_<KEY>` variables of `vars` over `table`.
    ///
    /// The section is the longest section name that prefixes the rest, so
    /// `SANHOOK_SANPLEX_DB_URL` is `sanplex_db.url`, never `sanplex.db_url`. Variables that are
    /// not shaped like an override are ignored: `SANHOOK_TEST_*`, `SANHOOK_LOG*` and names with
    /// no `_` after the prefix (e.g. `SANHOOK_CONFIG`). Any other `SANHOOK_*` name must map to a
    /// scalar key, or it is an error: a misspelt override would otherwise be silently ignored.
    /// Variables are applied in name order, so the first error is the same on every run. A value gets the type of the key's default: booleans are spelt
    /// `true/false/1/0`, integers are digits, anything else is a string (which serde refuses,
    /// naming the key, when it is not what the key takes).
    fn merge_env(
        &mut self,
        table: &mut Table,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut vars: Vec<_> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (var, text) in vars {
            let rest = &var[ENV_PREFIX.len()..];
            if rest.starts_with("TEST_") || rest.starts_with("LOG") || !rest.contains('_') {
                continue;
            }
            let sections = DEFAULTS.0.keys().map(String::as_str).chain(["tail"]);
            let section = sections
                .filter(|s| {
                    rest.strip_prefix(&*s.to_ascii_uppercase())
                        .is_some_and(|r| r.len() > 1 && r.starts_with('_'))
                })
                .max_by_key(|s| s.len());
            let key = section.map_or("", |s| &rest[s.len() + 1..]);
            let message = match section {
                None => Some(format!(
                    "no section named so; overrides are SANHOOK_<SECTION>_<KEY> with a section among {}",
                    DEFAULTS.0.keys().map(|s| s.to_ascii_uppercase()).collect::<Vec<_>>().join(", ")
                )),
                Some(_) if key.bytes().any(|b| b.is_ascii_lowercase()) => {
                    Some("the key part must be upper case, e.g. SANHOOK_SERVER_LISTEN".into())
                }
                Some(_) => None,
            };
            if let Some(message) = message {
                return Err(ConfigError::Env { var, message });
            }
            let (section, key) = (section.unwrap_or_default(), key.to_ascii_lowercase());
            let dotted = format!("{section}.{key}");
            let value = match DEFAULTS.0.get(section).and_then(|s| s.get(&key)) {
                _ if section == "tail" => None,
                Some(Value::Array(_)) => None,
                Some(Value::Boolean(_)) => match text.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => Some(Value::Boolean(true)),
                    "false" | "0" => Some(Value::Boolean(false)),
                    _ => Some(Value::String(text)),
                },
                Some(Value::Integer(_)) => Some(match text.trim().parse::<u64>() {
                    Ok(n) => Value::Integer(n.min(i64::MAX as u64) as i64),
                    Err(_) => Value::String(text),
                }),
                _ => Some(Value::String(text)),
            };
            let Some(value) = value else {
                return Err(ConfigError::Key {
                    key: dotted,
                    origin: Origin::Env { var },
                    message: "arrays and [[tail]] are set in the config file only".into(),
                });
            };
            if let Some(Value::Table(keys)) = table.get_mut(section) {
                keys.insert(key, value);
            }
            self.env.push((dotted, var));
        }
        Ok(())
    }

    /// Deserialises the merged table; serde's complaint is kept as it is, with the key it is
    /// about, where that was written, and secrets masked.
    fn deserialize(&self, merged: Table) -> Result<Config, ConfigError> {
        serde_path_to_error::deserialize(Value::Table(merged.clone())).map_err(|e| {
            let mut key = e.path().to_string();
            let mut message = crate::mask::text(e.inner().message()).into_owned();
            if let (true, Some(token)) = (key == "server.token", lookup(&merged, &key)) {
                message = message.replace(&token.to_string(), MASK);
            }
            // Unknown keys point at their name; a missing one at the table that lacks it.
            let missing = message.strip_prefix("missing field `");
            let origin = self.origin(&key, missing.is_some() || message.starts_with("unknown"));
            if let Some(field) = missing {
                key = format!("{key}.{}", field.trim_end_matches('`'));
            }
            ConfigError::Key {
                key,
                origin,
                message,
            }
        })
    }

    /// Where the value of `key` (or the key itself, `at_name`) was written: the variable that
    /// set it, else its place in the file, else nowhere in particular (a default).
    fn origin(&self, key: &str, at_name: bool) -> Origin {
        if let Some((_, var)) = self.env.iter().rev().find(|(k, _)| k == key) {
            return Origin::Env { var: var.clone() };
        }
        let Some((text, path)) = self.file else {
            return Origin::Effective;
        };
        match position(text, key, at_name) {
            Some(pos) => {
                let (line, column) = line_column(text, pos);
                let path = path.map(Path::to_path_buf);
                Origin::File { path, line, column }
            }
            None => Origin::Effective,
        }
    }
}

/// The value of `key` in `table` as an error shows it: secrets masked, strings quoted.
fn shown(table: &Table, key: &str) -> String {
    match lookup(table, key) {
        Some(_) if key == "server.token" => MASK.into(),
        Some(Value::String(s)) => format!("{:?}", crate::mask::text(s)),
        Some(v) => crate::mask::text(&v.to_string()).into_owned(),
        None => "nothing".into(),
    }
}

/// The value at a dotted key with indexes (`delivery.retry_schedule[1]`, `tail[0].path`).
fn lookup<'v>(table: &'v Table, key: &str) -> Option<&'v Value> {
    let mut parts = key.split(['.', '[']);
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = match part.strip_suffix(']') {
            Some(i) => value.get(i.parse::<usize>().ok()?)?,
            None => value.get(part)?,
        };
    }
    Some(value)
}

/// Byte offset of `key` (as [`lookup`] takes it) in the TOML `text`: of its name when
/// `at_name`, else of its value. `None` when the text does not set it.
fn position(text: &str, key: &str, at_name: bool) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut parts = key.split(['.', '[']);
    let (name, mut value) = doc.get_ref().get_key_value(parts.next()?)?;
    let mut pos = if at_name { name.span() } else { value.span() };
    for part in parts {
        (pos, value) = match (part.strip_suffix(']'), value.get_ref()) {
            (Some(i), DeValue::Array(items)) => {
                let item = items.get(i.parse::<usize>().ok()?)?;
                (item.span(), item)
            }
            (None, DeValue::Table(keys)) => {
                let (name, value) = keys.get_key_value(part)?;
                (if at_name { name.span() } else { value.span() }, value)
            }
            _ => return None,
        };
    }
    Some(pos.start)
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
fn line_column(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos.min(text.len())).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// Whether `s` is an absolute URL with one of `schemes` and a host.
fn is_url(s: &str, schemes: &[&str]) -> bool {
    reqwest::Url::parse(s)
        .is_ok_and(|u| schemes.contains(&u.scheme()) && u.host_str().is_some_and(|h| !h.is_empty()))
}
