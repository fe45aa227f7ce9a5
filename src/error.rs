//! Every way a request can be refused, and the one mapping from refusal to HTTP answer.
//!
//! Messages are written for the person or program that gets them; they name what was wrong and
//! never carry a token, cookie value, code or secret.

use crate::jwt::BearerError;
use crate::reply::Reply;
use serde_json::json;

/// A request the gateway refuses (or cannot serve).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No credential on a route that needs one (non-browser request or API route).
    #[error("authentication required")]
    Unauthenticated,
    /// A bearer token was presented and refused (RFC 6750 `invalid_token`).
    #[error("{0}")]
    InvalidToken(BearerError),
    /// A valid bearer token lacks the route's scopes (RFC 6750 `insufficient_scope`).
    #[error("the token lacks the required scope: {0}")]
    InsufficientScope(String),
    /// The request path cannot be decoded.
    #[error("the request path is malformed")]
    BadPath,
    /// The `Cookie` headers exceed `server.max_cookie_header_bytes`.
    #[error("the Cookie header is too large")]
    CookieTooLarge,
    /// A malformed request to one of the gateway's endpoints.
    #[error("{0}")]
    BadRequest(&'static str),
    /// The body of a request to a gateway endpoint is over its limit.
    #[error("the request body is too large")]
    BodyTooLarge,
    /// Callback without `state`, or with one this browser did not start.
    #[error("the login state does not match this browser's login; start again")]
    StateMismatch,
    /// Callback whose pending login expired or was already used (replay).
    #[error("this login has expired or was already completed; start again")]
    LoginExpired,
    /// The provider answered the authorization request with an error (`error=`).
    #[error("the provider refused the login: {0}")]
    LoginDenied(String),
    /// The provider rejected the authorization code (`invalid_grant`, ...).
    #[error("the provider rejected the authorization code: {0}")]
    CodeRejected(String),
    /// The ID token failed verification; the reason names the check.
    #[error("the ID token was rejected: {0}")]
    IdTokenRejected(String),
    /// Provider metadata and keys are not loaded yet.
    #[error("the identity provider is not available yet; try again shortly")]
    ProviderNotReady,
    /// A call to the provider failed (network, 5xx, unparsable answer).
    #[error("the identity provider could not be reached")]
    ProviderUnavailable,
    /// The session store failed.
    #[error("the session store is unavailable")]
    StoreUnavailable,
    /// No such gateway endpoint.
    #[error("no such endpoint")]
    NotFound,
}

impl From<BearerError> for GatewayError {
    /// A token refused is `invalid_token` (401), which tells a client to drop it; a token the
    /// gateway could not judge because the provider's introspection failed is the provider's
    /// failure (502), so that clients retry rather than throw a good token away.
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::IntrospectionUnavailable => GatewayError::ProviderUnavailable,
            e => GatewayError::InvalidToken(e),
        }
    }
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        use GatewayError::*;
        match self {
            Unauthenticated | IdTokenRejected(_) | InvalidToken(_) => 401,
            InsufficientScope(_) => 403,
            BadPath | BadRequest(_) | StateMismatch | LoginExpired | CodeRejected(_) => 400,
            LoginDenied(_) => 403,
            NotFound => 404,
            BodyTooLarge => 413,
            CookieTooLarge => 431,
            ProviderUnavailable => 502,
            ProviderNotReady | StoreUnavailable => 503,
        }
    }

    /// Stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            Unauthenticated => "unauthorized",
            InvalidToken(_) => "invalid_token",
            InsufficientScope(_) => "insufficient_scope",
            BadPath | BadRequest(_) => "invalid_request",
            CookieTooLarge => "cookie_too_large",
            BodyTooLarge => "body_too_large",
            StateMismatch => "state_mismatch",
            LoginExpired => "login_expired",
            LoginDenied(_) => "access_denied",
            CodeRejected(_) => "invalid_grant",
            IdTokenRejected(_) => "invalid_id_token",
            ProviderNotReady => "provider_not_ready",
            ProviderUnavailable => "provider_unavailable",
            StoreUnavailable => "store_unavailable",
            NotFound => "not_found",
        }
    }

    /// The HTTP answer: a small HTML page for browsers, JSON otherwise.
    pub fn reply(&self, browser: bool, login_url: &str) -> Reply {
        let message = self.to_string();
        let reply = if browser {
            let again = match self {
                GatewayError::StateMismatch
                | GatewayError::LoginExpired
                | GatewayError::CodeRejected(_)
                | GatewayError::IdTokenRejected(_)
                | GatewayError::ProviderNotReady => {
                    format!(r#"<p><a href="{login_url}">Log in again</a></p>"#)
                }
                _ => String::new(),
            };
            Reply::html(
                self.status(),
                format!(
                    "<!doctype html><html><head><meta charset=utf-8><title>authgate: {code}</title></head>\
                     <body><h1>{title}</h1><p>{msg}</p>{again}</body></html>",
                    code = self.code(),
                    title = self.status(),
                    msg = html_escape::encode_text(&message),
                ),
            )
        } else {
            Reply::json(
                self.status(),
                &json!({"error": self.code(), "error_description": message}),
            )
        };
        match self {
            GatewayError::Unauthenticated | GatewayError::IdTokenRejected(_) => {
                reply.header("WWW-Authenticate", r#"Bearer realm="authgate""#)
            }
            GatewayError::InvalidToken(e) => reply.header(
                "WWW-Authenticate",
                format!(
                    r#"Bearer realm="authgate", error="invalid_token", error_description="{e}""#
                ),
            ),
            GatewayError::InsufficientScope(scope) => reply.header(
                "WWW-Authenticate",
                format!(r#"Bearer realm="authgate", error="insufficient_scope", scope="{scope}""#),
            ),
            GatewayError::ProviderNotReady => reply.header("Retry-After", "5"),
            _ => reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_4xx_for_client_mistakes_and_escape_html() {
        let e = GatewayError::LoginDenied("<script>x</script>".into());
        let r = e.reply(true, "/oauth2/start");
        assert_eq!(r.status, 403);
        let body = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(!body.contains("<script>"));
        let r = GatewayError::Unauthenticated.reply(false, "/");
        assert_eq!(r.status, 401);
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| *n == "WWW-Authenticate" && v.starts_with("Bearer")));
    }
}
