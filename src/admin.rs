//! The admin listener (`server.admin_listen`, default `127.0.0.1:9090`), apart from the proxy
//! port so probes and scrapes never mix with user traffic:
//!
//! - `/healthz`: the process is alive (always 200);
//! - `/readyz`: 200 only when the provider's metadata and keys are loaded; otherwise 503 with a
//!   JSON body naming what is missing;
//! - `/metrics`: Prometheus text format ([`crate::metrics`]);
//! - `POST /sessions/end?sub=<subject>` or `?sid=<provider session id>`: an operator ends
//!   sessions (reason `admin`); answers `{"ended": n}`.

use crate::gateway::Gateway;
use crate::metrics::METRICS;
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
}

impl AdminApp {
    /// `(ready, body)` for `/readyz`.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let snapshot = self.gateway.provider.snapshot();
        let metadata = snapshot.is_some();
        let keys = snapshot.as_ref().is_some_and(|s| s.key_count > 0);
        let ready = metadata && keys;
        let mut not_ready = Vec::new();
        if !metadata {
            not_ready.push("provider_metadata");
        }
        if !keys {
            not_ready.push("provider_keys");
        }
        (
            ready,
            json!({
                "ready": ready,
                "checks": {"provider_metadata": metadata, "provider_keys": keys},
                "not_ready": not_ready,
            }),
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
                let (ready, body) = self.readiness();
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
