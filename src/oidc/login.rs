//! Starting a login: the authorization request (state, nonce, PKCE S256) and the pending login
//! it leaves with the browser ([`crate::session::pending_login`]).

use crate::config::{Config, ResponseMode};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::reply::Reply;
use crate::secret::Secret;
use crate::session::pending_login::PendingLogin;
use crate::session::{random_token, unix_now};
use openidconnect::PkceCodeChallenge;

/// Send the browser to the provider; `return_to` is a path already checked as same-site.
///
/// The pending login (a fresh `state`, nonce, PKCE verifier, return path and expiry) is sealed
/// into the browser's login cookie, which binds the login to this browser; the gateway keeps
/// nothing, so no flood of unauthenticated requests can crowd out a real login.
pub async fn begin(
    gw: &Gateway,
    config: &Config,
    login_cookie: Option<&str>,
    return_to: String,
) -> Result<Reply, GatewayError> {
    let Some(provider) = gw.provider.snapshot() else {
        gw.provider.request_load();
        return Err(GatewayError::ProviderNotReady);
    };
    let oidc = &config.oidc;
    let state = random_token();
    let nonce = random_token();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();

    let mut url = provider.metadata.authorization_endpoint().url().clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &oidc.client_id)
            .append_pair("redirect_uri", oidc.redirect_url.as_str())
            .append_pair("scope", &oidc.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        if oidc.response_mode == ResponseMode::FormPost {
            q.append_pair("response_mode", "form_post");
        }
        // Providers issue refresh tokens for offline_access only after explicit consent.
        if oidc.scopes.iter().any(|s| s == "offline_access") {
            q.append_pair("prompt", "consent");
        }
    }

    let pending = PendingLogin {
        state,
        nonce: Secret::new(nonce),
        pkce_verifier: Secret::new(verifier.secret().as_str()),
        return_to,
        expires_at: unix_now().saturating_add(config.session.login_timeout.as_secs()),
    };
    let cookies = &config.session.cookies;
    let value = gw.login_seal.add(
        login_cookie,
        &pending,
        cookies.max_pending_logins,
        unix_now(),
    );
    let form_post = oidc.response_mode == ResponseMode::FormPost;
    Ok(Reply::redirect(url.to_string()).set_cookie(cookies.login_cookie(&value, form_post)))
}
