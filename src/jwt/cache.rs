//! The verified-token cache: a token the gateway has verified costs a hash and a lookup, not a
//! signature check.
//!
//! Keyed by the SHA-256 of the whole token (so the cache holds no usable token), holding the
//! verified identity. An entry never outlives the token's `exp` (nor `bearer.cache_max_ttl`);
//! capacity is bounded (`bearer.cache_capacity`, least recently used first out). The hit path
//! does no base64 decoding, no JSON parsing and no signature check. Logout removes entries
//! ([`TokenCache::invalidate`]).

use super::VerifiedToken;
use crate::session::unix_now;
use moka::sync::Cache;
use moka::Expiry;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// SHA-256 of a token.
pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A cache value that knows until when (Unix seconds) it may be kept.
pub trait Expires {
    fn expires_at(&self) -> Option<u64>;
}

impl Expires for Arc<VerifiedToken> {
    fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }
}

/// A deny-list entry: the revoked token's `exp`.
impl Expires for Option<u64> {
    fn expires_at(&self) -> Option<u64> {
        *self
    }
}

/// Keeps an entry until its value's expiry, and never longer than `max_ttl`.
pub struct UntilExp {
    pub max_ttl: Duration,
}

impl<V: Expires> Expiry<TokenHash, V> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        value: &V,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match value.expires_at() {
            Some(exp) => Duration::from_secs(exp.saturating_sub(unix_now())).min(self.max_ttl),
            None => self.max_ttl,
        })
    }
}

/// Verified tokens by hash.
pub struct TokenCache {
    entries: Cache<TokenHash, Arc<VerifiedToken>>,
}

impl TokenCache {
    pub fn new(capacity: u64, max_ttl: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp { max_ttl })
                .build(),
        }
    }

    /// The cached verification of `token`, if any and not expired.
    pub fn get(&self, token: &str) -> Option<Arc<VerifiedToken>> {
        self.get_hashed(&token_hash(token))
    }

    pub fn get_hashed(&self, hash: &TokenHash) -> Option<Arc<VerifiedToken>> {
        let hit = self.entries.get(hash)?;
        // moka's expiry works in whole durations; the exp check here is exact.
        match hit.expires_at {
            Some(exp) if exp <= unix_now() => {
                self.entries.invalidate(hash);
                None
            }
            _ => Some(hit),
        }
    }

    pub fn insert(&self, hash: TokenHash, verified: Arc<VerifiedToken>) {
        self.entries.insert(hash, verified);
    }

    /// Forget `token` (logout, revocation).
    pub fn invalidate(&self, token: &str) {
        self.entries.invalidate(&token_hash(token));
    }

    /// Forget everything (the rules that verified the entries changed).
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn verified(expires_at: Option<u64>) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            identity: Arc::new(Identity::new("s", &Default::default())),
            expires_at,
            scopes: Vec::new(),
        })
    }

    #[test]
    fn entries_never_outlive_exp_and_can_be_invalidated() {
        let cache = TokenCache::new(100, Duration::from_secs(3600));
        cache.insert(token_hash("live"), verified(Some(unix_now() + 60)));
        cache.insert(token_hash("dead"), verified(Some(unix_now() - 1)));
        cache.insert(token_hash("no-exp"), verified(None));
        assert!(cache.get("live").is_some());
        assert!(cache.get("dead").is_none());
        assert!(cache.get("no-exp").is_some());
        assert!(cache.get("other").is_none());
        cache.invalidate("live");
        assert!(cache.get("live").is_none());
    }
}
