//! Forward-auth: `GET /oauth2/auth` answers whether a request may pass, for a proxy that does
//! the proxying itself (nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz).
//!
//! 202 with `X-Auth-Request-User`, `-Email`, `-Groups`, `-Preferred-Username` (and
//! `-Access-Token` with `headers.pass_access_token`) for a valid session or bearer token; 401
//! without a credential or with a bad token; 403 for a token without the route's scopes.
//!
//! The request being judged is the original one: its path comes from `X-Forwarded-Uri` or
//! `X-Original-URI` and its method from `X-Forwarded-Method` or `X-Original-Method`, but only
//! when the caller's address is in `server.trusted_proxies` (default: none), because anyone
//! else could name a public path to get a yes (oauth2-proxy GHSA-7x63-xv5r-3p2x). From anyone
//! else the decision is about the real path, `/oauth2/auth`, which no route makes public.
//! `X-Forwarded-Host` plays no part: routes match paths. A path the asking proxy may split into
//! other segments than the gateway does (`..`, `//`, `\`, an encoded `/` or `\`) is refused
//! with 400, since the proxy forwards the path as it was sent ([`crate::routes`]).

use crate::auth;
use crate::config::Config;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::reply::Reply;
use crate::routes::{is_ambiguous, normalize_path, AuthPolicy, PathError};
use pingora::proxy::Session;

/// Answer a forward-auth check.
pub async fn check(
    gw: &Gateway,
    config: &Config,
    session: &Session,
) -> Result<Reply, GatewayError> {
    let req = session.req_header();
    let trusted = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .is_some_and(|a| config.server.is_trusted_proxy(a.ip()));
    let header = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| req.headers.get(*n).and_then(|v| v.to_str().ok()))
            .map(str::to_string)
    };
    let (method, uri) = if trusted {
        (
            header(&["x-forwarded-method", "x-original-method"]).unwrap_or_else(|| "GET".into()),
            header(&["x-forwarded-uri", "x-original-uri"]),
        )
    } else {
        (req.method.as_str().to_string(), None)
    };
    let raw_path = match &uri {
        Some(u) => u.split(['?', '#']).next().unwrap_or("/").to_string(),
        None => req.uri.path().to_string(),
    };
    // The proxy asking sends the original path on as it is, so a path it may read differently
    // from the gateway gets no decision (the proxy path sends the normalized one instead).
    let path = if raw_path.starts_with('/') && !is_ambiguous(&raw_path) {
        normalize_path(&raw_path)
    } else {
        Err(PathError::Ambiguous)
    }
    .map_err(|_| GatewayError::BadPath)?;
    let route = config
        .routes
        .classify_request(&method, &raw_path, &path)
        .map_err(|_| GatewayError::BadPath)?;
    if route.auth == AuthPolicy::Public {
        return Ok(Reply::new(202));
    }
    let who = auth::authenticate(gw, config, req, &route.scopes)
        .await?
        .ok_or(GatewayError::Unauthenticated)?;
    let mut reply = Reply::new(202);
    for (name, value) in config
        .headers
        .auth_request_headers(who.identity(), who.access_token())
    {
        if let Ok(v) = value.to_str() {
            reply = reply.header_owned(name, v.to_string());
        }
    }
    Ok(reply)
}
