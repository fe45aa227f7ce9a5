//! Every metric the gateway exports, defined once, in Prometheus text format on the admin
//! listener's `/metrics`.
//!
//! Conventions: `authgate_` prefix, `_total` for counters, base units (`_seconds`), label values
//! from small fixed sets: route names come from the configuration, reasons and outcomes from
//! enums; never a user, a token or a path.
//!
//! | metric | labels |
//! |---|---|
//! | `authgate_requests_total` | `route`, `outcome` (proxied, redirected_to_login, unauthorized, forbidden, error, endpoint) |
//! | `authgate_request_duration_seconds` | `route` |
//! | `authgate_auth_duration_seconds` | `method` (session, bearer) |
//! | `authgate_auth_decisions_total` | `method` (session, bearer_jwt, introspection), `result` (allowed, denied), `reason` |
//! | `authgate_token_cache_hits_total`, `authgate_token_cache_misses_total` | |
//! | `authgate_sessions` (gauge), `authgate_sessions_created_total` | |
//! | `authgate_sessions_ended_total` | `reason` |
//! | `authgate_logins_total` | `result` (success, or the refusal's error code) |
//! | `authgate_idp_requests_total` | `endpoint` (discovery, jwks, token, userinfo, introspection, revocation), `status` (2xx, 3xx, 4xx, 5xx, error) |
//! | `authgate_idp_request_duration_seconds` | `endpoint` |
//! | `authgate_jwks_refresh_total` | `result` (ok, failed) |
//! | `authgate_jwks_keys` (gauge) | |
//! | `authgate_backchannel_logouts_total` | `result` (ok, invalid) |
//! | `authgate_logout_webhook_deliveries_total` | `result` (ok, failed, dropped) |
//! | `authgate_upstream_errors_total` | |
//! | `authgate_config_reloads_total` | `result` (ok, failed) |
//! | `authgate_build_info` (gauge, 1) | `version` |

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

/// Buckets for whole requests: 100 µs to 10 s.
const REQUEST_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets for the gateway's own auth work: 1 µs to 1 s (a cached token is about a microsecond;
/// a JWKS refetch or introspection call is milliseconds).
const AUTH_BUCKETS: &[f64] = &[
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.005, 0.01, 0.05, 0.1, 1.0,
];
/// Buckets for calls to the provider: 1 ms to 10 s.
const IDP_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The gateway's registry (not the global default, so embedders stay isolated).
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub auth_duration: HistogramVec,
    pub auth_decisions: IntCounterVec,
    pub token_cache_hits: IntCounter,
    pub token_cache_misses: IntCounter,
    pub sessions: IntGauge,
    pub sessions_created: IntCounter,
    pub sessions_ended: IntCounterVec,
    pub logins: IntCounterVec,
    pub idp_requests: IntCounterVec,
    pub idp_request_duration: HistogramVec,
    pub jwks_refresh: IntCounterVec,
    pub jwks_keys: IntGauge,
    pub backchannel_logouts: IntCounterVec,
    pub logout_webhook_deliveries: IntCounterVec,
    pub upstream_errors: IntCounter,
    pub config_reloads: IntCounterVec,
    pub build_info: IntGaugeVec,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric")
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric")
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            registry: Registry::new(),
            requests: counter_vec(
                "authgate_requests_total",
                "Requests, by configured route and what the gateway did with them.",
                &["route", "outcome"],
            ),
            request_duration: histogram_vec(
                "authgate_request_duration_seconds",
                "Whole request duration, upstream included.",
                &["route"],
                REQUEST_BUCKETS,
            ),
            auth_duration: histogram_vec(
                "authgate_auth_duration_seconds",
                "Time the gateway spent deciding who a request is (its own overhead).",
                &["method"],
                AUTH_BUCKETS,
            ),
            auth_decisions: counter_vec(
                "authgate_auth_decisions_total",
                "Credential checks, by method, result and reason.",
                &["method", "result", "reason"],
            ),
            token_cache_hits: counter(
                "authgate_token_cache_hits_total",
                "Bearer tokens found in the verified-token cache.",
            ),
            token_cache_misses: counter(
                "authgate_token_cache_misses_total",
                "Bearer tokens not in the verified-token cache (verified in full or introspected).",
            ),
            sessions: IntGauge::new("authgate_sessions", "Live browser sessions in the store.")
                .expect("valid metric"),
            sessions_created: counter(
                "authgate_sessions_created_total",
                "Browser sessions created by a completed login.",
            ),
            sessions_ended: counter_vec(
                "authgate_sessions_ended_total",
                "Browser sessions ended, by reason.",
                &["reason"],
            ),
            logins: counter_vec(
                "authgate_logins_total",
                "Login callbacks, by result (success, or the refusal's error code).",
                &["result"],
            ),
            idp_requests: counter_vec(
                "authgate_idp_requests_total",
                "Calls to the identity provider, by endpoint and HTTP status class.",
                &["endpoint", "status"],
            ),
            idp_request_duration: histogram_vec(
                "authgate_idp_request_duration_seconds",
                "Duration of calls to the identity provider.",
                &["endpoint"],
                IDP_BUCKETS,
            ),
            jwks_refresh: counter_vec(
                "authgate_jwks_refresh_total",
                "Loads of signing keys (provider discovery and JWKS, remote issuer JWKS), by result.",
                &["result"],
            ),
            jwks_keys: IntGauge::new(
                "authgate_jwks_keys",
                "Signing keys of the [oidc] provider currently loaded.",
            )
            .expect("valid metric"),
            backchannel_logouts: counter_vec(
                "authgate_backchannel_logouts_total",
                "Back-channel logout requests from the provider, by result.",
                &["result"],
            ),
            logout_webhook_deliveries: counter_vec(
                "authgate_logout_webhook_deliveries_total",
                "Logged-out webhook deliveries, by result (ok, failed after retries, dropped).",
                &["result"],
            ),
            upstream_errors: counter(
                "authgate_upstream_errors_total",
                "Requests that failed talking to the upstream (connect, read or write).",
            ),
            config_reloads: counter_vec(
                "authgate_config_reloads_total",
                "Configuration reloads on SIGHUP, by result.",
                &["result"],
            ),
            build_info: IntGaugeVec::new(
                Opts::new("authgate_build_info", "Always 1; the version is the label."),
                &["version"],
            )
            .expect("valid metric"),
        };
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.requests.clone()),
            Box::new(m.request_duration.clone()),
            Box::new(m.auth_duration.clone()),
            Box::new(m.auth_decisions.clone()),
            Box::new(m.token_cache_hits.clone()),
            Box::new(m.token_cache_misses.clone()),
            Box::new(m.sessions.clone()),
            Box::new(m.sessions_created.clone()),
            Box::new(m.sessions_ended.clone()),
            Box::new(m.logins.clone()),
            Box::new(m.idp_requests.clone()),
            Box::new(m.idp_request_duration.clone()),
            Box::new(m.jwks_refresh.clone()),
            Box::new(m.jwks_keys.clone()),
            Box::new(m.backchannel_logouts.clone()),
            Box::new(m.logout_webhook_deliveries.clone()),
            Box::new(m.upstream_errors.clone()),
            Box::new(m.config_reloads.clone()),
            Box::new(m.build_info.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// Record one call to the provider.
    pub fn idp_call(&self, endpoint: &str, status: IdpStatus, took: Duration) {
        self.idp_requests
            .with_label_values(&[endpoint, status.label()])
            .inc();
        self.idp_request_duration
            .with_label_values(&[endpoint])
            .observe(took.as_secs_f64());
    }

    /// Record an auth decision.
    pub fn auth_decision(&self, method: &str, allowed: bool, reason: &str) {
        match (method, allowed, reason) {
            ("session", true, "ok") => return HOT.session_allowed.inc(),
            ("bearer_jwt", true, "ok") => return HOT.bearer_allowed.inc(),
            _ => {}
        }
        let result = if allowed { "allowed" } else { "denied" };
        self.auth_decisions
            .with_label_values(&[method, result, reason])
            .inc();
    }
}

/// What the gateway did with a request (the `outcome` label). The order is `Outcome::ALL`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Proxied,
    RedirectedToLogin,
    Unauthorized,
    Forbidden,
    Error,
    /// Answered by one of the gateway's own endpoints.
    Endpoint,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Proxied,
        Outcome::RedirectedToLogin,
        Outcome::Unauthorized,
        Outcome::Forbidden,
        Outcome::Error,
        Outcome::Endpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::RedirectedToLogin => "redirected_to_login",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::Error => "error",
            Outcome::Endpoint => "endpoint",
        }
    }
}

/// The request metrics of one route, resolved once (a label lookup per request costs a lock and
/// a hash; these are plain atomics).
#[derive(Clone)]
pub struct RouteMetrics {
    requests: Vec<IntCounter>,
    duration: prometheus::Histogram,
}

impl RouteMetrics {
    pub fn new(route: &str) -> Self {
        Self {
            requests: Outcome::ALL
                .iter()
                .map(|o| METRICS.requests.with_label_values(&[route, o.as_str()]))
                .collect(),
            duration: METRICS.request_duration.with_label_values(&[route]),
        }
    }

    /// Count a finished request. Every outcome of a route is in the scrape from the start (at 0),
    /// so rates never start from a missing series.
    pub fn record(&self, outcome: Outcome, took: Duration) {
        self.requests[outcome as usize].inc();
        self.duration.observe(took.as_secs_f64());
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteMetrics")
    }
}

/// Handles for the labels every authenticated request uses.
pub struct HotPath {
    pub session_allowed: IntCounter,
    pub bearer_allowed: IntCounter,
    pub auth_duration_session: prometheus::Histogram,
    pub auth_duration_bearer: prometheus::Histogram,
    pub gateway_route: RouteMetrics,
}

pub static HOT: LazyLock<HotPath> = LazyLock::new(|| HotPath {
    session_allowed: METRICS
        .auth_decisions
        .with_label_values(&["session", "allowed", "ok"]),
    bearer_allowed: METRICS
        .auth_decisions
        .with_label_values(&["bearer_jwt", "allowed", "ok"]),
    auth_duration_session: METRICS.auth_duration.with_label_values(&["session"]),
    auth_duration_bearer: METRICS.auth_duration.with_label_values(&["bearer"]),
    gateway_route: RouteMetrics::new("gateway"),
});

/// The outcome of a call to the provider, as a bounded label.
#[derive(Debug, Clone, Copy)]
pub enum IdpStatus {
    Http(u16),
    /// No HTTP answer (connect, timeout, TLS).
    Error,
}

impl IdpStatus {
    pub fn label(self) -> &'static str {
        match self {
            IdpStatus::Http(200..=299) => "2xx",
            IdpStatus::Http(300..=399) => "3xx",
            IdpStatus::Http(400..=499) => "4xx",
            IdpStatus::Http(_) => "5xx",
            IdpStatus::Error => "error",
        }
    }

    pub fn of(result: &Result<reqwest::Response, reqwest::Error>) -> Self {
        match result {
            Ok(r) => IdpStatus::Http(r.status().as_u16()),
            Err(e) => e
                .status()
                .map_or(IdpStatus::Error, |s| IdpStatus::Http(s.as_u16())),
        }
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_help_and_build_info() {
        let text = METRICS.render();
        // Plain counters appear at 0; labelled ones once a label set was used.
        assert!(text.contains("# HELP authgate_token_cache_hits_total"));
        assert!(text.contains("\nauthgate_token_cache_hits_total 0\n"));
        assert!(text.contains(&format!(
            "authgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert_eq!(IdpStatus::Http(503).label(), "5xx");
        assert_eq!(IdpStatus::Error.label(), "error");
    }
}
