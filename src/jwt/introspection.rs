//! Opaque tokens: RFC 7662 introspection at the provider, with caching.
//!
//! Used for tokens that are not JWTs (or for every token with `bearer.introspection = "always"`).
//! The gateway authenticates as the `[oidc]` client (the configured method). An active answer is
//! cached until the token's `exp`, at most `bearer.introspection_cache_max`; an inactive one is
//! remembered for `bearer.introspection_negative_ttl`, so a replayed dead token costs no call.

use super::cache::TokenHash;
use super::verifier::numeric_date;
use super::{BearerError, VerifiedToken};
use crate::config::OidcSettings;
use crate::http_client::send_to_idp;
use crate::identity::Identity;
use crate::oidc::client_auth;
use crate::oidc::provider::Provider;
use crate::session::unix_now;
use moka::sync::Cache;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

pub struct Introspector {
    provider: Arc<Provider>,
    oidc: OidcSettings,
    http: reqwest::Client,
    max_ttl: Duration,
    inactive: Cache<TokenHash, ()>,
}

impl Introspector {
    pub fn new(
        provider: Arc<Provider>,
        oidc: OidcSettings,
        http: reqwest::Client,
        max_ttl: Duration,
        negative_ttl: Duration,
    ) -> Self {
        Self {
            provider,
            oidc,
            http,
            max_ttl,
            inactive: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(negative_ttl)
                .build(),
        }
    }

    /// Introspect `token` (its hash `hash`, not in the verified-token cache). An inactive answer
    /// is remembered here; an active one is the caller's to cache.
    pub async fn introspect(
        &self,
        token: &str,
        hash: &TokenHash,
    ) -> Result<Arc<VerifiedToken>, BearerError> {
        if self.inactive.contains_key(hash) {
            return Err(BearerError::Inactive);
        }
        let answer = self.call(token).await?;
        if answer.get("active").and_then(Value::as_bool) != Some(true) {
            self.inactive.insert(*hash, ());
            return Err(BearerError::Inactive);
        }
        Ok(Arc::new(verified_from(answer, self.max_ttl)?))
    }

    async fn call(&self, token: &str) -> Result<Map<String, Value>, BearerError> {
        let endpoint = self
            .provider
            .snapshot()
            .and_then(|s| s.extra.introspection_endpoint.clone())
            .ok_or(BearerError::IntrospectionUnavailable)?;
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        let req = client_auth(self.http.post(endpoint.as_str()), &mut form, &self.oidc);
        let req = req
            .header(http::header::ACCEPT, "application/json")
            .form(&form);
        let resp = send_to_idp("introspection", req).await.map_err(|e| {
            tracing::warn!(error = %e, "introspection request failed");
            BearerError::IntrospectionUnavailable
        })?;
        if !resp.status().is_success() {
            tracing::warn!(status = resp.status().as_u16(), "introspection refused");
            return Err(BearerError::IntrospectionUnavailable);
        }
        resp.json().await.map_err(|_| {
            tracing::warn!("introspection answer is not a JSON object");
            BearerError::IntrospectionUnavailable
        })
    }
}

/// The identity of an active introspection answer. A token without `sub` (client credentials)
/// is identified by its `client_id`.
fn verified_from(
    mut answer: Map<String, Value>,
    max_ttl: Duration,
) -> Result<VerifiedToken, BearerError> {
    answer.remove("active");
    let subject = answer
        .get("sub")
        .or_else(|| answer.get("client_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(BearerError::MissingSubject)?
        .to_string();
    let now = unix_now();
    let cap = now + max_ttl.as_secs();
    let expires_at = Some(
        answer
            .get("exp")
            .and_then(numeric_date)
            .map_or(cap, |e| e.min(cap)),
    );
    if expires_at.is_some_and(|e| e <= now) {
        return Err(BearerError::Expired);
    }
    let scopes = super::scopes_of(&answer);
    Ok(VerifiedToken {
        identity: Arc::new(Identity::new(&subject, &answer)),
        expires_at,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn active_answers_become_identities_capped_in_time() {
        let answer =
            json!({"active": true, "sub": "u1", "scope": "a b", "exp": unix_now() + 10_000});
        let v =
            verified_from(answer.as_object().unwrap().clone(), Duration::from_secs(60)).unwrap();
        assert_eq!(&*v.identity.subject, "u1");
        assert_eq!(v.scopes, ["a", "b"]);
        assert!(v.expires_at.unwrap() <= unix_now() + 60);
        let cc = json!({"active": true, "client_id": "svc"});
        assert_eq!(
            &*verified_from(cc.as_object().unwrap().clone(), Duration::from_secs(60))
                .unwrap()
                .identity
                .subject,
            "svc"
        );
        let nobody = json!({"active": true});
        assert!(
            verified_from(nobody.as_object().unwrap().clone(), Duration::from_secs(60)).is_err()
        );
    }
}
