//! Assembling the pingora server: the proxy listener (plain or TLS), the admin listener and the
//! background services, from a validated [`Config`].

use crate::admin::AdminApp;
use crate::config::{Config, TlsFiles};
use crate::gateway::Gateway;
use crate::jwt::JwksRefresher;
use crate::oidc::provider::ProviderLoader;
use crate::proxy::AuthProxy;
use crate::readiness::ListenerProbe;
use crate::reload::{LogLevelSetter, Reloader};
use crate::session::events::{ExpirySweeper, WebhookWorker};
use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::sync::Arc;

/// Process-level options that are not part of `gateway.toml`.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Take over the listeners of a running authgate (pingora graceful upgrade).
    pub upgrade: bool,
    /// Detach and run in the background.
    pub daemon: bool,
    /// The configuration file, re-read on SIGHUP.
    pub config_path: std::path::PathBuf,
    /// Changes the log filter on reload.
    pub set_log_level: Option<LogLevelSetter>,
}

/// What `--test` checks beyond the configuration file itself: that the TLS certificate and key
/// load as the listener will load them (PEM parsing, a key pingora can use).
pub fn check(config: &Config) -> Result<(), String> {
    match &config.server.tls {
        Some(files) => tls_settings(files).map(drop),
        None => Ok(()),
    }
}

/// The proxy listener's TLS: the certificate chain and key of `files`, HTTP/2 offered.
///
/// pingora reads the files only when it builds the listener, inside the listener's task, and
/// panics there on a file it cannot use: the process would run on without its proxy listener.
/// So they are loaded here first, as pingora will load them (its PEM loader, then rustls'
/// server configuration, which also checks that the key belongs to the certificate), and a bad
/// file is a configuration error.
fn tls_settings(files: &TlsFiles) -> Result<TlsSettings, String> {
    use pingora::tls::{load_certs_and_key_files, version, ServerConfig};
    let unusable =
        |why: &dyn std::fmt::Display| format!("server.tls: cannot load certificate or key: {why}");
    pingora::tls::install_default_crypto_provider();
    let (certs, key) =
        match load_certs_and_key_files(&files.cert_file, &files.key_file) {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return Err(unusable(
                &"the certificate file holds no certificate, or the key file no PKCS#1, PKCS#8 \
                  or SEC1 private key",
            )),
            Err(e) => return Err(unusable(&e)),
        };
    ServerConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13])
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| unusable(&e))?;
    let mut settings =
        TlsSettings::intermediate(&files.cert_file, &files.key_file).map_err(|e| unusable(&e))?;
    settings.enable_h2();
    Ok(settings)
}

/// Build the server for `config`; call `run_forever` on the result.
pub fn build(config: Config, options: RunOptions) -> Result<(Server, Arc<Gateway>), String> {
    let conf = ServerConf {
        threads: config.server.threads,
        work_stealing: config.server.work_stealing,
        pid_file: config.server.pid_file.clone(),
        upgrade_sock: config.server.upgrade_sock.clone(),
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.grace_period.as_secs().max(1)),
        daemon: options.daemon,
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        daemon: options.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let listen = config.server.listen.to_string();
    let admin_listen = config.server.admin_listen.to_string();
    let tls = config.server.tls.clone();
    let gateway = Gateway::new(config);

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        AuthProxy::new(gateway.clone()),
        "authgate proxy",
    );
    let proxy_listener = Arc::new(ListenerProbe::new(gateway.config.load().server.listen));
    proxy.set_connection_filter(proxy_listener.clone());
    match tls {
        Some(files) => proxy.add_tls_with_settings(&listen, None, tls_settings(&files)?),
        None => proxy.add_tcp(&listen),
    }

    let mut admin = Service::new(
        "authgate admin".to_string(),
        HttpServer::new_app(AdminApp {
            gateway: gateway.clone(),
            proxy_listener,
        }),
    );
    admin.add_tcp(&admin_listen);

    let jwks_refresher = background_service(
        "bearer JWKS refresher",
        JwksRefresher {
            bearer: gateway.bearer.clone(),
            interval: gateway.config.load().bearer.jwks_refresh_interval,
        },
    );
    let loader = background_service(
        "provider metadata loader",
        ProviderLoader(gateway.provider.clone()),
    );

    server.add_service(proxy);
    server.add_service(admin);
    let webhooks = background_service(
        "logged-out webhooks",
        WebhookWorker {
            events: gateway.events.clone(),
            http: gateway.http.clone(),
        },
    );
    let sweeper = background_service(
        "session expiry",
        ExpirySweeper {
            store: gateway.store.clone(),
            every: std::time::Duration::from_secs(5),
        },
    );
    let reloader = background_service(
        "configuration reload",
        Reloader {
            gateway: gateway.clone(),
            path: options.config_path.clone(),
            set_log_level: options.set_log_level.clone(),
        },
    );
    server.add_service(reloader);
    server.add_service(loader);
    server.add_service(jwks_refresher);
    server.add_service(webhooks);
    server.add_service(sweeper);
    Ok((server, gateway))
}
