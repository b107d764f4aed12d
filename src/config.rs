//! Configuration: embedded defaults, then `config.toml`, then `SANHOOK_*` environment variables
//! (CONTRACT §1–2).

use std::path::PathBuf;
use std::time::Duration;

/// Language of labels in notification text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    ZhCn,
}

/// One sliding-window limit, e.g. `20/60s`: at most `count` sends in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u32,
    pub per: Duration,
}

/// Where a source starts in input it has never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

/// The whole configuration, every key with its effective value.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub sanplex: SanplexConfig,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    pub platforms: PlatformsConfig,
    pub tail: Vec<TailConfig>,
    pub sanplex_db: SanplexDbConfig,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// HTTP API and event intake address, e.g. `127.0.0.1:8930`.
    pub listen: String,
    /// Bearer token for `/api/*`; empty = no auth (refused unless `listen` is loopback).
    pub token: String,
    /// Request bodies larger than this get 413.
    pub max_body: u64,
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
#[derive(Debug, Clone, PartialEq)]
pub struct SanplexConfig {
    /// Used to build object links when an event carries no url and the webhook no domain.
    pub base_url: String,
    pub lang: Lang,
}

/// `[delivery]`
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Per HTTP attempt.
    pub timeout: Duration,
    /// How often async webhooks' queued messages are flushed.
    pub async_interval: Duration,
    /// Delays before retry 1..N; after N failed retries the delivery is dead.
    pub retry_schedule: Vec<Duration>,
    /// A longer Retry-After / reset header is cut to this.
    pub max_retry_after: Duration,
    /// false: refuse destinations that resolve to loopback/private/link-local addresses.
    pub allow_private: bool,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub dinggroup: Vec<Window>,
    pub wechatgroup: Vec<Window>,
    pub feishugroup: Vec<Window>,
    pub wechatuser_member: Vec<Window>,
    /// Pause after DingTalk's 130101 (send too fast).
    pub dingtalk_throttle: Duration,
}

/// `[platforms]`: API bases of the app-message types.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformsConfig {
    pub dingtalk: String,
    pub wecom: String,
    pub feishu: String,
}

/// One `[[tail]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TailConfig {
    /// A glob.
    pub path: String,
    pub start_at: StartAt,
    /// Longer lines are quarantined.
    pub max_line: u64,
}

/// `[sanplex_db]`
#[derive(Debug, Clone, PartialEq)]
pub struct SanplexDbConfig {
    /// Empty = off.
    pub url: String,
    pub poll_interval: Duration,
    pub start_at: StartAt,
    pub gap_grace: Duration,
}
