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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use verifier::{numeric_date, TrustedIssuer};

/// How long a revoked opaque token stays on the deny-list (it has no `exp` to read).
const REVOKED_OPAQUE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The least room the deny-list has, whatever `bearer.cache_capacity` says: a cache sized down
/// (even to 0, no caching) must not turn logout revocation off.
const REVOKED_MIN_CAPACITY: u64 = 100_000;

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
    /// Clock skew allowed on `exp`, `nbf` and `iat` (`bearer.leeway`).
    leeway: Duration,
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
    /// Orders the three things that decide what the cache may hold: a verification entering it,
    /// a revocation, a reload. Without it a token revoked (or rules replaced) while its
    /// verification was in flight would be cached afterwards and served from the cache, which
    /// is looked at before the deny-list. Taken only after a signature check or an
    /// introspection call, and by logout and reload; never on a cache hit.
    admission: Mutex<()>,
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
                .max_capacity(settings.cache_capacity.max(REVOKED_MIN_CAPACITY))
                .expire_after(cache::UntilExp {
                    // A JWT is refused until its exp; an opaque token (no exp to read) for a day,
                    // by which time the provider's introspection says it is inactive anyway.
                    max_ttl: REVOKED_OPAQUE_TTL.max(settings.cache_max_ttl),
                })
                .build(),
            admission: Mutex::new(()),
        }
    }

    /// Apply a new configuration (SIGHUP). Remote key sets of unchanged issuers are kept, with
    /// their keys; the verified-token cache is emptied.
    pub fn reconfigure(&self, settings: &BearerSettings, oidc: &OidcSettings) {
        let old = self.rules.load_full();
        let rules = Self::rules(settings, oidc, &self.provider, &self.http, &old.issuers);
        let _admission = self
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
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
            leeway: settings.leeway,
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
        // The rules this verification is judged by, held across its awaits.
        let rules = arc_swap::Guard::into_inner(rules);
        let is_jwt = token.bytes().filter(|&b| b == b'.').count() == 2;
        let (method, verified) = match (rules.mode, is_jwt) {
            (IntrospectionMode::Always, _) | (IntrospectionMode::Opaque, false) => (
                INTROSPECTION,
                rules.introspector.introspect(token, &hash).await,
            ),
            (IntrospectionMode::Off, false) => {
                return (JWT, Err(BearerError::Malformed("not a JWT")))
            }
            _ => (JWT, Self::verify_jwt_by(&rules, token).await.map(Arc::new)),
        };
        (
            method,
            verified.and_then(|v| self.remember(&rules, hash, v)),
        )
    }

    /// Cache a verification made under `rules`, unless the token was revoked meanwhile (then it
    /// is refused) or the rules were replaced (then it is answered but not cached).
    fn remember(
        &self,
        rules: &Arc<BearerRules>,
        hash: cache::TokenHash,
        verified: Arc<VerifiedToken>,
    ) -> Result<Arc<VerifiedToken>, BearerError> {
        let _admission = self
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.revoked.contains_key(&hash) {
            return Err(BearerError::Revoked);
        }
        if Arc::ptr_eq(rules, &self.rules.load()) {
            self.cache.insert(hash, verified.clone());
        }
        Ok(verified)
    }

    /// Verify a JWT locally, without the cache: parse, pick the issuer by `iss`, check.
    pub async fn verify_jwt(&self, token: &str) -> Result<VerifiedToken, BearerError> {
        Self::verify_jwt_by(&self.rules.load_full(), token).await
    }

    async fn verify_jwt_by(rules: &BearerRules, token: &str) -> Result<VerifiedToken, BearerError> {
        let parsed = verifier::parse(token)?;
        let iss = parsed
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(BearerError::UnknownIssuer)?;
        let issuer = rules
            .issuers
            .iter()
            .find(|i| i.issuer == iss)
            .ok_or(BearerError::UnknownIssuer)?;
        issuer.verify(&parsed).await
    }

    /// Stop accepting `token` (a logout revoked it): out of the cache, and refused until its
    /// `exp` plus the leeway, the last second verification would accept it (a JWT's `exp`, read
    /// without verification: revoking a forged token harms nothing).
    pub fn revoke(&self, token: &str) {
        let leeway = self.rules.load().leeway.as_secs();
        let refuse_until = verifier::parse(token)
            .ok()
            .and_then(|t| t.claims.get("exp").and_then(numeric_date))
            .map(|exp| exp.saturating_add(leeway).saturating_add(1));
        let _admission = self
            .admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.revoked.insert(token_hash(token), refuse_until);
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

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

    /// A configuration with one HS256 issuer; `bearer` is added to its `[bearer]` table.
    fn config(bearer: &str) -> crate::config::Config {
        crate::config::Config::from_toml(&format!(
            r#"
            [upstream]
            url = "http://127.0.0.1:3000"
            [oidc]
            issuer = "https://id.example.test"
            client_id = "unit"
            client_secret = "unit-secret"
            redirect_url = "https://app.example.test/oauth2/callback"
            [bearer]
            {bearer}
            trust_oidc_issuer = false
            [[bearer.issuers]]
            issuer = "https://hs.test"
            audiences = ["api"]
            hmac_secret = "{SECRET}"
            hmac_algorithm = "HS256"
            "#
        ))
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn bearer(config: &crate::config::Config) -> Bearer {
        let http = reqwest::Client::new();
        let provider = Arc::new(Provider::new(config.oidc.clone(), http.clone()));
        Bearer::new(&config.bearer, &config.oidc, provider, http)
    }

    fn token(claims: Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(&Default::default(), &claims, &key).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "https://hs.test", "sub": "svc", "aud": "api", "exp": unix_now() + 600})
    }

    fn verify(bearer: &Bearer, token: &str) -> Result<Arc<VerifiedToken>, BearerError> {
        futures::executor::block_on(bearer.verify(token))
    }

    use crate::session::unix_now;

    #[test]
    fn an_issuer_with_audiences_requires_a_readable_aud() {
        let bearer = bearer(&config(r#"leeway = "0s""#));
        assert!(verify(&bearer, &token(claims())).is_ok());
        let mut listed = claims();
        listed["aud"] = json!(["other", "api"]);
        assert!(verify(&bearer, &token(listed)).is_ok());
        // jsonwebtoken alone lets each of these through: it checks only an `aud` it can read.
        let mut missing = claims();
        missing.as_object_mut().unwrap().remove("aud");
        let mut cases = vec![missing];
        for aud in [
            json!(5),
            json!(["other", 1]),
            json!({"api": true}),
            json!(null),
        ] {
            let mut c = claims();
            c["aud"] = aud;
            cases.push(c);
        }
        for c in cases {
            assert_eq!(
                verify(&bearer, &token(c.clone())).err(),
                Some(BearerError::WrongAudience),
                "{c}"
            );
        }
    }

    #[test]
    fn fractional_dates_are_read_as_the_library_reads_them() {
        let bearer = bearer(&config(r#"leeway = "0s""#));
        let exp = unix_now() + 600;
        let mut c = claims();
        c["exp"] = json!(exp as f64 + 0.25);
        c["iat"] = json!(unix_now() as f64 - 0.5);
        let verified = verify(&bearer, &token(c)).unwrap();
        // Before, a fractional exp was no exp: the entry lived for cache_max_ttl.
        assert_eq!(verified.expires_at, Some(exp));
        assert_eq!(numeric_date(&json!(-1.0)), None);
        assert_eq!(numeric_date(&json!(f64::MAX)), None);
        assert_eq!(numeric_date(&json!("1")), None);
    }

    #[test]
    fn a_revocation_during_a_verification_wins() {
        let bearer = bearer(&config(r#"leeway = "60s""#));
        let token = token(claims());
        let hash = token_hash(&token);
        // The verification finished before the logout, and enters the cache after it.
        let rules = bearer.rules.load_full();
        let verified = Arc::new(futures::executor::block_on(bearer.verify_jwt(&token)).unwrap());
        bearer.revoke(&token);
        assert_eq!(
            bearer.remember(&rules, hash, verified.clone()).err(),
            Some(BearerError::Revoked)
        );
        assert!(bearer.cache.get_hashed(&hash).is_none());
        assert_eq!(verify(&bearer, &token).err(), Some(BearerError::Revoked));
        // Refused until exp plus the leeway: jsonwebtoken accepts it that long.
        let exp = claims()["exp"].as_u64().unwrap();
        let until = bearer.revoked.get(&hash).flatten().unwrap();
        assert!(
            (exp + 61..=exp + 62).contains(&until),
            "{until} for exp {exp}"
        );
    }

    #[test]
    fn no_cache_still_means_revocation() {
        let bearer = bearer(&config("cache_capacity = 0"));
        let token = token(claims());
        assert!(verify(&bearer, &token).is_ok());
        bearer.revoke(&token);
        assert_eq!(verify(&bearer, &token).err(), Some(BearerError::Revoked));
    }

    #[test]
    fn a_verification_under_replaced_rules_is_not_cached() {
        let config = config(r#"leeway = "0s""#);
        let bearer = bearer(&config);
        let token = token(claims());
        let hash = token_hash(&token);
        let rules = bearer.rules.load_full();
        let verified = Arc::new(futures::executor::block_on(bearer.verify_jwt(&token)).unwrap());
        bearer.reconfigure(&config.bearer, &config.oidc);
        assert!(bearer.remember(&rules, hash, verified).is_ok());
        assert!(bearer.cache.get_hashed(&hash).is_none());
        // Verified again under the new rules, it is cached.
        assert!(verify(&bearer, &token).is_ok());
        assert!(bearer.cache.get_hashed(&hash).is_some());
    }

    #[test]
    fn scopes_from_scope_or_scp() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(scopes_of(&m(json!({"scope": "a  b"}))), ["a", "b"]);
        assert_eq!(scopes_of(&m(json!({"scp": ["x", 1, "y"]}))), ["x", "y"]);
        assert_eq!(scopes_of(&m(json!({"scp": "z"}))), ["z"]);
        assert!(scopes_of(&m(json!({"scope": 5}))).is_empty());
    }
}
