//! The one HTTP client for every call to the provider (discovery, JWKS, token, userinfo).
//!
//! Redirects are never followed (openidconnect-rs warns that following them turns the gateway
//! into an SSRF relay), and every call has a connect and a total timeout.

use crate::metrics::{IdpStatus, METRICS};
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

/// Send a request to the provider, counting it in `authgate_idp_requests_total` and timing it
/// in `authgate_idp_request_duration_seconds` under `endpoint`.
pub async fn send_to_idp(
    endpoint: &'static str,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let started = std::time::Instant::now();
    let result = req.send().await;
    METRICS.idp_call(endpoint, IdpStatus::of(&result), started.elapsed());
    result
}
