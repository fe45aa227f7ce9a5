//! Browser sessions: what a logged-in browser is, where it is kept, and how its cookie looks.
//!
//! - [`SessionId`]: 256 random bits, the only thing the session cookie carries (no tokens in
//!   cookies, so they stay small: oauth2-proxy #644). The store is keyed by its SHA-256
//!   ([`SessionKey`]), so a dump of the store holds no usable cookie.
//! - [`Session`]: identity (with the provider's `sid`), tokens, and the absolute expiry; idle
//!   expiry is the store's.
//! - [`SessionStore`]: the storage contract (moka now, Redis for several replicas later).
//! - [`cookie`]: reading and writing the gateway's cookies.
//! - [`events`]: what happens when a session ends, whatever ended it: a log line, a metric, the
//!   logged-out webhooks.
//! - [`id_token_cookie`]: the ID token sealed into the browser's logout cookie, so the store
//!   need not keep it.
//! - [`pending_login`]: a login on its way through the provider, sealed into the browser's login
//!   cookie, so no unauthenticated request leaves anything in the gateway.
//! - [`seal`]: AES-256-GCM for the values those cookies carry.

pub mod cookie;
pub mod events;
pub mod id_token_cookie;
pub mod memory;
pub mod pending_login;
pub mod seal;

use crate::identity::Identity;
use crate::secret::Secret;
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random value of 256 bits, base64url without padding (43 characters): session ids,
/// `state`, `nonce`.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The session id as the browser holds it. Never logged.
#[derive(Clone)]
pub struct SessionId([u8; 32]);

impl SessionId {
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Parse a cookie value; anything but exactly 32 base64url bytes is `None`.
    pub fn decode(value: &str) -> Option<Self> {
        if value.len() != 43 {
            return None;
        }
        let mut out = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(value, &mut out) {
            Ok(32) => Some(Self(out)),
            _ => None,
        }
    }

    pub fn encode(&self) -> Secret {
        Secret::new(URL_SAFE_NO_PAD.encode(self.0))
    }

    pub fn key(&self) -> SessionKey {
        let digest = Sha256::digest(self.0);
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        SessionKey(key)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// The first 128 bits of the SHA-256 of a [`SessionId`]: the store key. Finding an id for a
/// known key still takes 2^128 work, and two of a million random ids share a key with odds of
/// 2^-89; half the hash keeps 32 bytes per session out of memory (each key is stored twice).
/// Safe to log in short form ([`SessionKey::short`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey(pub [u8; 16]);

impl SessionKey {
    /// The first 8 bytes in hex: enough to correlate log lines, useless as a credential.
    pub fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", self.short())
    }
}

/// The tokens the provider gave this session.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// Sent as `id_token_hint` at logout; kept here only with `session.id_token_hint = "store"`
    /// (by default the browser keeps it: [`id_token_cookie`]).
    pub id_token: Option<Secret>,
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub key: SessionKey,
    pub identity: Arc<Identity>,
    pub tokens: SessionTokens,
    /// Unix seconds: the absolute end, whatever the activity.
    pub expires_at: u64,
}

impl Session {
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// The hash of the access token: how the logout API finds the session. (Not the refresh
    /// token: the gateway never hands it out, so no client can present it.)
    pub fn access_token_hash(&self) -> TokenHash {
        hash_token(self.tokens.access_token.expose())
    }
}

/// Why a session ended: a bounded label for logs, metrics and webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// RP-initiated logout (`GET /oauth2/logout`).
    Logout,
    /// The logout API (`POST /oauth2/logout`).
    LogoutApi,
    /// OIDC back-channel logout from the provider.
    Backchannel,
    /// OIDC front-channel logout.
    Frontchannel,
    /// Idle timeout or absolute lifetime reached.
    Expired,
    /// Dropped to stay within `session.max_sessions`.
    Evicted,
    /// Ended by an operator on the admin listener.
    Admin,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::LogoutApi => "logout_api",
            EndReason::Backchannel => "backchannel",
            EndReason::Frontchannel => "frontchannel",
            EndReason::Expired => "expired",
            EndReason::Evicted => "evicted",
            EndReason::Admin => "admin",
        }
    }
}

/// Told about every session that ends, whatever ended it.
pub trait SessionEndListener: Send + Sync {
    fn session_ended(&self, session: &Session, reason: EndReason);
}

/// Claims about the login itself rather than the user, which a session does not need to keep
/// (it has its own expiry). `sid` stays: it names the provider session, which a header may carry.
const PROTOCOL_CLAIMS: [&str; 11] = [
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "azp",
    "jti",
];

/// The claims a session keeps of an ID token (and userinfo): the user's, not the protocol's.
pub fn session_claims(
    mut claims: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    for c in PROTOCOL_CLAIMS {
        claims.remove(c);
    }
    claims
}

/// SHA-256 of a token, to find a session by one of its tokens without keeping the token as a key.
pub type TokenHash = [u8; 32];

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Why the store failed (only a remote store can).
#[derive(Debug, thiserror::Error)]
#[error("session store unavailable: {0}")]
pub struct StoreError(pub String);

/// Where sessions live.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert(&self, session: Arc<Session>) -> Result<(), StoreError>;
    /// The live session for `key`; expired ones are `None`. Counts as activity (idle timeout).
    async fn get(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StoreError>;
    /// End the session `key` for `reason` (the end listener is told).
    async fn remove(
        &self,
        key: &SessionKey,
        reason: EndReason,
    ) -> Result<Option<Arc<Session>>, StoreError>;
    /// End every session with the provider session id `sid`.
    async fn remove_by_sid(
        &self,
        sid: &str,
        reason: EndReason,
    ) -> Result<Vec<Arc<Session>>, StoreError>;
    /// End every session of the subject `sub`.
    async fn remove_by_subject(
        &self,
        sub: &str,
        reason: EndReason,
    ) -> Result<Vec<Arc<Session>>, StoreError>;
    /// The session holding the access token with this hash.
    async fn find_by_token(&self, token: &TokenHash) -> Result<Option<Arc<Session>>, StoreError>;
    /// Let the store notice expired sessions (so their end is reported without waiting for
    /// traffic). Called periodically.
    fn run_maintenance(&self);
    /// Approximate number of live sessions.
    fn session_count(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_and_garbage_is_none() {
        let id = SessionId::generate();
        let text = id.encode();
        assert_eq!(text.expose().len(), 43);
        let back = SessionId::decode(text.expose()).unwrap();
        assert!(back.key() == id.key());
        for garbage in [
            "",
            "x",
            "%%%",
            &"A".repeat(44),
            &"*".repeat(43),
            "é".repeat(21).as_str(),
        ] {
            assert!(SessionId::decode(garbage).is_none(), "{garbage}");
        }
        assert_eq!(format!("{id:?}"), "SessionId([redacted])");
    }
}
