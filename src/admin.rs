//! The admin listener (`server.admin_listen`, default `127.0.0.1:9090`), apart from the proxy
//! port so probes and scrapes never mix with user traffic:
//!
//! - `/healthz`: the process is alive (always 200);
//! - `/readyz`: 200 only when the provider's metadata and keys are loaded and the proxy listener
//!   accepts ([`crate::readiness`]); otherwise 503 with a JSON body naming what is missing;
//! - `/metrics`: Prometheus text format ([`crate::metrics`]);
//! - `POST /sessions/end?sub=<subject>` or `?sid=<provider session id>`: an operator ends
//!   sessions (reason `admin`); answers `{"ended": n}`.

use crate::gateway::Gateway;
use crate::metrics::METRICS;
use crate::readiness::ListenerProbe;
use crate::session::EndReason;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;

/// The admin HTTP app.
pub struct AdminApp {
    pub gateway: Arc<Gateway>,
    /// The proxy listener's readiness, shared with its connection filter.
    pub proxy_listener: Arc<ListenerProbe>,
}

impl AdminApp {
    /// `(ready, body)` for `/readyz`.
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        let snapshot = self.gateway.provider.snapshot();
        let checks = [
            ("provider_metadata", snapshot.is_some()),
            (
                "provider_keys",
                snapshot.as_ref().is_some_and(|s| s.key_count > 0),
            ),
            ("proxy_listener", self.proxy_listener.accepting().await),
        ];
        let ready = checks.iter().all(|(_, ok)| *ok);
        let not_ready: Vec<&str> = checks
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| *name)
            .collect();
        let checks: serde_json::Map<String, serde_json::Value> = checks
            .iter()
            .map(|(name, ok)| (name.to_string(), (*ok).into()))
            .collect();
        (
            ready,
            json!({"ready": ready, "checks": checks, "not_ready": not_ready}),
        )
    }
}

impl AdminApp {
    async fn end_sessions(&self, query: &str) -> Response<Vec<u8>> {
        let store = &self.gateway.store;
        let mut params = form_urlencoded::parse(query.as_bytes());
        let ended = match params.next() {
            Some((k, v)) if k == "sub" && !v.is_empty() => {
                store.remove_by_subject(&v, EndReason::Admin).await
            }
            Some((k, v)) if k == "sid" && !v.is_empty() => {
                store.remove_by_sid(&v, EndReason::Admin).await
            }
            _ => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    json!({"error": "invalid_request", "error_description": "give sub=<subject> or sid=<session id>"}).to_string(),
                )
            }
        };
        match ended {
            Ok(sessions) => {
                for s in &sessions {
                    self.gateway.bearer.revoke(s.tokens.access_token.expose());
                }
                respond(
                    StatusCode::OK,
                    "application/json",
                    json!({"ended": sessions.len()}).to_string(),
                )
            }
            Err(e) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                json!({"error": "store_unavailable", "error_description": e.to_string()})
                    .to_string(),
            ),
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body.into_bytes())
        .expect("static response parts are valid")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" => {
                let (ready, body) = self.readiness().await;
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                respond(status, "application/json", body.to_string())
            }
            "/metrics" => {
                METRICS
                    .sessions
                    .set(self.gateway.store.session_count() as i64);
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    METRICS.render(),
                )
            }
            "/sessions/end" if session.req_header().method == http::Method::POST => {
                let query = session.req_header().uri.query().unwrap_or("").to_string();
                self.end_sessions(&query).await
            }
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        }
    }
}
