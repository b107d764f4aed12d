//! Configuration: embedded defaults, then `config.toml`, then `SANHOOK_*` environment variables
//! (docs/reference.md §1–2).
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

/// Everything that can be wrong with a configuration. Each message names the key (or variable),
/// the value and what to write instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `--config` named a file that does not exist. Only the implicit `./config.toml` may be absent.
    #[error(
        "config file {} does not exist: pass an existing file to --config, \
         or leave --config out to use ./config.toml or the built-in defaults",
        path.display()
    )]
    NotFound { path: PathBuf },
    /// The file exists but could not be read (permissions, a directory, not UTF-8...).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML at all.
    #[error("TOML syntax error{origin}: {message}")]
    Syntax { origin: Origin, message: String },
    /// A section or key that sanhook does not know: usually a typo, which must not pass silently.
    #[error("unknown config key `{key}`{origin}: {hint}")]
    UnknownKey {
        key: String,
        origin: Origin,
        hint: String,
    },
    /// A known key with a value of the wrong type or shape, or one that [`Config::validate`] refuses.
    #[error("invalid value for `{key}`{origin}: {value}: expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
        origin: Origin,
    },
    /// A `SANHOOK_*` variable shaped like an override that names no config key.
    #[error("environment variable {var} does not name a config key: {hint} (fix or unset it)")]
    UnknownEnv { var: String, hint: String },
    /// An override of an array or of `[[tail]]`, which can only be written in the file.
    #[error(
        "environment variable {var} cannot set `{key}`: arrays and [[tail]] are set in the \
         config file only (unset the variable and edit the file)"
    )]
    FileOnly { var: String, key: String },
    /// A `SANHOOK_*` variable whose value is not UTF-8.
    #[error("environment variable {var} is not valid UTF-8: set it to a UTF-8 value or unset it")]
    EnvNotUnicode { var: String },
}

impl ConfigError {
    /// The dotted config key the error is about, when it is about one; for environment errors
    /// the key the variable maps to (if any). Lets callers and tests check *which* key failed.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::InvalidValue { key, .. }
            | ConfigError::FileOnly { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The 1-based line in the config file the error points at, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { origin, .. }
            | ConfigError::UnknownKey { origin, .. }
            | ConfigError::InvalidValue { origin, .. } => match origin {
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
    let config = serde_path_to_error::deserialize(Value::Table(table.clone()))
        .unwrap_or_else(|e| panic!("the embedded config.toml is invalid at {}: {e}", e.path()));
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
        Self::load_with_env(path, env_vars()?)
    }

    /// [`Config::load`] with the environment given explicitly, so that tests (and embedders)
    /// need not touch the process environment.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = path.unwrap_or(Path::new(DEFAULT_PATH));
        let text = match std::fs::read_to_string(file) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.is_none() => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotFound { path: file.into() })
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: file.into(),
                    source,
                })
            }
        };
        let mut sources = Sources {
            file: text.as_deref().map(|text| (text, Some(file))),
            env: Vec::new(),
        };
        let config = sources.load(vars)?;
        config.validate().map_err(|e| sources.locate(e))?;
        Ok(config)
    }

    /// Parses a config document on top of the defaults. Does not read the environment and does
    /// not [`validate`](Config::validate): it answers "what does this text say".
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        Sources {
            file: Some((s, None)),
            env: Vec::new(),
        }
        .load(std::iter::empty())
    }

    /// Applies `SANHOOK_<SECTION>_<KEY>` overrides from `vars` (the process uses
    /// `std::env::vars()`).
    ///
    /// The section is the longest section name that prefixes the rest, so
    /// `SANHOOK_SANPLEX_DB_URL` is `sanplex_db.url`, never `sanplex.db_url`. Variables that are
    /// not shaped like an override are ignored: `SANHOOK_TEST_*`, `SANHOOK_LOG*` and names with
    /// no `_` after the prefix (e.g. `SANHOOK_CONFIG`). Any other `SANHOOK_*` name must map to a
    /// scalar key, or it is an error: a misspelt override would otherwise be silently ignored.
    /// Variables are applied in name order, so the first error is the same on every run.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut table = self.to_table();
        let mut sources = Sources::default();
        sources.merge_env(&mut table, vars)?;
        *self = sources.deserialize(table)?;
        Ok(())
    }

    /// Checks what the values mean: addresses parse, URLs are absolute http(s), limits and
    /// intervals are positive. Returns the first problem, naming its key and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: String, expected: &str| {
            let value = shown(&self.to_table(), &key);
            let expected = expected.to_string();
            Err(ConfigError::InvalidValue {
                key,
                value,
                expected,
                origin: Origin::Effective,
            })
        };
        let (server, delivery, cluster) = (&self.server, &self.delivery, &self.cluster);
        let http = |url: &str| is_url(url, &["http", "https"]);
        if server.listen.parse::<SocketAddr>().is_err() {
            let expected = "a socket address IP:PORT, e.g. \"127.0.0.1:8930\" or \"[::1]:8930\" \
                            (host names are not accepted)";
            return bad("server.listen".into(), expected);
        }
        if server.max_body < MIN_MAX_BODY {
            return bad("server.max_body".into(), "at least 1KiB");
        }
        if server.max_events == 0 {
            return bad("server.max_events".into(), "at least 1, e.g. 20000");
        }
        if self.storage.path.as_os_str().is_empty() {
            return bad("storage.path".into(), "a file path for the database");
        }
        for (key, url) in [
            ("sanplex.base_url", &self.sanplex.base_url),
            ("platforms.dingtalk", &self.platforms.dingtalk),
            ("platforms.wecom", &self.platforms.wecom),
            ("platforms.feishu", &self.platforms.feishu),
        ] {
            if !http(url) {
                let expected = "an absolute http:// or https:// URL, e.g. \"https://example.com\"";
                return bad(key.into(), expected);
            }
        }
        if !delivery.proxy.is_empty() && !http(&delivery.proxy) {
            let expected =
                "an http:// or https:// proxy URL, e.g. \"http://proxy.example.com:3128\" \
                            (user:password@ allowed), or \"\" to connect directly";
            return bad("delivery.proxy".into(), expected);
        }
        if delivery.retry_schedule.is_empty() {
            return bad(
                "delivery.retry_schedule".into(),
                "at least one delay, e.g. [\"5s\", \"30s\"]",
            );
        }
        if !(1..=10_000).contains(&delivery.max_in_flight) {
            return bad("delivery.max_in_flight".into(), "a number from 1 to 10000");
        }
        if delivery.workers > 1024 {
            return bad(
                "delivery.workers".into(),
                "0 (one per core) or a number up to 1024",
            );
        }
        for (key, d) in [
            ("delivery.timeout", delivery.timeout),
            ("delivery.async_interval", delivery.async_interval),
            ("cluster.lease", cluster.lease),
        ] {
            if d.is_zero() {
                return bad(key.into(), "a duration above zero");
            }
        }
        for (name, windows) in [
            ("dinggroup", &self.limits.dinggroup),
            ("wechatgroup", &self.limits.wechatgroup),
            ("feishugroup", &self.limits.feishugroup),
            ("wechatuser_member", &self.limits.wechatuser_member),
        ] {
            if let Some(i) = windows.iter().position(|w| w.count == 0 || w.per.is_zero()) {
                let expected =
                    "a window whose count and duration are both above zero, e.g. \"20/60s\"";
                return bad(format!("limits.{name}[{i}]"), expected);
            }
        }
        for (i, tail) in self.tail.iter().enumerate() {
            let glob = glob::Pattern::new(&tail.path);
            if tail.path.trim().is_empty() || glob.is_err() {
                let why = glob.err().map_or(String::new(), |e| format!(" ({e})"));
                let expected = format!("a non-empty file path or a valid glob{why}");
                return bad(format!("tail[{i}].path"), &expected);
            }
            if tail.max_line == 0 {
                return bad(format!("tail[{i}].max_line"), "a size above zero");
            }
        }
        let nats = |url: &str| is_url(url.trim(), &["nats", "tls", "ws", "wss"]);
        if !cluster.nats.is_empty() && !cluster.nats.split(',').all(nats) {
            let expected = "comma-separated nats://, tls://, ws:// or wss:// URLs, e.g. \
                            \"nats://10.0.0.5:4222,nats://10.0.0.6:4222\", or \"\" for a single node";
            return bad("cluster.nats".into(), expected);
        }
        let word = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        };
        if cluster.name.is_empty() || !word(&cluster.name) {
            let expected = "letters, digits, - and _ (it names NATS streams), e.g. \"sanhook\"";
            return bad("cluster.name".into(), expected);
        }
        if !word(&cluster.node_id) {
            let expected =
                "letters, digits, - and _ (it names NATS subjects), or \"\" for the host name";
            return bad("cluster.node_id".into(), expected);
        }
        if !(1..=4096).contains(&cluster.shards) {
            return bad("cluster.shards".into(), "a number from 1 to 4096");
        }
        let db = &self.sanplex_db;
        if !db.url.is_empty() && !db.url.starts_with("mysql://") {
            let expected = "a mysql:// URL, e.g. \"mysql://reader:pw@127.0.0.1:3306/zentao\", \
                            or \"\" to turn the poller off";
            return bad("sanplex_db.url".into(), expected);
        }
        if !db.url.is_empty() && db.poll_interval.is_zero() {
            return bad("sanplex_db.poll_interval".into(), "a duration above zero");
        }
        Ok(())
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
#[derive(Default)]
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
                let origin = Origin::File {
                    path: path.map(Path::to_path_buf),
                    line,
                    column,
                };
                let message = e.message().trim().replace('\n', "; ");
                ConfigError::Syntax { origin, message }
            })?;
            for (section, value) in file {
                match (table.get_mut(&section), value) {
                    (Some(Value::Table(base)), Value::Table(keys)) => base.extend(keys),
                    (_, value) => {
                        table.insert(section, value);
                    }
                }
            }
        }
        self.merge_env(&mut table, vars)?;
        self.deserialize(table)
    }

    /// Lays the `SANHOOK_<SECTION>_<KEY>` variables of `vars` over `table` (see
    /// [`Config::apply_env`]). A value gets the type of the key's default, so booleans are
    /// spelt `true/false/1/0` and numbers are digits.
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
            let (section, key) = env_target(&var, rest)?;
            let dotted = format!("{section}.{key}");
            let invalid = |expected: &str| ConfigError::InvalidValue {
                key: dotted.clone(),
                value: quote(&crate::mask::text(&text)),
                expected: expected.into(),
                origin: Origin::Env { var: var.clone() },
            };
            let value = match DEFAULTS.0.get(section).and_then(|s| s.get(&key)) {
                None if section != "tail" => {
                    let names: Vec<String> = env_names(section).collect();
                    let hint = format!("[{section}] has {}", names.join(", "));
                    return Err(ConfigError::UnknownEnv { var, hint });
                }
                None | Some(Value::Array(_)) => {
                    return Err(ConfigError::FileOnly { var, key: dotted })
                }
                Some(Value::Boolean(_)) => match text.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => Value::Boolean(true),
                    "false" | "0" => Value::Boolean(false),
                    _ => return Err(invalid("true, false, 1 or 0")),
                },
                Some(Value::Integer(_)) => match text.trim().parse::<u64>() {
                    Ok(n) => Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
                    Err(_) => return Err(invalid("a whole number, e.g. 64")),
                },
                Some(_) => Value::String(text),
            };
            if let Some(Value::Table(keys)) = table.get_mut(section) {
                keys.insert(key, value);
            }
            self.env.push((dotted, var));
        }
        Ok(())
    }

    /// Deserialises the merged table, turning serde's complaint into an error that names the
    /// key, the value as written (secrets masked), what was expected, and where it came from.
    fn deserialize(&self, merged: Table) -> Result<Config, ConfigError> {
        serde_path_to_error::deserialize(Value::Table(merged.clone())).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().message();
            let top = !key.contains(['.', '[']);
            if message.starts_with("unknown field") {
                // serde lists the known keys (or sections): "expected one of `listen`, ...".
                let known = message.split_once("`, ").map_or("", |(_, e)| e);
                let hint = match merged.get(&key) {
                    Some(v) if !v.is_table() => {
                        format!("keys belong under a section, not at the top of the file: {known}")
                    }
                    _ => known.to_string(),
                };
                let origin = self.origin(&key, true);
                return ConfigError::UnknownKey { key, origin, hint };
            }
            if let Some(field) = message.strip_prefix("missing field `") {
                let field = field.trim_end_matches('`');
                return ConfigError::InvalidValue {
                    origin: self.origin(&key, false),
                    key: format!("{key}.{field}"),
                    value: "nothing".into(),
                    expected: match field {
                        "path" => "a path or glob of the NDJSON files to follow, e.g. \
                                   path = \"/var/log/sanplex/actions/*.ndjson\""
                            .into(),
                        _ => format!("`{field}` to be set"),
                    },
                };
            }
            let expected = message
                .split_once(", expected ")
                .map_or(message, |(_, e)| e);
            let expected = match expected {
                "a boolean" => "true or false (without quotes)".into(),
                "a string" => "a string in quotes".into(),
                "path string" => "a file path in quotes".into(),
                "u64" | "u32" => "a whole number (without quotes), e.g. 64".into(),
                "a sequence" if key == "tail" => {
                    "an array of tables: write each source as [[tail]] (two brackets)".into()
                }
                "a sequence" => match lookup(&DEFAULTS.0, &key) {
                    Some(example) => format!("an array, e.g. {example}"),
                    None => "an array".into(),
                },
                e if e.starts_with("struct ") && top => {
                    format!("a table: write [{key}] and its keys below it")
                }
                e if e.starts_with("struct ") => "a table with path, start_at and max_line".into(),
                e => e.into(),
            };
            let value = shown(&merged, &key);
            let origin = self.origin(&key, false);
            ConfigError::InvalidValue {
                key,
                value,
                expected,
                origin,
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
                Origin::File {
                    path: path.map(Path::to_path_buf),
                    line,
                    column,
                }
            }
            None => Origin::Effective,
        }
    }

    /// A [`Config::validate`] error, pointed at where its value was written.
    fn locate(&self, mut e: ConfigError) -> ConfigError {
        if let ConfigError::InvalidValue { key, origin, .. } = &mut e {
            *origin = self.origin(key, false);
        }
        e
    }
}

/// The value of `key` in `table` as an error shows it: secrets masked, strings quoted.
fn shown(table: &Table, key: &str) -> String {
    match lookup(table, key) {
        None => "nothing".into(),
        Some(_) if key == "server.token" => MASK.into(),
        Some(Value::String(s)) => quote(&crate::mask::text(s)),
        Some(Value::Table(_)) => "a table".into(),
        Some(v) => crate::mask::text(&v.to_string()).into_owned(),
    }
}

/// The value at a dotted key with indexes (`delivery.retry_schedule[1]`, `tail[0].path`).
fn lookup<'v>(table: &'v Table, key: &str) -> Option<&'v Value> {
    let mut value: Option<&Value> = None;
    for part in key.split('.') {
        let mut indexes = part.split('[');
        let name = indexes.next()?;
        let mut v = match value {
            None => table.get(name)?,
            Some(v) => v.get(name)?,
        };
        for i in indexes {
            v = v.get(i.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
        value = Some(v);
    }
    value
}

/// Byte offset of `key` (as [`lookup`] takes it) in the TOML `text`: of its name when
/// `at_name`, else of its value. `None` when the text does not set it.
fn position(text: &str, key: &str, at_name: bool) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    use toml::Spanned;
    let doc = DeTable::parse(text).ok()?;
    let (mut table, mut pos) = (doc.get_ref(), None);
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let mut indexes = part.split('[');
        let name = indexes.next()?;
        let (k, mut v): (&Spanned<_>, &Spanned<DeValue>) = table.get_key_value(name)?;
        pos = Some(if at_name {
            k.span().start
        } else {
            v.span().start
        });
        for i in indexes {
            let i: usize = i.trim_end_matches(']').parse().ok()?;
            v = v.get_ref().as_array()?.get(i)?;
            pos = Some(v.span().start);
        }
        if parts.peek().is_some() {
            table = v.get_ref().as_table()?;
        }
    }
    pos
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
fn line_column(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos.min(text.len())).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// Splits `SANHOOK_` + `rest` into (section, lower-case key), the longest section winning.
fn env_target(var: &str, rest: &str) -> Result<(&'static str, String), ConfigError> {
    let sections = DEFAULTS.0.keys().map(String::as_str).chain(["tail"]);
    let section = sections
        .filter(|s| {
            let upper = s.to_ascii_uppercase();
            rest.strip_prefix(upper.as_str())
                .is_some_and(|r| r.len() > 1 && r.starts_with('_'))
        })
        .max_by_key(|s| s.len());
    let Some(section) = section else {
        let names: Vec<String> = DEFAULTS.0.keys().map(|s| s.to_ascii_uppercase()).collect();
        return Err(ConfigError::UnknownEnv {
            var: var.to_string(),
            hint: format!(
                "overrides are SANHOOK_<SECTION>_<KEY> with a section among {}, e.g. \
                 SANHOOK_SERVER_LISTEN",
                names.join(", ")
            ),
        });
    };
    let key = &rest[section.len() + 1..];
    // Keys are written upper case; a lower-case tail is not this naming scheme.
    if key.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(ConfigError::UnknownEnv {
            var: var.to_string(),
            hint: "the key part must be upper case, e.g. SANHOOK_SERVER_LISTEN".to_string(),
        });
    }
    Ok((section, key.to_ascii_lowercase()))
}

/// The override names of the scalar keys of a section.
fn env_names(section: &str) -> impl Iterator<Item = String> + '_ {
    let keys = DEFAULTS
        .0
        .get(section)
        .and_then(Value::as_table)
        .into_iter()
        .flatten();
    keys.filter(|(_, v)| !v.is_array())
        .map(move |(k, _)| format!("{ENV_PREFIX}{section}_{k}").to_ascii_uppercase())
}

/// The process's `SANHOOK_*` variables. A non-UTF-8 value is an error rather than a panic
/// (`std::env::vars` would panic) or a silent skip.
fn env_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let ours = std::env::vars_os().filter_map(|(name, value)| {
        let name = name
            .into_string()
            .ok()
            .filter(|n| n.starts_with(ENV_PREFIX))?;
        Some(
            value
                .into_string()
                .map(|v| (name.clone(), v))
                .map_err(|_| name),
        )
    });
    ours.collect::<Result<_, _>>()
        .map_err(|var| ConfigError::EnvNotUnicode { var })
}

/// Whether `s` is an absolute URL with one of `schemes` and a host.
fn is_url(s: &str, schemes: &[&str]) -> bool {
    reqwest::Url::parse(s)
        .is_ok_and(|u| schemes.contains(&u.scheme()) && u.host_str().is_some_and(|h| !h.is_empty()))
}

/// A string quoted for a message: `"10x"`.
fn quote(s: &str) -> String {
    format!("{s:?}")
}
