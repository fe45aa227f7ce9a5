//! OpenID Connect Back-Channel Logout 1.0: the provider POSTs a logout token
//! (`logout_token=<JWT>`) and every session it names ends.
//!
//! The token is validated as §2.6 of the spec asks: signature with the provider's keys (an
//! allow-listed asymmetric algorithm; `alg: none` and `crit` refused by the JWT parser), `iss`,
//! `aud` containing the client id, `iat` within `logout.backchannel_max_age` and the leeway,
//! `exp` when present, `jti` present and never seen before (a replay cache keeps it for the
//! token's useful life), `events` holding the back-channel-logout member, `sid` or `sub`, no
//! `nonce`, and `typ` `logout+jwt` when present. Then the sessions with that `sid` end, or every
//! session of that `sub` when only `sub` is given. The answer is 200 with
//! `Cache-Control: no-store`, or 400 `{"error":"invalid_request",...}` with nothing ended.

use crate::config::Config;
use crate::gateway::Gateway;
use crate::jwt::verifier;
use crate::metrics::METRICS;
use crate::oidc::provider::ProviderSnapshot;
use crate::reply::Reply;
use crate::session::{unix_now, EndReason};
use jsonwebtoken::{AlgorithmFamily, Validation};
use moka::sync::Cache;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// The `events` member that makes a JWT a logout token.
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// `iss` + `jti` of logout tokens already used, kept longer than any token stays acceptable
/// (`logout.backchannel_max_age` is at most an hour, plus the leeway).
static SEEN_JTI: LazyLock<Cache<String, ()>> = LazyLock::new(|| {
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(2 * 3600))
        .build()
});

/// Handle the form body of a back-channel logout request.
pub async fn handle(gw: &Gateway, config: &Config, form: &[u8]) -> Reply {
    let token = form_urlencoded::parse(form)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    let result = match token {
        Some(token) => end_sessions(gw, config, &token).await,
        None => Err("the form has no logout_token".into()),
    };
    match result {
        Ok(ended) => {
            METRICS.backchannel_logouts.with_label_values(&["ok"]).inc();
            tracing::info!(sessions = ended, "back-channel logout");
            Reply::new(200)
                .header("Content-Type", "application/json")
                .body("{}")
        }
        Err(reason) => {
            METRICS
                .backchannel_logouts
                .with_label_values(&["invalid"])
                .inc();
            tracing::warn!(reason = %reason, "back-channel logout refused");
            invalid(&reason)
        }
    }
}

/// The 400 answer of the spec.
pub fn invalid(reason: &str) -> Reply {
    Reply::json(
        400,
        &json!({"error": "invalid_request", "error_description": reason}),
    )
}

async fn end_sessions(gw: &Gateway, config: &Config, token: &str) -> Result<usize, String> {
    let parsed = verifier::parse(token).map_err(|e| e.to_string())?;
    // Signed with a key the gateway has not loaded yet (the provider rotated): reload once.
    let provider = gw
        .provider
        .snapshot_for_kid(parsed.header.kid.as_deref())
        .await
        .ok_or("the provider's keys are not loaded yet")?;
    let claims = validate(&provider, config, parsed)?;
    let sid = claims.get("sid").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    let ended = match (sid, sub) {
        (Some(sid), _) => gw.store.remove_by_sid(sid, EndReason::Backchannel).await,
        (None, Some(sub)) => {
            gw.store
                .remove_by_subject(sub, EndReason::Backchannel)
                .await
        }
        (None, None) => return Err("the logout token has neither sid nor sub".into()),
    }
    .map_err(|e| e.to_string())?;
    for session in &ended {
        gw.bearer.revoke(session.tokens.access_token.expose());
    }
    Ok(ended.len())
}

/// Every check of §2.6; the claims when the token passes.
fn validate(
    provider: &ProviderSnapshot,
    config: &Config,
    parsed: verifier::ParsedToken<'_>,
) -> Result<Map<String, Value>, String> {
    let token = parsed.raw;
    if !matches!(
        parsed.alg.family(),
        AlgorithmFamily::Rsa | AlgorithmFamily::Ec | AlgorithmFamily::Ed
    ) {
        return Err("the logout token's algorithm is not allowed".into());
    }
    if let Some(typ) = &parsed.header.typ {
        let typ = typ.to_ascii_lowercase();
        if typ != "logout+jwt" && typ != "application/logout+jwt" {
            return Err("typ is not logout+jwt".into());
        }
    }
    let issuer = provider.metadata.issuer().as_str();
    let mut validation = Validation::new(parsed.alg);
    validation.leeway = config.oidc.leeway.as_secs();
    validation.set_issuer(&[issuer, issuer.trim_end_matches('/')]);
    validation.set_audience(&[&config.oidc.client_id]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    let keys = provider
        .keys
        .candidates(parsed.header.kid.as_deref(), parsed.alg);
    if keys.is_empty() {
        return Err("no provider key matches the logout token's kid".into());
    }
    let verified = keys
        .iter()
        .any(|k| jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &validation).is_ok());
    if !verified {
        return Err("signature, iss, aud or exp check failed".into());
    }
    let claims = parsed.claims;
    let now = unix_now();
    let leeway = config.oidc.leeway.as_secs();
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or("the logout token has no iat")?;
    if iat > now + leeway
        || now.saturating_sub(iat) > config.logout.backchannel_max_age.as_secs() + leeway
    {
        return Err("iat is too old or in the future".into());
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or("the logout token has no jti")?;
    let is_logout = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|e| e.get(BACKCHANNEL_EVENT))
        .is_some_and(Value::is_object);
    if !is_logout {
        return Err("events has no back-channel logout member".into());
    }
    if claims.contains_key("nonce") {
        return Err("a logout token must not carry a nonce".into());
    }
    if claims.get("sid").and_then(Value::as_str).is_none()
        && claims.get("sub").and_then(Value::as_str).is_none()
    {
        return Err("the logout token has neither sid nor sub".into());
    }
    // Last, so a token refused for another reason does not burn its jti.
    let seen_key = format!("{issuer}\n{jti}");
    if SEEN_JTI.contains_key(&seen_key) {
        return Err("the logout token's jti was already used".into());
    }
    SEEN_JTI.insert(seen_key, ());
    Ok(claims)
}
