//! The state that outlives a request, shared by the proxy, the endpoints and the background
//! services: the current configuration, the session store, the provider and the HTTP client.

use crate::config::Config;
use crate::jwt::Bearer;
use crate::oidc::provider::Provider;
use crate::session::events::SessionEvents;
use crate::session::id_token_cookie::IdTokenSeal;
use crate::session::memory::MemoryStore;
use crate::session::pending_login::LoginSeal;
use crate::session::SessionStore;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Everything a request may need beyond itself.
pub struct Gateway {
    /// The configuration in force; requests take a snapshot when they start.
    pub config: ArcSwap<Config>,
    pub store: Arc<dyn SessionStore>,
    pub provider: Arc<Provider>,
    /// Bearer-token verification (keys, verified-token cache, introspection).
    pub bearer: Arc<Bearer>,
    /// What happens when a session ends (log, metric, webhooks).
    pub events: Arc<SessionEvents>,
    /// The client for every call to the provider.
    pub http: reqwest::Client,
    /// Seals ID tokens into logout cookies; its key lives as long as the process, across
    /// reloads.
    pub id_token_seal: IdTokenSeal,
    /// Seals pending logins into the login cookie ([`crate::session::pending_login`]).
    pub login_seal: LoginSeal,
}

impl Gateway {
    /// Build the shared state for `config` (in-memory session store).
    pub fn new(config: Config) -> Arc<Self> {
        let http =
            crate::http_client::build(config.oidc.connect_timeout, config.oidc.request_timeout);
        let provider = Arc::new(Provider::new(config.oidc.clone(), http.clone()));
        let events = Arc::new(SessionEvents::new(config.logout.webhooks.clone()));
        let store = Arc::new(MemoryStore::new(
            config.session.max_sessions,
            config.session.idle_timeout,
            events.clone(),
        ));
        let bearer = Arc::new(Bearer::new(
            &config.bearer,
            &config.oidc,
            provider.clone(),
            http.clone(),
        ));
        Arc::new(Self {
            config: ArcSwap::from_pointee(config),
            store,
            provider,
            bearer,
            events,
            http,
            id_token_seal: IdTokenSeal::generate(),
            login_seal: LoginSeal::generate(),
        })
    }
}
