//! Configuration (docs/reference.md §1–2): the repository's `config.toml` compiled in as the defaults
//! (and the registry of keys and their types), then the file, then `SANHOOK_*` variables, each a
//! TOML table laid over the one below, deserialised once into [`Config`] and checked by
//! [`Config::validate`]. Errors are serde's (or `validate`'s) words with the key, where it was
//! written (file, line and column, or the variable) and secrets masked.

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
pub const DEFAULT_TOML: &str = include_str!("../../config.toml");

/// The file [`Config::load`] reads when no path is given; a missing one means built-in defaults.
pub const DEFAULT_PATH: &str = "config.toml";

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "SANHOOK_";

/// How secrets are shown by [`Config::render_effective`], `Debug` and error messages.
pub use crate::mask::MASK;

/// Default `start_at` of a `[[tail]]` entry (documented, commented out, in [`DEFAULT_TOML`]).
pub const TAIL_DEFAULT_START_AT: StartAt = StartAt::Beginning;

/// Default `max_line` of a `[[tail]]` entry that leaves it out: 1 MiB.
pub const TAIL_DEFAULT_MAX_LINE: u64 = 1024 * 1024;

/// The smallest `server.max_body` accepted: below this even one action event may not fit.
pub const MIN_MAX_BODY: u64 = 1024;

/// Every key with its effective value, each documented in `config.toml`. `Debug` masks secrets,
/// as `check-config` does; `Serialize` writes them as they are (the inverse of loading).
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

/// Declares config sections: each a struct whose keys are `pub` and which refuses unknown keys,
/// with a `Debug` that shows its keys as `check-config` does (config units, secrets masked), so
/// that a secret never reaches a log or a panic message through `{:?}`.
macro_rules! sections {
    ($($(#[$doc:meta])* $name:ident $section:literal {
        $($(#[$attr:meta])* $key:ident: $ty:ty,)*
    })*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$attr])* pub $key: $ty,)*
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut d = f.debug_struct(stringify!($name));
                if let Ok(Value::Table(mut table)) = Value::try_from(self) {
                    for (key, value) in table.iter_mut() {
                        mask(&join($section, key), value);
                        d.field(key, &format_args!("{value}"));
                    }
                }
                d.finish()
            }
        }
    )*};
}

sections! {
    /// `[server]`: the HTTP API. An empty `token` means no auth, refused off loopback
    /// ([`Config::token_required_error`]).
    ServerConfig "server" {
        listen: String, token: String, #[serde(with = "size")] max_body: u64, max_events: u64,
    }
    /// `[storage]`: the redb file.
    StorageConfig "storage" {
        #[serde(serialize_with = "lossy")] path: PathBuf,
        #[serde(with = "duration")] retention: Duration,
    }
    /// `[sanplex]`: how links and labels look.
    SanplexConfig "sanplex" { base_url: String, lang: Lang, }
    /// `[delivery]`: timeouts, retries, address checks, concurrency. An empty `proxy` means
    /// direct, `workers = 0` one per core ([`Config::dispatch_workers`]), a zero
    /// `disable_after` never.
    DeliveryConfig "delivery" {
        #[serde(with = "duration")] timeout: Duration,
        #[serde(with = "duration")] async_interval: Duration,
        #[serde(with = "durations")] retry_schedule: Vec<Duration>,
        #[serde(with = "duration")] max_retry_after: Duration,
        allow_private: bool, allow_link_local: bool, proxy: String, workers: u64, max_in_flight: u64,
        #[serde(with = "duration")] disable_after: Duration,
        #[serde(with = "duration")] failing_after: Duration,
    }
    /// `[limits]`: per-destination sliding windows; every window of a list applies.
    LimitsConfig "limits" {
        dinggroup: Vec<Window>, wechatgroup: Vec<Window>, feishugroup: Vec<Window>,
        wechatuser_member: Vec<Window>, #[serde(with = "duration")] dingtalk_throttle: Duration,
    }
    /// `[platforms]`: API bases of the app-message types.
    PlatformsConfig "platforms" { dingtalk: String, wecom: String, feishu: String, }
    /// One `[[tail]]` entry: a glob of NDJSON files to follow; `start_at` is
    /// [`TAIL_DEFAULT_START_AT`] and `max_line` [`TAIL_DEFAULT_MAX_LINE`] when left out.
    TailConfig "tail" {
        path: String, #[serde(default)] start_at: StartAt,
        #[serde(default = "tail_default_max_line", with = "size")] max_line: u64,
    }
    /// `[cluster]`: several nodes sharing one NATS JetStream. `nats` is comma-separated server
    /// URLs, empty for a single node on redb; an empty `node_id` means the host name.
    ClusterConfig "cluster" {
        nats: String, name: String, node_id: String, shards: u64,
        #[serde(with = "duration")] lease: Duration,
    }
    /// `[sanplex_db]`: the optional database poller, off while `url` is empty.
    SanplexDbConfig "sanplex_db" {
        url: String, #[serde(with = "duration")] poll_interval: Duration, start_at: StartAt,
        #[serde(with = "duration")] gap_grace: Duration,
    }
}

/// A path as TOML text, lossily if not UTF-8 (only an embedder can set such a one).
fn lossy<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

fn tail_default_max_line() -> u64 {
    TAIL_DEFAULT_MAX_LINE
}

/// A value without its secrets: a set `server.token` as [`MASK`], URL credentials masked.
fn mask(key: &str, value: &mut Value) {
    match value {
        Value::String(s) if key == "server.token" && !s.is_empty() => *s = MASK.to_string(),
        Value::String(s) => *s = crate::mask::text(s).into_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| mask(key, v)),
        Value::Table(t) => t.iter_mut().for_each(|(k, v)| mask(&join(key, k), v)),
        _ => {}
    }
}

/// `section.key`, or `key` at the top.
fn join(section: &str, key: &str) -> String {
    [section, key].join(".").trim_start_matches('.').to_string()
}

/// What is wrong with a configuration, in words that name the key (or the variable), the value,
/// what was expected and where it was written.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    key: Option<String>,
    line: Option<usize>,
    message: String,
}

/// Where a value was written, as a suffix of a message (`" in c.toml at line 3, column 9"`,
/// `" (from environment variable X)"` or nothing), and the line of the file.
type Place = (String, Option<usize>);

/// Environment variables: (name, value).
type Vars = Vec<(String, String)>;

impl ConfigError {
    fn new(key: Option<String>, line: Option<usize>, message: String) -> ConfigError {
        ConfigError { key, line, message }
    }

    fn about((at, line): Place, key: String, message: &str) -> ConfigError {
        let message = format!("config key `{key}`{at}: {message}");
        ConfigError::new(Some(key), line, message)
    }

    fn env(var: &str, message: &str) -> ConfigError {
        let message = format!("environment variable {var}: {message} (fix or unset it)");
        ConfigError::new(None, None, message)
    }

    /// The dotted config key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The 1-based line in the config file the error points at, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

/// [`DEFAULT_TOML`] as the table every layer is laid over, and as a `Config`.
static DEFAULTS: LazyLock<(Table, Config)> = LazyLock::new(|| {
    let table: Table = DEFAULT_TOML.parse().expect("config.toml is TOML");
    let config = table.clone().try_into().expect("config.toml is valid");
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

    /// Defaults, then the file (`None`: `./config.toml` if it exists; an explicit path must),
    /// then `SANHOOK_*` variables, then [`Config::validate`]. The token-versus-listen check is
    /// the caller's ([`Config::token_required_error`]): `check-config` still prints the values.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        // A value that is not UTF-8 is an error, not a panic (`std::env::vars`) or a skip.
        let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v)));
        let vars = vars
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .map(|(k, v)| {
                let bad = |_| ConfigError::env(&k, "not valid UTF-8");
                v.into_string().map_err(bad).map(|v| (k.clone(), v))
            });
        Self::load_with_env(path, vars.collect::<Result<Vars, _>>()?)
    }

    /// [`Config::load`] with the environment given explicitly.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = path.unwrap_or(Path::new(DEFAULT_PATH));
        let text = match std::fs::read_to_string(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.is_none() => None,
            read => Some(read.map_err(|e| {
                let message = format!("cannot read config file {}: {e}", file.display());
                ConfigError::new(None, None, message)
            })?),
        };
        let (config, sources) = Sources::load(
            text.as_deref().map(|t| (t, Some(file))),
            vars.into_iter().collect(),
        )?;
        match config.check() {
            Err((key, why)) => Err(ConfigError::about(sources.origin(&key, false), key, &why)),
            Ok(()) => Ok(config),
        }
    }

    /// Parses a config document on top of the defaults. Does not read the environment and does
    /// not [`validate`](Config::validate): it answers "what does this text say".
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        Sources::load(Some((s, None)), vec![]).map(|(config, _)| config)
    }

    /// Checks what the values mean: addresses parse, URLs are absolute http(s), limits and
    /// intervals are positive. Returns the first problem, naming its key and value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check()
            .map_err(|(key, message)| ConfigError::about(Place::default(), key, &message))
    }

    /// [`Config::validate`]'s checks: the first problem, as its key and what is wrong.
    #[rustfmt::skip]
    fn check(&self) -> Result<(), (String, String)> {
        let (server, delivery, cluster, db) = (&self.server, &self.delivery, &self.cluster, &self.sanplex_db);
        let http = |url: &str| is_url(url, &["http", "https"]);
        let nats = |url: &str| is_url(url.trim(), &["nats", "tls", "ws", "wss"]);
        let word = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        const URL: &str = "an absolute http:// or https:// URL, e.g. \"https://example.com\"";
        const ABOVE_ZERO: &str = "a duration above zero";
        const WINDOW: &str = "a window whose count and duration are both above zero, e.g. \"20/60s\"";
        let limits = [("dinggroup", &self.limits.dinggroup), ("wechatgroup", &self.limits.wechatgroup),
            ("feishugroup", &self.limits.feishugroup), ("wechatuser_member", &self.limits.wechatuser_member)];
        // The first bad window, and the first bad [[tail]] key with what it should be.
        let window = limits.into_iter().find_map(|(name, windows)| windows.iter()
            .position(|w| w.count == 0 || w.per.is_zero()).map(|i| format!("limits.{name}[{i}]")));
        let tail = self.tail.iter().enumerate().find_map(|(i, tail)| {
            let glob = glob::Pattern::new(&tail.path).err().map_or(String::new(), |e| format!(" ({e})"));
            let path = (format!("tail[{i}].path"), format!("a non-empty file path or a valid glob{glob}"));
            let max_line = (format!("tail[{i}].max_line"), "a size above zero".to_string());
            (tail.path.trim().is_empty() || !glob.is_empty()).then_some(path).or((tail.max_line == 0).then_some(max_line))
        });
        let (window, (tail, tail_expected)) = (window.unwrap_or_default(), tail.unwrap_or_default());
        let checks = [
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
            (&window, window.is_empty(), WINDOW),
            (&tail, tail.is_empty(), &tail_expected),
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
        ];
        let Some((key, _, expected)) = checks.into_iter().find(|(_, ok, _)| !ok) else { return Ok(()) };
        // The value as check-config writes it, secrets masked.
        let text = toml::to_string(&self.to_table()).expect("a TOML table renders");
        let value = span(&text, key, false).map_or("nothing".into(), |s| crate::mask::text(&text[s]));
        Err((key.to_string(), format!("invalid value {value}, expected {expected}")))
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

    /// What `check-config` prints: every value as TOML in the units a person writes ("10s",
    /// "16MiB"), secrets masked; without secrets it parses back to an equal `Config`.
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

/// The layers loaded: the file's text (and path) and (dotted key, variable) of each override,
/// to point an error at where its key was set.
struct Sources<'a> {
    file: Option<(&'a str, Option<&'a Path>)>,
    env: Vars,
}

impl<'a> Sources<'a> {
    /// The defaults, `file` over them (a section key by key, the rest whole), `vars` over that.
    fn load(
        file: Option<(&'a str, Option<&'a Path>)>,
        vars: Vars,
    ) -> Result<(Config, Self), ConfigError> {
        let mut table = DEFAULTS.0.clone();
        if let Some((text, path)) = file {
            let file: Table = text.parse().map_err(|e: toml::de::Error| {
                let (at, line) = place(text, path, e.span().map_or(0, |s| s.start));
                let why = e.message().trim().replace('\n', "; ");
                ConfigError::new(None, line, format!("TOML syntax error{at}: {why}"))
            })?;
            for (section, value) in file {
                match (table.get_mut(&section), value) {
                    (Some(Value::Table(base)), Value::Table(keys)) => base.extend(keys),
                    (_, value) => drop(table.insert(section, value)),
                }
            }
        }
        let env = merge_env(&mut table, vars)?;
        let sources = Sources { file, env };
        match serde_path_to_error::deserialize(Value::Table(table)) {
            Ok(config) => Ok((config, sources)),
            Err(e) => Err(sources.refused(e.path().to_string(), e.inner().message())),
        }
    }

    /// serde's complaint about `key`, secrets masked, at the place that set it.
    fn refused(&self, mut key: String, message: &str) -> ConfigError {
        let mut message = crate::mask::text(message).into_owned();
        if let (true, Some((head, rest))) = (key == "server.token", message.split_once('`')) {
            let rest = rest.split_once('`').map_or("", |(_, rest)| rest);
            message = format!("{head}`{MASK}`{rest}");
        }
        // Unknown keys point at their name; a missing one at the table that lacks it.
        let missing = message.strip_prefix("missing field `");
        let place = self.origin(&key, missing.is_some() || message.starts_with("unknown"));
        if let Some(field) = missing {
            key = format!("{key}.{}", field.trim_end_matches('`'));
        }
        ConfigError::about(place, key, &message)
    }

    /// Where the value of `key` (or its name, `at_name`) was set: a variable, the file or nowhere.
    fn origin(&self, key: &str, at_name: bool) -> Place {
        if let Some((_, var)) = self.env.iter().rev().find(|(k, _)| k == key) {
            return (format!(" (from environment variable {var})"), None);
        }
        let at = |(text, path)| Some(place(text, path, span(text, key, at_name)?.start));
        self.file.and_then(at).unwrap_or_default()
    }
}

/// Lays the `SANHOOK_<SECTION>_<KEY>` variables of `vars` over `table`, in name order (so the
/// first error is the same on every run), and says which key each one set.
///
/// The longest section that prefixes the name wins (`SANHOOK_SANPLEX_DB_URL` is
/// `sanplex_db.url`). `SANHOOK_TEST_*`, `SANHOOK_LOG*` and names without a `_` after the prefix
/// (`SANHOOK_CONFIG`) are not overrides, nor are names whose section is unknown; a name under
/// a known section must map to a scalar key, or it is an error. A value takes its default's type: booleans `true/false/1/0`, integers digits, else a
/// string (which serde refuses, naming the key, where it does not fit).
fn merge_env(table: &mut Table, vars: Vec<(String, String)>) -> Result<Vars, ConfigError> {
    let (mut vars, mut set) = (vars, Vec::new());
    vars.sort();
    for (var, text) in vars {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest.starts_with("TEST_") || rest.starts_with("LOG") || !rest.contains('_') {
            continue;
        }
        let sections = || DEFAULTS.0.keys().map(String::as_str).chain(["tail"]);
        let under =
            |s: &&str| rest.len() > s.len() + 1 && rest.starts_with(&(s.to_uppercase() + "_"));
        let section = sections()
            .filter(under)
            .max_by_key(|s| s.len())
            .unwrap_or("");
        // docs/reference.md §1: a variable whose section is unknown is not an override (other
        // tools share the prefix, e.g. SANHOOK_TEST_*); a known section with a bad key is an error.
        if section.is_empty() {
            continue;
        }
        let key = &rest[(section.len() + 1).min(rest.len())..];
        if key.bytes().any(|b| b.is_ascii_lowercase()) {
            let known: Vec<_> = DEFAULTS.0.keys().map(|s| s.to_ascii_uppercase()).collect();
            let known = known.join(", ");
            let why = format!(
                "overrides are SANHOOK_<SECTION>_<KEY>, upper case, with a section among {known}"
            );
            return Err(ConfigError::env(&var, &why));
        }
        let key = key.to_ascii_lowercase();
        let default = DEFAULTS.0.get(section).and_then(|keys| keys.get(&key));
        let dotted = format!("{section}.{key}");
        let value = match default {
            Some(Value::Boolean(_)) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Value::Boolean(true),
                "false" | "0" => Value::Boolean(false),
                _ => Value::String(text),
            },
            Some(Value::Integer(_)) => match text.trim().parse::<u64>() {
                Ok(n) => Value::Integer(n.min(i64::MAX as u64) as i64),
                Err(_) => Value::String(text),
            },
            Some(Value::Array(_)) => Value::Array(vec![]),
            _ => Value::String(text),
        };
        if value.is_array() || section == "tail" {
            let place = (format!(" (from environment variable {var})"), None);
            let why = "arrays and [[tail]] are set in the config file only";
            return Err(ConfigError::about(place, dotted, why));
        }
        table[section]
            .as_table_mut()
            .map(|keys| keys.insert(key, value));
        set.push((dotted, var));
    }
    Ok(set)
}

/// Where `key` (dotted, with indexes: `delivery.retry_schedule[1]`, `tail[0].path`) is written
/// in the TOML `text`: its name when `at_name`, else its value. `None` when the text lacks it.
fn span(text: &str, key: &str, at_name: bool) -> Option<std::ops::Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut parts = key.split(['.', '[']);
    let (name, mut value) = doc.get_ref().get_key_value(parts.next()?)?;
    let mut span = if at_name { name.span() } else { value.span() };
    for part in parts {
        (span, value) = match (part.strip_suffix(']'), value.get_ref()) {
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
    Some(span)
}

/// The [`Place`] of byte `pos` in the file `text` at `path`.
fn place(text: &str, path: Option<&Path>, pos: usize) -> Place {
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    let file = path.map_or(String::new(), |p| format!(" in {}", p.display()));
    (
        format!("{file} at line {line}, column {column}"),
        Some(line),
    )
}

/// Whether `s` is an absolute URL with one of `schemes` and a host.
fn is_url(s: &str, schemes: &[&str]) -> bool {
    let ok = |u: reqwest::Url| schemes.contains(&u.scheme()) && u.host_str() != Some("");
    reqwest::Url::parse(s).is_ok_and(|u| u.host_str().is_some() && ok(u))
}
