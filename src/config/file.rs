//! The shape of `gateway.toml` as written by a person: plain serde structs with defaults.
//!
//! Nothing here is validated beyond its TOML type; [`super::Config::try_from`] turns a
//! [`FileConfig`] into the checked, internal [`super::Config`]. Unknown keys are not rejected by
//! serde here: the loader collects every ignored key with `serde_ignored` and reports them all
//! at once as errors, so a typo in a security setting never passes silently.
//!
//! `gateway.toml` at the repository root documents every key and its default; keep the two in step.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    pub server: ServerSection,
    pub upstream: UpstreamSection,
    pub oidc: OidcSection,
    pub session: SessionSection,
    pub headers: HeadersSection,
    pub bearer: BearerSection,
    pub logout: LogoutSection,
    pub routes: Vec<RouteSection>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct ServerSection {
    pub listen: String,
    pub admin_listen: String,
    pub threads: Option<usize>,
    pub work_stealing: bool,
    pub endpoint_prefix: String,
    pub tls: Option<TlsSection>,
    pub log_level: String,
    pub log_format: String,
    pub max_cookie_header_bytes: usize,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub grace_period: String,
    pub access_log: bool,
    pub access_log_hash_user: bool,
    pub request_id_header: String,
    pub trusted_proxies: Vec<String>,
    pub forwarded_headers: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            threads: None,
            work_stealing: true,
            endpoint_prefix: "/oauth2".into(),
            tls: None,
            log_level: "info".into(),
            log_format: "text".into(),
            max_cookie_header_bytes: 16 * 1024,
            pid_file: "/tmp/authgate.pid".into(),
            upgrade_sock: "/tmp/authgate_upgrade.sock".into(),
            grace_period: "5s".into(),
            access_log: true,
            access_log_hash_user: false,
            request_id_header: "X-Request-Id".into(),
            trusted_proxies: Vec::new(),
            forwarded_headers: true,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TlsSection {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct UpstreamSection {
    pub url: String,
    pub connect_timeout: String,
    pub read_timeout: String,
}

impl Default for UpstreamSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            connect_timeout: "5s".into(),
            read_timeout: "60s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct OidcSection {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub redirect_url: String,
    pub scopes: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub response_mode: String,
    pub use_userinfo: bool,
    pub leeway: String,
    pub refresh_interval: String,
    pub retry_max_backoff: String,
    pub connect_timeout: String,
    pub request_timeout: String,
}

impl Default for OidcSection {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            redirect_url: String::new(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            token_endpoint_auth_method: "client_secret_basic".into(),
            response_mode: "query".into(),
            use_userinfo: false,
            leeway: "60s".into(),
            refresh_interval: "5m".into(),
            retry_max_backoff: "30s".into(),
            connect_timeout: "3s".into(),
            request_timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct SessionSection {
    pub cookie_name: String,
    pub cookie_domain: Option<String>,
    pub cookie_path: String,
    pub cookie_secure: bool,
    pub cookie_samesite: String,
    pub idle_timeout: String,
    pub lifetime: String,
    pub max_sessions: u64,
    pub login_cookie_name: String,
    pub login_timeout: String,
    pub max_pending_logins: usize,
    pub logout_cookie_name: String,
    pub id_token_hint: String,
}

impl Default for SessionSection {
    fn default() -> Self {
        Self {
            cookie_name: "_authgate".into(),
            cookie_domain: None,
            cookie_path: "/".into(),
            cookie_secure: true,
            cookie_samesite: "lax".into(),
            idle_timeout: "1h".into(),
            lifetime: "12h".into(),
            max_sessions: 1_000_000,
            login_cookie_name: "_authgate_login".into(),
            login_timeout: "10m".into(),
            max_pending_logins: 5,
            logout_cookie_name: "_authgate_logout".into(),
            id_token_hint: "cookie".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct HeadersSection {
    pub user_claim: String,
    pub email_claim: String,
    pub preferred_username_claim: String,
    pub groups_claim: String,
    pub pass_access_token: bool,
    pub pass_authorization_header: bool,
    /// Extra `Header-Name = "claim"` pairs.
    pub extra: BTreeMap<String, String>,
}

impl Default for HeadersSection {
    fn default() -> Self {
        Self {
            user_claim: "sub".into(),
            email_claim: "email".into(),
            preferred_username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            pass_access_token: false,
            pass_authorization_header: false,
            extra: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RouteSection {
    pub name: String,
    pub prefix: Option<String>,
    pub pattern: Option<String>,
    pub methods: Vec<String>,
    pub auth: String,
    pub upstream: Option<String>,
    /// Scopes a bearer token must carry on this route.
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct BearerSection {
    pub enabled: bool,
    pub max_token_bytes: usize,
    pub leeway: String,
    pub require_exp: bool,
    pub cache_capacity: u64,
    pub cache_max_ttl: String,
    pub jwks_refresh_interval: String,
    pub unknown_kid_min_interval: String,
    pub introspection: String,
    pub introspection_cache_max: String,
    pub introspection_negative_ttl: String,
    pub trust_oidc_issuer: bool,
    pub oidc_audiences: Option<Vec<String>>,
    pub oidc_algorithms: Vec<String>,
    pub issuers: Vec<IssuerSection>,
}

impl Default for BearerSection {
    fn default() -> Self {
        Self {
            enabled: true,
            max_token_bytes: 16 * 1024,
            leeway: "60s".into(),
            require_exp: true,
            cache_capacity: 100_000,
            cache_max_ttl: "1h".into(),
            jwks_refresh_interval: "5m".into(),
            unknown_kid_min_interval: "10s".into(),
            introspection: "opaque".into(),
            introspection_cache_max: "5m".into(),
            introspection_negative_ttl: "30s".into(),
            trust_oidc_issuer: true,
            oidc_audiences: None,
            oidc_algorithms: Vec::new(),
            issuers: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IssuerSection {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub subject_claim: Option<String>,
    pub jwks_uri: Option<String>,
    pub jwks_file: Option<String>,
    pub pem_files: Vec<String>,
    pub hmac_secret: Option<String>,
    pub hmac_algorithm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct LogoutSection {
    pub post_logout_redirect_url: Option<String>,
    pub allowed_redirects: Vec<String>,
    pub revoke_tokens: bool,
    pub revocation_timeout: String,
    pub backchannel_max_age: String,
    pub webhooks: Vec<WebhookSection>,
}

impl Default for LogoutSection {
    fn default() -> Self {
        Self {
            post_logout_redirect_url: None,
            allowed_redirects: Vec::new(),
            revoke_tokens: true,
            revocation_timeout: "3s".into(),
            backchannel_max_age: "5m".into(),
            webhooks: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct WebhookSection {
    pub url: String,
    pub timeout: String,
    pub retries: u32,
}

impl Default for WebhookSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout: "2s".into(),
            retries: 3,
        }
    }
}
