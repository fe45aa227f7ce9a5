//! Finishing a login: the redirect back from the provider (query, or form body for
//! `response_mode=form_post`), the code exchange, ID-token verification, and the new session.
//!
//! Order of checks, each failing closed with a 4xx and no session:
//! 1. `state` is present and names a pending login sealed in this browser's login cookie
//!    (constant-time compare), which is taken out of the cookie;
//! 2. that pending login has not expired (`session.login_timeout`);
//! 3. `iss`, when the provider sends it (RFC 9207), is the configured issuer;
//! 4. the code is exchanged with the PKCE verifier and the configured client authentication;
//! 5. the ID token is verified (signature from the JWKS, `iss`, `aud`, `azp` with several
//!    audiences, `exp` and `iat` with the leeway, `nonce`), then `at_hash` when present.

use crate::config::{ClientAuthMethod, Config, IdTokenHint};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::http_client::send_to_idp;
use crate::identity::Identity;
use crate::metrics::{IdpStatus, METRICS};
use crate::oidc::provider::ProviderSnapshot;
use crate::reply::Reply;
use crate::secret::{ct_eq, Secret};
use crate::session::pending_login::{NotPending, PendingLogin};
use crate::session::{session_claims, unix_now, Session, SessionId, SessionTokens};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{
    CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreTokenResponse,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    Nonce, OAuth2TokenResponse, PkceCodeVerifier, RedirectUrl, RequestTokenError,
};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The authorization response parameters.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<Secret>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

impl CallbackParams {
    /// Parse `application/x-www-form-urlencoded` (query string or form body). Repeated
    /// parameters are refused: which one counts would be a guess.
    pub fn parse(input: &[u8]) -> Result<Self, GatewayError> {
        let mut p = CallbackParams::default();
        for (k, v) in form_urlencoded::parse(input) {
            let slot_taken = match k.as_ref() {
                "code" => p.code.replace(Secret::new(&v)).is_some(),
                "state" => p.state.replace(v.into_owned()).is_some(),
                "error" => p.error.replace(v.into_owned()).is_some(),
                "error_description" => p.error_description.replace(v.into_owned()).is_some(),
                "iss" => p.iss.replace(v.into_owned()).is_some(),
                _ => false,
            };
            if slot_taken {
                return Err(GatewayError::BadRequest("repeated callback parameter"));
            }
        }
        Ok(p)
    }
}

/// Handle the callback. On success: 302 to the original path with the session cookie set.
pub async fn complete(
    gw: &Gateway,
    config: &Config,
    params: CallbackParams,
    login_cookie: Option<&str>,
) -> Result<Reply, GatewayError> {
    let state = params.state.as_deref().ok_or(GatewayError::StateMismatch)?;
    let (pending, remaining) = gw
        .login_seal
        .take(login_cookie, state, unix_now())
        .map_err(|e| match e {
            NotPending::NotThisBrowser => GatewayError::StateMismatch,
            NotPending::Expired => GatewayError::LoginExpired,
        })?;
    if let Some(error) = params.error {
        let description = params.error_description.unwrap_or_default();
        let shown: String = format!("{error} {description}").chars().take(200).collect();
        return Err(GatewayError::LoginDenied(shown.trim().to_string()));
    }
    let code = params
        .code
        .ok_or(GatewayError::BadRequest("the callback has no code"))?;
    let provider = gw
        .provider
        .snapshot()
        .ok_or(GatewayError::ProviderNotReady)?;
    if let Some(iss) = &params.iss {
        if iss.trim_end_matches('/') != provider.metadata.issuer().as_str().trim_end_matches('/') {
            return Err(GatewayError::BadRequest(
                "the callback's iss is not the configured issuer",
            ));
        }
    }

    let tokens = exchange_code(gw, config, &provider, code, &pending).await?;
    let provider = keys_for(gw, provider, &tokens).await;
    let claims = verify_id_token(config, &provider, &tokens, &pending)?;
    let claims = if config.oidc.use_userinfo {
        merge_userinfo(gw, &provider, &tokens, claims).await?
    } else {
        claims
    };
    let session_id = SessionId::generate();
    let mut session = build_session(config, &session_id, claims, &tokens)?;
    let logout_cookie = keep_id_token(gw, config, &mut session, &tokens);
    tracing::info!(
        session = %session.key.short(),
        has_refresh_token = session.tokens.refresh_token.is_some(),
        "login completed, session created"
    );
    gw.store
        .insert(Arc::new(session))
        .await
        .map_err(|_| GatewayError::StoreUnavailable)?;
    METRICS.sessions_created.inc();

    let cookies = &config.session.cookies;
    let form_post = config.oidc.response_mode == crate::config::ResponseMode::FormPost;
    Ok(Reply::redirect(pending.return_to)
        .set_cookie(cookies.session_cookie(session_id.encode().expose()))
        .set_cookie(cookies.login_cookie(&remaining, form_post))
        .set_cookie(logout_cookie))
}

/// Keep the ID token for `id_token_hint` at logout where `session.id_token_hint` says: in the
/// session, or sealed in the logout cookie. Returns the logout cookie's `Set-Cookie`: the sealed
/// token, or its removal (a previous session's cookie would not open for this one anyway).
fn keep_id_token(
    gw: &Gateway,
    config: &Config,
    session: &mut Session,
    tokens: &CoreTokenResponse,
) -> String {
    let id_token = tokens
        .extra_fields()
        .id_token()
        .map(|t| Secret::new(t.to_string()));
    let sealed = match config.session.id_token_hint {
        IdTokenHint::Cookie => id_token.and_then(|t| {
            let sealed = gw.id_token_seal.seal(&session.key, &t);
            if sealed.is_none() {
                tracing::warn!(
                    session = %session.key.short(),
                    "ID token too large for the logout cookie; logout will send client_id alone"
                );
            }
            sealed
        }),
        IdTokenHint::Store => {
            session.tokens.id_token = id_token;
            None
        }
        IdTokenHint::Discard => None,
    };
    config
        .session
        .cookies
        .logout_cookie(sealed.as_deref().unwrap_or(""))
}

/// The provider snapshot to verify the ID token with: reloaded once when the token names a key
/// the loaded set lacks (the provider rotated its keys since the last refresh).
async fn keys_for(
    gw: &Gateway,
    provider: Arc<ProviderSnapshot>,
    tokens: &CoreTokenResponse,
) -> Arc<ProviderSnapshot> {
    let text = tokens.extra_fields().id_token().map(|t| t.to_string());
    let kid = text
        .as_deref()
        .and_then(|t| crate::jwt::verifier::parse(t).ok())
        .and_then(|p| p.header.kid);
    gw.provider
        .snapshot_for_kid(kid.as_deref())
        .await
        .unwrap_or(provider)
}

/// Exchange the code at the token endpoint (openidconnect's client, our HTTP client).
async fn exchange_code(
    gw: &Gateway,
    config: &Config,
    provider: &ProviderSnapshot,
    code: Secret,
    pending: &PendingLogin,
) -> Result<CoreTokenResponse, GatewayError> {
    let oidc = &config.oidc;
    let secret = match oidc.auth_method {
        ClientAuthMethod::None => None,
        _ => oidc
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose().to_string())),
    };
    let client = CoreClient::from_provider_metadata(
        provider.metadata.clone(),
        ClientId::new(oidc.client_id.clone()),
        secret,
    )
    .set_redirect_uri(RedirectUrl::from_url(oidc.redirect_url.clone()))
    .set_auth_type(match oidc.auth_method {
        ClientAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
        _ => AuthType::RequestBody,
    });
    let request = client
        .exchange_code(AuthorizationCode::new(code.expose().to_string()))
        .map_err(|e| {
            tracing::error!(error = %e, "the provider's metadata has no token endpoint");
            GatewayError::ProviderUnavailable
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(
            pending.pkce_verifier.expose().to_string(),
        ));
    let started = std::time::Instant::now();
    let result = request.request_async(&gw.http).await;
    let status = match &result {
        Ok(_) => IdpStatus::Http(200),
        Err(RequestTokenError::ServerResponse(_)) => IdpStatus::Http(400),
        Err(_) => IdpStatus::Error,
    };
    METRICS.idp_call("token", status, started.elapsed());
    result.map_err(|e| match e {
        RequestTokenError::ServerResponse(resp) => {
            let code = resp.error().to_string();
            tracing::warn!(error = %code, "token endpoint refused the authorization code");
            GatewayError::CodeRejected(code)
        }
        other => {
            tracing::warn!(error = %other, "token request failed");
            GatewayError::ProviderUnavailable
        }
    })
}

/// Verify the ID token and return its claims as a JSON object.
fn verify_id_token(
    config: &Config,
    provider: &ProviderSnapshot,
    tokens: &CoreTokenResponse,
    pending: &PendingLogin,
) -> Result<Map<String, Value>, GatewayError> {
    let reject = |reason: &str| {
        tracing::warn!(reason, "ID token rejected");
        GatewayError::IdTokenRejected(reason.to_string())
    };
    let id_token: &CoreIdToken = tokens
        .extra_fields()
        .id_token()
        .ok_or_else(|| reject("the token response has no id_token"))?;
    let verifier = id_token_verifier(config, provider);
    let claims = id_token
        .claims(&verifier, &Nonce::new(pending.nonce.expose().to_string()))
        .map_err(|e| reject(claims_error_reason(&e)))?;

    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token
            .signing_alg()
            .map_err(|_| reject("unsupported signing algorithm"))?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(|_| reject("no key for the signature"))?;
        let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
            .map_err(|_| reject("cannot compute at_hash for this algorithm"))?;
        if !ct_eq(actual.as_bytes(), expected.as_bytes()) {
            return Err(reject("at_hash does not match the access token"));
        }
    }
    // The token is verified: read its payload again as plain JSON, so every claim (groups and
    // other non-standard ones) is available to the header mapping.
    payload_claims(&id_token.to_string()).ok_or_else(|| reject("unreadable payload"))
}

/// openidconnect's verifier for this provider, with the configured leeway on `exp` and `iat`.
fn id_token_verifier<'a>(
    config: &Config,
    provider: &'a ProviderSnapshot,
) -> CoreIdTokenVerifier<'a> {
    let oidc = &config.oidc;
    let client_id = ClientId::new(oidc.client_id.clone());
    let issuer = provider.metadata.issuer().clone();
    let jwks = provider.metadata.jwks().clone();
    let verifier = match (&oidc.client_secret, oidc.auth_method) {
        (Some(secret), m) if m != ClientAuthMethod::None => {
            CoreIdTokenVerifier::new_confidential_client(
                client_id,
                ClientSecret::new(secret.expose().to_string()),
                issuer,
                jwks,
            )
        }
        _ => CoreIdTokenVerifier::new_public_client(client_id, issuer, jwks),
    };
    let allowed: Vec<CoreJwsSigningAlgorithm> = provider
        .metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|a| **a != CoreJwsSigningAlgorithm::None)
        .cloned()
        .collect();
    let leeway =
        chrono::Duration::from_std(oidc.leeway).unwrap_or_else(|_| chrono::Duration::seconds(60));
    verifier
        .set_allowed_algs(allowed)
        .set_time_fn(move || chrono::Utc::now() - leeway)
        .set_issue_time_verifier_fn(move |iat| {
            if iat > chrono::Utc::now() + leeway {
                Err("issued in the future".to_string())
            } else {
                Ok(())
            }
        })
}

/// A short reason for a failed ID-token check, without claim values.
fn claims_error_reason(e: &ClaimsVerificationError) -> &'static str {
    match e {
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidAudience(_) => "wrong audience (aud/azp)",
        ClaimsVerificationError::InvalidIssuer(_) => "wrong issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce does not match this login",
        ClaimsVerificationError::InvalidAuthTime(_) => "invalid auth_time",
        ClaimsVerificationError::InvalidAuthContext(_) => "invalid acr",
        ClaimsVerificationError::InvalidSubject(_) => "invalid subject",
        ClaimsVerificationError::SignatureVerification(_) => "signature check failed",
        ClaimsVerificationError::Unsupported(_) => "unsupported token",
        _ => "invalid claims",
    }
}

/// The payload of a compact JWT as a JSON object (no verification: callers verify first).
pub fn payload_claims(jwt: &str) -> Option<Map<String, Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Add the userinfo endpoint's claims that the ID token lacks; `sub` must agree.
async fn merge_userinfo(
    gw: &Gateway,
    provider: &ProviderSnapshot,
    tokens: &CoreTokenResponse,
    mut claims: Map<String, Value>,
) -> Result<Map<String, Value>, GatewayError> {
    let Some(endpoint) = provider.metadata.userinfo_endpoint() else {
        return Ok(claims);
    };
    let req = gw
        .http
        .get(endpoint.url().as_str())
        .bearer_auth(tokens.access_token().secret())
        .header(http::header::ACCEPT, "application/json");
    let resp = send_to_idp("userinfo", req).await.map_err(|e| {
        tracing::warn!(error = %e, "userinfo request failed");
        GatewayError::ProviderUnavailable
    })?;
    if !resp.status().is_success() {
        tracing::warn!(status = resp.status().as_u16(), "userinfo refused");
        return Err(GatewayError::ProviderUnavailable);
    }
    let info: Map<String, Value> = resp.json().await.map_err(|_| {
        tracing::warn!("userinfo answer is not a JSON object");
        GatewayError::ProviderUnavailable
    })?;
    if info.get("sub") != claims.get("sub") {
        return Err(GatewayError::IdTokenRejected(
            "userinfo sub differs from the ID token".into(),
        ));
    }
    for (k, v) in info {
        claims.entry(k).or_insert(v);
    }
    Ok(claims)
}

fn build_session(
    config: &Config,
    id: &SessionId,
    claims: Map<String, Value>,
    tokens: &CoreTokenResponse,
) -> Result<Session, GatewayError> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GatewayError::IdTokenRejected("no subject".into()))?
        .to_string();
    let now = unix_now();
    Ok(Session {
        key: id.key(),
        identity: Arc::new(Identity::new(&subject, &session_claims(claims))),
        tokens: SessionTokens {
            access_token: Secret::new(tokens.access_token().secret().as_str()),
            refresh_token: tokens
                .refresh_token()
                .map(|t| Secret::new(t.secret().as_str())),
            id_token: None,
        },
        expires_at: now + config.session.lifetime.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_params_parse_and_refuse_repeats() {
        let p = CallbackParams::parse(b"code=abc&state=s1&iss=http%3A%2F%2Fop").unwrap();
        assert_eq!(p.code.unwrap().expose(), "abc");
        assert_eq!(p.state.as_deref(), Some("s1"));
        assert_eq!(p.iss.as_deref(), Some("http://op"));
        assert!(CallbackParams::parse(b"state=a&state=b").is_err());
        let garbage = CallbackParams::parse(b"%%%&&==&state=%ff%fe").unwrap();
        assert!(garbage.code.is_none());
    }

    #[test]
    fn payload_claims_tolerates_garbage() {
        assert!(payload_claims("a.b.c").is_none());
        assert!(payload_claims("").is_none());
        let p = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","groups":["a"]}"#);
        let claims = payload_claims(&format!("h.{p}.s")).unwrap();
        assert_eq!(claims["sub"], "x");
        let arr = URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(payload_claims(&format!("h.{arr}.s")).is_none());
    }
}
