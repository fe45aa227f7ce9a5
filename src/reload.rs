//! Reloading `gateway.toml` on SIGHUP without dropping a connection or a session.
//!
//! The file is read and validated in full first; an invalid file is refused with every problem
//! logged, and the running configuration stays. A valid one replaces the configuration that new
//! requests see: routes, header mapping, logout allow-lists and webhooks' targets, bearer issuers
//! and keys, cookie attributes, log level. Settings that belong to sockets, the provider client or
//! the session store (listen addresses, threads, TLS files, `[oidc]`, session limits and
//! timeouts) need a restart or a graceful upgrade (`authgate -u`): a reload keeps their running
//! values and logs which ones it left alone.

use crate::config::Config;
use crate::gateway::Gateway;
use crate::metrics::METRICS;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;

/// Changes the log filter (a `tracing_subscriber` reload handle, wrapped).
pub type LogLevelSetter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Listens for SIGHUP and reloads.
pub struct Reloader {
    pub gateway: Arc<Gateway>,
    pub path: PathBuf,
    pub set_log_level: Option<LogLevelSetter>,
}

impl Reloader {
    /// Read the file and apply it, or keep the running configuration.
    pub fn reload(&self) -> bool {
        match Config::load(&self.path) {
            Ok(new) => {
                self.apply(new);
                METRICS.config_reloads.with_label_values(&["ok"]).inc();
                true
            }
            Err(errors) => {
                METRICS.config_reloads.with_label_values(&["failed"]).inc();
                for e in &errors.errors {
                    tracing::error!(problem = %e, "configuration reload refused; the running configuration stays");
                }
                false
            }
        }
    }

    fn apply(&self, mut new: Config) {
        let gw = &self.gateway;
        let old = gw.config.load_full();
        let kept = keep_restart_only_settings(&old, &mut new);
        if !kept.is_empty() {
            tracing::warn!(settings = ?kept, "these settings changed but need a restart (or authgate -u); the running values stay");
        }
        gw.bearer.reconfigure(&new.bearer, &new.oidc);
        if new.server.log_level != old.server.log_level {
            if let Some(set) = &self.set_log_level {
                if let Err(e) = set(&new.server.log_level) {
                    tracing::warn!(error = %e, "log level unchanged");
                }
            }
        }
        gw.config.store(Arc::new(new));
        tracing::info!(path = %self.path.display(), "configuration reloaded");
    }
}

/// Put back into `new` the running values of settings a reload cannot change; returns the
/// names of those that differed.
fn keep_restart_only_settings(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($field:ident).+, $name:literal) => {
            if new.$($field).+ != old.$($field).+ {
                kept.push($name);
                new.$($field).+ = old.$($field).+.clone();
            }
        };
    }
    keep!(server.listen, "server.listen");
    keep!(server.admin_listen, "server.admin_listen");
    keep!(server.threads, "server.threads");
    keep!(server.tls, "server.tls");
    keep!(server.pid_file, "server.pid_file");
    keep!(server.upgrade_sock, "server.upgrade_sock");
    keep!(server.log_format, "server.log_format");
    keep!(oidc, "oidc");
    keep!(session.max_sessions, "session.max_sessions");
    keep!(session.idle_timeout, "session.idle_timeout");
    keep!(session.login_timeout, "session.login_timeout");
    keep!(logout.webhooks, "logout.webhooks");
    kept
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload is unavailable");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hangups.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    self.reload();
                }
            }
        }
    }
}
