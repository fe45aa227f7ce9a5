//! The one HTTP client for every call to the provider (discovery, JWKS, token, userinfo).
//!
//! Redirects are never followed (openidconnect-rs warns that following them turns the gateway
//! into an SSRF relay), and every call has a connect and a total timeout.

use std::time::Duration;

/// `User-Agent` of the gateway's outgoing calls.
pub const USER_AGENT: &str = concat!("authgate/", env!("CARGO_PKG_VERSION"));

pub fn build(connect_timeout: Duration, request_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .user_agent(USER_AGENT)
        .build()
        // Building fails only when the TLS backend cannot initialise: nothing can work then.
        .expect("the HTTP client's TLS backend failed to initialise")
}
