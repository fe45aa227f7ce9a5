//! Deciding who a request is: the credential it carries, checked against the session store.
//!
//! A request without a valid credential is not an error here; the caller decides between a
//! redirect to login (browser on a protected route) and 401 (API route or non-browser client).

use crate::config::Config;
use crate::gateway::Gateway;
use crate::identity::Identity;
use crate::secret::Secret;
use crate::session::{cookie, Session, SessionId};
use pingora::http::RequestHeader;
use std::sync::Arc;

/// A request's verified identity and how it was established.
#[derive(Debug, Clone)]
pub enum Authenticated {
    Session(Arc<Session>),
}

impl Authenticated {
    pub fn identity(&self) -> &Identity {
        match self {
            Authenticated::Session(s) => &s.identity,
        }
    }

    /// The access token to pass upstream when configured.
    pub fn access_token(&self) -> Option<&Secret> {
        match self {
            Authenticated::Session(s) => Some(&s.tokens.access_token),
        }
    }

    /// Bounded label for logs and metrics.
    pub fn method(&self) -> &'static str {
        match self {
            Authenticated::Session(_) => "session",
        }
    }
}

/// The session this request's cookie names, if it is live. Garbage cookies are simply no session.
pub async fn from_session_cookie(
    gw: &Gateway,
    config: &Config,
    req: &RequestHeader,
) -> Option<Authenticated> {
    let value = cookie::find(req, &config.session.cookies.session_name)?;
    let id = SessionId::decode(value)?;
    match gw.store.get(&id.key()).await {
        Ok(session) => session.map(Authenticated::Session),
        Err(e) => {
            // Fail closed: an unreachable store means no session.
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
