//! Every metric the gateway exports, defined once, in Prometheus text format on the admin
//! listener's `/metrics`.
//!
//! Conventions: `authgate_` prefix, `_total` for counters, base units (`_seconds`), label values
//! from small fixed sets (reasons, route names from the configuration; never a user or a path).

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::sync::LazyLock;

/// The gateway's registry (not the global default, so tests and embedders stay isolated).
pub struct Metrics {
    pub registry: Registry,
    pub sessions: IntGauge,
    pub sessions_created: IntCounter,
    pub sessions_ended: IntCounterVec,
    pub logins: IntCounterVec,
    pub logout_webhook_deliveries: IntCounterVec,
    pub backchannel_logouts: IntCounterVec,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            sessions: IntGauge::new("authgate_sessions", "Live browser sessions in the store.")
                .expect("valid metric"),
            sessions_created: IntCounter::new(
                "authgate_sessions_created_total",
                "Browser sessions created by a completed login.",
            )
            .expect("valid metric"),
            sessions_ended: IntCounterVec::new(
                Opts::new(
                    "authgate_sessions_ended_total",
                    "Browser sessions ended, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            logins: IntCounterVec::new(
                Opts::new(
                    "authgate_logins_total",
                    "Completed login callbacks, by result.",
                ),
                &["result"],
            )
            .expect("valid metric"),
            logout_webhook_deliveries: IntCounterVec::new(
                Opts::new(
                    "authgate_logout_webhook_deliveries_total",
                    "Logged-out webhook deliveries, by result (ok, failed after retries, dropped).",
                ),
                &["result"],
            )
            .expect("valid metric"),
            backchannel_logouts: IntCounterVec::new(
                Opts::new(
                    "authgate_backchannel_logouts_total",
                    "Back-channel logout requests from the provider, by result.",
                ),
                &["result"],
            )
            .expect("valid metric"),
            registry,
        };
        for c in [
            Box::new(m.sessions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.sessions_created.clone()),
            Box::new(m.sessions_ended.clone()),
            Box::new(m.logins.clone()),
            Box::new(m.logout_webhook_deliveries.clone()),
            Box::new(m.backchannel_logouts.clone()),
        ] {
            m.registry.register(c).expect("metric names are unique");
        }
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
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
