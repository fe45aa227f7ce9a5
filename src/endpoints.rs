//! The gateway's own endpoints under `server.endpoint_prefix` (default `/oauth2`), named as in
//! oauth2-proxy where it has them: `start`, `callback`, `userinfo`, `logout` (alias `sign_out`),
//! `auth` (forward-auth, [`crate::forward_auth`]), plus `backchannel-logout` and
//! `frontchannel-logout`.

use crate::auth;
use crate::config::Config;
use crate::error::GatewayError;
use crate::forward_auth;
use crate::gateway::Gateway;
use crate::metrics::METRICS;
use crate::oidc::callback::{self, CallbackParams};
use crate::oidc::{backchannel, login, logout, redirect};
use crate::reply::Reply;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use serde_json::json;

/// Largest body accepted by a gateway endpoint.
const MAX_BODY: usize = 64 * 1024;

/// Answer a request for `{prefix}{sub_path}`.
pub async fn handle(gw: &Gateway, config: &Config, session: &mut Session, sub_path: &str) -> Reply {
    let method = session.req_header().method.as_str().to_string();
    let result = match (method.as_str(), sub_path) {
        ("GET", "/start") => start(gw, config, session).await,
        ("GET", "/callback") => {
            let query = session
                .req_header()
                .uri
                .query()
                .unwrap_or("")
                .as_bytes()
                .to_vec();
            finish_login(gw, config, session, &query).await
        }
        ("POST", "/callback") => match read_body(session, FORM).await {
            Ok(body) => finish_login(gw, config, session, &body).await,
            Err(e) => Err(e),
        },
        ("GET", "/userinfo") => userinfo(gw, config, session).await,
        ("GET" | "HEAD", "/auth") => forward_auth::check(gw, config, session).await,
        ("POST", "/logout" | "/sign_out") if has_content_type(session, JSON) => {
            match read_body(session, JSON).await {
                Ok(body) => {
                    let logout_cookie = cookies(session, config).logout;
                    logout::api(gw, config, &body, logout_cookie).await
                }
                Err(e) => Err(e),
            }
        }
        // A browser sent to sign_out, or a form posting there, goes on to logout: the browser
        // sends the logout cookie to that path only.
        ("GET" | "POST", "/sign_out") => Ok(to_logout(config, session)),
        // A link or redirect on another site must not end the session (logout CSRF): the
        // browser is asked first, and its answer comes back from this origin.
        ("GET", "/logout") if cross_site_navigation(session) => {
            let query = session.req_header().uri.query().unwrap_or("");
            Ok(logout::confirm_page(&config.server.endpoint_prefix, query))
        }
        // A browser form posting to logout is an RP-initiated logout.
        ("GET" | "POST", "/logout") => Ok(rp_logout(gw, config, session).await),
        ("POST", "/backchannel-logout") => Ok(match read_body(session, FORM).await {
            Ok(body) => backchannel::handle(gw, config, &body).await,
            Err(e) => backchannel::invalid(&e.to_string()),
        }),
        ("GET", "/frontchannel-logout") => {
            let query = session.req_header().uri.query().unwrap_or("");
            // The provider loads this in an iframe; a top-level navigation from another site
            // is a link anyone could plant, so the browser's cookie names no session then.
            let cookie = crate::session::cookie::find(
                session.req_header(),
                &config.session.cookies.session_name,
            )
            .filter(|_| !cross_site_navigation(session));
            logout::frontchannel(gw, config, query, cookie).await
        }
        _ => Err(GatewayError::NotFound),
    };
    result.unwrap_or_else(|e| {
        tracing::info!(
            endpoint = sub_path,
            status = e.status(),
            error = e.code(),
            "gateway endpoint refused the request"
        );
        let login_url = format!("{}/start", config.server.endpoint_prefix);
        e.reply(auth::wants_html(session.req_header()), &login_url)
    })
}

/// `GET /oauth2/start?rd=/path`: begin a login explicitly.
async fn start(gw: &Gateway, config: &Config, session: &Session) -> Result<Reply, GatewayError> {
    let req = session.req_header();
    let rd = req
        .uri
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "rd")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| "/".into());
    let login_cookie = crate::session::cookie::find(req, &config.session.cookies.login_name);
    login::begin(gw, config, login_cookie, redirect::safe_return_to(&rd)).await
}

async fn finish_login(
    gw: &Gateway,
    config: &Config,
    session: &Session,
    params: &[u8],
) -> Result<Reply, GatewayError> {
    let login_cookie =
        crate::session::cookie::find(session.req_header(), &config.session.cookies.login_name);
    let result = match CallbackParams::parse(params) {
        Ok(params) => callback::complete(gw, config, params, login_cookie).await,
        Err(e) => Err(e),
    };
    let label = result.as_ref().map_or_else(|e| e.code(), |_| "success");
    METRICS.logins.with_label_values(&[label]).inc();
    result
}

/// `GET /oauth2/userinfo`: the current identity (session or bearer token) as JSON; 401 without.
async fn userinfo(gw: &Gateway, config: &Config, session: &Session) -> Result<Reply, GatewayError> {
    let who = auth::authenticate(gw, config, session.req_header(), &[])
        .await?
        .ok_or(GatewayError::Unauthenticated)?;
    let identity = who.identity();
    let h = &config.headers;
    let groups: Vec<String> = identity
        .claim_text(&h.groups_claim)
        .map(|g| {
            g.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply::json(
        200,
        &json!({
            "sub": identity.subject,
            "user": identity.claim_text(&h.user_claim),
            "email": identity.claim_text(&h.email_claim),
            "preferredUsername": identity.claim_text(&h.preferred_username_claim),
            "groups": groups,
        }),
    ))
}

async fn rp_logout(gw: &Gateway, config: &Config, session: &Session) -> Reply {
    let query = session.req_header().uri.query().unwrap_or("");
    logout::rp_initiated(gw, config, query, cookies(session, config)).await
}

/// A top-level navigation from another site (Fetch Metadata: `Sec-Fetch-Site: cross-site`,
/// `Sec-Fetch-Mode: navigate`): what a link or redirect planted on any site produces, and the
/// one cross-site request that carries `SameSite=Lax` cookies. Browsers that send no Fetch
/// Metadata are not told apart.
fn cross_site_navigation(session: &Session) -> bool {
    let headers = &session.req_header().headers;
    let is = |name: &str, value: &[u8]| headers.get(name).is_some_and(|v| v.as_bytes() == value);
    is("sec-fetch-site", b"cross-site") && is("sec-fetch-mode", b"navigate")
}

/// The gateway's cookies of a logout request.
fn cookies<'a>(session: &'a Session, config: &Config) -> logout::LogoutCookies<'a> {
    let names = &config.session.cookies;
    let req = session.req_header();
    logout::LogoutCookies {
        session: crate::session::cookie::find(req, &names.session_name),
        logout: crate::session::cookie::find(req, &names.logout_name),
    }
}

/// 303 from `sign_out` (oauth2-proxy's name) to `logout`, the query as it came.
fn to_logout(config: &Config, session: &Session) -> Reply {
    let location = match session.req_header().uri.query() {
        Some(query) => format!("{}/logout?{query}", config.server.endpoint_prefix),
        None => format!("{}/logout", config.server.endpoint_prefix),
    };
    Reply::new(303).header("Location", location)
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn has_content_type(session: &Session, expected: &str) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(expected))
}

/// Read a body of the `expected` content type, at most [`MAX_BODY`] bytes.
async fn read_body(session: &mut Session, expected: &'static str) -> Result<Bytes, GatewayError> {
    if !has_content_type(session, expected) {
        return Err(GatewayError::BadRequest(if expected == FORM {
            "expected a form body (application/x-www-form-urlencoded)"
        } else {
            "expected a JSON body (application/json)"
        }));
    }
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(GatewayError::BodyTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(_) => return Err(GatewayError::BadRequest("unreadable request body")),
        }
    }
}
