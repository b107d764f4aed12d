//! Configuration: embedded defaults, then `config.toml`, then `SANHOOK_*` environment variables
//! (CONTRACT §1–2).
//!
//! The defaults are the repository's own commented `config.toml`, compiled in with
//! `include_str!` (as svix does), so the documented defaults and the effective ones cannot drift.
//! A file is read on top of them, then the environment, then [`Config::validate`] checks what the
//! values mean together. Every error names the key (`delivery.timeout`), the bad value and what
//! was expected, because a typo in a config must never be silently ignored.
//!
//! One registry ([`SECTIONS`] plus `Config::slot`) drives parsing, environment overrides and
//! [`Config::render_effective`], so a key added in one place is handled everywhere.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The commented default configuration, exactly as shipped at the repository root.
///
/// Public so that the binary can print it as a starting point for users.
pub const DEFAULT_TOML: &str = include_str!("../../config.toml");

/// The file [`Config::load`] reads when no path is given; a missing one means built-in defaults.
pub const DEFAULT_PATH: &str = "config.toml";

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "SANHOOK_";

/// How secrets are shown by [`Config::render_effective`] and in error messages.
pub use crate::mask::MASK;

/// The keys whose values are URLs that may carry a password or a token: shown through
/// [`crate::mask::url`] by [`Config::render_effective`], errors and `Debug`.
const URL_KEYS: &[&str] = &[
    "sanplex.base_url",
    "platforms.dingtalk",
    "platforms.wecom",
    "platforms.feishu",
    "sanplex_db.url",
    "delivery.proxy",
];

/// Default `start_at` of a `[[tail]]` entry that leaves it out (documented, commented out, in
/// [`DEFAULT_TOML`]; a test keeps the two in step).
pub const TAIL_DEFAULT_START_AT: StartAt = StartAt::Beginning;

/// Default `max_line` of a `[[tail]]` entry that leaves it out: 1 MiB.
pub const TAIL_DEFAULT_MAX_LINE: u64 = 1024 * 1024;

/// The smallest `server.max_body` accepted: below this even one action event may not fit.
pub const MIN_MAX_BODY: u64 = 1024;

/// The sections and their scalar/array keys, in the order they are documented and rendered.
///
/// `[[tail]]` is not listed: it is an array of tables, handled by [`TAIL_KEYS`].
pub const SECTIONS: &[(&str, &[&str])] = &[
    ("server", &["listen", "token", "max_body", "max_events"]),
    ("storage", &["path", "retention"]),
    ("sanplex", &["base_url", "lang"]),
    (
        "delivery",
        &[
            "timeout",
            "async_interval",
            "retry_schedule",
            "max_retry_after",
            "allow_private",
            "allow_link_local",
            "proxy",
            "workers",
            "max_in_flight",
            "disable_after",
            "failing_after",
        ],
    ),
    (
        "limits",
        &[
            "dinggroup",
            "wechatgroup",
            "feishugroup",
            "wechatuser_member",
            "dingtalk_throttle",
        ],
    ),
    ("platforms", &["dingtalk", "wecom", "feishu"]),
    (
        "sanplex_db",
        &["url", "poll_interval", "start_at", "gap_grace"],
    ),
];

/// The keys of one `[[tail]]` entry.
pub const TAIL_KEYS: &[&str] = &["path", "start_at", "max_line"];

/// Language of labels in notification text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// English labels (`"en"`).
    #[default]
    En,
    /// Simplified Chinese labels, as Sanplex shows them (`"zh-cn"`).
    ZhCn,
}

impl Lang {
    /// The config spelling: `"en"` or `"zh-cn"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-cn",
        }
    }

    /// Parses the config spelling (case-insensitive, since Sanplex itself writes both `zh-cn`
    /// and `zh-CN`).
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "zh-cn" => Some(Lang::ZhCn),
            _ => None,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sliding-window limit, e.g. `20/60s`: at most `count` sends in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How many sends the window allows.
    pub count: u32,
    /// How long the window is.
    pub per: Duration,
}

impl Window {
    /// Parses `COUNT/DURATION`, e.g. `"20/60s"`. `None` when the text is not of that shape.
    pub fn parse(s: &str) -> Option<Window> {
        let (count, per) = s.split_once('/')?;
        let count = count.trim().parse().ok()?;
        let per = parse_duration(per).ok()?;
        Some(Window { count, per })
    }
}

impl fmt::Display for Window {
    /// The config spelling, so that rendering and parsing round-trip.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, format_duration(self.per))
    }
}

/// Where a source starts in input it has never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Read everything already there (a backfill).
    #[default]
    Beginning,
    /// Only what is written from now on.
    End,
}

impl StartAt {
    /// The config spelling: `"beginning"` or `"end"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StartAt::Beginning => "beginning",
            StartAt::End => "end",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<StartAt> {
        match s.trim() {
            "beginning" => Some(StartAt::Beginning),
            "end" => Some(StartAt::End),
            _ => None,
        }
    }
}

impl fmt::Display for StartAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole configuration, every key with its effective value. `Debug` shows secrets masked,
/// as `check-config` does.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// `[server]`: the HTTP API.
    pub server: ServerConfig,
    /// `[storage]`: the redb file.
    pub storage: StorageConfig,
    /// `[sanplex]`: how links and labels look.
    pub sanplex: SanplexConfig,
    /// `[delivery]`: timeouts and retries.
    pub delivery: DeliveryConfig,
    /// `[limits]`: per-destination rate limits.
    pub limits: LimitsConfig,
    /// `[platforms]`: API bases of the app-message types.
    pub platforms: PlatformsConfig,
    /// `[[tail]]`: NDJSON files to follow; empty by default.
    pub tail: Vec<TailConfig>,
    /// `[sanplex_db]`: optional database poller.
    pub sanplex_db: SanplexDbConfig,
}

/// `[server]`
#[derive(Clone, PartialEq)]
pub struct ServerConfig {
    /// HTTP API and event intake address, e.g. `127.0.0.1:8930`.
    pub listen: String,
    /// Bearer token for `/api/*`; empty = no auth (refused unless `listen` is loopback).
    pub token: String,
    /// Request bodies larger than this get 413.
    pub max_body: u64,
    /// More events than this in one request get 413 (counted before they are parsed).
    pub max_events: u64,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// The redb file.
    pub path: PathBuf,
    /// Finished deliveries, quarantine and seen event ids older than this are dropped.
    pub retention: Duration,
}

/// `[sanplex]`
#[derive(Clone, PartialEq)]
pub struct SanplexConfig {
    /// Used to build object links when an event carries no url and the webhook no domain.
    pub base_url: String,
    /// Language of labels in notification text.
    pub lang: Lang,
}

/// `[delivery]`
#[derive(Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Per HTTP attempt.
    pub timeout: Duration,
    /// How often async webhooks' queued messages are flushed.
    pub async_interval: Duration,
    /// Delays before retry 1..N; after N failed retries the delivery is dead.
    pub retry_schedule: Vec<Duration>,
    /// A longer Retry-After / reset header is cut to this.
    pub max_retry_after: Duration,
    /// false: refuse destinations that resolve to loopback/private/reserved addresses.
    pub allow_private: bool,
    /// false: refuse link-local and cloud metadata addresses, whatever `allow_private` says.
    pub allow_link_local: bool,
    /// Outbound HTTP(S) proxy URL; empty = direct. `HTTP(S)_PROXY` variables are ignored.
    pub proxy: String,
    /// Dispatch threads, each owning a share of the destinations; 0 = one per core.
    pub workers: u64,
    /// Sends in flight at once per `default`/app destination (each for a different object).
    pub max_in_flight: u64,
    /// A webhook whose every attempt failed for this long is disabled; zero = never.
    pub disable_after: Duration,
    /// A webhook whose every attempt failed for this long is reported (`webhookFailing`).
    pub failing_after: Duration,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// DingTalk group bots; every window applies.
    pub dinggroup: Vec<Window>,
    /// WeCom group bots.
    pub wechatgroup: Vec<Window>,
    /// Feishu/Lark group bots.
    pub feishugroup: Vec<Window>,
    /// WeCom app messages to one member.
    pub wechatuser_member: Vec<Window>,
    /// Pause after DingTalk's 130101 (send too fast).
    pub dingtalk_throttle: Duration,
}

/// `[platforms]`: API bases of the app-message types.
#[derive(Clone, PartialEq)]
pub struct PlatformsConfig {
    /// DingTalk open API base.
    pub dingtalk: String,
    /// WeCom API base.
    pub wecom: String,
    /// Feishu (or Lark) open API base.
    pub feishu: String,
}

/// One `[[tail]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TailConfig {
    /// A glob.
    pub path: String,
    /// Where to start in a file never seen before.
    pub start_at: StartAt,
    /// Longer lines are quarantined.
    pub max_line: u64,
}

/// `[sanplex_db]`
#[derive(Clone, PartialEq)]
pub struct SanplexDbConfig {
    /// Empty = off.
    pub url: String,
    /// How often `zt_action` is polled.
    pub poll_interval: Duration,
    /// Where to start the first time.
    pub start_at: StartAt,
    /// How long a missing `zt_action` id is re-checked before it is given up.
    pub gap_grace: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("storage", &self.storage)
            .field("sanplex", &self.sanplex)
            .field("delivery", &self.delivery)
            .field("limits", &self.limits)
            .field("platforms", &self.platforms)
            .field("tail", &self.tail)
            .field("sanplex_db", &self.sanplex_db)
            .finish()
    }
}

/// `Debug` of a section that holds a secret: its keys as `check-config` shows them, so that a
/// secret never reaches a log or a panic message through `{:?}`.
macro_rules! masked_debug {
    ($ty:ident, $field:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut c = Config::blank();
                c.$field = self.clone();
                let shown = c.render_section(stringify!($field));
                let mut d = f.debug_struct(stringify!($ty));
                for (key, value) in &shown {
                    d.field(key, &format_args!("{value}"));
                }
                d.finish()
            }
        }
    };
}

masked_debug!(ServerConfig, server);
masked_debug!(SanplexConfig, sanplex);
masked_debug!(DeliveryConfig, delivery);
masked_debug!(PlatformsConfig, platforms);
masked_debug!(SanplexDbConfig, sanplex_db);

/// Where a configuration value came from, so an error can point the user at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file (`None`: a string with no file name), at a 1-based line when known.
    File {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// 1-based line of the offending key or value.
        line: Option<usize>,
    },
    /// An environment variable.
    Env {
        /// Its name, e.g. `SANHOOK_DELIVERY_TIMEOUT`.
        var: String,
    },
    /// The merged configuration, checked by [`Config::validate`].
    Effective,
}

impl fmt::Display for Origin {
    /// Renders as a suffix (leading space included, or nothing) for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => {
                if let Some(path) = path {
                    write!(f, " in {}", path.display())?;
                }
                if let Some(line) = line {
                    write!(f, " at line {line}")?;
                }
                Ok(())
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
    NotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The file exists but could not be read (permissions, a directory, not UTF-8...).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML at all.
    #[error("TOML syntax error{origin}, column {column}: {message}")]
    Syntax {
        /// File and line.
        origin: Origin,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's complaint.
        message: String,
    },
    /// A section or key that sanhook does not know: usually a typo, which must not pass silently.
    #[error("unknown config key `{key}`{origin}: {hint}")]
    UnknownKey {
        /// The dotted key, e.g. `server.lisen`.
        key: String,
        /// Where it was written.
        origin: Origin,
        /// The keys that do exist there.
        hint: String,
    },
    /// A known key with a value of the wrong type or shape, or one that [`Config::validate`] refuses.
    #[error("invalid value for `{key}`{origin}: {value}: expected {expected}")]
    InvalidValue {
        /// The dotted key, e.g. `delivery.timeout` or `limits.dinggroup[0]`.
        key: String,
        /// The value as written (secrets masked).
        value: String,
        /// What would have been accepted.
        expected: String,
        /// Where it came from.
        origin: Origin,
    },
    /// A `SANHOOK_*` variable shaped like an override that names no config key.
    #[error("environment variable {var} does not name a config key: {hint} (fix or unset it)")]
    UnknownEnv {
        /// The variable.
        var: String,
        /// The names that would have worked.
        hint: String,
    },
    /// An override of an array or of `[[tail]]`, which can only be written in the file.
    #[error(
        "environment variable {var} cannot set `{key}`: arrays and [[tail]] are set in the \
         config file only (unset the variable and edit the file)"
    )]
    FileOnly {
        /// The variable.
        var: String,
        /// The key it aimed at.
        key: String,
    },
    /// A `SANHOOK_*` variable whose value is not UTF-8.
    #[error("environment variable {var} is not valid UTF-8: set it to a UTF-8 value or unset it")]
    EnvNotUnicode {
        /// The variable.
        var: String,
    },
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
            ConfigError::Syntax { line, .. } => Some(*line),
            ConfigError::UnknownKey { origin, .. } | ConfigError::InvalidValue { origin, .. } => {
                match origin {
                    Origin::File { line, .. } => *line,
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The built-in defaults, parsed once from [`DEFAULT_TOML`].
static DEFAULTS: LazyLock<Config> = LazyLock::new(|| {
    let mut config = Config::blank();
    config
        .merge_toml(DEFAULT_TOML, None)
        .unwrap_or_else(|e| panic!("the embedded default config.toml is invalid: {e}"));
    config
});

impl Default for Config {
    /// The values of the embedded [`DEFAULT_TOML`], which are the contract's defaults.
    fn default() -> Self {
        DEFAULTS.clone()
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
        let vars = env_vars()?;
        Self::load_with_env(path, vars)
    }

    /// [`Config::load`] with the environment given explicitly, so that tests (and embedders)
    /// need not touch the process environment.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        match path {
            Some(path) => {
                let text = read_file(path)?.ok_or_else(|| ConfigError::NotFound {
                    path: path.to_path_buf(),
                })?;
                config.merge_toml(&text, Some(path))?;
            }
            None => {
                let path = Path::new(DEFAULT_PATH);
                if let Some(text) = read_file(path)? {
                    config.merge_toml(&text, Some(path))?;
                }
            }
        }
        config.apply_env(vars)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a config document on top of the defaults. Does not read the environment and does
    /// not [`validate`](Config::validate): it answers "what does this text say".
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.merge_toml(s, None)?;
        Ok(config)
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
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (var, value) in vars {
            let rest = &var[ENV_PREFIX.len()..];
            if rest.starts_with("TEST_") || rest.starts_with("LOG") || !rest.contains('_') {
                continue;
            }
            let (section, key) = env_target(&var, rest)?;
            if section == "tail" {
                return Err(ConfigError::FileOnly {
                    key: format!("tail.{key}"),
                    var,
                });
            }
            let dotted = format!("{section}.{key}");
            let Some(slot) = self.slot(section, &key) else {
                return Err(ConfigError::UnknownEnv {
                    hint: format!(
                        "[{section}] has {}",
                        env_names(section)
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    var,
                });
            };
            if slot.is_array() {
                return Err(ConfigError::FileOnly { var, key: dotted });
            }
            let input = Input {
                raw: Raw::Str(&value),
                from_env: true,
                origin: Origin::Env { var: var.clone() },
            };
            slot.assign(&dotted, &input)?;
        }
        Ok(())
    }

    /// Checks what the values mean: addresses parse, URLs are absolute http(s), limits and
    /// intervals are positive. Returns the first problem, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, value: &str, expected: &str| ConfigError::InvalidValue {
            key: key.to_string(),
            value: quote(value),
            expected: expected.to_string(),
            origin: Origin::Effective,
        };
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "server.listen",
                &self.server.listen,
                "a socket address IP:PORT, e.g. \"127.0.0.1:8930\" or \"[::1]:8930\" \
                 (host names are not accepted)",
            ));
        }
        if self.server.max_body < MIN_MAX_BODY {
            return Err(ConfigError::InvalidValue {
                key: "server.max_body".into(),
                value: format_size(self.server.max_body),
                expected: "at least 1KiB".into(),
                origin: Origin::Effective,
            });
        }
        if self.server.max_events == 0 {
            return Err(bad("server.max_events", "0", "at least 1, e.g. 20000"));
        }
        if self.storage.path.as_os_str().is_empty() {
            return Err(bad("storage.path", "", "a file path for the database"));
        }
        for (key, url) in [
            ("sanplex.base_url", &self.sanplex.base_url),
            ("platforms.dingtalk", &self.platforms.dingtalk),
            ("platforms.wecom", &self.platforms.wecom),
            ("platforms.feishu", &self.platforms.feishu),
        ] {
            if !is_http_url(url) {
                return Err(bad(
                    key,
                    &crate::mask::url(url),
                    "an absolute http:// or https:// URL, e.g. \"https://example.com\"",
                ));
            }
        }
        if !self.delivery.proxy.is_empty() && !is_http_url(&self.delivery.proxy) {
            return Err(bad(
                "delivery.proxy",
                &crate::mask::url(&self.delivery.proxy),
                "an http:// or https:// proxy URL, e.g. \"http://proxy.example.com:3128\" \
                 (user:password@ allowed), or \"\" to connect directly",
            ));
        }
        if self.delivery.retry_schedule.is_empty() {
            return Err(ConfigError::InvalidValue {
                key: "delivery.retry_schedule".into(),
                value: "[]".into(),
                expected: "at least one delay, e.g. [\"5s\", \"30s\"]".into(),
                origin: Origin::Effective,
            });
        }
        if !(1..=10_000).contains(&self.delivery.max_in_flight) {
            return Err(bad(
                "delivery.max_in_flight",
                &self.delivery.max_in_flight.to_string(),
                "a number from 1 to 10000",
            ));
        }
        if self.delivery.workers > 1024 {
            return Err(bad(
                "delivery.workers",
                &self.delivery.workers.to_string(),
                "0 (one per core) or a number up to 1024",
            ));
        }
        for (key, d) in [
            ("delivery.timeout", self.delivery.timeout),
            ("delivery.async_interval", self.delivery.async_interval),
        ] {
            if d.is_zero() {
                return Err(bad(key, &format_duration(d), "a duration above zero"));
            }
        }
        for (name, windows) in [
            ("dinggroup", &self.limits.dinggroup),
            ("wechatgroup", &self.limits.wechatgroup),
            ("feishugroup", &self.limits.feishugroup),
            ("wechatuser_member", &self.limits.wechatuser_member),
        ] {
            for (i, w) in windows.iter().enumerate() {
                if w.count == 0 || w.per.is_zero() {
                    return Err(bad(
                        &format!("limits.{name}[{i}]"),
                        &w.to_string(),
                        "a window whose count and duration are both above zero, e.g. \"20/60s\"",
                    ));
                }
            }
        }
        for (i, tail) in self.tail.iter().enumerate() {
            if tail.path.trim().is_empty() {
                return Err(bad(
                    &format!("tail[{i}].path"),
                    &tail.path,
                    "a non-empty file path or glob",
                ));
            }
            if let Err(e) = glob::Pattern::new(&tail.path) {
                return Err(bad(
                    &format!("tail[{i}].path"),
                    &tail.path,
                    &format!("a valid glob ({e})"),
                ));
            }
            if tail.max_line == 0 {
                return Err(bad(
                    &format!("tail[{i}].max_line"),
                    "0",
                    "a size above zero",
                ));
            }
        }
        let db = &self.sanplex_db;
        if !db.url.is_empty() {
            if !db.url.starts_with("mysql://") {
                return Err(bad(
                    "sanplex_db.url",
                    &crate::mask::url(&db.url),
                    "a mysql:// URL, e.g. \"mysql://reader:pw@127.0.0.1:3306/zentao\", \
                     or \"\" to turn the poller off",
                ));
            }
            if db.poll_interval.is_zero() {
                return Err(bad(
                    "sanplex_db.poll_interval",
                    &format_duration(db.poll_interval),
                    "a duration above zero",
                ));
            }
        }
        Ok(())
    }

    /// Whether `server.listen` is a loopback address, where running without a token is safe.
    /// An address that does not parse is not loopback.
    pub fn listen_is_loopback(&self) -> bool {
        self.server
            .listen
            .parse::<SocketAddr>()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false)
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
    /// every URL ([`URL_KEYS`]: passwords, token query values). This is what `sanhook
    /// check-config` prints; without secrets it parses back to an equal `Config`.
    pub fn render_effective(&self) -> String {
        let mut out = String::from("# sanhook effective configuration (secrets masked)\n");
        for (section, _) in SECTIONS {
            out.push_str(&format!("\n[{section}]\n"));
            for (key, rendered) in self.render_section(section) {
                out.push_str(&format!("{key} = {rendered}\n"));
            }
        }
        // `slot` needs `&mut`; a clone keeps this `&self` while reusing the one key registry.
        let mut copy = self.clone();
        for tail in &mut copy.tail {
            out.push_str("\n[[tail]]\n");
            for key in TAIL_KEYS {
                if let Some(slot) = tail_slot(tail, key) {
                    out.push_str(&format!("{key} = {}\n", slot.render()));
                }
            }
        }
        out
    }

    /// The keys of one section with their values as TOML, secrets masked (see
    /// [`Config::render_effective`]).
    fn render_section(&self, section: &str) -> Vec<(&'static str, String)> {
        let keys = SECTIONS
            .iter()
            .find(|(s, _)| *s == section)
            .map_or(&[][..], |(_, k)| *k);
        let mut copy = self.clone();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let dotted = format!("{section}.{key}");
            let rendered = match copy.slot(section, key) {
                None => continue,
                Some(_) if dotted == "server.token" && !self.server.token.is_empty() => {
                    toml_string(MASK)
                }
                Some(Slot::Str(s)) if URL_KEYS.contains(&dotted.as_str()) => {
                    toml_string(&crate::mask::url(s))
                }
                Some(slot) => slot.render(),
            };
            out.push((*key, rendered));
        }
        out
    }

    /// All-empty values, the base the embedded defaults are parsed onto.
    fn blank() -> Config {
        Config {
            server: ServerConfig {
                listen: String::new(),
                token: String::new(),
                max_body: 0,
                max_events: 0,
            },
            storage: StorageConfig {
                path: PathBuf::new(),
                retention: Duration::ZERO,
            },
            sanplex: SanplexConfig {
                base_url: String::new(),
                lang: Lang::default(),
            },
            delivery: DeliveryConfig {
                timeout: Duration::ZERO,
                async_interval: Duration::ZERO,
                retry_schedule: Vec::new(),
                max_retry_after: Duration::ZERO,
                allow_private: false,
                allow_link_local: false,
                proxy: String::new(),
                workers: 0,
                max_in_flight: 0,
                disable_after: Duration::ZERO,
                failing_after: Duration::ZERO,
            },
            limits: LimitsConfig {
                dinggroup: Vec::new(),
                wechatgroup: Vec::new(),
                feishugroup: Vec::new(),
                wechatuser_member: Vec::new(),
                dingtalk_throttle: Duration::ZERO,
            },
            platforms: PlatformsConfig {
                dingtalk: String::new(),
                wecom: String::new(),
                feishu: String::new(),
            },
            tail: Vec::new(),
            sanplex_db: SanplexDbConfig {
                url: String::new(),
                poll_interval: Duration::ZERO,
                start_at: StartAt::default(),
                gap_grace: Duration::ZERO,
            },
        }
    }

    /// The one place that maps `section.key` to a field. Parsing, env overrides and rendering
    /// all go through it; a test checks it covers every name in [`SECTIONS`].
    fn slot(&mut self, section: &str, key: &str) -> Option<Slot<'_>> {
        Some(match (section, key) {
            ("server", "listen") => Slot::Str(&mut self.server.listen),
            ("server", "token") => Slot::Str(&mut self.server.token),
            ("server", "max_body") => Slot::Size(&mut self.server.max_body),
            ("server", "max_events") => Slot::Count(&mut self.server.max_events),
            ("storage", "path") => Slot::Path(&mut self.storage.path),
            ("storage", "retention") => Slot::Duration(&mut self.storage.retention),
            ("sanplex", "base_url") => Slot::Str(&mut self.sanplex.base_url),
            ("sanplex", "lang") => Slot::Lang(&mut self.sanplex.lang),
            ("delivery", "timeout") => Slot::Duration(&mut self.delivery.timeout),
            ("delivery", "async_interval") => Slot::Duration(&mut self.delivery.async_interval),
            ("delivery", "retry_schedule") => Slot::Durations(&mut self.delivery.retry_schedule),
            ("delivery", "max_retry_after") => Slot::Duration(&mut self.delivery.max_retry_after),
            ("delivery", "disable_after") => Slot::Duration(&mut self.delivery.disable_after),
            ("delivery", "failing_after") => Slot::Duration(&mut self.delivery.failing_after),
            ("delivery", "allow_private") => Slot::Bool(&mut self.delivery.allow_private),
            ("delivery", "allow_link_local") => Slot::Bool(&mut self.delivery.allow_link_local),
            ("delivery", "proxy") => Slot::Str(&mut self.delivery.proxy),
            ("delivery", "workers") => Slot::Count(&mut self.delivery.workers),
            ("delivery", "max_in_flight") => Slot::Count(&mut self.delivery.max_in_flight),
            ("limits", "dinggroup") => Slot::Windows(&mut self.limits.dinggroup),
            ("limits", "wechatgroup") => Slot::Windows(&mut self.limits.wechatgroup),
            ("limits", "feishugroup") => Slot::Windows(&mut self.limits.feishugroup),
            ("limits", "wechatuser_member") => Slot::Windows(&mut self.limits.wechatuser_member),
            ("limits", "dingtalk_throttle") => Slot::Duration(&mut self.limits.dingtalk_throttle),
            ("platforms", "dingtalk") => Slot::Str(&mut self.platforms.dingtalk),
            ("platforms", "wecom") => Slot::Str(&mut self.platforms.wecom),
            ("platforms", "feishu") => Slot::Str(&mut self.platforms.feishu),
            ("sanplex_db", "url") => Slot::Str(&mut self.sanplex_db.url),
            ("sanplex_db", "poll_interval") => Slot::Duration(&mut self.sanplex_db.poll_interval),
            ("sanplex_db", "start_at") => Slot::StartAt(&mut self.sanplex_db.start_at),
            ("sanplex_db", "gap_grace") => Slot::Duration(&mut self.sanplex_db.gap_grace),
            _ => return None,
        })
    }

    /// Reads a TOML document onto `self`: only the keys it names change, except `[[tail]]`,
    /// which replaces the list as a whole.
    fn merge_toml(&mut self, text: &str, path: Option<&Path>) -> Result<(), ConfigError> {
        let doc = DeTable::parse(text).map_err(|e| syntax_error(&e, text, path))?;
        let at = |pos: usize| Origin::File {
            path: path.map(Path::to_path_buf),
            line: Some(line_of(text, pos)),
        };
        for (name, value) in doc.get_ref().iter() {
            let section: &str = name.get_ref();
            if section == "tail" {
                self.tail = parse_tails(value, text, path)?;
                continue;
            }
            let Some((_, keys)) = SECTIONS.iter().find(|(s, _)| *s == section) else {
                let hint = if value.get_ref().is_table() {
                    format!("known sections are {}", section_list())
                } else {
                    format!(
                        "keys belong under a section ({}), not at the top of the file",
                        section_list()
                    )
                };
                return Err(ConfigError::UnknownKey {
                    key: section.to_string(),
                    origin: at(name.span().start),
                    hint,
                });
            };
            let Some(table) = value.get_ref().as_table() else {
                return Err(ConfigError::InvalidValue {
                    key: section.to_string(),
                    value: value_text(value.get_ref()),
                    expected: format!("a table: write [{section}] and its keys below it"),
                    origin: at(value.span().start),
                });
            };
            for (key, value) in table.iter() {
                let key: &str = key.get_ref();
                let dotted = format!("{section}.{key}");
                let Some(slot) = self.slot(section, key) else {
                    return Err(ConfigError::UnknownKey {
                        key: dotted,
                        origin: at(name_span_of(table, key).unwrap_or(value.span().start)),
                        hint: format!("[{section}] has {}", keys.join(", ")),
                    });
                };
                let input = Input {
                    raw: Raw::of(value.get_ref()),
                    from_env: false,
                    origin: at(value.span().start),
                };
                slot.assign(&dotted, &input)?;
            }
        }
        Ok(())
    }
}

/// A mutable view of one config field, typed by how it is written.
enum Slot<'a> {
    Str(&'a mut String),
    Path(&'a mut PathBuf),
    Duration(&'a mut Duration),
    Size(&'a mut u64),
    Bool(&'a mut bool),
    /// A whole number (0 or more), written without quotes (env: digits).
    Count(&'a mut u64),
    Lang(&'a mut Lang),
    StartAt(&'a mut StartAt),
    Durations(&'a mut Vec<Duration>),
    Windows(&'a mut Vec<Window>),
}

/// A value as written, before it is given a type.
enum Raw<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Array(&'a [Spanned<DeValue<'a>>]),
    /// Floats, datetimes, tables and out-of-range integers: never valid for any key here.
    Other(String),
}

impl<'a> Raw<'a> {
    fn of(v: &'a DeValue<'a>) -> Raw<'a> {
        match v {
            DeValue::String(s) => Raw::Str(s),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Raw::Int(n),
                Err(_) => Raw::Other(i.to_string()),
            },
            DeValue::Boolean(b) => Raw::Bool(*b),
            DeValue::Array(a) => Raw::Array(a),
            other => Raw::Other(value_text(other)),
        }
    }

    /// The value as the user wrote it, for error messages.
    fn text(&self) -> String {
        match self {
            Raw::Str(s) => quote(s),
            Raw::Int(n) => n.to_string(),
            Raw::Bool(b) => b.to_string(),
            Raw::Array(_) => "an array".to_string(),
            Raw::Other(s) => s.clone(),
        }
    }
}

/// A value plus where it came from.
struct Input<'a> {
    raw: Raw<'a>,
    /// Environment values are always strings, so booleans are spelt `true/false/1/0` there.
    from_env: bool,
    origin: Origin,
}

const EXPECT_DURATION: &str =
    "a duration with a unit: ms, s, m, h or d, e.g. \"10s\", \"500ms\", \"1h\"";
const EXPECT_SIZE: &str =
    "a size in bytes or with a unit KiB, MiB or GiB, e.g. \"16MiB\", \"512KiB\" or 1048576";
const EXPECT_WINDOW: &str = "a window \"COUNT/DURATION\", e.g. \"20/60s\"";
const EXPECT_STRING: &str = "a string in quotes";

impl Slot<'_> {
    fn is_array(&self) -> bool {
        matches!(self, Slot::Durations(_) | Slot::Windows(_))
    }

    /// Parses `input` into the field, or explains what `key` expects.
    fn assign(self, key: &str, input: &Input<'_>) -> Result<(), ConfigError> {
        let bad = |expected: &str| ConfigError::InvalidValue {
            key: key.to_string(),
            value: match &input.raw {
                _ if key == "server.token" => MASK.to_string(),
                Raw::Str(s) if URL_KEYS.contains(&key) => quote(&crate::mask::url(s)),
                raw => crate::mask::text(&raw.text()).into_owned(),
            },
            expected: expected.to_string(),
            origin: input.origin.clone(),
        };
        match self {
            Slot::Str(field) => match input.raw {
                Raw::Str(s) => *field = s.to_string(),
                _ => return Err(bad(EXPECT_STRING)),
            },
            Slot::Path(field) => match input.raw {
                Raw::Str(s) => *field = PathBuf::from(s),
                _ => return Err(bad("a file path in quotes")),
            },
            Slot::Duration(field) => *field = duration_of(&input.raw).map_err(|e| bad(&e))?,
            Slot::Size(field) => *field = size_of(&input.raw).map_err(bad)?,
            Slot::Bool(field) => {
                *field = match (&input.raw, input.from_env) {
                    (Raw::Bool(b), _) => *b,
                    (Raw::Str(s), true) => match s.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("true, false, 1 or 0")),
                    },
                    _ => return Err(bad("true or false (without quotes)")),
                }
            }
            Slot::Count(field) => {
                *field = match (&input.raw, input.from_env) {
                    (Raw::Int(n), _) if *n >= 0 => *n as u64,
                    (Raw::Str(s), true) => s
                        .trim()
                        .parse()
                        .map_err(|_| bad("a whole number, e.g. 64"))?,
                    _ => return Err(bad("a whole number (without quotes), e.g. 64")),
                }
            }
            Slot::Lang(field) => {
                *field = match input.raw {
                    Raw::Str(s) => Lang::parse(s),
                    _ => None,
                }
                .ok_or_else(|| bad("\"en\" or \"zh-cn\""))?
            }
            Slot::StartAt(field) => {
                *field = match input.raw {
                    Raw::Str(s) => StartAt::parse(s),
                    _ => None,
                }
                .ok_or_else(|| bad("\"beginning\" or \"end\""))?
            }
            Slot::Durations(field) => {
                let Raw::Array(items) = input.raw else {
                    return Err(bad("an array of durations, e.g. [\"5s\", \"30s\", \"2m\"]"));
                };
                *field = each_item(key, items, input, duration_of)?;
            }
            Slot::Windows(field) => {
                let Raw::Array(items) = input.raw else {
                    return Err(bad("an array of windows, e.g. [\"20/60s\"]"));
                };
                *field = each_item(key, items, input, |raw| match raw {
                    Raw::Str(s) => Window::parse(s).ok_or_else(|| EXPECT_WINDOW.to_string()),
                    _ => Err(EXPECT_WINDOW.to_string()),
                })?;
            }
        }
        Ok(())
    }

    /// The field as a TOML value in the units a person would write.
    fn render(&self) -> String {
        let list = |items: Vec<String>| {
            let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
            format!("[{}]", quoted.join(", "))
        };
        match self {
            Slot::Str(s) => toml_string(s),
            Slot::Path(p) => toml_string(&p.to_string_lossy()),
            Slot::Duration(d) => toml_string(&format_duration(**d)),
            Slot::Size(n) => toml_string(&format_size(**n)),
            Slot::Bool(b) => b.to_string(),
            Slot::Count(n) => n.to_string(),
            Slot::Lang(l) => toml_string(l.as_str()),
            Slot::StartAt(s) => toml_string(s.as_str()),
            Slot::Durations(v) => list(v.iter().map(|d| format_duration(*d)).collect()),
            Slot::Windows(v) => list(v.iter().map(Window::to_string).collect()),
        }
    }
}

/// Parses every element of an array value, naming the failing one as `key[i]`.
fn each_item<T>(
    key: &str,
    items: &[Spanned<DeValue<'_>>],
    input: &Input<'_>,
    parse: impl Fn(&Raw<'_>) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let raw = Raw::of(item.get_ref());
            parse(&raw).map_err(|expected| ConfigError::InvalidValue {
                key: format!("{key}[{i}]"),
                value: raw.text(),
                expected,
                origin: input.origin.clone(),
            })
        })
        .collect()
}

fn duration_of(raw: &Raw<'_>) -> Result<Duration, String> {
    match raw {
        Raw::Str(s) => parse_duration(s),
        Raw::Int(n) => Err(format!(
            "a duration with a unit, e.g. \"{n}s\" or \"{n}ms\" (a plain number is ambiguous)"
        )),
        _ => Err(EXPECT_DURATION.to_string()),
    }
}

fn size_of(raw: &Raw<'_>) -> Result<u64, &'static str> {
    match raw {
        Raw::Str(s) => parse_size(s),
        Raw::Int(n) => u64::try_from(*n).map_err(|_| EXPECT_SIZE),
        _ => Err(EXPECT_SIZE),
    }
}

/// Parses a duration such as `"10s"`, `"500ms"`, `"2m"`, `"1h"`, `"30d"`.
///
/// A unit is required: `"10"` could mean seconds or milliseconds, and guessing wrong turns a
/// 10-second timeout into a 10-millisecond one. The error text says what is expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let Ok(n) = number.parse::<u64>() else {
        return Err(EXPECT_DURATION.to_string());
    };
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => {
            return Err(format!(
                "a duration with a unit, e.g. \"{n}s\" or \"{n}ms\" (a plain number is ambiguous)"
            ))
        }
        _ => return Err(EXPECT_DURATION.to_string()),
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{EXPECT_DURATION} (this one is too large)"))
}

/// Renders a duration in the largest unit that divides it exactly (`"1h"`, `"90s"`, `"500ms"`),
/// the inverse of [`parse_duration`]. Sub-millisecond parts, which no config value can carry,
/// are dropped.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Parses a size: plain bytes (`"123"`, `"123B"`) or `KiB`, `MiB`, `GiB` (case-insensitive).
/// Decimal units (`MB`) are refused rather than guessed.
pub fn parse_size(s: &str) -> Result<u64, &'static str> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let n: u64 = number.parse().map_err(|_| EXPECT_SIZE)?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(EXPECT_SIZE),
    };
    n.checked_mul(factor).ok_or(EXPECT_SIZE)
}

/// Renders a size in the largest binary unit that divides it exactly, else plain bytes.
pub fn format_size(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n != 0 && n % size == 0 {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}

/// Splits `SANHOOK_` + `rest` into (section, lower-case key), the longest section winning.
fn env_target(var: &str, rest: &str) -> Result<(&'static str, String), ConfigError> {
    let mut best: Option<&'static str> = None;
    for section in SECTIONS.iter().map(|(s, _)| *s).chain(["tail"]) {
        let upper = section.to_ascii_uppercase();
        let prefixed = rest.len() > upper.len()
            && rest.starts_with(&upper)
            && rest.as_bytes()[upper.len()] == b'_';
        if prefixed && best.is_none_or(|b| b.len() < section.len()) {
            best = Some(section);
        }
    }
    let Some(section) = best else {
        return Err(ConfigError::UnknownEnv {
            var: var.to_string(),
            hint: format!(
                "overrides are SANHOOK_<SECTION>_<KEY> with a section among {}, e.g. \
                 SANHOOK_SERVER_LISTEN",
                SECTIONS
                    .iter()
                    .map(|(s, _)| s.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    let key = &rest[section.len() + 1..];
    // Keys are written upper case; a lower-case tail is not this naming scheme.
    if key.is_empty() || key.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(ConfigError::UnknownEnv {
            var: var.to_string(),
            hint: "the key part must be upper case, e.g. SANHOOK_SERVER_LISTEN".to_string(),
        });
    }
    Ok((section, key.to_ascii_lowercase()))
}

/// The override names of the scalar keys of a section.
fn env_names(section: &str) -> impl Iterator<Item = String> + '_ {
    let keys = SECTIONS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, k)| *k)
        .unwrap_or(&[]);
    let mut probe = Config::blank();
    let scalar: Vec<String> = keys
        .iter()
        .filter(|k| probe.slot(section, k).is_some_and(|s| !s.is_array()))
        .map(|k| format!("{ENV_PREFIX}{}_{}", section, k).to_ascii_uppercase())
        .collect();
    scalar.into_iter()
}

/// The process's `SANHOOK_*` variables. A non-UTF-8 value is an error rather than a panic
/// (`std::env::vars` would panic) or a silent skip.
fn env_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        match value.into_string() {
            Ok(value) => vars.push((name.to_string(), value)),
            Err(_) => {
                return Err(ConfigError::EnvNotUnicode {
                    var: name.to_string(),
                })
            }
        }
    }
    Ok(vars)
}

/// Reads a file; `Ok(None)` when it does not exist.
fn read_file(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses the `tail` value: an array of tables, each with the keys of [`TAIL_KEYS`].
fn parse_tails(
    value: &Spanned<DeValue<'_>>,
    text: &str,
    path: Option<&Path>,
) -> Result<Vec<TailConfig>, ConfigError> {
    let at = |pos: usize| Origin::File {
        path: path.map(Path::to_path_buf),
        line: Some(line_of(text, pos)),
    };
    let Some(items) = value.get_ref().as_array() else {
        return Err(ConfigError::InvalidValue {
            key: "tail".into(),
            value: value_text(value.get_ref()),
            expected: "an array of tables: write each source as [[tail]] (two brackets)".into(),
            origin: at(value.span().start),
        });
    };
    let mut tails = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(table) = item.get_ref().as_table() else {
            return Err(ConfigError::InvalidValue {
                key: format!("tail[{i}]"),
                value: value_text(item.get_ref()),
                expected: "a table with path, start_at and max_line".into(),
                origin: at(item.span().start),
            });
        };
        let mut tail = TailConfig {
            path: String::new(),
            start_at: TAIL_DEFAULT_START_AT,
            max_line: TAIL_DEFAULT_MAX_LINE,
        };
        let mut has_path = false;
        for (key, value) in table.iter() {
            let key: &str = key.get_ref();
            let dotted = format!("tail[{i}].{key}");
            let Some(slot) = tail_slot(&mut tail, key) else {
                return Err(ConfigError::UnknownKey {
                    key: dotted,
                    origin: at(name_span_of(table, key).unwrap_or(value.span().start)),
                    hint: format!("[[tail]] has {}", TAIL_KEYS.join(", ")),
                });
            };
            let input = Input {
                raw: Raw::of(value.get_ref()),
                from_env: false,
                origin: at(value.span().start),
            };
            slot.assign(&dotted, &input)?;
            has_path |= key == "path";
        }
        if !has_path {
            return Err(ConfigError::InvalidValue {
                key: format!("tail[{i}].path"),
                value: "nothing".into(),
                expected: "a path or glob of the NDJSON files to follow, e.g. \
                           path = \"/var/log/sanplex/actions/*.ndjson\""
                    .into(),
                origin: at(item.span().start),
            });
        }
        tails.push(tail);
    }
    Ok(tails)
}

fn tail_slot<'a>(tail: &'a mut TailConfig, key: &str) -> Option<Slot<'a>> {
    Some(match key {
        "path" => Slot::Str(&mut tail.path),
        "start_at" => Slot::StartAt(&mut tail.start_at),
        "max_line" => Slot::Size(&mut tail.max_line),
        _ => return None,
    })
}

/// Where the key `key` itself (not its value) starts in the text, for pointing at unknown keys.
fn name_span_of(table: &DeTable<'_>, key: &str) -> Option<usize> {
    table
        .get_key_value(key)
        .map(|(k, _): (&Spanned<_>, _)| k.span().start)
}

fn syntax_error(e: &toml::de::Error, text: &str, path: Option<&Path>) -> ConfigError {
    let pos = e.span().map(|s| s.start).unwrap_or(0);
    let line = line_of(text, pos);
    let line_start = text[..pos.min(text.len())]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let column = text
        .get(line_start..pos)
        .map(|s| s.chars().count() + 1)
        .unwrap_or(1);
    ConfigError::Syntax {
        origin: Origin::File {
            path: path.map(Path::to_path_buf),
            line: Some(line),
        },
        line,
        column,
        message: e.message().trim().replace('\n', "; "),
    }
}

/// 1-based line number of byte offset `pos`.
fn line_of(text: &str, pos: usize) -> usize {
    let pos = pos.min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn section_list() -> String {
    SECTIONS
        .iter()
        .map(|(s, _)| format!("[{s}]"))
        .chain(["[[tail]]".to_string()])
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_http_url(s: &str) -> bool {
    reqwest::Url::parse(s)
        .map(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        })
        .unwrap_or(false)
}

/// A short description of a TOML value for error messages.
fn value_text(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => quote(s),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// A string quoted for a message: `"10x"`.
fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// A string as a TOML value (quoted and escaped as TOML needs).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/config")
            .join(rel)
    }

    fn fixture_files(dir: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(dir))
            .expect("fixture dir exists")
            .map(|e| e.expect("readable dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        files
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn w(count: u32, per: Duration) -> Window {
        Window { count, per }
    }

    /// CONTRACT §2, written out by hand so that a wrong default in config.toml fails here.
    fn contract_defaults() -> Config {
        Config {
            server: ServerConfig {
                listen: "127.0.0.1:8930".into(),
                token: String::new(),
                max_body: 16 * 1024 * 1024,
                max_events: 20_000,
            },
            storage: StorageConfig {
                path: PathBuf::from("data/sanhook.redb"),
                retention: secs(30 * 86_400),
            },
            sanplex: SanplexConfig {
                base_url: "http://localhost".into(),
                lang: Lang::En,
            },
            delivery: DeliveryConfig {
                timeout: secs(10),
                async_interval: secs(60),
                retry_schedule: vec![
                    secs(5),
                    secs(30),
                    secs(120),
                    secs(600),
                    secs(1800),
                    secs(3600),
                    secs(3 * 3600),
                    secs(6 * 3600),
                ],
                max_retry_after: secs(3600),
                allow_private: true,
                allow_link_local: false,
                proxy: String::new(),
                workers: 0,
                max_in_flight: 64,
                disable_after: secs(5 * 86_400),
                failing_after: secs(3600),
            },
            limits: LimitsConfig {
                dinggroup: vec![w(20, secs(60))],
                wechatgroup: vec![w(20, secs(60))],
                feishugroup: vec![w(5, secs(1)), w(100, secs(60))],
                wechatuser_member: vec![w(30, secs(60))],
                dingtalk_throttle: secs(600),
            },
            platforms: PlatformsConfig {
                dingtalk: "https://oapi.dingtalk.com".into(),
                wecom: "https://qyapi.weixin.qq.com".into(),
                feishu: "https://open.feishu.cn".into(),
            },
            tail: Vec::new(),
            sanplex_db: SanplexDbConfig {
                url: String::new(),
                poll_interval: secs(1),
                start_at: StartAt::End,
                gap_grace: secs(300),
            },
        }
    }

    #[test]
    fn defaults_equal_the_contract() {
        assert_eq!(Config::default(), contract_defaults());
    }

    #[test]
    fn embedded_file_parses_to_defaults_and_is_valid() {
        assert_eq!(
            Config::from_toml_str(DEFAULT_TOML).expect("parses"),
            contract_defaults()
        );
        let defaults = Config::default();
        defaults.validate().expect("defaults are valid");
        assert!(defaults.listen_is_loopback());
        assert_eq!(defaults.token_required_error(), None);
    }

    #[test]
    fn every_default_key_has_a_one_line_comment() {
        for line in DEFAULT_TOML.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            assert!(line.contains(" # "), "no comment on: {line}");
        }
    }

    #[test]
    fn commented_tail_block_matches_tail_defaults() {
        // The [[tail]] block ships commented out; uncommented, it must parse and document the
        // same defaults that an entry without start_at/max_line gets.
        let block: String = DEFAULT_TOML
            .lines()
            .skip_while(|l| !l.starts_with("# [[tail]]"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start_matches('#')))
            .collect();
        assert!(block.contains("[[tail]]"), "the commented block is there");
        let config = Config::from_toml_str(&block).expect("uncommented block parses");
        assert_eq!(
            config.tail,
            vec![TailConfig {
                path: "/var/log/sanplex/actions/*.ndjson".into(),
                start_at: TAIL_DEFAULT_START_AT,
                max_line: TAIL_DEFAULT_MAX_LINE,
            }]
        );
        let bare = Config::from_toml_str("[[tail]]\npath = \"x\"\n").expect("parses");
        assert_eq!(bare.tail[0].start_at, TAIL_DEFAULT_START_AT);
        assert_eq!(bare.tail[0].max_line, TAIL_DEFAULT_MAX_LINE);
    }

    #[test]
    fn every_registered_key_has_a_field_and_appears_in_the_default_file() {
        let mut config = Config::blank();
        for (section, keys) in SECTIONS {
            assert!(
                DEFAULT_TOML.contains(&format!("[{section}]")),
                "[{section}] missing from config.toml"
            );
            for key in *keys {
                assert!(config.slot(section, key).is_some(), "{section}.{key}");
                assert!(
                    DEFAULT_TOML
                        .lines()
                        .any(|l| l.starts_with(&format!("{key} ="))),
                    "{section}.{key} missing from config.toml"
                );
            }
        }
        let mut tail = Config::default();
        tail.tail.push(TailConfig {
            path: String::new(),
            start_at: StartAt::End,
            max_line: 1,
        });
        for key in TAIL_KEYS {
            assert!(tail_slot(&mut tail.tail[0], key).is_some(), "tail.{key}");
        }
    }

    #[test]
    fn good_fixtures_load_and_validate() {
        let files = fixture_files("good");
        assert!(files.len() >= 3, "good fixtures present");
        for file in files {
            let loaded = Config::load_with_env(Some(&file), no_env());
            assert!(loaded.is_ok(), "{}: {:?}", file.display(), loaded.err());
        }
    }

    #[test]
    fn full_fixture_overrides_every_key() {
        let c = Config::load_with_env(Some(&fixture("good/full.toml")), no_env()).expect("loads");
        let expected = Config {
            server: ServerConfig {
                listen: "0.0.0.0:9000".into(),
                token: "s3cret-token".into(),
                max_body: 2 * 1024 * 1024,
                max_events: 5000,
            },
            storage: StorageConfig {
                path: PathBuf::from("/var/lib/sanhook/db.redb"),
                retention: secs(7 * 86_400),
            },
            sanplex: SanplexConfig {
                base_url: "https://pms.example.com/zentao".into(),
                lang: Lang::ZhCn,
            },
            delivery: DeliveryConfig {
                timeout: Duration::from_millis(2500),
                async_interval: secs(300),
                retry_schedule: vec![secs(1), secs(90), secs(7200)],
                max_retry_after: secs(1800),
                allow_private: false,
                allow_link_local: true,
                proxy: "http://squid:pr0xy-pw@proxy.internal:3128".into(),
                workers: 3,
                max_in_flight: 32,
                disable_after: Duration::ZERO,
                failing_after: secs(1800),
            },
            limits: LimitsConfig {
                dinggroup: vec![w(10, secs(60)), w(100, secs(3600))],
                wechatgroup: vec![w(15, secs(60))],
                feishugroup: vec![],
                wechatuser_member: vec![w(1, secs(1))],
                dingtalk_throttle: secs(900),
            },
            platforms: PlatformsConfig {
                dingtalk: "http://127.0.0.1:18001".into(),
                wecom: "http://127.0.0.1:18002/wecom".into(),
                feishu: "https://open.larksuite.com".into(),
            },
            tail: vec![
                TailConfig {
                    path: "/var/log/sanplex/actions/*.ndjson".into(),
                    start_at: StartAt::Beginning,
                    max_line: 1024 * 1024,
                },
                TailConfig {
                    path: "/srv/other/*.log".into(),
                    start_at: StartAt::End,
                    max_line: 65536,
                },
            ],
            sanplex_db: SanplexDbConfig {
                url: "mysql://reader:p@ss:w0rd@db.internal:3306/zentao".into(),
                poll_interval: Duration::from_millis(250),
                start_at: StartAt::Beginning,
                gap_grace: secs(3600),
            },
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn partial_files_keep_other_defaults() {
        let c = Config::load_with_env(Some(&fixture("good/minimal.toml")), no_env()).expect("ok");
        let mut expected = Config::default();
        expected.server.listen = "127.0.0.1:9100".into();
        assert_eq!(c, expected);

        let c = Config::load_with_env(Some(&fixture("good/inline.toml")), no_env()).expect("ok");
        assert_eq!(c.server.listen, "[::1]:8930");
        assert_eq!(c.server.max_body, 1024 * 1024);
        assert_eq!(c.delivery.timeout, secs(30));
        assert_eq!(c.tail.len(), 1);
        assert_eq!(c.tail[0].max_line, 64 * 1024);
        assert_eq!(c.limits, Config::default().limits);
    }

    /// Reads the `# expect-*:` header of a bad fixture.
    fn expectations(text: &str) -> (String, Option<usize>, Vec<String>, Vec<String>) {
        let (mut key, mut line, mut has, mut hasnt) = (None, None, Vec::new(), Vec::new());
        for l in text.lines().take_while(|l| l.starts_with('#')) {
            if let Some(v) = l.strip_prefix("# expect-key: ") {
                key = Some(v.trim().to_string());
            } else if let Some(v) = l.strip_prefix("# expect-line: ") {
                line = Some(v.trim().parse().expect("expect-line is a number"));
            } else if let Some(v) = l.strip_prefix("# expect-text: ") {
                has.push(v.trim().to_string());
            } else if let Some(v) = l.strip_prefix("# expect-no-text: ") {
                hasnt.push(v.trim().to_string());
            }
        }
        (
            key.expect("every bad fixture has expect-key"),
            line,
            has,
            hasnt,
        )
    }

    #[test]
    fn bad_fixtures_fail_naming_their_key() {
        let files = fixture_files("bad");
        assert!(files.len() >= 20, "bad fixtures present");
        for file in files {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file).expect("readable fixture");
            let (key, line, has, hasnt) = expectations(&text);
            let err = match Config::load_with_env(Some(&file), no_env()) {
                Ok(_) => panic!("{name}: loaded, but it should fail on {key}"),
                Err(e) => e,
            };
            let msg = err.to_string();
            if key == "-" {
                assert!(matches!(err, ConfigError::Syntax { .. }), "{name}: {msg}");
            } else {
                assert_eq!(err.key(), Some(key.as_str()), "{name}: {msg}");
                assert!(msg.contains(&format!("`{key}`")), "{name}: {msg}");
            }
            if let Some(line) = line {
                assert_eq!(err.line(), Some(line), "{name}: {msg}");
                assert!(msg.contains(&format!("line {line}")), "{name}: {msg}");
            }
            if err.line().is_some() {
                assert!(msg.contains(&name), "{name}: message names the file: {msg}");
            }
            for t in has {
                assert!(msg.contains(&t), "{name}: {msg:?} lacks {t:?}");
            }
            for t in hasnt {
                assert!(!msg.contains(&t), "{name}: {msg:?} leaks {t:?}");
            }
        }
    }

    #[test]
    fn invalid_value_message_says_value_and_what_to_write() {
        let err = Config::from_toml_str("[delivery]\ntimeout = 10\n").expect_err("no unit");
        let msg = err.to_string();
        assert!(msg.contains("`delivery.timeout`"), "{msg}");
        assert!(msg.contains(": 10:"), "{msg}");
        assert!(msg.contains("\"10s\""), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn syntax_error_reports_line_and_column() {
        let err = Config::from_toml_str("[server]\nlisten = \"a\"\nmax_body = = 3\n")
            .expect_err("syntax");
        match &err {
            ConfigError::Syntax { line, column, .. } => {
                assert_eq!(*line, 3);
                assert!(*column > 1, "column {column}");
            }
            other => panic!("not a syntax error: {other:?}"),
        }
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn explicit_missing_file_is_an_error_but_implicit_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.toml");
        let err = Config::load_with_env(Some(&missing), no_env()).expect_err("missing");
        assert!(matches!(err, ConfigError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("nope.toml"), "{err}");

        // A directory is not a readable file: reported, not treated as absent.
        let err = Config::load_with_env(Some(dir.path()), no_env()).expect_err("a directory");
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    }

    #[test]
    fn env_overrides_scalars_over_the_file() {
        let vars = env(&[
            ("SANHOOK_SERVER_LISTEN", "127.0.0.1:9999"),
            ("SANHOOK_SERVER_TOKEN", "from-env"),
            ("SANHOOK_SERVER_MAX_BODY", "1MiB"),
            ("SANHOOK_STORAGE_PATH", "/tmp/x.redb"),
            ("SANHOOK_DELIVERY_TIMEOUT", "3s"),
            ("SANHOOK_DELIVERY_ALLOW_PRIVATE", "1"),
            ("SANHOOK_SANPLEX_LANG", "en"),
            ("SANHOOK_LIMITS_DINGTALK_THROTTLE", "1m"),
            ("SANHOOK_PLATFORMS_FEISHU", "http://127.0.0.1:1"),
            ("SANHOOK_SANPLEX_DB_START_AT", "end"),
            ("PATH", "/usr/bin"),
        ]);
        let c = Config::load_with_env(Some(&fixture("good/full.toml")), vars).expect("loads");
        assert_eq!(c.server.listen, "127.0.0.1:9999");
        assert_eq!(c.server.token, "from-env");
        assert_eq!(c.server.max_body, 1024 * 1024);
        assert_eq!(c.storage.path, PathBuf::from("/tmp/x.redb"));
        assert_eq!(c.delivery.timeout, secs(3));
        assert!(c.delivery.allow_private);
        assert_eq!(c.sanplex.lang, Lang::En);
        assert_eq!(c.limits.dingtalk_throttle, secs(60));
        assert_eq!(c.platforms.feishu, "http://127.0.0.1:1");
        assert_eq!(c.sanplex_db.start_at, StartAt::End);
        // Untouched keys keep the file's values.
        assert_eq!(c.storage.retention, secs(7 * 86_400));
    }

    #[test]
    fn env_longest_section_wins() {
        let mut c = Config::default();
        c.apply_env(env(&[
            ("SANHOOK_SANPLEX_DB_URL", "mysql://u:p@h/db"),
            ("SANHOOK_SANPLEX_DB_POLL_INTERVAL", "2s"),
            ("SANHOOK_SANPLEX_BASE_URL", "https://pms.example.com"),
        ]))
        .expect("applies");
        assert_eq!(c.sanplex_db.url, "mysql://u:p@h/db");
        assert_eq!(c.sanplex_db.poll_interval, secs(2));
        assert_eq!(c.sanplex.base_url, "https://pms.example.com");
        assert_eq!(
            env_target("SANHOOK_SANPLEX_DB_URL", "SANPLEX_DB_URL").expect("maps"),
            ("sanplex_db", "url".to_string())
        );
    }

    #[test]
    fn env_booleans() {
        for (text, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("false", false),
            ("0", false),
        ] {
            let mut c = Config::default();
            c.delivery.allow_private = !want;
            c.apply_env(env(&[("SANHOOK_DELIVERY_ALLOW_PRIVATE", text)]))
                .expect("applies");
            assert_eq!(c.delivery.allow_private, want, "{text}");
        }
        let err = Config::default()
            .apply_env(env(&[("SANHOOK_DELIVERY_ALLOW_PRIVATE", "yes")]))
            .expect_err("yes is not a boolean");
        assert_eq!(err.key(), Some("delivery.allow_private"));
        assert!(
            err.to_string().contains("SANHOOK_DELIVERY_ALLOW_PRIVATE"),
            "{err}"
        );
    }

    #[test]
    fn env_ignores_what_is_not_an_override() {
        let mut c = Config::default();
        c.apply_env(env(&[
            ("SANHOOK_TEST_FAKE_PORT", "1"),
            ("SANHOOK_LOG", "debug"),
            ("SANHOOK_LOG_FORMAT", "json"),
            ("SANHOOK_CONFIG", "/etc/sanhook.toml"),
            ("NOT_SANHOOK_SERVER_LISTEN", "x"),
        ]))
        .expect("nothing to apply");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn env_errors_name_the_variable() {
        // (variable, value, what the message must contain, the key it is about)
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("SANHOOK_SERVER_LISEN", "x", "SANHOOK_SERVER_LISTEN", None),
            ("SANHOOK_SERVR_LISTEN", "x", "SANHOOK_SERVR_LISTEN", None),
            ("SANHOOK_SERVER_listen", "x", "upper case", None),
            (
                "SANHOOK_DELIVERY_RETRY_SCHEDULE",
                "5s",
                "file only",
                Some("delivery.retry_schedule"),
            ),
            (
                "SANHOOK_LIMITS_DINGGROUP",
                "1/1s",
                "file only",
                Some("limits.dinggroup"),
            ),
            ("SANHOOK_TAIL_PATH", "x", "file only", Some("tail.path")),
            (
                "SANHOOK_DELIVERY_TIMEOUT",
                "10",
                "\"10s\"",
                Some("delivery.timeout"),
            ),
            (
                "SANHOOK_SERVER_MAX_BODY",
                "lots",
                "MiB",
                Some("server.max_body"),
            ),
            ("SANHOOK_SANPLEX_LANG", "de", "zh-cn", Some("sanplex.lang")),
        ];
        for (var, value, text, key) in cases {
            let err = Config::default()
                .apply_env(env(&[(var, value)]))
                .expect_err(var);
            let msg = err.to_string();
            assert!(msg.contains(var), "{var}: {msg}");
            assert!(msg.contains(text), "{var}: {msg} lacks {text}");
            assert_eq!(err.key(), *key, "{var}: {msg}");
        }
    }

    #[test]
    fn env_secret_in_bad_value_is_not_echoed() {
        let err = Config::load_with_env(
            None,
            env(&[("SANHOOK_SANPLEX_DB_URL", "postgres://u:hunter2@h/db")]),
        )
        .expect_err("not mysql");
        assert_eq!(err.key(), Some("sanplex_db.url"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn render_effective_round_trips() {
        let mut full =
            Config::load_with_env(Some(&fixture("good/full.toml")), no_env()).expect("loads");
        // Without secrets nothing is masked, so the rendering must read back identically.
        full.server.token.clear();
        full.sanplex_db.url = "mysql://reader@db.internal/zentao".into();
        full.delivery.proxy = "http://proxy.internal:3128".into();
        for config in [Config::default(), full] {
            let text = config.render_effective();
            let back = Config::from_toml_str(&text).expect("rendering parses");
            assert_eq!(back, config, "{text}");
        }
    }

    #[test]
    fn render_effective_uses_human_units() {
        let text = Config::default().render_effective();
        for line in [
            "max_body = \"16MiB\"",
            "max_events = 20000",
            "retention = \"30d\"",
            "timeout = \"10s\"",
            "async_interval = \"1m\"",
            "retry_schedule = [\"5s\", \"30s\", \"2m\", \"10m\", \"30m\", \"1h\", \"3h\", \"6h\"]",
            "feishugroup = [\"5/1s\", \"100/1m\"]",
            "allow_private = true",
            "lang = \"en\"",
            "start_at = \"end\"",
            "[sanplex_db]",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn render_effective_masks_secrets() {
        let c = Config::load_with_env(Some(&fixture("good/full.toml")), no_env()).expect("loads");
        let text = c.render_effective();
        assert!(!text.contains("s3cret-token"), "{text}");
        assert!(!text.contains("w0rd"), "{text}");
        assert!(!text.contains("pr0xy-pw"), "{text}");
        assert!(
            text.contains("proxy = \"http://squid:******@proxy.internal:3128\""),
            "{text}"
        );
        assert!(text.contains("token = \"******\""), "{text}");
        assert!(
            text.contains("url = \"mysql://reader:******@db.internal:3306/zentao\""),
            "{text}"
        );
        let back = Config::from_toml_str(&text).expect("masked rendering parses");
        assert_eq!(back.server.token, MASK);
        assert_eq!(back.tail, c.tail);
        // An empty token stays visibly empty: masking it would hide that auth is off.
        assert!(Config::default()
            .render_effective()
            .contains("token = \"\""));
    }

    #[test]
    fn secrets_never_show_in_urls_or_debug() {
        let mut c =
            Config::load_with_env(Some(&fixture("good/full.toml")), no_env()).expect("loads");
        c.sanplex.base_url = "https://pm:base-pw@pms.example.com/zentao".into();
        c.platforms.dingtalk = "https://u:ding-pw@oapi.example.com".into();
        c.platforms.wecom = "https://qy.example.com/?access_token=wecom-tok".into();
        let text = c.render_effective();
        let debug = format!("{c:?} {:?} {:?}", c.server, c.sanplex_db);
        for shown in [&text, &debug] {
            for secret in ["s3cret-token", "w0rd", "base-pw", "ding-pw", "wecom-tok"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        assert!(
            text.contains("base_url = \"https://pm:******@pms.example.com/zentao\""),
            "{text}"
        );
        assert!(debug.contains("max_in_flight: 32"), "{debug}");
        let err = Config::from_toml_str("[platforms]\nwecom = \"ftp://u:ftp-pw@h/\"\n")
            .and_then(|c| c.validate())
            .expect_err("not http");
        assert!(!err.to_string().contains("ftp-pw"), "{err}");
    }

    #[test]
    fn durations_parse_and_format() {
        let ok: &[(&str, u64, &str)] = &[
            ("500ms", 500, "500ms"),
            ("10s", 10_000, "10s"),
            (" 90s ", 90_000, "90s"),
            ("2m", 120_000, "2m"),
            ("1h", 3_600_000, "1h"),
            ("30d", 2_592_000_000, "30d"),
            ("1500ms", 1_500, "1500ms"),
            ("0s", 0, "0s"),
            ("60s", 60_000, "1m"),
        ];
        for (text, ms, rendered) in ok {
            let d = parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d, Duration::from_millis(*ms), "{text}");
            assert_eq!(format_duration(d), *rendered, "{text}");
        }
        for bad in [
            "10",
            "",
            "s",
            "1.5s",
            "-1s",
            "10 sec",
            "10S",
            "1w",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("10")
            .expect_err("no unit")
            .contains("\"10s\""));
    }

    #[test]
    fn sizes_parse_and_format() {
        let ok: &[(&str, u64, &str)] = &[
            ("123", 123, "123"),
            ("123B", 123, "123"),
            ("1KiB", 1024, "1KiB"),
            ("16MiB", 16 << 20, "16MiB"),
            ("16 mib", 16 << 20, "16MiB"),
            ("2GiB", 2 << 30, "2GiB"),
            ("1536KiB", 1536 << 10, "1536KiB"),
            ("1025", 1025, "1025"),
            ("0", 0, "0"),
        ];
        for (text, n, rendered) in ok {
            assert_eq!(parse_size(text), Ok(*n), "{text}");
            assert_eq!(format_size(*n), *rendered, "{text}");
        }
        for bad in ["16MB", "1.5MiB", "", "MiB", "-1", "99999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn windows_parse_and_format() {
        assert_eq!(Window::parse("20/60s"), Some(w(20, secs(60))));
        assert_eq!(Window::parse(" 5 / 1s"), Some(w(5, secs(1))));
        assert_eq!(w(100, secs(60)).to_string(), "100/1m");
        for bad in ["20", "20/60", "/60s", "x/1s", "-1/1s", "20/60s/1"] {
            assert_eq!(Window::parse(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn token_is_required_off_loopback() {
        // (listen, token, loopback, refused)
        let cases = [
            ("127.0.0.1:8930", "", true, false),
            ("[::1]:8930", "", true, false),
            ("0.0.0.0:8930", "", false, true),
            ("0.0.0.0:8930", "t", false, false),
            ("192.168.1.5:80", "", false, true),
            ("localhost:8930", "", false, true),
        ];
        for (listen, token, loopback, refused) in cases {
            let mut c = Config::default();
            c.server.listen = listen.into();
            c.server.token = token.into();
            assert_eq!(c.listen_is_loopback(), loopback, "{listen}");
            let err = c.token_required_error();
            assert_eq!(err.is_some(), refused, "{listen} {token:?}");
            if let Some(msg) = err {
                assert!(
                    msg.contains("server.token") && msg.contains(listen),
                    "{msg}"
                );
            }
        }
    }

    #[test]
    fn validate_names_each_bad_key() {
        type Edit = fn(&mut Config);
        let cases: &[(&str, Edit)] = &[
            ("server.listen", |c| c.server.listen = "8930".into()),
            ("server.max_body", |c| c.server.max_body = 1023),
            ("server.max_events", |c| c.server.max_events = 0),
            ("storage.path", |c| c.storage.path = PathBuf::new()),
            ("sanplex.base_url", |c| {
                c.sanplex.base_url = "/zentao".into()
            }),
            ("platforms.dingtalk", |c| {
                c.platforms.dingtalk = "https://".into()
            }),
            ("platforms.feishu", |c| {
                c.platforms.feishu = "file:///x".into()
            }),
            ("delivery.retry_schedule", |c| {
                c.delivery.retry_schedule.clear()
            }),
            ("delivery.timeout", |c| c.delivery.timeout = Duration::ZERO),
            ("delivery.proxy", |c| {
                c.delivery.proxy = "socks5://127.0.0.1:1080".into()
            }),
            ("delivery.proxy", |c| c.delivery.proxy = "proxy:3128".into()),
            ("delivery.async_interval", |c| {
                c.delivery.async_interval = Duration::ZERO
            }),
            ("limits.wechatgroup[0]", |c| {
                c.limits.wechatgroup = vec![w(1, Duration::ZERO)]
            }),
            ("limits.wechatuser_member[0]", |c| {
                c.limits.wechatuser_member = vec![w(0, secs(1))]
            }),
            ("tail[0].path", |c| {
                c.tail.push(TailConfig {
                    path: " ".into(),
                    start_at: StartAt::End,
                    max_line: 1,
                })
            }),
            ("tail[0].path", |c| {
                c.tail.push(TailConfig {
                    path: "/var/log/[oops/*.ndjson".into(),
                    start_at: StartAt::End,
                    max_line: 1,
                })
            }),
            ("sanplex_db.url", |c| c.sanplex_db.url = "mysql:/x".into()),
            ("sanplex_db.poll_interval", |c| {
                c.sanplex_db.url = "mysql://h/db".into();
                c.sanplex_db.poll_interval = Duration::ZERO;
            }),
        ];
        for (key, edit) in cases {
            let mut c = Config::default();
            edit(&mut c);
            let err = c.validate().expect_err(key);
            assert_eq!(err.key(), Some(*key), "{err}");
            assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        }
    }
}
