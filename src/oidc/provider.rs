//! The OpenID provider as the gateway knows it: discovery metadata and signing keys, loaded in
//! the background and swapped atomically.
//!
//! The gateway starts and serves without the provider: until a first load succeeds,
//! [`Provider::snapshot`] is `None`, login answers 503 and `/readyz` is not ready. Loading retries
//! with exponential backoff (1 s doubling up to `oidc.retry_max_backoff`), and once loaded, the
//! metadata and keys are refreshed every `oidc.refresh_interval`; a failed refresh keeps the last
//! good snapshot. A login attempt while nothing is loaded wakes the loader at once.

use crate::config::OidcSettings;
use crate::http_client::send_to_idp;
use crate::jwt::keys::KeySet;
use crate::metrics::METRICS;
use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use url::Url;

/// Discovery fields openidconnect's core metadata type does not carry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExtraMetadata {
    pub end_session_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    pub introspection_endpoint: Option<Url>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

/// One consistent view of the provider: metadata with its key set.
#[derive(Debug)]
pub struct ProviderSnapshot {
    /// Includes the JWKS (`jwks()`).
    pub metadata: CoreProviderMetadata,
    pub extra: ExtraMetadata,
    /// The same keys for jsonwebtoken (logout tokens).
    pub keys: KeySet,
    pub key_count: usize,
}

/// Why loading the provider failed. Messages carry URLs and statuses, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} returned an invalid document: {reason}")]
    Invalid { url: String, reason: String },
    #[error("discovery names issuer {found:?}, configured is {configured:?}")]
    IssuerMismatch { found: String, configured: String },
}

/// The provider, shared by the proxy and the loader.
pub struct Provider {
    settings: OidcSettings,
    http: reqwest::Client,
    current: ArcSwapOption<ProviderSnapshot>,
    wake: Notify,
    /// When a token named a key we lacked and we reloaded for it; the lock makes that
    /// single-flight and the time rate-limits it.
    last_reload_for_kid: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl Provider {
    pub fn new(settings: OidcSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            current: ArcSwapOption::empty(),
            wake: Notify::new(),
            last_reload_for_kid: tokio::sync::Mutex::new(None),
        }
    }

    /// The loaded metadata and keys, if any.
    pub fn snapshot(&self) -> Option<Arc<ProviderSnapshot>> {
        self.current.load_full()
    }

    /// Ask the background loader to try now (used when a login finds nothing loaded).
    pub fn request_load(&self) {
        self.wake.notify_one();
    }

    /// The discovery document URL for the configured issuer.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.as_str().trim_end_matches('/')
        )
    }

    /// Fetch discovery and the JWKS once.
    pub async fn fetch(&self) -> Result<ProviderSnapshot, ProviderError> {
        let discovery_url = self.discovery_url();
        let doc = self.get("discovery", &discovery_url).await?;
        let invalid = |url: &str, e: serde_json::Error| ProviderError::Invalid {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let metadata: CoreProviderMetadata =
            serde_json::from_slice(&doc).map_err(|e| invalid(&discovery_url, e))?;
        let extra: ExtraMetadata =
            serde_json::from_slice(&doc).map_err(|e| invalid(&discovery_url, e))?;
        let configured = self.settings.issuer.as_str().trim_end_matches('/');
        let found = metadata.issuer().as_str().trim_end_matches('/');
        if found != configured {
            return Err(ProviderError::IssuerMismatch {
                found: found.into(),
                configured: configured.into(),
            });
        }
        let jwks_url = metadata.jwks_uri().url().to_string();
        let jwks_json = self.get("jwks", &jwks_url).await?;
        let jwks: CoreJsonWebKeySet =
            serde_json::from_slice(&jwks_json).map_err(|e| invalid(&jwks_url, e))?;
        let key_count = jwks.keys().len();
        let keys = KeySet::from_jwks(&jwks_json).map_err(|reason| ProviderError::Invalid {
            url: jwks_url.clone(),
            reason,
        })?;
        Ok(ProviderSnapshot {
            metadata: metadata.set_jwks(jwks),
            extra,
            keys,
            key_count,
        })
    }

    async fn get(&self, endpoint: &'static str, url: &str) -> Result<bytes::Bytes, ProviderError> {
        let unreachable = |e: reqwest::Error| ProviderError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let req = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json");
        let resp = send_to_idp(endpoint, req).await.map_err(unreachable)?;
        if !resp.status().is_success() {
            return Err(ProviderError::Status {
                url: url.to_string(),
                status: resp.status().as_u16(),
            });
        }
        resp.bytes().await.map_err(unreachable)
    }

    /// A token from the provider names a key (`kid`) the loaded set lacks, as right after the
    /// provider rotates its keys: reload now, unless another caller just did (single-flight) or
    /// a reload for this reason ran in the last 10 seconds (a flood of made-up kids must not
    /// turn into a flood of requests to the provider). Returns whether the set now has `kid`.
    pub async fn reload_for_kid(&self, kid: &str) -> bool {
        let has = |p: &Self| p.snapshot().is_some_and(|s| s.keys.has_kid(kid));
        let mut last = self.last_reload_for_kid.lock().await;
        if has(self) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            return false;
        }
        *last = Some(std::time::Instant::now());
        self.load().await && has(self)
    }

    /// The snapshot to verify a token naming `kid` with: the current one, reloaded first (by
    /// [`Self::reload_for_kid`]) when it lacks that key.
    pub async fn snapshot_for_kid(&self, kid: Option<&str>) -> Option<Arc<ProviderSnapshot>> {
        let current = self.snapshot();
        match kid {
            Some(kid) if !current.as_ref().is_some_and(|s| s.keys.has_kid(kid)) => {
                self.reload_for_kid(kid).await;
                self.snapshot()
            }
            _ => current,
        }
    }

    /// Load once, storing the result on success. Returns whether it succeeded.
    pub async fn load(&self) -> bool {
        match self.fetch().await {
            Ok(snapshot) => {
                METRICS.jwks_refresh.with_label_values(&["ok"]).inc();
                METRICS.jwks_keys.set(snapshot.key_count as i64);
                tracing::info!(
                    issuer = %self.settings.issuer,
                    keys = snapshot.key_count,
                    "provider metadata and keys loaded"
                );
                self.current.store(Some(Arc::new(snapshot)));
                true
            }
            Err(e) => {
                METRICS.jwks_refresh.with_label_values(&["failed"]).inc();
                let kept = self.current.load().is_some();
                tracing::warn!(error = %e, keeping_previous = kept, "loading provider metadata failed");
                false
            }
        }
    }
}

/// The background task that loads and refreshes the provider.
pub struct ProviderLoader(pub Arc<Provider>);

#[async_trait]
impl BackgroundService for ProviderLoader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let provider = &self.0;
        let max_backoff = provider
            .settings
            .retry_max_backoff
            .max(Duration::from_secs(1));
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = if provider.load().await {
                backoff = Duration::from_secs(1);
                provider.settings.refresh_interval
            } else {
                let w = backoff;
                backoff = (backoff * 2).min(max_backoff);
                w
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = provider.wake.notified() => {
                    // Woken by a login while nothing is loaded: a short pause keeps a burst of
                    // logins from turning into a burst of discovery calls.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
