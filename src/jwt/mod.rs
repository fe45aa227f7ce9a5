//! Bearer tokens: `Authorization: Bearer <token>` verified locally, with no network call per
//! request.
//!
//! - [`keys`]: verification keys from JWKS (remote, refreshed; or files), PEM files, HMAC secrets;
//! - [`verifier`]: the full check of a JWT against one trusted issuer;
//! - [`cache`]: verified tokens by hash, so a repeat costs a lookup, not a signature check;
//! - [`introspection`]: RFC 7662 for opaque tokens, cached.
//!
//! [`Bearer::verify`] is the entry point: size limit, cache, then introspection or JWT
//! verification by the token's issuer.

pub mod cache;
pub mod introspection;
pub mod keys;
pub mod verifier;

use crate::config::{BearerSettings, IntrospectionMode, JwksSource, OidcSettings};
use crate::identity::Identity;
use crate::metrics::METRICS;
use crate::oidc::provider::Provider;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use cache::{token_hash, TokenCache};
use introspection::Introspector;
use keys::{JwksLocation, RemoteJwks};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use verifier::TrustedIssuer;

/// How long a revoked opaque token stays on the deny-list (it has no `exp` to read).
const REVOKED_OPAQUE_TTL: Duration = Duration::from_secs(24 * 3600);

/// What a verified token tells: who, until when, with which scopes.
#[derive(Debug)]
pub struct VerifiedToken {
    pub identity: Arc<Identity>,
    /// Unix seconds (`exp`).
    pub expires_at: Option<u64>,
    pub scopes: Vec<String>,
}

impl VerifiedToken {
    /// Whether the token carries every one of `required`.
    pub fn has_scopes(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.scopes.iter().any(|s| s == r))
    }
}

/// The scopes of a token: `scope` (space-separated, RFC 8693/9068) or `scp` (array or string).
pub fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => words(s),
        (_, Some(Value::Array(items))) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        (_, Some(Value::String(s))) => words(s),
        _ => Vec::new(),
    }
}

/// Why a bearer token was refused. Descriptions help the caller and never carry key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("the token is larger than the gateway accepts")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("the token's algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("the token has a critical header the gateway does not understand")]
    UnsupportedCritical,
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    #[error("no key of the issuer matches the token's kid and algorithm")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the token has no exp")]
    MissingExp,
    #[error("the token's issuer does not match")]
    WrongIssuer,
    #[error("the token is not meant for this audience")]
    WrongAudience,
    #[error("the token carries an audience but none is configured for its issuer")]
    UnexpectedAudience,
    #[error("the token has no subject")]
    MissingSubject,
    #[error("the token is not active")]
    Inactive,
    #[error("the token was revoked by a logout")]
    Revoked,
    #[error("the token could not be introspected")]
    IntrospectionUnavailable,
}

impl BearerError {
    /// Bounded label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        use BearerError::*;
        match self {
            TooLarge => "too_large",
            Malformed(_) => "malformed",
            AlgorithmNotAllowed => "bad_algorithm",
            UnsupportedCritical => "unsupported_crit",
            UnknownIssuer => "unknown_issuer",
            UnknownKey => "unknown_kid",
            BadSignature => "bad_signature",
            Expired => "expired",
            NotYetValid => "not_yet_valid",
            IssuedInFuture => "issued_in_future",
            MissingExp => "missing_exp",
            WrongIssuer => "bad_issuer",
            WrongAudience | UnexpectedAudience => "bad_audience",
            MissingSubject => "missing_subject",
            Inactive => "inactive",
            Revoked => "revoked",
            IntrospectionUnavailable => "introspection_unavailable",
        }
    }
}

/// What a configuration says about bearer tokens; swapped whole on reload.
struct BearerRules {
    enabled: bool,
    max_token_bytes: usize,
    mode: IntrospectionMode,
    issuers: Vec<TrustedIssuer>,
    introspector: Introspector,
}

/// Bearer-token verification for the whole gateway.
///
/// The rules (issuers, keys, limits) follow the configuration and are replaced on reload; the
/// verified-token cache is emptied then (its entries were judged by the old rules), while the
/// deny-list of revoked tokens survives every reload.
pub struct Bearer {
    rules: ArcSwap<BearerRules>,
    provider: Arc<Provider>,
    http: reqwest::Client,
    pub cache: TokenCache,
    /// Hashes of tokens revoked by a logout, until their `exp`: a revoked JWT's signature is
    /// still valid, so without this it would verify again.
    revoked: moka::sync::Cache<cache::TokenHash, Option<u64>>,
}

impl Bearer {
    pub fn new(
        settings: &BearerSettings,
        oidc: &OidcSettings,
        provider: Arc<Provider>,
        http: reqwest::Client,
    ) -> Self {
        let rules = Self::rules(settings, oidc, &provider, &http, &[]);
        Self {
            rules: ArcSwap::from_pointee(rules),
            provider,
            http,
            cache: TokenCache::new(settings.cache_capacity, settings.cache_max_ttl),
            revoked: moka::sync::Cache::builder()
                .max_capacity(settings.cache_capacity)
                .expire_after(cache::UntilExp {
                    // A JWT is refused until its exp; an opaque token (no exp to read) for a day,
                    // by which time the provider's introspection says it is inactive anyway.
                    max_ttl: REVOKED_OPAQUE_TTL.max(settings.cache_max_ttl),
                })
                .build(),
        }
    }

    /// Apply a new configuration (SIGHUP). Remote key sets of unchanged issuers are kept, with
    /// their keys; the verified-token cache is emptied.
    pub fn reconfigure(&self, settings: &BearerSettings, oidc: &OidcSettings) {
        let old = self.rules.load();
        let rules = Self::rules(settings, oidc, &self.provider, &self.http, &old.issuers);
        self.rules.store(Arc::new(rules));
        self.cache.clear();
    }

    fn rules(
        settings: &BearerSettings,
        oidc: &OidcSettings,
        provider: &Arc<Provider>,
        http: &reqwest::Client,
        previous: &[TrustedIssuer],
    ) -> BearerRules {
        let issuers = settings
            .issuers
            .iter()
            .map(|i| TrustedIssuer {
                issuer: i.issuer.clone(),
                audiences: i.audiences.clone(),
                validations: TrustedIssuer::validations(
                    &i.issuer,
                    &i.audiences,
                    &i.algorithms,
                    settings.leeway,
                    settings.require_exp,
                ),
                subject_claim: i.subject_claim.clone(),
                static_keys: i.static_keys.clone(),
                remote: i.jwks.as_ref().map(|source| {
                    let kept = previous
                        .iter()
                        .find(|p| p.issuer == i.issuer && p.jwks_source.as_ref() == Some(source))
                        .and_then(|p| p.remote.clone());
                    kept.unwrap_or_else(|| {
                        let location = match source {
                            JwksSource::Uri(u) => JwksLocation::Fixed(u.clone()),
                            JwksSource::Discovery => JwksLocation::Discovery(provider.clone()),
                        };
                        Arc::new(RemoteJwks::new(
                            location,
                            http.clone(),
                            settings.unknown_kid_min_interval,
                        ))
                    })
                }),
                jwks_source: i.jwks.clone(),
                leeway: settings.leeway,
            })
            .collect();
        BearerRules {
            enabled: settings.enabled,
            max_token_bytes: settings.max_token_bytes,
            mode: settings.introspection,
            issuers,
            introspector: Introspector::new(
                provider.clone(),
                oidc.clone(),
                http.clone(),
                settings.introspection_cache_max,
                settings.introspection_negative_ttl,
            ),
        }
    }

    /// Whether `Authorization: Bearer` is looked at (`bearer.enabled`).
    pub fn enabled(&self) -> bool {
        self.rules.load().enabled
    }

    /// Verify a bearer token: cache first, then introspection or local JWT verification.
    /// Every decision is counted (`authgate_auth_decisions_total`, cache hits and misses).
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, BearerError> {
        let (method, result) = self.verify_uncounted(token).await;
        match &result {
            Ok(_) => METRICS.auth_decision(method, true, "ok"),
            Err(e) => METRICS.auth_decision(method, false, e.reason()),
        }
        result
    }

    async fn verify_uncounted(
        &self,
        token: &str,
    ) -> (&'static str, Result<Arc<VerifiedToken>, BearerError>) {
        const JWT: &str = "bearer_jwt";
        const INTROSPECTION: &str = "introspection";
        let rules = self.rules.load();
        if token.len() > rules.max_token_bytes {
            return (JWT, Err(BearerError::TooLarge));
        }
        let hash = token_hash(token);
        if let Some(hit) = self.cache.get_hashed(&hash) {
            METRICS.token_cache_hits.inc();
            return (JWT, Ok(hit));
        }
        METRICS.token_cache_misses.inc();
        if self.revoked.contains_key(&hash) {
            return (JWT, Err(BearerError::Revoked));
        }
        let is_jwt = token.bytes().filter(|&b| b == b'.').count() == 2;
        match (rules.mode, is_jwt) {
            (IntrospectionMode::Always, _) | (IntrospectionMode::Opaque, false) => (
                INTROSPECTION,
                rules.introspector.introspect(token, &self.cache).await,
            ),
            (IntrospectionMode::Off, false) => (JWT, Err(BearerError::Malformed("not a JWT"))),
            _ => match self.verify_jwt(token).await {
                Ok(verified) => {
                    let verified = Arc::new(verified);
                    self.cache.insert(hash, verified.clone());
                    (JWT, Ok(verified))
                }
                Err(e) => (JWT, Err(e)),
            },
        }
    }

    /// Verify a JWT locally, without the cache: parse, pick the issuer by `iss`, check.
    pub async fn verify_jwt(&self, token: &str) -> Result<VerifiedToken, BearerError> {
        let parsed = verifier::parse(token)?;
        let iss = parsed
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(BearerError::UnknownIssuer)?;
        let rules = self.rules.load();
        let issuer = rules
            .issuers
            .iter()
            .find(|i| i.issuer == iss)
            .ok_or(BearerError::UnknownIssuer)?;
        issuer.verify(&parsed).await
    }

    /// Stop accepting `token` (a logout revoked it): out of the cache, and refused until its
    /// `exp` (a JWT's, read without verification: revoking a forged token harms nothing).
    pub fn revoke(&self, token: &str) {
        let exp = verifier::parse(token)
            .ok()
            .and_then(|t| t.claims.get("exp").and_then(Value::as_u64));
        self.revoked.insert(token_hash(token), exp);
        self.cache.invalidate(token);
    }

    /// The remote key sets to keep fresh.
    pub fn remote_jwks(&self) -> Vec<Arc<RemoteJwks>> {
        self.rules
            .load()
            .issuers
            .iter()
            .filter_map(|i| i.remote.clone())
            .collect()
    }
}

/// Background refresh of every remote JWKS: at start (retrying with backoff until it works),
/// then every `bearer.jwks_refresh_interval`.
pub struct JwksRefresher {
    pub bearer: Arc<Bearer>,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Duration::from_secs(1);
        loop {
            // Read each round: a reload may have changed the issuers.
            let sets = self.bearer.remote_jwks();
            let mut all_ok = true;
            for set in &sets {
                match set.refresh().await {
                    Ok(Some(n)) => tracing::debug!(keys = n, "JWKS refreshed"),
                    // The provider loader logs why discovery is not there yet.
                    Ok(None) => all_ok = false,
                    Err(e) => {
                        all_ok = false;
                        tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys");
                    }
                }
            }
            let wait = if all_ok {
                backoff = Duration::from_secs(1);
                self.interval
            } else {
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                w.min(self.interval)
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_from_scope_or_scp() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(scopes_of(&m(json!({"scope": "a  b"}))), ["a", "b"]);
        assert_eq!(scopes_of(&m(json!({"scp": ["x", 1, "y"]}))), ["x", "y"]);
        assert_eq!(scopes_of(&m(json!({"scp": "z"}))), ["z"]);
        assert!(scopes_of(&m(json!({"scope": 5}))).is_empty());
    }
}
