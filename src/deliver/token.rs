//! Access tokens of the app-message types: one cached token per credential set.
//!
//! Sanplex fetches a new token for every message; the platforms limit token calls and a token
//! lives up to two hours, so sanhook keeps one per credential set (platform, API base, app id,
//! secret), for the lifetime the token response states (`expires_in`, or Lark's `expire`, which
//! is shorter when Lark hands back a token it issued earlier) minus a margin, so that a token is
//! refreshed a little before it runs out rather than rejected mid-send. Concurrent senders that
//! find no token share one refresh (moka's `try_get_with`). When a platform still rejects a
//! token, [`TokenCache::invalidate_if`] drops it, but only if it is the one that failed, so that
//! a burst of senders holding the same stale token causes one refresh, not one each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use sha2::{Digest, Sha256};

use super::Attempt;

/// Tokens are refreshed this long before they run out, at most (a tenth of the lifetime for
/// short-lived tokens), so a send never starts with a token about to expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// At most this many credential sets keep a cached token (one per app webhook in practice).
const MAX_TOKENS: u64 = 10_000;

/// One access token and how long the platform said it lives. `Debug` masks the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The token itself (a secret: never logged).
    pub value: String,
    /// The lifetime from the token response.
    pub lifetime: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &crate::mask::MASK)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl Token {
    /// How long the cache keeps it: the lifetime minus [`REFRESH_MARGIN`] (or a tenth of the
    /// lifetime when that is smaller).
    pub fn cache_for(&self) -> Duration {
        self.lifetime - (self.lifetime / 10).min(REFRESH_MARGIN)
    }
}

/// Why no token could be had: the token call's attempt (its request and response for the
/// log, and the classified outcome).
#[derive(Debug, Clone)]
pub struct TokenFailure(pub Box<Attempt>);

/// The cache key of a credential set. The secret enters as a hash: a corrected secret gets a
/// token of its own, and the key holds no secret in clear.
pub fn token_key(platform: &str, base: &str, app_id: &str, secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut hex = String::with_capacity(16);
    for b in &digest[..8] {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("{platform}|{}|{app_id}|{hex}", base.trim_end_matches('/'))
}

/// Expires each token after its own [`Token::cache_for`].
struct PerToken;

impl moka::Expiry<String, Arc<Token>> for PerToken {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Token>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.cache_for())
    }
}

/// The token cache. Cheap to clone (clones share the cache).
#[derive(Clone)]
pub struct TokenCache {
    cache: Cache<String, Arc<Token>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new()
    }
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> TokenCache {
        TokenCache {
            cache: Cache::builder()
                .max_capacity(MAX_TOKENS)
                .expire_after(PerToken)
                .build(),
        }
    }

    /// The cached token of `key`, or the one `fetch` gets. Concurrent callers for the same key
    /// share a single `fetch`; a failed fetch is not cached (the next call tries again).
    pub async fn get<F>(&self, key: &str, fetch: F) -> Result<Arc<Token>, Arc<TokenFailure>>
    where
        F: std::future::Future<Output = Result<Token, TokenFailure>>,
    {
        self.cache
            .try_get_with_by_ref(key, async { fetch.await.map(Arc::new) })
            .await
    }

    /// Drops the cached token of `key` if it is still `stale` (the one a platform rejected).
    /// A token another sender has already refreshed stays.
    pub async fn invalidate_if(&self, key: &str, stale: &Arc<Token>) {
        if let Some(current) = self.cache.get(key).await {
            if Arc::ptr_eq(&current, stale) {
                self.cache.invalidate(key).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn token(v: &str, secs: u64) -> Token {
        Token {
            value: v.into(),
            lifetime: Duration::from_secs(secs),
        }
    }

    #[test]
    fn refresh_margin() {
        assert_eq!(token("t", 7200).cache_for(), Duration::from_secs(6900));
        assert_eq!(token("t", 100).cache_for(), Duration::from_secs(90));
    }

    #[test]
    fn keys_differ_by_secret_and_hide_it() {
        let a = token_key("wecom", "http://x/", "corp", "s1");
        let b = token_key("wecom", "http://x", "corp", "s2");
        assert_ne!(a, b);
        assert!(!a.contains("s1"));
        assert_eq!(a, token_key("wecom", "http://x", "corp", "s1"));
    }

    #[tokio::test]
    async fn one_fetch_serves_concurrent_callers() {
        let cache = TokenCache::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..16 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get("k", async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(token("T1", 7200))
                    })
                    .await
                    .map(|t| t.value.clone())
                    .map_err(|_| ())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Ok("T1".to_string()));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidate_only_the_stale_token() {
        let cache = TokenCache::new();
        let t1 = cache
            .get("k", async { Ok(token("T1", 7200)) })
            .await
            .map_err(|_| ())
            .expect("t1");
        cache.invalidate_if("k", &t1).await;
        let t2 = cache
            .get("k", async { Ok(token("T2", 7200)) })
            .await
            .map_err(|_| ())
            .expect("t2");
        assert_eq!(t2.value, "T2");
        // A second sender still holding T1 must not throw T2 away.
        cache.invalidate_if("k", &t1).await;
        let again = cache
            .get("k", async { Ok(token("T3", 7200)) })
            .await
            .map_err(|_| ())
            .expect("t2 again");
        assert_eq!(again.value, "T2");
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let cache = TokenCache::new();
        let failed = cache
            .get("k", async {
                Err(TokenFailure(Box::new(Attempt::failed_before_send(
                    super::super::Outcome::Dead("bad".into()),
                ))))
            })
            .await;
        assert!(failed.is_err());
        let ok = cache
            .get("k", async { Ok(token("T", 7200)) })
            .await
            .map_err(|_| ())
            .expect("ok");
        assert_eq!(ok.value, "T");
    }

    #[tokio::test]
    async fn tokens_expire_after_their_own_lifetime() {
        let cache = TokenCache::new();
        let short = cache
            .get("k", async {
                Ok(Token {
                    value: "short".into(),
                    lifetime: Duration::from_millis(200),
                })
            })
            .await
            .map_err(|_| ())
            .expect("short");
        assert_eq!(short.cache_for(), Duration::from_millis(180));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let next = cache
            .get("k", async { Ok(token("fresh", 7200)) })
            .await
            .map_err(|_| ())
            .expect("fresh");
        assert_eq!(next.value, "fresh");
    }
}
