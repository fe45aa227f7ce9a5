//! The relying-party side of OpenID Connect.
//!
//! - [`provider`]: discovery and keys, loaded and refreshed in the background;
//! - [`login`]: the authorization request (state, nonce, PKCE) and the pending login;
//! - [`callback`]: code exchange, ID-token verification, session creation;
//! - [`logout`]: RP-initiated logout, the logout API, front-channel logout, token revocation;
//! - [`backchannel`]: OIDC Back-Channel Logout 1.0 (logout tokens);
//! - [`redirect`]: the same-site check on where a browser returns to.

pub mod backchannel;
pub mod callback;
pub mod login;
pub mod logout;
pub mod provider;
pub mod redirect;

use crate::config::{ClientAuthMethod, OidcSettings};

/// Authenticate a back-channel request (introspection, revocation) as the `[oidc]` client with
/// its configured method: HTTP Basic (RFC 6749 §2.3.1: both parts form-urlencoded first), or
/// `client_id` + `client_secret` in the form, or `client_id` alone for a public client.
pub fn client_auth<'a>(
    req: reqwest::RequestBuilder,
    form: &mut Vec<(&'a str, &'a str)>,
    oidc: &'a OidcSettings,
) -> reqwest::RequestBuilder {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    match (oidc.auth_method, &oidc.client_secret) {
        (ClientAuthMethod::ClientSecretBasic, Some(secret)) => {
            req.basic_auth(encode(&oidc.client_id), Some(encode(secret.expose())))
        }
        (ClientAuthMethod::ClientSecretPost, Some(secret)) => {
            form.push(("client_id", &oidc.client_id));
            form.push(("client_secret", secret.expose()));
            req
        }
        _ => {
            form.push(("client_id", &oidc.client_id));
            req
        }
    }
}
