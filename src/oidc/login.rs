//! Starting a login: the authorization request (state, nonce, PKCE S256) and the pending login
//! it leaves behind.

use crate::config::{Config, ResponseMode};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::reply::Reply;
use crate::secret::Secret;
use crate::session::cookie::login_states;
use crate::session::{random_token, PendingLogin};
use openidconnect::PkceCodeChallenge;

/// Send the browser to the provider; `return_to` is a path already checked as same-site.
///
/// The pending login (nonce, PKCE verifier, return path) is stored under a fresh `state`, and
/// the state is added to the browser's login cookie, which binds the login to this browser.
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

    gw.store
        .put_pending(
            &state,
            PendingLogin {
                nonce: Secret::new(nonce),
                pkce_verifier: Secret::new(verifier.secret().as_str()),
                return_to,
            },
        )
        .await
        .map_err(|_| GatewayError::StoreUnavailable)?;

    let cookies = &config.session.cookies;
    let states = cookies.add_login_state(login_cookie, &state);
    let form_post = oidc.response_mode == ResponseMode::FormPost;
    tracing::debug!(pending = states.len(), "login started");
    Ok(Reply::redirect(url.to_string()).set_cookie(cookies.login_cookie(&states, form_post)))
}

/// The login cookie after `state` has been used: the remaining states.
pub fn remaining_states(login_cookie: Option<&str>, used_state: &str) -> Vec<String> {
    login_states(login_cookie)
        .into_iter()
        .filter(|s| s != used_state)
        .collect()
}
