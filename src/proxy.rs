//! The pingora [`ProxyHttp`] implementation. Each phase is a few lines that delegate:
//!
//! - `request_filter`: [`admit`](AuthProxy::admit) — gateway endpoints, route classification,
//!   authentication; answers early (`Ok(true)`) with a redirect, 401 or error;
//! - `upstream_peer`: the route's upstream;
//! - `upstream_request_filter`: strip forged identity headers, the gateway's cookies and a verified
//!   bearer token, then set the identity headers ([`crate::identity`]);
//! - `response_filter`: the request id back to the client;
//! - `logging`: metrics and one access-log line ([`crate::access_log`]).

use crate::access_log;
use crate::auth::{self, Authenticated};
use crate::config::Config;
use crate::endpoints;
use crate::error::GatewayError;
use crate::forwarded;
use crate::gateway::Gateway;
use crate::metrics::{Outcome, HOT};
use crate::oidc::{login, redirect};
use crate::reply::Reply;
use crate::routes::{self, normalize_path, AuthPolicy, Route};
use crate::session::cookie;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The proxy service.
pub struct AuthProxy {
    pub gateway: Arc<Gateway>,
}

/// State of one request.
pub struct RequestCtx {
    /// The configuration this request started with (a reload does not change it mid-request).
    pub config: Arc<Config>,
    pub route: Option<Arc<Route>>,
    pub auth: Option<Authenticated>,
    /// What the gateway decided, for the access log and metrics.
    pub outcome: Outcome,
    pub started: Instant,
    /// Time spent deciding who the request is.
    pub auth_time: Duration,
    /// Correlates the access log, the upstream and the client (`server.request_id_header`).
    pub request_id: String,
    /// The request target to send upstream instead of the client's, when the client's path was
    /// not in the normalized form the route was chosen by ([`routes::upstream_target`]).
    pub upstream_target: Option<String>,
}

/// What `admit` decided.
enum Admission {
    /// Go on to the upstream.
    Proxy,
    /// Answer with this reply and stop.
    Answer(Reply),
}

impl AuthProxy {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    /// Decide what happens to a request: a gateway endpoint, a public route, an authenticated
    /// request, or a refusal (login redirect or 401).
    async fn admit(&self, session: &mut Session, ctx: &mut RequestCtx) -> Admission {
        let config = ctx.config.clone();
        let gw = &self.gateway;
        let req = session.req_header();
        let mut browser = auth::wants_html(req);
        let refuse = |ctx: &mut RequestCtx, e: GatewayError, browser: bool| {
            refusal(ctx, &config.server.endpoint_prefix, e, browser)
        };

        if cookie::header_len(req) > config.server.max_cookie_header_bytes {
            return refuse(ctx, GatewayError::CookieTooLarge, browser);
        }
        let Ok(raw_path) = routes::target_path(req.raw_path(), &req.uri) else {
            return refuse(ctx, GatewayError::BadPath, browser);
        };
        let Ok(path) = normalize_path(raw_path) else {
            return refuse(ctx, GatewayError::BadPath, browser);
        };
        ctx.upstream_target = routes::upstream_target(req.raw_path(), &path, req.uri.query());
        if let Some(sub_path) = path
            .strip_prefix(config.server.endpoint_prefix.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            ctx.outcome = Outcome::Endpoint;
            let reply = endpoints::handle(gw, &config, session, sub_path).await;
            return Admission::Answer(reply);
        }

        let Ok(route) = config
            .routes
            .classify_request(req.method.as_str(), raw_path, &path)
        else {
            return refuse(ctx, GatewayError::BadPath, browser);
        };
        ctx.route = Some(route.clone());
        // API routes answer programs: JSON errors, never a login page or redirect.
        browser &= route.auth != AuthPolicy::Api;
        if route.auth == AuthPolicy::Public {
            ctx.outcome = Outcome::Proxied;
            return Admission::Proxy;
        }
        let auth_started = Instant::now();
        let decision = auth::authenticate(gw, &config, req, &route.scopes).await;
        ctx.auth_time = auth_started.elapsed();
        let method = match &decision {
            Ok(Some(who)) => who.method(),
            _ if auth::bearer_token(req).is_some() => "bearer",
            _ => "session",
        };
        let histogram = if method == "session" {
            &HOT.auth_duration_session
        } else {
            &HOT.auth_duration_bearer
        };
        histogram.observe(ctx.auth_time.as_secs_f64());
        match decision {
            Ok(Some(who)) => {
                ctx.auth = Some(who);
                ctx.outcome = Outcome::Proxied;
                return Admission::Proxy;
            }
            Ok(None) => {}
            Err(e) => return refuse(ctx, e, false),
        }
        if route.auth == AuthPolicy::Protected && browser {
            let return_to =
                redirect::safe_return_to(req.uri.path_and_query().map_or("/", |pq| pq.as_str()));
            let login_cookie = cookie::find(req, &config.session.cookies.login_name);
            return match login::begin(gw, &config, login_cookie, return_to).await {
                Ok(reply) => {
                    ctx.outcome = Outcome::RedirectedToLogin;
                    Admission::Answer(reply)
                }
                Err(e) => refuse(ctx, e, browser),
            };
        }
        refuse(ctx, GatewayError::Unauthenticated, browser)
    }
}

/// Answer `e`, recording the outcome for the access log.
fn refusal(ctx: &mut RequestCtx, prefix: &str, e: GatewayError, browser: bool) -> Admission {
    ctx.outcome = match e.status() {
        401 => Outcome::Unauthorized,
        403 => Outcome::Forbidden,
        _ => Outcome::Error,
    };
    tracing::info!(status = e.status(), error = e.code(), "request refused");
    Admission::Answer(e.reply(browser, &format!("{prefix}/start")))
}

/// Strip, then set: forged identity headers, the gateway's cookies and a bearer token the gateway
/// verified never reach the upstream unless configured; the request id, the client's address and,
/// for an authenticated request, its identity headers do. `target`, when given, replaces the
/// client's request target (the normalized path the route was chosen by). The work of
/// `upstream_request_filter` on every proxied request (public for `benches/proxy.rs`).
pub fn prepare_upstream_request(
    config: &Config,
    upstream_request: &mut RequestHeader,
    request_id: &str,
    auth: Option<&Authenticated>,
    client: forwarded::Client,
    target: Option<&str>,
) -> Result<()> {
    if let Some(target) = target {
        upstream_request.set_raw_path(target.as_bytes())?;
    }
    let forged = config.headers.strip(upstream_request);
    if !forged.is_empty() {
        tracing::warn!(headers = ?forged, "removed identity headers sent by the client");
    }
    let cookies = &config.session.cookies;
    cookie::strip(
        upstream_request,
        &[
            &cookies.session_name,
            &cookies.login_name,
            &cookies.logout_name,
        ],
    );
    upstream_request.insert_header(config.server.request_id_header.spelling(), request_id)?;
    if config.server.forwarded_headers {
        forwarded::set(upstream_request, client)?;
    }
    if let Some(who) = auth {
        if who.consumed_authorization() {
            // The client's bearer token was its credential for the gateway, not for the upstream:
            // it goes on only as configured (`pass_authorization_header`, set again by `inject`,
            // or `pass_access_token`), as Envoy's jwt_authn and Istio do by default.
            upstream_request.remove_header(&http::header::AUTHORIZATION);
        }
        config
            .headers
            .inject(upstream_request, who.identity(), who.access_token())?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for AuthProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            config: self.gateway.config.load_full(),
            route: None,
            auth: None,
            outcome: Outcome::Error,
            started: Instant::now(),
            auth_time: Duration::ZERO,
            request_id: String::new(),
            upstream_target: None,
        }
    }

    /// `Ok(true)`: the gateway answered; `Ok(false)`: proxy to the upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.request_id = access_log::request_id(
            session.req_header(),
            ctx.config.server.request_id_header.name(),
        );
        match self.admit(session, ctx).await {
            Admission::Proxy => Ok(false),
            Admission::Answer(reply) => {
                let header = ctx.config.server.request_id_header.as_str().to_string();
                reply
                    .header_owned(header, ctx.request_id.clone())
                    .send(session)
                    .await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
        Ok(route.upstream.peer())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let client = forwarded::Client {
            ip,
            trusted_proxy: ip.is_some_and(|ip| ctx.config.server.is_trusted_proxy(ip)),
            tls: ctx.config.server.tls.is_some(),
        };
        prepare_upstream_request(
            &ctx.config,
            upstream_request,
            &ctx.request_id,
            ctx.auth.as_ref(),
            client,
            ctx.upstream_target.as_deref(),
        )
    }

    /// The request id goes back to the client on proxied responses too.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        upstream_response.insert_header(
            ctx.config.server.request_id_header.spelling(),
            &ctx.request_id,
        )
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        access_log::record(
            ctx,
            session.req_header().method.as_str(),
            status,
            e.is_some(),
        );
    }
}
