//! Reloading `gateway.toml` on SIGHUP without dropping a connection or a session.
//!
//! The file is read and validated in full first; an invalid file is refused with every problem
//! logged, and the running configuration stays. A valid one replaces the configuration that new
//! requests see: routes, header mapping, logout allow-lists, bearer issuers and keys, cookie
//! attributes, log level. Settings that belong to sockets, the provider client, the session store,
//! the caches or background services (listen addresses, threads, TLS files, `[oidc]`, session
//! limits and timeouts, logout webhooks, the bearer caches' size and JWKS refresh interval, the
//! shutdown grace period) need a restart or a graceful upgrade (`authgate -u`): a reload keeps
//! their running values and logs which ones it left alone.

use crate::config::{Config, JwksSource};
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
    keep!(server.work_stealing, "server.work_stealing");
    keep!(server.tls, "server.tls");
    keep!(server.pid_file, "server.pid_file");
    keep!(server.upgrade_sock, "server.upgrade_sock");
    keep!(server.log_format, "server.log_format");
    if new.oidc != old.oidc {
        // The bearer issuer trusted through `[oidc]` was derived from the new file's provider;
        // with the running `[oidc]` kept, it must name the running provider and client.
        for issuer in new.bearer.issuers.iter_mut() {
            if issuer.jwks == Some(JwksSource::Discovery) {
                issuer.issuer = old.oidc.issuer_id.clone();
                if issuer.audiences == [new.oidc.client_id.clone()] {
                    issuer.audiences = vec![old.oidc.client_id.clone()];
                }
            }
        }
    }
    keep!(oidc, "oidc");
    keep!(session.max_sessions, "session.max_sessions");
    keep!(session.idle_timeout, "session.idle_timeout");
    keep!(session.login_timeout, "session.login_timeout");
    keep!(logout.webhooks, "logout.webhooks");
    keep!(bearer.cache_capacity, "bearer.cache_capacity");
    keep!(bearer.cache_max_ttl, "bearer.cache_max_ttl");
    keep!(bearer.jwks_refresh_interval, "bearer.jwks_refresh_interval");
    keep!(server.grace_period, "server.grace_period");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(issuer: &str, client_id: &str, extra: &str) -> Config {
        Config::from_toml(&format!(
            r#"
            [server]
            grace_period = "{extra}"
            [upstream]
            url = "http://127.0.0.1:3000"
            [oidc]
            issuer = "{issuer}"
            client_id = "{client_id}"
            client_secret = "s"
            redirect_url = "https://app.example.test/oauth2/callback"
            "#
        ))
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn a_kept_oidc_keeps_the_bearer_issuer_it_trusts() {
        let old = config("https://id.example.test", "app", "5s");
        let mut new = config("https://other.example.test", "app2", "9s");
        let kept = keep_restart_only_settings(&old, &mut new);
        assert_eq!(kept, ["oidc", "server.grace_period"]);
        let trusted = |c: &Config| {
            let i = &c.bearer.issuers[0];
            (i.issuer.clone(), i.audiences.clone())
        };
        assert_eq!(
            trusted(&new),
            ("https://id.example.test".into(), vec!["app".to_string()])
        );
        assert_eq!(new.server.grace_period, old.server.grace_period);
    }
}
