//! Logout initiated by the browser or an API client, and by the provider through the browser
//! (front-channel).
//!
//! - RP-initiated (../shared/seeds/keycloak-adapter-logout.txt): `GET /oauth2/logout` (alias
//!   `sign_out`) ends the local session and its cookies, revokes its tokens at the provider
//!   (RFC 7009), and redirects to the provider's `end_session_endpoint` with `id_token_hint`,
//!   `post_logout_redirect_uri`, `client_id`, `state` (and `initiating_idp` when given), or
//!   straight to the post-logout target when the provider has no such endpoint. Idempotent:
//!   without a session it still clears cookies and redirects. The ID token for the hint is the
//!   one sealed in the logout cookie (`Path` is this endpoint, so `sign_out` redirects here) or,
//!   with `session.id_token_hint = "store"`, the session's.
//! - Logout API (../shared/seeds/elasticsearch-oidc-logout-api.txt): `POST /oauth2/logout` with
//!   JSON `{"token" | "access_token", "refresh_token"}` ends the session those tokens belong to,
//!   revokes them, and answers `{"redirect": "<end-session URL>"}`; unknown tokens get 401.
//! - Front-channel (OpenID Connect Front-Channel Logout 1.0): `GET /oauth2/frontchannel-logout
//!   ?iss=&sid=` ends the sessions of that provider session.
//!
//! The post-logout target (`rd`, or `logout.post_logout_redirect_url`) is compared as a parsed
//! URL with `logout.allowed_redirects`: same scheme, host and port, and a path equal to an
//! entry's or below one ending in `/`. Anything else falls back to the default.

use crate::config::{Config, LogoutSettings};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::http_client::send_to_idp;
use crate::jwt::BearerError;
use crate::reply::Reply;
use crate::secret::Secret;
use crate::session::{hash_token, random_token, EndReason, Session};
use serde::Deserialize;
use serde_json::json;
use url::Url;

/// Where a browser may go after logout: `rd` when allowed, else the configured default.
pub fn post_logout_target(logout: &LogoutSettings, rd: Option<&str>) -> Url {
    let default = &logout.post_logout_redirect_url;
    rd.filter(|r| r.len() <= 4096 && !r.chars().any(|c| c.is_control() || c == ' '))
        .and_then(|r| default.join(r).ok())
        .filter(|u| {
            logout
                .allowed_redirects
                .iter()
                .any(|allowed| is_within(u, allowed))
        })
        .unwrap_or_else(|| default.clone())
}

fn is_within(target: &Url, allowed: &Url) -> bool {
    target.scheme() == allowed.scheme()
        && target.host_str() == allowed.host_str()
        && target.port_or_known_default() == allowed.port_or_known_default()
        && target.username().is_empty()
        && target.password().is_none()
        && (target.path() == allowed.path()
            || (allowed.path().ends_with('/') && target.path().starts_with(allowed.path())))
}

/// The provider's end-session URL for `target`, or `target` itself without one.
fn end_session_url(
    gw: &Gateway,
    config: &Config,
    id_token_hint: Option<&str>,
    target: &Url,
    initiating_idp: Option<&str>,
) -> String {
    let endpoint = gw
        .provider
        .snapshot()
        .and_then(|s| s.extra.end_session_endpoint.clone());
    let Some(mut url) = endpoint else {
        return target.to_string();
    };
    {
        let mut q = url.query_pairs_mut();
        if let Some(hint) = id_token_hint.filter(|h| !h.is_empty()) {
            q.append_pair("id_token_hint", hint);
        }
        q.append_pair("post_logout_redirect_uri", target.as_str())
            .append_pair("client_id", &config.oidc.client_id)
            .append_pair("state", &random_token());
        if let Some(idp) = initiating_idp {
            q.append_pair("initiating_idp", idp);
        }
    }
    url.to_string()
}

/// Revoke a session's refresh and access tokens at the provider (RFC 7009), and stop accepting
/// its access token as a bearer token. Failures are logged; the logout goes on.
pub async fn revoke_session_tokens(gw: &Gateway, config: &Config, session: &Session) {
    gw.bearer.revoke(session.tokens.access_token.expose());
    if !config.logout.revoke_tokens {
        return;
    }
    if let Some(refresh) = &session.tokens.refresh_token {
        revoke_at_provider(gw, config, refresh.expose(), "refresh_token").await;
    }
    revoke_at_provider(
        gw,
        config,
        session.tokens.access_token.expose(),
        "access_token",
    )
    .await;
}

async fn revoke_at_provider(gw: &Gateway, config: &Config, token: &str, hint: &str) {
    let Some(endpoint) = gw
        .provider
        .snapshot()
        .and_then(|s| s.extra.revocation_endpoint.clone())
    else {
        return;
    };
    let mut form = vec![("token", token), ("token_type_hint", hint)];
    let req = super::client_auth(gw.http.post(endpoint.as_str()), &mut form, &config.oidc);
    let req = req.timeout(config.logout.revocation_timeout).form(&form);
    match send_to_idp("revocation", req).await {
        Ok(r) if r.status().is_success() => tracing::debug!(hint, "token revoked at the provider"),
        Ok(r) => tracing::warn!(
            hint,
            status = r.status().as_u16(),
            "token revocation refused"
        ),
        Err(e) => tracing::warn!(hint, error = %e, "token revocation failed"),
    }
}

/// The ID token to send as `id_token_hint` for the ended `session`: kept with it
/// (`session.id_token_hint = "store"`), or sealed in the logout cookie the request carries.
fn id_token_hint(gw: &Gateway, session: &Session, logout_cookie: Option<&str>) -> Option<Secret> {
    session
        .tokens
        .id_token
        .clone()
        .or_else(|| logout_cookie.and_then(|sealed| gw.id_token_seal.open(&session.key, sealed)))
}

/// The gateway's cookies a logout request carries.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogoutCookies<'a> {
    pub session: Option<&'a str>,
    /// The sealed ID token ([`crate::session::id_token_cookie`]).
    pub logout: Option<&'a str>,
}

/// `GET /oauth2/logout`: end the browser's session (if any) and send it to the provider.
pub async fn rp_initiated(
    gw: &Gateway,
    config: &Config,
    query: &str,
    cookies: LogoutCookies<'_>,
) -> Reply {
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let target = post_logout_target(&config.logout, param("rd").as_deref());
    let ended = match cookies.session.and_then(crate::session::SessionId::decode) {
        Some(id) => gw
            .store
            .remove(&id.key(), EndReason::Logout)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "session store failed during logout");
                None
            }),
        None => None,
    };
    if let Some(session) = &ended {
        revoke_session_tokens(gw, config, session).await;
    }
    let hint = ended
        .as_ref()
        .and_then(|s| id_token_hint(gw, s, cookies.logout));
    let location = end_session_url(
        gw,
        config,
        hint.as_ref().map(Secret::expose),
        &target,
        param("initiating_idp").as_deref(),
    );
    let cookies = &config.session.cookies;
    Reply::redirect(location)
        .set_cookie(cookies.clear_session_cookie())
        .set_cookie(cookies.login_cookie("", false))
        .set_cookie(cookies.logout_cookie(""))
}

/// The answer to a logout link followed from another site: a page asking the user, whose button
/// posts the same logout (query and all) from the gateway's own origin.
pub fn confirm_page(endpoint_prefix: &str, query: &str) -> Reply {
    let action = if query.is_empty() {
        format!("{endpoint_prefix}/logout")
    } else {
        format!("{endpoint_prefix}/logout?{query}")
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Sign out?</title></head><body>\
         <p>Another site sent you here to sign out.</p>\
         <form method=post action=\"{}\"><button type=submit>Sign out</button></form>\
         </body></html>",
        html_escape::encode_double_quoted_attribute(&action)
    );
    Reply::html(200, html)
        .header("Cache-Control", "no-cache, no-store")
        .header("X-Frame-Options", "DENY")
}

/// The logout API's request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogoutRequest {
    token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
}

/// `POST /oauth2/logout` (JSON): end the session of these tokens and revoke them. The answer's
/// end-session URL carries `id_token_hint` when the session kept its ID token, or when the
/// request carries the browser's logout cookie (a call from the page itself).
pub async fn api(
    gw: &Gateway,
    config: &Config,
    body: &[u8],
    logout_cookie: Option<&str>,
) -> Result<Reply, GatewayError> {
    let request: LogoutRequest = serde_json::from_slice(body).map_err(|_| {
        GatewayError::BadRequest("expected a JSON object with token/access_token and refresh_token")
    })?;
    if request.token.is_some() && request.access_token.is_some() {
        return Err(GatewayError::BadRequest(
            "send token or access_token, not both",
        ));
    }
    let access = request
        .token
        .or(request.access_token)
        .filter(|t| !t.is_empty());
    let refresh = request.refresh_token.filter(|t| !t.is_empty());
    if access.is_none() && refresh.is_none() {
        return Err(GatewayError::BadRequest("no token to log out"));
    }
    // Sessions are found by their access token only: the gateway never hands out a session's
    // refresh token, so a refresh token alone names no session a client could hold.
    let session = match &access {
        Some(token) => gw
            .store
            .find_by_token(&hash_token(token))
            .await
            .map_err(|_| GatewayError::StoreUnavailable)?,
        None => None,
    };
    let target = post_logout_target(&config.logout, None);
    let redirect = match session {
        Some(s) => {
            gw.store
                .remove(&s.key, EndReason::LogoutApi)
                .await
                .map_err(|_| GatewayError::StoreUnavailable)?;
            revoke_session_tokens(gw, config, &s).await;
            let hint = id_token_hint(gw, &s, logout_cookie);
            end_session_url(gw, config, hint.as_ref().map(Secret::expose), &target, None)
        }
        None => {
            // No session, but a valid bearer token may still be logged out: revoke it.
            let Some(token) = access.as_deref() else {
                return Err(GatewayError::InvalidToken(BearerError::Inactive));
            };
            gw.bearer
                .verify(token)
                .await
                .map_err(GatewayError::InvalidToken)?;
            gw.bearer.revoke(token);
            if config.logout.revoke_tokens {
                revoke_at_provider(gw, config, token, "access_token").await;
            }
            end_session_url(gw, config, None, &target, None)
        }
    };
    Ok(Reply::json(200, &json!({ "redirect": redirect })))
}

/// `GET /oauth2/frontchannel-logout?iss=&sid=`: the provider, in an iframe, ends its session.
pub async fn frontchannel(
    gw: &Gateway,
    config: &Config,
    query: &str,
    session_cookie: Option<&str>,
) -> Result<Reply, GatewayError> {
    let mut iss = None;
    let mut sid = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "iss" => iss = Some(v.into_owned()),
            "sid" => sid = Some(v.into_owned()),
            _ => {}
        }
    }
    // Clearing the browser's cookie is itself a logout: only for a request that named sessions or
    // carried the cookie it would clear.
    let clears_cookie = iss.is_some() || session_cookie.is_some();
    let ended = match (iss, sid) {
        (Some(iss), Some(sid)) => {
            let issuer = gw
                .provider
                .snapshot()
                .ok_or(GatewayError::ProviderNotReady)?;
            if iss.trim_end_matches('/') != issuer.metadata.issuer().as_str().trim_end_matches('/')
            {
                return Err(GatewayError::BadRequest("iss is not the configured issuer"));
            }
            gw.store
                .remove_by_sid(&sid, EndReason::Frontchannel)
                .await
                .map_err(|_| GatewayError::StoreUnavailable)?
        }
        (None, None) => match session_cookie.and_then(crate::session::SessionId::decode) {
            // Without iss and sid, the session is the one of the browser the iframe runs in.
            Some(id) => gw
                .store
                .remove(&id.key(), EndReason::Frontchannel)
                .await
                .map_err(|_| GatewayError::StoreUnavailable)?
                .into_iter()
                .collect(),
            None => Vec::new(),
        },
        _ => {
            return Err(GatewayError::BadRequest(
                "send both iss and sid, or neither",
            ))
        }
    };
    for session in &ended {
        gw.bearer.revoke(session.tokens.access_token.expose());
    }
    let reply = Reply::html(
        200,
        "<!doctype html><html><head><meta charset=utf-8><title>Logged out</title></head><body>Logged out.</body></html>".into(),
    )
    .header("Cache-Control", "no-cache, no-store")
    .header("Pragma", "no-cache");
    Ok(if clears_cookie {
        reply.set_cookie(config.session.cookies.clear_session_cookie())
    } else {
        reply
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> LogoutSettings {
        let default = Url::parse("https://app.example.test/").unwrap();
        LogoutSettings {
            post_logout_redirect_url: default.clone(),
            allowed_redirects: vec![
                default,
                Url::parse("https://portal.example.test/bye").unwrap(),
            ],
            revoke_tokens: true,
            revocation_timeout: Duration::from_secs(1),
            backchannel_max_age: Duration::from_secs(60),
            webhooks: Vec::new(),
        }
    }

    #[test]
    fn post_logout_targets_stay_on_the_allow_list() {
        let s = settings();
        let t = |rd: &str| post_logout_target(&s, Some(rd)).to_string();
        assert_eq!(t("/see-you"), "https://app.example.test/see-you");
        assert_eq!(
            t("https://portal.example.test/bye"),
            "https://portal.example.test/bye"
        );
        assert_eq!(
            t("https://portal.example.test/bye?x=1"),
            "https://portal.example.test/bye?x=1"
        );
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "https://app.example.test@evil.example/",
            "https://user@app.example.test/",
            "https://portal.example.test/byebye",
            "https://portal.example.test/other",
            "http://app.example.test/",
            "https://app.example.test:8443/",
            "/%09/evil.example",
            "\t//evil.example",
            "https://evil.example%2F@app.example.test/",
        ] {
            let got = post_logout_target(&s, Some(evil));
            assert_eq!(got.host_str(), Some("app.example.test"), "{evil:?} → {got}");
            assert_eq!(got.scheme(), "https", "{evil:?} → {got}");
            assert_eq!(got.port(), None, "{evil:?} → {got}");
        }
        assert_eq!(
            post_logout_target(&s, None).as_str(),
            "https://app.example.test/"
        );
    }
}
