//! authgate: a reverse-proxy OpenID Connect authentication gateway on Cloudflare's pingora.
//!
//! It sits in front of upstream apps that have no login of their own: browsers are logged in
//! with the authorization-code flow (PKCE, state, nonce), sessions live in moka, and the upstream
//! receives who the user is in `X-Forwarded-*` headers it can trust, because the gateway strips
//! any the client sent.
//!
//! A request's path through the code:
//! [`proxy`] (pingora phases) → [`routes`] (normalize, classify) → [`endpoints`] (the gateway's
//! own `/oauth2/*`) or [`auth`] (session cookie) → [`oidc::login`] when a browser must log in →
//! [`identity`] (strip, then set headers) and [`forwarded`] (the client's address) → the
//! [`upstream`].
//!
//! The map, one line per module:
//! - [`config`]: `gateway.toml` → validated [`config::Config`]; every error reported at once.
//! - [`server`]: builds the pingora server (proxy, admin listener, background services).
//! - [`reload`]: SIGHUP re-reads `gateway.toml` and applies what can change live.
//! - [`gateway`]: the shared state that outlives a request (config, store, provider, HTTP client).
//! - [`proxy`]: the `ProxyHttp` implementation; phase methods that delegate.
//! - [`routes`]: path normalization and route matching (public, protected, api).
//! - [`auth`]: what credential a request carries and whether it is valid.
//! - [`endpoints`]: `/oauth2/start`, `callback`, `userinfo`, `logout`, `backchannel-logout`,
//!   `frontchannel-logout`.
//! - [`oidc`]: provider discovery and keys, login, callback, logout (RP-initiated, API,
//!   back-channel, front-channel), token revocation, same-site redirect checks.
//! - [`session`]: session ids, the `SessionStore` trait, the moka store, cookies, what happens
//!   when a session ends (log, metric, logged-out webhooks).
//! - [`jwt`]: bearer tokens: keys and JWKS rotation, verification, verified-token cache,
//!   introspection.
//! - [`identity`]: the verified identity and the headers derived from it.
//! - [`forwarded`]: `X-Forwarded-For`, `-Proto` and `-Host` for the upstream, believed from
//!   trusted proxies only.
//! - [`header_name`]: names of the headers written on every request, prepared once.
//! - [`upstream`]: resolved upstream addresses and pingora peers.
//! - [`metrics`]: every Prometheus metric, defined once.
//! - [`access_log`]: the request id, request metrics and one access-log line per request.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` and ending sessions, on the admin listener.
//! - [`readiness`]: whether the proxy listener is this process's and accepts (for `/readyz`).
//! - [`forward_auth`]: `/oauth2/auth` for nginx `auth_request`, Traefik, Envoy (trusted proxies only
//!   may name the original URI).
//! - [`error`]: every refusal as one enum, mapped to HTTP answers in one place.
//! - [`reply`]: responses the gateway writes itself.
//! - [`secret`]: a string type that never prints its value.
//! - [`http_client`]: the one HTTP client for calls to the provider (timeouts, no redirects).

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod forward_auth;
pub mod forwarded;
pub mod gateway;
pub mod header_name;
pub mod http_client;
pub mod identity;
pub mod jwt;
pub mod metrics;
pub mod oidc;
pub mod proxy;
pub mod readiness;
pub mod reload;
pub mod reply;
pub mod routes;
pub mod secret;
pub mod server;
pub mod session;
pub mod upstream;
