//! Deciding who a request is: the credential it carries, checked locally.
//!
//! `Authorization: Bearer` wins over a session cookie: a client that presents a token means it,
//! so a bad token is a 401 `invalid_token` even on a browser route (never a login redirect).
//! Without a bearer token, the session cookie is looked up. A request with no credential at all
//! is not an error here; the caller decides between a redirect to login (browser on a protected
//! route) and 401 (API route or non-browser client).

use crate::config::Config;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::identity::Identity;
use crate::jwt::VerifiedToken;
use crate::metrics::METRICS;
use crate::secret::Secret;
use crate::session::{cookie, Session, SessionId, SessionStore};
use pingora::http::RequestHeader;
use std::sync::Arc;

/// A request's verified identity and how it was established.
#[derive(Debug, Clone)]
pub enum Authenticated {
    Session(Arc<Session>),
    /// A verified bearer token; `token` is kept only when it is passed upstream.
    Bearer {
        verified: Arc<VerifiedToken>,
        token: Option<Secret>,
    },
}

impl Authenticated {
    pub fn identity(&self) -> &Identity {
        match self {
            Authenticated::Session(s) => &s.identity,
            Authenticated::Bearer { verified, .. } => &verified.identity,
        }
    }

    /// The access token to pass upstream when configured.
    pub fn access_token(&self) -> Option<&Secret> {
        match self {
            Authenticated::Session(s) => Some(&s.tokens.access_token),
            Authenticated::Bearer { token, .. } => token.as_ref(),
        }
    }

    /// Whether the request's `Authorization` header was the credential the gateway checked (a
    /// bearer token), rather than something it left to the upstream.
    pub fn consumed_authorization(&self) -> bool {
        matches!(self, Authenticated::Bearer { .. })
    }

    /// Bounded label for logs and metrics.
    pub fn method(&self) -> &'static str {
        match self {
            Authenticated::Session(_) => "session",
            Authenticated::Bearer { .. } => "bearer",
        }
    }
}

/// Who the request is: `Ok(None)` when it carries no credential, `Err` when it carries a bad
/// bearer token or one without the route's scopes.
pub async fn authenticate(
    gw: &Gateway,
    config: &Config,
    req: &RequestHeader,
    required_scopes: &[String],
) -> Result<Option<Authenticated>, GatewayError> {
    if gw.bearer.enabled() {
        if let Some(token) = bearer_token(req) {
            let verified = gw.bearer.verify(token).await.map_err(|e| {
                tracing::info!(reason = e.reason(), "bearer token refused");
                GatewayError::from(e)
            })?;
            if !verified.has_scopes(required_scopes) {
                return Err(GatewayError::InsufficientScope(required_scopes.join(" ")));
            }
            let token = (config.headers.pass_access_token
                || config.headers.pass_authorization_header)
                .then(|| Secret::new(token));
            return Ok(Some(Authenticated::Bearer { verified, token }));
        }
    }
    let cookie_name = &config.session.cookies.session_name;
    Ok(from_session_cookie(gw.store.as_ref(), cookie_name, req).await)
}

/// The token of an `Authorization: Bearer` header (scheme case-insensitive), if any.
pub fn bearer_token(req: &RequestHeader) -> Option<&str> {
    let value = req
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The session this request's cookie (`cookie_name`) names, if it is live. Garbage cookies are
/// simply no session. (Public for `benches/proxy.rs`.)
pub async fn from_session_cookie(
    store: &dyn SessionStore,
    cookie_name: &str,
    req: &RequestHeader,
) -> Option<Authenticated> {
    let value = cookie::find(req, cookie_name)?;
    let Some(id) = SessionId::decode(value) else {
        METRICS.auth_decision("session", false, "malformed_cookie");
        return None;
    };
    match store.get(&id.key()).await {
        Ok(Some(session)) => {
            METRICS.auth_decision("session", true, "ok");
            Some(Authenticated::Session(session))
        }
        Ok(None) => {
            METRICS.auth_decision("session", false, "unknown_or_expired");
            None
        }
        Err(e) => {
            // Fail closed: an unreachable store means no session.
            METRICS.auth_decision("session", false, "store_unavailable");
            tracing::error!(error = %e, "session lookup failed");
            None
        }
    }
}

/// Whether the client is a browser that should be sent to login rather than given a 401:
/// `Accept` includes `text/html` and it is not an XHR.
pub fn wants_html(req: &RequestHeader) -> bool {
    let accept_html = req
        .headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    let xhr = req
        .headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"));
    accept_html && !xhr
}
