//! Configuration: `gateway.toml` → [`FileConfig`] (serde) → validated [`Config`].
//!
//! Loading never panics and never stops at the first problem: a missing file or a TOML syntax
//! error (with line and column) ends it early, but after that every unknown key, every bad
//! value and every missing required setting is collected, and the whole list is returned as
//! [`ConfigErrors`]. `authgate --test` prints that list and exits 64 (EX_USAGE).
//!
//! String values may contain `${NAME}`, replaced by the environment variable `NAME` (an unset
//! variable is an error), so secrets need not sit in the file; `oidc.client_secret_file` reads
//! the client secret from a file instead.

pub mod file;

use crate::header_name::WrittenHeader;
use crate::identity::{canonical, HeaderMapping};
use crate::jwt::keys::{KeySet, VerifyKey};
use crate::routes::{AuthPolicy, PathMatcher, Route, RouteTable};
use crate::secret::Secret;
use crate::session::cookie::CookieSettings;
use crate::session::events::{Webhook, MAX_RETRIES};
use crate::upstream::Upstream;
use cookie::SameSite;
pub use file::FileConfig;
use jsonwebtoken::Algorithm;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// One problem, named by its key (`oidc.client_secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub path: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} problem(s) in the configuration",
            self.path.display(),
            self.errors.len()
        )?;
        for e in &self.errors {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// How the gateway authenticates itself at the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client: no secret, PKCE alone binds the code.
    None,
}

/// How the provider returns the authorization response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    #[default]
    Query,
    FormPost,
}

/// Where a session's ID token waits for logout, to be sent as `id_token_hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdTokenHint {
    /// Sealed into the browser's logout cookie ([`crate::session::id_token_cookie`]).
    #[default]
    Cookie,
    /// With the session in the store: about 1 KB more per session, and the logout API can send
    /// it without the browser's cookie.
    Store,
    /// Not kept: logout sends `client_id` alone.
    Discard,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub threads: usize,
    /// Whether idle worker threads take tasks queued on busy ones (pingora's `work_stealing`).
    pub work_stealing: bool,
    /// Where the gateway's own endpoints live (`/oauth2`).
    pub endpoint_prefix: String,
    pub tls: Option<TlsFiles>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub max_cookie_header_bytes: usize,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub grace_period: Duration,
    pub access_log: bool,
    pub access_log_hash_user: bool,
    /// The request id's header (default `X-Request-Id`), spelled as configured on the wire.
    pub request_id_header: WrittenHeader,
    /// Addresses whose `X-Forwarded-*` headers are believed: the original URI and method of a
    /// forward-auth check (nginx, Traefik, Envoy), and the client chain of proxied requests.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Set `X-Forwarded-For`, `-Proto` and `-Host` on proxied requests ([`crate::forwarded`]).
    pub forwarded_headers: bool,
}

impl ServerSettings {
    /// Whether `ip` is one of `trusted_proxies` (an IPv4-mapped IPv6 address, as a dual-stack
    /// listener sees an IPv4 peer, is read as its IPv4 address).
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: String,
    pub key_file: String,
}

/// `[oidc]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    pub issuer: Url,
    /// The issuer exactly as configured (what `iss` claims must equal).
    pub issuer_id: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub redirect_url: Url,
    pub scopes: Vec<String>,
    pub auth_method: ClientAuthMethod,
    pub response_mode: ResponseMode,
    pub use_userinfo: bool,
    pub leeway: Duration,
    pub refresh_interval: Duration,
    pub retry_max_backoff: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

/// When opaque tokens go to the provider's introspection endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntrospectionMode {
    /// Never: tokens that are not JWTs are refused.
    Off,
    /// For tokens that are not JWTs.
    #[default]
    Opaque,
    /// For every token, JWTs included.
    Always,
}

/// Where an issuer's remote JWKS is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Uri(String),
    /// The `[oidc]` provider's discovery document.
    Discovery,
}

/// One trusted issuer of bearer tokens, validated, its file and secret keys loaded.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// Compared exactly with the token's `iss`.
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub subject_claim: String,
    pub static_keys: KeySet,
    pub jwks: Option<JwksSource>,
}

/// `[bearer]`, validated.
#[derive(Debug, Clone)]
pub struct BearerSettings {
    pub enabled: bool,
    pub max_token_bytes: usize,
    pub leeway: Duration,
    pub require_exp: bool,
    pub cache_capacity: u64,
    pub cache_max_ttl: Duration,
    pub jwks_refresh_interval: Duration,
    pub unknown_kid_min_interval: Duration,
    pub introspection: IntrospectionMode,
    pub introspection_cache_max: Duration,
    pub introspection_negative_ttl: Duration,
    pub issuers: Vec<IssuerSettings>,
}

/// `[logout]`, validated.
#[derive(Debug, Clone)]
pub struct LogoutSettings {
    /// Where browsers land after logout when no allowed `rd` is given.
    pub post_logout_redirect_url: Url,
    /// Absolute URLs a post-logout target may be (the default is always allowed).
    pub allowed_redirects: Vec<Url>,
    pub revoke_tokens: bool,
    pub revocation_timeout: Duration,
    pub backchannel_max_age: Duration,
    pub webhooks: Vec<Webhook>,
}

/// `[session]`, validated.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub cookies: CookieSettings,
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    pub max_sessions: u64,
    pub login_timeout: Duration,
    /// Where the ID token is kept for `id_token_hint` at logout.
    pub id_token_hint: IdTokenHint,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub upstream: Arc<Upstream>,
    pub oidc: OidcSettings,
    pub session: SessionSettings,
    pub headers: HeaderMapping,
    pub bearer: BearerSettings,
    pub logout: LogoutSettings,
    pub routes: RouteTable,
}

impl Config {
    /// Read, interpolate and validate `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |errors: Vec<ConfigError>| ConfigErrors {
            path: path.to_path_buf(),
            errors,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(vec![ConfigError {
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Self::from_toml(&text).map_err(fail)
    }

    /// Validate a configuration given as TOML text.
    pub fn from_toml(text: &str) -> Result<Config, Vec<ConfigError>> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let (line, col) = line_col(text, span.start);
                    format!(" at line {line}, column {col}")
                })
                .unwrap_or_default();
            vec![ConfigError {
                key: String::new(),
                message: format!("TOML syntax error{at}: {}", e.message()),
            }]
        })?;
        let mut errors = Vec::new();
        for (key, value) in table.iter_mut() {
            interpolate(key, value, &mut errors);
        }
        let (file, unknown) = deserialize_collecting(table, &mut errors);
        errors.extend(unknown.into_iter().map(|key| {
            ConfigError {
                message: match key.as_str() {
                    "session.keep_id_token" => "replaced by session.id_token_hint: \"store\" for \
                    true, \"none\" for false, or the default \"cookie\""
                        .into(),
                    _ => "unknown key".into(),
                },
                key,
            }
        }));
        match Config::try_from(file) {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(_) => Err(errors),
            Err(more) => {
                // A value of the wrong type was set aside for its default: what validation then
                // says about the default is not news.
                let reported: Vec<String> = errors.iter().map(|e| e.key.clone()).collect();
                errors.extend(more.into_iter().filter(|e| !reported.contains(&e.key)));
                Err(errors)
            }
        }
    }
}

impl TryFrom<FileConfig> for Config {
    type Error = Vec<ConfigError>;

    fn try_from(f: FileConfig) -> Result<Self, Self::Error> {
        let mut v = Validator::default();

        let server = ServerSettings {
            listen: v.socket_addr("server.listen", &f.server.listen),
            admin_listen: v.socket_addr("server.admin_listen", &f.server.admin_listen),
            threads: match f.server.threads {
                Some(0) => v.bad("server.threads", "must be at least 1"),
                Some(n) if n > MAX_THREADS => v.bad(
                    "server.threads",
                    &format!("{n} is more than {MAX_THREADS}: one worker per core is the setting"),
                ),
                Some(n) => n,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
            work_stealing: f.server.work_stealing,
            endpoint_prefix: {
                let p = f.server.endpoint_prefix.trim_end_matches('/').to_string();
                // It is also the logout cookie's Path attribute.
                if !p.starts_with('/')
                    || p.contains(['?', '#', ' ', ';'])
                    || p.chars().any(char::is_control)
                {
                    v.bad("server.endpoint_prefix", "must be a path like /oauth2")
                } else if crate::routes::normalize_path(&p).as_ref() != Ok(&p) {
                    // Requests are matched normalized: the endpoints would be unreachable.
                    v.bad(
                        "server.endpoint_prefix",
                        "must be written as the normalized path requests are matched on",
                    )
                } else {
                    p
                }
            },
            tls: f.server.tls.map(|t| {
                v.readable_file("server.tls.cert_file", &t.cert_file);
                v.readable_file("server.tls.key_file", &t.key_file);
                TlsFiles {
                    cert_file: t.cert_file,
                    key_file: t.key_file,
                }
            }),
            log_level: {
                let l = f.server.log_level;
                if tracing_subscriber::EnvFilter::try_new(&l).is_err() {
                    v.bad("server.log_level", "not a log filter (try info or debug)")
                } else {
                    l
                }
            },
            log_format: match f.server.log_format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => v.bad("server.log_format", "must be text or json"),
            },
            max_cookie_header_bytes: match f.server.max_cookie_header_bytes {
                n if n < MIN_COOKIE_HEADER_BYTES => v.bad(
                    "server.max_cookie_header_bytes",
                    &format!(
                        "{n} is less than {MIN_COOKIE_HEADER_BYTES}: the gateway's login cookie \
                         and its logout cookie may each take {} bytes",
                        crate::session::seal::MAX_VALUE_LEN
                    ),
                ),
                n => n,
            },
            pid_file: f.server.pid_file,
            upgrade_sock: f.server.upgrade_sock,
            grace_period: v.duration("server.grace_period", &f.server.grace_period),
            access_log: f.server.access_log,
            access_log_hash_user: f.server.access_log_hash_user,
            request_id_header: match WrittenHeader::new(&f.server.request_id_header) {
                Ok(header) if !header.is_reserved() => header,
                result => {
                    let problem = if result.is_ok() {
                        RESERVED_HEADER
                    } else {
                        "not a header name"
                    };
                    v.bad::<()>("server.request_id_header", problem);
                    // Never used: the configuration is refused.
                    WrittenHeader::new("X-Request-Id").expect("a valid header name")
                }
            },
            trusted_proxies: f
                .server
                .trusted_proxies
                .iter()
                .enumerate()
                .filter_map(|(i, raw)| {
                    let parsed = raw
                        .parse::<ipnet::IpNet>()
                        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                    match parsed {
                        Ok(net) => Some(net),
                        Err(_) => v.bad(
                            &format!("server.trusted_proxies[{i}]"),
                            &format!("{raw:?} is not an address or CIDR like 10.0.0.0/8"),
                        ),
                    }
                })
                .collect(),
            forwarded_headers: f.server.forwarded_headers,
        };

        let connect = v.positive_duration("upstream.connect_timeout", &f.upstream.connect_timeout);
        let read = v.positive_duration("upstream.read_timeout", &f.upstream.read_timeout);
        let upstream = v.upstream("upstream.url", &f.upstream.url, connect, read);

        let oidc = v.oidc(f.oidc);
        let session = v.session(f.session, &server.endpoint_prefix);
        let headers = v.headers(f.headers);
        if headers.is_managed(server.request_id_header.as_str())
            || crate::forwarded::is_forwarding_header(server.request_id_header.as_str())
        {
            v.bad::<()>(
                "server.request_id_header",
                "names a header the gateway sets itself (identity, X-Forwarded-For, -Proto, -Host)",
            );
        }
        if shares_a_port(server.listen, server.admin_listen) {
            v.bad::<()>(
                "server.admin_listen",
                "must not share server.listen's port: the admin endpoints would be public",
            );
        }
        let bearer = v.bearer(f.bearer, &oidc);
        let logout = v.logout(f.logout, &oidc);

        let mut routes = Vec::new();
        for (i, r) in f.routes.into_iter().enumerate() {
            let key = |field: &str| format!("routes[{i}].{field}");
            let matcher = match (r.prefix, r.pattern) {
                // Paths are matched normalized, so a prefix in any other form would never
                // match and its route would silently protect nothing.
                (Some(p), None) if crate::routes::normalize_path(&p).as_ref() == Ok(&p) => {
                    PathMatcher::Prefix(p)
                }
                (Some(p), None) if p.starts_with('/') => v.bad(
                    &key("prefix"),
                    &match crate::routes::normalize_path(&p) {
                        Ok(n) => format!("must be written as the normalized path requests are matched on: {n:?}"),
                        Err(_) => "must be a path, written as requests are matched on (decoded, no control characters)".into(),
                    },
                ),
                (Some(_), None) => v.bad(&key("prefix"), "must start with /"),
                (None, Some(p)) => match regex::Regex::new(&p) {
                    Ok(re) => PathMatcher::Pattern(re),
                    Err(e) => v.bad(&key("pattern"), &format!("not a regular expression: {e}")),
                },
                _ => v.bad(&key("prefix"), "set exactly one of prefix or pattern"),
            };
            let auth = AuthPolicy::parse(&r.auth)
                .unwrap_or_else(|| v.bad(&key("auth"), "must be public, protected or api"));
            let upstream = match r.upstream {
                Some(u) => Arc::new(v.upstream(&key("upstream"), &u, connect, read)),
                None => Arc::new(upstream.clone()),
            };
            let name = if r.name.is_empty() {
                format!("route{i}")
            } else {
                r.name
            };
            // The name labels the route's metric series: two routes, or a route and one of
            // the built-in series, sharing one would count as one.
            if BUILT_IN_ROUTE_NAMES.contains(&name.as_str()) {
                v.bad::<()>(
                    &key("name"),
                    "default and gateway are the built-in routes' names",
                );
            } else if let Some(j) = routes.iter().position(|r: &Route| r.name == name) {
                v.bad::<()>(&key("name"), &format!("already the name of routes[{j}]"));
            }
            if r.scopes
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                v.bad::<()>(&key("scopes"), "scopes are single words");
            }
            routes.push(Route {
                metrics: crate::metrics::RouteMetrics::new(&name),
                name,
                matcher,
                methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                auth,
                upstream,
                scopes: r.scopes,
            });
        }
        let upstream = Arc::new(upstream);

        if !v.errors.is_empty() {
            return Err(v.errors);
        }
        Ok(Config {
            routes: RouteTable::new(routes, upstream.clone()),
            server,
            upstream,
            oidc,
            session,
            headers,
            bearer,
            logout,
        })
    }
}

/// Collects errors; each check returns a placeholder after recording a problem so that
/// validation goes on and finds the next one.
#[derive(Default)]
struct Validator {
    errors: Vec<ConfigError>,
}

impl Validator {
    fn bad<T: Default>(&mut self, key: &str, message: &str) -> T {
        self.errors.push(ConfigError {
            key: key.to_string(),
            message: message.to_string(),
        });
        T::default()
    }

    fn socket_addr(&mut self, key: &str, raw: &str) -> SocketAddr {
        raw.parse().unwrap_or_else(|_| {
            self.errors.push(ConfigError {
                key: key.into(),
                message: format!("{raw:?} is not an address like 127.0.0.1:8080"),
            });
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    /// A count that cannot be zero, as given ("must be at least 1" recorded when it is).
    fn at_least_one<N: Copy + Default + PartialEq>(&mut self, key: &str, n: N) -> N {
        if n == N::default() {
            self.bad::<()>(key, "must be at least 1");
        }
        n
    }

    /// A duration setting, at most [`MAX_DURATION`]: longer ones are typos, and would panic the
    /// caches (moka refuses more than 1,000 years) or overflow `now + lifetime`.
    fn duration(&mut self, key: &str, raw: &str) -> Duration {
        self.bounded_duration(key, raw).unwrap_or_default()
    }

    /// A duration setting that cannot be zero: a timeout that would end everything at once, or
    /// an interval that would loop without pause.
    fn positive_duration(&mut self, key: &str, raw: &str) -> Duration {
        match self.bounded_duration(key, raw) {
            Some(Duration::ZERO) => self.bad(key, "must be more than zero"),
            d => d.unwrap_or_default(),
        }
    }

    /// A clock-skew allowance, at most [`MAX_LEEWAY`]: more is no longer skew but a longer token
    /// life, and jsonwebtoken subtracts it from the current time.
    fn leeway(&mut self, key: &str, raw: &str) -> Duration {
        match self.bounded_duration(key, raw) {
            Some(d) if d > MAX_LEEWAY => self.bad(key, &format!("{raw:?} is more than 10 minutes")),
            d => d.unwrap_or_default(),
        }
    }

    /// The duration `raw` spells, or `None` with the problem recorded.
    fn bounded_duration(&mut self, key: &str, raw: &str) -> Option<Duration> {
        match humantime::parse_duration(raw) {
            Ok(d) if d <= MAX_DURATION => Some(d),
            Ok(_) => self.bad(key, &format!("{raw:?} is longer than 100 years")),
            Err(_) => self.bad(
                key,
                &format!("{raw:?} is not a duration like 30s, 5m or 12h"),
            ),
        }
    }

    fn url(&mut self, key: &str, raw: &str, require_https_unless_loopback: bool) -> Url {
        let fallback = || Url::parse("http://invalid.invalid/").expect("static URL");
        if raw.is_empty() {
            self.bad::<()>(key, "is required");
            return fallback();
        }
        match Url::parse(raw) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {
                if u.scheme() == "http" && require_https_unless_loopback && !is_loopback(&u) {
                    self.bad::<()>(key, "must be https (http is allowed on loopback only)");
                }
                u
            }
            Ok(_) => {
                self.bad::<()>(key, "must be an http(s) URL");
                fallback()
            }
            Err(e) => {
                // Not the value: a webhook's URL may carry its secret (`/hooks/T0/SECRET`), any
                // URL a password; the key says which setting it is.
                self.bad::<()>(key, &format!("is not an absolute URL ({e})"));
                fallback()
            }
        }
    }

    fn readable_file(&mut self, key: &str, path: &str) {
        if path.is_empty() {
            self.bad::<()>(key, "is required");
        } else if let Err(e) = std::fs::metadata(path) {
            self.bad::<()>(key, &format!("cannot read {path}: {e}"));
        }
    }

    fn upstream(&mut self, key: &str, raw: &str, connect: Duration, read: Duration) -> Upstream {
        if raw.is_empty() {
            self.bad::<()>(key, "is required");
        } else {
            match Upstream::resolve(raw, connect, read) {
                Ok(u) => return u,
                Err(e) => self.bad::<()>(key, &e),
            }
        }
        Upstream {
            url: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            sni: String::new(),
            connect_timeout: connect,
            read_timeout: read,
        }
    }

    fn oidc(&mut self, o: file::OidcSection) -> OidcSettings {
        let issuer = self.url("oidc.issuer", &o.issuer, true);
        if o.client_id.is_empty() {
            self.bad::<()>("oidc.client_id", "is required");
        }
        let auth_method = match o.token_endpoint_auth_method.as_str() {
            "client_secret_basic" => ClientAuthMethod::ClientSecretBasic,
            "client_secret_post" => ClientAuthMethod::ClientSecretPost,
            "none" => ClientAuthMethod::None,
            _ => self.bad(
                "oidc.token_endpoint_auth_method",
                "must be client_secret_basic, client_secret_post or none",
            ),
        };
        let client_secret = match (o.client_secret, o.client_secret_file) {
            (Some(_), Some(_)) => {
                self.bad::<()>(
                    "oidc.client_secret",
                    "set client_secret or client_secret_file, not both",
                );
                None
            }
            (Some(s), None) if !s.is_empty() => Some(Secret::new(s)),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => Some(Secret::new(s.trim())),
                Ok(_) => self.bad("oidc.client_secret_file", &format!("{path} is empty")),
                Err(e) => self.bad(
                    "oidc.client_secret_file",
                    &format!("cannot read {path}: {e}"),
                ),
            },
            _ => None,
        };
        if client_secret.is_none() && auth_method != ClientAuthMethod::None {
            self.bad::<()>(
                "oidc.client_secret",
                "is required (or client_secret_file, or token_endpoint_auth_method = \"none\" for a public client)",
            );
        }
        let redirect_url = self.url("oidc.redirect_url", &o.redirect_url, false);
        if !o.scopes.iter().any(|s| s == "openid") {
            self.bad::<()>("oidc.scopes", "must include openid");
        }
        if o.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            self.bad::<()>("oidc.scopes", "scopes are single words");
        }
        let response_mode = match o.response_mode.as_str() {
            "query" => ResponseMode::Query,
            "form_post" => ResponseMode::FormPost,
            _ => self.bad("oidc.response_mode", "must be query or form_post"),
        };
        OidcSettings {
            issuer,
            issuer_id: o.issuer,
            client_id: o.client_id,
            client_secret,
            redirect_url,
            scopes: o.scopes,
            auth_method,
            response_mode,
            use_userinfo: o.use_userinfo,
            leeway: self.leeway("oidc.leeway", &o.leeway),
            refresh_interval: self.positive_duration("oidc.refresh_interval", &o.refresh_interval),
            retry_max_backoff: self.duration("oidc.retry_max_backoff", &o.retry_max_backoff),
            connect_timeout: self.positive_duration("oidc.connect_timeout", &o.connect_timeout),
            request_timeout: self.positive_duration("oidc.request_timeout", &o.request_timeout),
        }
    }

    fn session(&mut self, s: file::SessionSection, endpoint_prefix: &str) -> SessionSettings {
        let same_site = match s.cookie_samesite.to_ascii_lowercase().as_str() {
            "lax" => SameSite::Lax,
            "strict" => SameSite::Strict,
            "none" => SameSite::None,
            _ => {
                self.bad::<()>("session.cookie_samesite", "must be lax, strict or none");
                SameSite::Lax
            }
        };
        for (key, name) in [
            ("session.cookie_name", &s.cookie_name),
            ("session.login_cookie_name", &s.login_cookie_name),
            ("session.logout_cookie_name", &s.logout_cookie_name),
        ] {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            {
                self.bad::<()>(
                    key,
                    "must be a non-empty cookie name (letters, digits, _ - .)",
                );
            }
        }
        self.cookie_prefixes(&s);
        if s.cookie_name == s.login_cookie_name {
            self.bad::<()>(
                "session.login_cookie_name",
                "must differ from session.cookie_name",
            );
        }
        if [&s.cookie_name, &s.login_cookie_name].contains(&&s.logout_cookie_name) {
            self.bad::<()>(
                "session.logout_cookie_name",
                "must differ from session.cookie_name and session.login_cookie_name",
            );
        }
        let id_token_hint = match s.id_token_hint.as_str() {
            "cookie" => IdTokenHint::Cookie,
            "store" => IdTokenHint::Store,
            "none" => IdTokenHint::Discard,
            _ => self.bad("session.id_token_hint", "must be cookie, store or none"),
        };
        let idle_timeout = self.positive_duration("session.idle_timeout", &s.idle_timeout);
        let lifetime = self.positive_duration("session.lifetime", &s.lifetime);
        let login_timeout = self.positive_duration("session.login_timeout", &s.login_timeout);
        SessionSettings {
            cookies: CookieSettings {
                session_name: s.cookie_name,
                login_name: s.login_cookie_name,
                logout_name: s.logout_cookie_name,
                logout_path: format!("{endpoint_prefix}/logout"),
                domain: s.cookie_domain.filter(|d| !d.is_empty()),
                path: s.cookie_path,
                secure: s.cookie_secure,
                same_site,
                session_max_age: lifetime,
                login_max_age: login_timeout,
                max_pending_logins: self
                    .at_least_one("session.max_pending_logins", s.max_pending_logins),
            },
            idle_timeout,
            lifetime,
            // With none, moka would evict every session as it is stored: logins would loop.
            max_sessions: self.at_least_one("session.max_sessions", s.max_sessions),
            login_timeout,
            id_token_hint,
        }
    }

    /// Browsers set a cookie whose name starts with `__Secure-` only with `Secure`, and one
    /// starting with `__Host-` only with `Secure`, `Path=/` and no `Domain` (RFC 6265bis 4.1.3),
    /// which is what makes `__Host-` names proof against a sibling subdomain planting its own
    /// cookie (cookie tossing). A name the attributes break would be dropped silently and every
    /// login would loop, so it is an error here.
    fn cookie_prefixes(&mut self, s: &file::SessionSection) {
        let domain = s.cookie_domain.as_deref().is_some_and(|d| !d.is_empty());
        let root = s.cookie_path == "/";
        for (key, name, path_is_root) in [
            ("session.cookie_name", &s.cookie_name, root),
            ("session.login_cookie_name", &s.login_cookie_name, root),
            // The logout cookie's Path is the logout endpoint, never `/`.
            ("session.logout_cookie_name", &s.logout_cookie_name, false),
        ] {
            let name = name.to_ascii_lowercase();
            let host = name.starts_with("__host-");
            if (host || name.starts_with("__secure-")) && !s.cookie_secure {
                self.bad::<()>(
                    key,
                    "a __Secure- or __Host- name needs cookie_secure = true",
                );
            } else if host && (domain || !path_is_root) {
                self.bad::<()>(
                    key,
                    "a __Host- name needs cookie_path = \"/\" and no cookie_domain (the logout \
                     cookie's path is the logout endpoint: give it a __Secure- name)",
                );
            }
        }
    }

    fn headers(&mut self, h: file::HeadersSection) -> HeaderMapping {
        let mut extra = Vec::new();
        for (name, claim) in h.extra {
            let key = format!("headers.extra.{name}");
            match WrittenHeader::new(&name) {
                Err(_) => self.bad(&key, "not a header name"),
                Ok(header) if header.is_reserved() => self.bad(&key, RESERVED_HEADER),
                Ok(_)
                    if crate::identity::is_own_identity_header(&name)
                        || crate::forwarded::is_forwarding_header(&name) =>
                {
                    self.bad(
                        &key,
                        "is one of the gateway's own X-Forwarded-* or X-Auth-Request-* headers",
                    )
                }
                Ok(_)
                    if extra.iter().any(|(e, _): &(WrittenHeader, String)| {
                        canonical(e.as_str()) == canonical(&name)
                    }) =>
                {
                    self.bad(&key, "named twice (names are compared in any case, _ as -)")
                }
                Ok(header) => extra.push((header, claim)),
            }
        }
        HeaderMapping::new(
            h.user_claim,
            h.email_claim,
            h.preferred_username_claim,
            h.groups_claim,
            h.pass_access_token,
            h.pass_authorization_header,
            extra,
        )
    }
}

/// Why a configured header may not take one of [`WrittenHeader::is_reserved`]'s names.
const RESERVED_HEADER: &str = "frames or routes the request, or carries the client's \
     credentials (Host, Content-Length, Transfer-Encoding, Connection, Cookie, Authorization...): \
     the gateway must not set it";

/// The labels of the routes the gateway adds itself (the fallback, its own endpoints).
const BUILT_IN_ROUTE_NAMES: [&str; 2] = ["default", "gateway"];

/// Whether two listeners would contend for one port: the same port on the same address, or on
/// any address when either listens on all of them.
fn shares_a_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The most worker threads `server.threads` accepts. Each is an OS thread with its own stack:
/// 20,000 aborted the process at startup for want of memory (after passing `--test`).
const MAX_THREADS: usize = 1024;

/// The smallest `server.max_cookie_header_bytes`: what RFC 6265 asks browsers to support for
/// one cookie, and room for the gateway's own logout cookie (a sealed ID token), which a smaller
/// limit would refuse at the logout endpoint, leaving the session alive.
const MIN_COOKIE_HEADER_BYTES: usize = 4096;

/// The longest duration any setting accepts.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// The largest `oidc.leeway` and `bearer.leeway`.
const MAX_LEEWAY: Duration = Duration::from_secs(600);

/// The algorithms accepted when an issuer does not list its own: the asymmetric families.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Validator {
    fn logout(&mut self, l: file::LogoutSection, oidc: &OidcSettings) -> LogoutSettings {
        let default_target = {
            let mut u = oidc.redirect_url.clone();
            u.set_path("/");
            u.set_query(None);
            u.set_fragment(None);
            u
        };
        let post_logout_redirect_url = match &l.post_logout_redirect_url {
            Some(raw) => self.url("logout.post_logout_redirect_url", raw, false),
            None => default_target,
        };
        let mut allowed_redirects = vec![post_logout_redirect_url.clone()];
        for (i, raw) in l.allowed_redirects.iter().enumerate() {
            allowed_redirects.push(self.url(&format!("logout.allowed_redirects[{i}]"), raw, false));
        }
        let webhooks = l
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let url = self.url(&format!("logout.webhooks[{i}].url"), &w.url, false);
                if w.retries > MAX_RETRIES {
                    self.bad::<()>(
                        &format!("logout.webhooks[{i}].retries"),
                        &format!("must be at most {MAX_RETRIES}"),
                    );
                }
                Webhook {
                    url: url.to_string(),
                    origin: url.origin().ascii_serialization(),
                    timeout: self
                        .positive_duration(&format!("logout.webhooks[{i}].timeout"), &w.timeout),
                    retries: w.retries,
                }
            })
            .collect();
        let backchannel_max_age =
            self.positive_duration("logout.backchannel_max_age", &l.backchannel_max_age);
        if backchannel_max_age > Duration::from_secs(3600) {
            self.bad::<()>(
                "logout.backchannel_max_age",
                "must be at most 1h (the replay cache keeps 2h)",
            );
        }
        LogoutSettings {
            post_logout_redirect_url,
            allowed_redirects,
            revoke_tokens: l.revoke_tokens,
            revocation_timeout: self
                .positive_duration("logout.revocation_timeout", &l.revocation_timeout),
            backchannel_max_age,
            webhooks,
        }
    }

    fn bearer(&mut self, b: file::BearerSection, oidc: &OidcSettings) -> BearerSettings {
        let introspection = match b.introspection.as_str() {
            "off" => IntrospectionMode::Off,
            "opaque" => IntrospectionMode::Opaque,
            "always" => IntrospectionMode::Always,
            _ => self.bad("bearer.introspection", "must be off, opaque or always"),
        };
        let mut issuers = Vec::new();
        if b.trust_oidc_issuer {
            let algorithms = self.algorithms("bearer.oidc_algorithms", &b.oidc_algorithms, false);
            issuers.push(IssuerSettings {
                issuer: oidc.issuer_id.clone(),
                audiences: b
                    .oidc_audiences
                    .clone()
                    .unwrap_or_else(|| vec![oidc.client_id.clone()]),
                algorithms,
                subject_claim: "sub".into(),
                static_keys: KeySet::default(),
                jwks: Some(JwksSource::Discovery),
            });
        }
        for (i, section) in b.issuers.into_iter().enumerate() {
            let key = |field: &str| format!("bearer.issuers[{i}].{field}");
            if section.issuer.is_empty() {
                self.bad::<()>(&key("issuer"), "is required");
            }
            if issuers
                .iter()
                .any(|x: &IssuerSettings| x.issuer == section.issuer)
            {
                self.bad::<()>(&key("issuer"), "is already trusted (each issuer once)");
            }
            let mut static_keys = KeySet::default();
            if let Some(path) = &section.jwks_file {
                match std::fs::read(path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| KeySet::from_jwks(&b))
                {
                    Ok(set) if !set.keys.is_empty() => static_keys.keys.extend(set.keys),
                    Ok(_) => self.bad::<()>(
                        &key("jwks_file"),
                        &format!("{path} holds no usable signing key"),
                    ),
                    Err(e) => self.bad::<()>(&key("jwks_file"), &format!("{path}: {e}")),
                }
            }
            for path in &section.pem_files {
                match std::fs::read(path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| VerifyKey::from_pem(&b))
                {
                    Ok(k) => static_keys.keys.push(k),
                    Err(e) => self.bad::<()>(&key("pem_files"), &format!("{path}: {e}")),
                }
            }
            let has_hmac = match &section.hmac_secret {
                Some(secret) if secret.len() < 32 => {
                    self.bad::<()>(&key("hmac_secret"), "must be at least 32 bytes");
                    true
                }
                Some(secret) => {
                    static_keys.keys.push(VerifyKey::hmac(secret.as_bytes()));
                    true
                }
                None => false,
            };
            let jwks = section.jwks_uri.as_ref().map(|u| {
                self.url(&key("jwks_uri"), u, true);
                JwksSource::Uri(u.clone())
            });
            if static_keys.keys.is_empty() && jwks.is_none() && !has_hmac {
                self.bad::<()>(
                    &key("issuer"),
                    "needs a key source: jwks_uri, jwks_file, pem_files or hmac_secret",
                );
            }
            let algorithms = if section.algorithms.is_empty() && has_hmac {
                let alg = section.hmac_algorithm.as_deref().unwrap_or("HS256");
                self.algorithms(&key("hmac_algorithm"), &[alg.to_string()], true)
            } else {
                if section.hmac_algorithm.is_some() && !has_hmac {
                    self.bad::<()>(&key("hmac_algorithm"), "needs hmac_secret");
                }
                self.algorithms(&key("algorithms"), &section.algorithms, has_hmac)
            };
            issuers.push(IssuerSettings {
                issuer: section.issuer,
                audiences: section.audiences,
                algorithms,
                subject_claim: section.subject_claim.unwrap_or_else(|| "sub".into()),
                static_keys,
                jwks,
            });
        }
        BearerSettings {
            enabled: b.enabled,
            max_token_bytes: self.at_least_one("bearer.max_token_bytes", b.max_token_bytes),
            leeway: self.leeway("bearer.leeway", &b.leeway),
            require_exp: b.require_exp,
            cache_capacity: b.cache_capacity,
            cache_max_ttl: self.duration("bearer.cache_max_ttl", &b.cache_max_ttl),
            jwks_refresh_interval: self
                .positive_duration("bearer.jwks_refresh_interval", &b.jwks_refresh_interval),
            unknown_kid_min_interval: self.duration(
                "bearer.unknown_kid_min_interval",
                &b.unknown_kid_min_interval,
            ),
            introspection,
            introspection_cache_max: self
                .duration("bearer.introspection_cache_max", &b.introspection_cache_max),
            introspection_negative_ttl: self.duration(
                "bearer.introspection_negative_ttl",
                &b.introspection_negative_ttl,
            ),
            issuers,
        }
    }

    /// An algorithm allow-list: `none` never, HS* only with an HMAC secret; empty means the
    /// asymmetric defaults.
    fn algorithms(&mut self, key: &str, names: &[String], hmac_allowed: bool) -> Vec<Algorithm> {
        if names.is_empty() {
            return DEFAULT_ALGORITHMS.to_vec();
        }
        let mut out = Vec::new();
        for name in names {
            match name.parse::<Algorithm>() {
                Ok(a) if a.family() == jsonwebtoken::AlgorithmFamily::Hmac && !hmac_allowed => {
                    self.bad::<()>(key, &format!("{name} needs hmac_secret"));
                }
                Ok(a) => out.push(a),
                Err(_) => {
                    self.bad::<()>(key, &format!("{name:?} is not a supported JWS algorithm"))
                }
            }
        }
        out
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Replace `${NAME}` in every string of `value` by the environment variable `NAME`; `$${` is a
/// literal `${`. NAME is letters, digits and `_`: anything else between `${` and `}` is an error
/// that does not repeat it (it may be part of a secret that happens to contain `${`).
fn interpolate(path: &str, value: &mut toml::Value, errors: &mut Vec<ConfigError>) {
    let mut bad = |message: String| {
        errors.push(ConfigError {
            key: path.into(),
            message,
        })
    };
    match value {
        toml::Value::String(s) => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                if rest[..start].ends_with('$') {
                    out.push_str(&rest[..start - 1]);
                    out.push_str("${");
                    rest = &rest[start + 2..];
                    continue;
                }
                out.push_str(&rest[..start]);
                let Some(end) = rest[start..].find('}') else {
                    return bad("unclosed ${ in value (write $${ for a literal ${)".into());
                };
                let name = &rest[start + 2..start + end];
                let is_name = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !is_name {
                    bad(
                        "${...} must name an environment variable (letters, digits and _); \
                         write $${ for a literal ${"
                            .into(),
                    );
                } else if let Ok(v) = std::env::var(name) {
                    out.push_str(&v);
                } else {
                    bad(format!("environment variable {name} is not set"));
                }
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(&format!("{path}[{i}]"), item, errors);
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                interpolate(&format!("{path}.{k}"), v, errors);
            }
        }
        _ => {}
    }
}

/// At most this many values of the wrong type are reported; the rest of the file is still
/// checked once they are set aside.
const MAX_TYPE_ERRORS: usize = 64;

/// Deserialize `table`, reporting every value of the wrong type rather than the first: each is
/// recorded under its key, removed (every key has a default, so the file stays whole), and the
/// rest deserialized again. Returns the file and the unknown keys of the last pass.
fn deserialize_collecting(
    table: toml::Table,
    errors: &mut Vec<ConfigError>,
) -> (FileConfig, Vec<String>) {
    let mut root = toml::Value::Table(table);
    for _ in 0..MAX_TYPE_ERRORS {
        let mut unknown = Vec::new();
        let mut note_unknown = |path: serde_ignored::Path| unknown.push(key_of(&path));
        let ignored = serde_ignored::Deserializer::new(root.clone(), &mut note_unknown);
        let parsed: Result<FileConfig, _> = serde_path_to_error::deserialize(ignored);
        let e = match parsed {
            Ok(file) => return (file, unknown),
            Err(e) => e,
        };
        errors.push(ConfigError {
            key: e.path().to_string(),
            message: without_value(e.inner().message()),
        });
        if !remove_at(&mut root, e.path()) {
            break;
        }
    }
    (FileConfig::default(), Vec::new())
}

/// An ignored key written as every other error names its key: `routes[1].lissen`.
fn key_of(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_of(parent)),
        Path::Map { parent, key } => match key_of(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_of(parent),
    }
}

/// Remove the value at `path` from `root`; false when there is none (the error was not about
/// one value, and deserializing again would fail the same way).
fn remove_at(root: &mut toml::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut here = root;
    for segment in parents {
        let next = match (here, segment) {
            (toml::Value::Table(t), Segment::Map { key }) => t.get_mut(key.as_str()),
            (toml::Value::Array(a), Segment::Seq { index }) => a.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        here = next;
    }
    match (here, last) {
        (toml::Value::Table(t), Segment::Map { key }) => t.remove(key.as_str()).is_some(),
        (toml::Value::Array(a), Segment::Seq { index }) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

/// serde's type errors quote the value found (`invalid type: string "4", expected usize`); a
/// value in the wrong place may be a secret, so only its kind is kept
/// (`invalid type: string, expected usize`).
fn without_value(message: &str) -> String {
    if !message.starts_with("invalid type: ") && !message.starts_with("invalid value: ") {
        return message.to_string();
    }
    let (found, expected) = message
        .split_once(", expected ")
        .unwrap_or((message, "another value"));
    let kind = found.split(['"', '`']).next().unwrap_or(found).trim_end();
    format!("{kind}, expected {expected}")
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [upstream]
        url = "http://127.0.0.1:3000"
        [oidc]
        issuer = "https://id.example.test"
        client_id = "gw"
        client_secret = "s3cret"
        redirect_url = "https://app.example.test/oauth2/callback"
    "#;

    fn errors_of(text: &str) -> Vec<String> {
        Config::from_toml(text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn configured_headers_cannot_reframe_or_take_over_requests() {
        let errs = errors_of(&format!(
            "[server]\nrequest_id_header = \"Transfer-Encoding\"\n\
             [headers.extra]\n\"Content_Length\" = \"name\"\n\"Host\" = \"name\"\n\
             \"cookie\" = \"sub\"\n\"X-Forwarded-User\" = \"name\"\n\
             \"x-auth-request-email\" = \"name\"\n\"X_Forwarded_For\" = \"name\"\n\
             \"X-Name\" = \"name\"\n\
             \"x_name\" = \"nickname\"\n{MINIMAL}"
        ));
        let starts = |prefix: &str| errs.iter().filter(|e| e.starts_with(prefix)).count();
        assert_eq!(
            starts("server.request_id_header: frames or routes the request"),
            1
        );
        for key in ["Content_Length", "Host", "cookie"] {
            assert_eq!(
                starts(&format!("headers.extra.{key}: frames or routes")),
                1,
                "{key}"
            );
        }
        for key in [
            "X-Forwarded-User",
            "x-auth-request-email",
            "X_Forwarded_For",
        ] {
            assert_eq!(
                starts(&format!("headers.extra.{key}: is one of the gateway's own")),
                1
            );
        }
        // BTreeMap order: "X-Name" < "x_name"; the second spelling of the name is refused.
        assert_eq!(starts("headers.extra.x_name: named twice"), 1);
        assert_eq!(errs.len(), 8, "{errs:#?}");

        let errs = errors_of(&format!(
            "[server]\nrequest_id_header = \"X-Forwarded-User\"\n{MINIMAL}"
        ));
        assert_eq!(
            errs,
            ["server.request_id_header: names a header the gateway sets itself (identity, X-Forwarded-For, -Proto, -Host)"]
        );
        let errs = errors_of(&format!(
            "[server]\nrequest_id_header = \"X-Name\"\n[headers.extra]\n\"X-Name\" = \"name\"\n{MINIMAL}"
        ));
        assert_eq!(
            errs,
            ["server.request_id_header: names a header the gateway sets itself (identity, X-Forwarded-For, -Proto, -Host)"]
        );
    }

    #[test]
    fn trusted_proxies_match_ipv4_peers_seen_by_a_dual_stack_listener() {
        let c = Config::from_toml(&format!(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n{MINIMAL}"
        ))
        .unwrap();
        let trusted = |ip: &str| c.server.is_trusted_proxy(ip.parse().unwrap());
        assert!(trusted("10.1.2.3"));
        assert!(trusted("::ffff:10.1.2.3"));
        assert!(trusted("::1"));
        assert!(!trusted("11.0.0.1"));
        assert!(!trusted("::ffff:11.0.0.1"));
        assert!(c.server.forwarded_headers, "on by default");
    }

    #[test]
    fn listeners_and_route_names_do_not_collide() {
        for (listen, admin) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:9090", "127.0.0.1:9090"),
            ("127.0.0.1:9090", "[::]:9090"),
        ] {
            let errs = errors_of(&format!(
                "[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\n{MINIMAL}"
            ));
            assert_eq!(
                errs,
                [
                    "server.admin_listen: must not share server.listen's port: the admin \
                  endpoints would be public"
                ],
                "{listen} {admin}"
            );
        }
        for (listen, admin) in [
            ("127.0.0.1:8080", "127.0.0.2:8080"),
            ("0.0.0.0:0", "127.0.0.1:0"),
        ] {
            let text =
                format!("[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\n{MINIMAL}");
            assert!(Config::from_toml(&text).is_ok(), "{listen} {admin}");
        }

        let routes = "[[routes]]\nname = \"api\"\nprefix = \"/a\"\nauth = \"api\"\n\
                      [[routes]]\nname = \"api\"\nprefix = \"/b\"\nauth = \"api\"\n\
                      [[routes]]\nname = \"gateway\"\nprefix = \"/c\"\nauth = \"public\"\n\
                      [[routes]]\nname = \"route4\"\nprefix = \"/d\"\nauth = \"public\"\n\
                      [[routes]]\nprefix = \"/e\"\nauth = \"public\"\n";
        assert_eq!(
            errors_of(&format!("{MINIMAL}{routes}")),
            [
                "routes[1].name: already the name of routes[0]",
                "routes[2].name: default and gateway are the built-in routes' names",
                "routes[4].name: already the name of routes[3]",
            ]
        );
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.oidc.scopes, ["openid", "profile", "email"]);
        assert_eq!(c.oidc.auth_method, ClientAuthMethod::ClientSecretBasic);
        assert!(c.session.cookies.secure);
        assert_eq!(c.session.cookies.same_site, SameSite::Lax);
        assert_eq!(format!("{:?}", c.oidc.client_secret), "Some([redacted])");
        assert_eq!(c.session.id_token_hint, IdTokenHint::Cookie);
        assert_eq!(c.session.cookies.logout_path, "/oauth2/logout");
    }

    #[test]
    fn where_the_id_token_waits_for_logout() {
        let with = |session: &str| format!("{MINIMAL}\n[session]\n{session}\n");
        let hint = |session: &str| {
            Config::from_toml(&with(session))
                .unwrap()
                .session
                .id_token_hint
        };
        assert_eq!(hint(r#"id_token_hint = "store""#), IdTokenHint::Store);
        assert_eq!(hint(r#"id_token_hint = "none""#), IdTokenHint::Discard);
        let errs = errors_of(&with(r#"id_token_hint = "browser""#));
        assert!(
            errs[0].starts_with("session.id_token_hint: must be"),
            "{errs:?}"
        );
        // The setting it replaced says what to write instead.
        let errs = errors_of(&with("keep_id_token = false"));
        assert!(
            errs[0].starts_with("session.keep_id_token: replaced by session.id_token_hint"),
            "{errs:?}"
        );
        // Cookie name prefixes the browser enforces: __Host- and __Secure-.
        let host = r#"cookie_name = "__Host-authgate"
            login_cookie_name = "__Host-authgate-login"
            logout_cookie_name = "__Secure-authgate-logout""#;
        assert!(Config::from_toml(&with(host)).is_ok());
        for (more, key) in [
            (
                "cookie_secure = false",
                "session.cookie_name: a __Secure- or __Host-",
            ),
            (
                r#"cookie_domain = "example.com""#,
                "session.cookie_name: a __Host- name",
            ),
            (
                r#"cookie_path = "/app""#,
                "session.login_cookie_name: a __Host- name",
            ),
        ] {
            let errs = errors_of(&with(&format!("{host}\n{more}")));
            assert!(errs.iter().any(|e| e.starts_with(key)), "{more}: {errs:?}");
        }
        let errs = errors_of(&with(r#"logout_cookie_name = "__host-logout""#));
        assert!(
            errs[0].starts_with("session.logout_cookie_name: a __Host- name"),
            "{errs:?}"
        );
        let errs = errors_of(&with(r#"logout_cookie_name = "_authgate""#));
        assert!(
            errs[0].starts_with("session.logout_cookie_name: must differ"),
            "{errs:?}"
        );
        // The prefix is also the logout cookie's Path: nothing that would end the attribute.
        for prefix in [
            "/a;b",
            "/a\\u0001",
            "/a//b",
            "/a/../oauth2",
            "/o%61uth2",
            "/./x",
        ] {
            let text = format!("{MINIMAL}\n[server]\nendpoint_prefix = \"{prefix}\"\n");
            let errs = errors_of(&text);
            assert!(errs[0].starts_with("server.endpoint_prefix"), "{errs:?}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_by_key() {
        let text = r#"
            [server]
            listen = "nope"
            lissen = "typo"
            [upstream]
            url = "ftp://x"
            [oidc]
            issuer = "not a url"
            client_id = "gw"
            redirect_url = "https://app.example.test/cb"
            scopes = ["profile"]
            [session]
            idle_timeout = "forever"
            [[routes]]
            prefix = "/x"
            auth = "maybe"
        "#;
        let errs = errors_of(text);
        for key in [
            "server.listen:",
            "server.lissen: unknown key",
            "upstream.url:",
            "oidc.issuer:",
            "oidc.client_secret: is required",
            "oidc.scopes:",
            "session.idle_timeout:",
            "routes[0].auth:",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(key)),
                "{key} missing from {errs:#?}"
            );
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_all_reported_without_their_value() {
        let text = r#"
            [server]
            threads = "4"
            access_log = "yes"
            trusted_proxies = "10.0.0.0/8"
            [oidc]
            issuer = "https://id.example.test"
            client_id = "gw"
            client_secret = 918273645546372819
            redirect_url = "https://app.example.test/oauth2/callback"
            [session]
            idle_timeout = "forever"
            [[routes]]
            prefix = "/a"
            auth = ["public"]
            methods = "GET"
            [[routes]]
            prefix = "/b"
            lissen = 1
        "#;
        let errs = errors_of(text);
        for key in [
            "server.threads: invalid type: string, expected usize",
            "server.access_log: invalid type: string, expected a boolean",
            "server.trusted_proxies: invalid type: string, expected a sequence",
            "oidc.client_secret: invalid type: integer, expected a string",
            "session.idle_timeout:",
            "routes[0].auth: invalid type: sequence, expected a string",
            "routes[0].methods:",
            "routes[1].lissen: unknown key",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(key)),
                "{key} missing from {errs:#?}"
            );
        }
        assert!(!errs.iter().any(|e| e.contains("918273645546372819")));
        // Each key once: not again for the default that took the bad value's place.
        for key in ["oidc.client_secret:", "routes[0].auth:"] {
            assert_eq!(
                errs.iter().filter(|e| e.starts_with(key)).count(),
                1,
                "{errs:#?}"
            );
        }
        // A whole section of the wrong type, and a garbage file of nothing but wrong types.
        let errs = errors_of("server = 5\nroutes = \"x\"");
        assert!(errs.iter().any(|e| e.starts_with("server: invalid type")));
        assert!(errs.iter().any(|e| e.starts_with("routes: invalid type")));
        let garbage: String = (0..200)
            .map(|i| format!("[[routes]]\nprefix = {i}\n"))
            .collect();
        assert!(errors_of(&garbage).len() >= MAX_TYPE_ERRORS);
    }

    #[test]
    fn worker_threads_are_bounded() {
        let errs = errors_of(&format!("[server]\nthreads = 20000\n{MINIMAL}"));
        assert_eq!(
            errs,
            ["server.threads: 20000 is more than 1024: one worker per core is the setting"]
        );
        let c = Config::from_toml(&format!("[server]\nthreads = 1024\n{MINIMAL}")).unwrap();
        assert_eq!(c.server.threads, 1024);
    }

    #[test]
    fn cookie_header_limit_leaves_room_for_the_gateway_cookies() {
        let errs = errors_of(&format!("[server]\nmax_cookie_header_bytes = 0\n{MINIMAL}"));
        assert_eq!(
            errs,
            [
                "server.max_cookie_header_bytes: 0 is less than 4096: the gateway's login cookie \
              and its logout cookie may each take 3800 bytes"
            ]
        );
        let text = format!("[server]\nmax_cookie_header_bytes = 4096\n{MINIMAL}");
        assert_eq!(
            Config::from_toml(&text)
                .unwrap()
                .server
                .max_cookie_header_bytes,
            4096
        );
    }

    #[test]
    fn the_session_store_holds_at_least_one_session() {
        let errs = errors_of(&format!("{MINIMAL}[session]\nmax_sessions = 0\n"));
        assert_eq!(errs, ["session.max_sessions: must be at least 1"]);
    }

    #[test]
    fn durations_are_bounded() {
        // Each of these passed `--test` before: 2000 years then panicked moka at startup; a zero
        // idle timeout or lifetime gives every session no time; a zero refresh interval would
        // reload the provider without pause.
        let minimal = MINIMAL.replace("3000\"", "3000\"\nread_timeout = \"0s\"");
        let text = format!(
            "{minimal}refresh_interval = \"0s\"\n[session]\nlogin_timeout = \"2000years\"\n\
             idle_timeout = \"0s\"\nlifetime = \"500000years\"\n\
             [bearer]\nintrospection_negative_ttl = \"1001years\"\nleeway = \"0s\"\n"
        );
        let errs = errors_of(&text);
        for expected in [
            "upstream.read_timeout: must be more than zero",
            "oidc.refresh_interval: must be more than zero",
            "session.login_timeout: \"2000years\" is longer than 100 years",
            "session.idle_timeout: must be more than zero",
            "session.lifetime: \"500000years\" is longer than 100 years",
            "bearer.introspection_negative_ttl: \"1001years\" is longer than 100 years",
        ] {
            assert!(
                errs.iter().any(|e| e == expected),
                "{expected} missing from {errs:#?}"
            );
        }
        assert_eq!(errs.len(), 6, "a zero leeway is fine: {errs:#?}");
    }

    #[test]
    fn leeways_are_clock_skew_not_token_life() {
        let errs = errors_of(&format!(
            "{MINIMAL}leeway = \"11m\"\n[bearer]\nleeway = \"10m\"\n"
        ));
        assert_eq!(errs, ["oidc.leeway: \"11m\" is more than 10 minutes"]);
        let errs = errors_of(&format!("{MINIMAL}[bearer]\nleeway = \"99years\"\n"));
        assert_eq!(errs, ["bearer.leeway: \"99years\" is more than 10 minutes"]);
    }

    #[test]
    fn route_prefixes_are_written_as_requests_are_matched() {
        for (prefix, normalized) in [
            ("/files/private%20docs", "/files/private docs"),
            ("/a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a\\\\b", "/a/b"),
            ("/a/../b", "/b"),
        ] {
            let errs = errors_of(&format!(
                "{MINIMAL}[[routes]]\nprefix = \"{prefix}\"\nauth = \"public\"\n"
            ));
            assert_eq!(
                errs,
                [format!(
                    "routes[0].prefix: must be written as the normalized path requests are matched on: {normalized:?}"
                )],
                "{prefix}"
            );
        }
        let errs = errors_of(&format!(
            "{MINIMAL}[[routes]]\nprefix = \"/a%zz\"\nauth = \"public\"\n"
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        for prefix in ["/", "/files/private docs", "/api/", "/café", "/x;y"] {
            let errs = errors_of(&format!(
                "{MINIMAL}[[routes]]\nprefix = \"{prefix}\"\nauth = \"public\"\n"
            ));
            assert!(errs.is_empty(), "{prefix}: {errs:?}");
        }
    }

    #[test]
    fn a_url_that_does_not_parse_is_named_not_printed() {
        let errs = errors_of(&format!(
            "{MINIMAL}[[logout.webhooks]]\nurl = \"https//hooks.example/T0/XOXB-SECRET-PATH\"\n"
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("logout.webhooks[0].url: is not an absolute URL"));
        assert!(!errs[0].contains("SECRET"), "{errs:?}");
    }

    #[test]
    fn webhooks_are_bounded_and_logged_by_origin() {
        let hook = |retries: u32| {
            format!(
                "{MINIMAL}[[logout.webhooks]]\n\
                 url = \"https://hooks.example.test:8443/services/T0/s3cr3t-path?k=v\"\n\
                 retries = {retries}\n"
            )
        };
        let c = Config::from_toml(&hook(10)).unwrap();
        assert_eq!(
            c.logout.webhooks[0].origin,
            "https://hooks.example.test:8443"
        );
        let errs = errors_of(&hook(11));
        assert_eq!(errs, ["logout.webhooks[0].retries: must be at most 10"]);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let errs = errors_of("[server]\nlisten = \"x\n");
        assert!(errs[0].contains("line 2"), "{errs:?}");
    }

    #[test]
    fn secrets_come_from_the_environment() {
        std::env::set_var("AUTHGATE_TEST_SECRET_X", "from-env");
        let text = MINIMAL.replace("\"s3cret\"", "\"${AUTHGATE_TEST_SECRET_X}\"");
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(c.oidc.client_secret.unwrap().expose(), "from-env");
        let text = MINIMAL.replace("\"s3cret\"", "\"${AUTHGATE_TEST_UNSET_Y}\"");
        let errs = errors_of(&text);
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with("oidc.client_secret: environment variable AUTHGATE_TEST_UNSET_Y")),
            "{errs:?}"
        );
        // A secret that contains `${`: written with `$${`, and never echoed when it is not.
        let text = MINIMAL.replace("\"s3cret\"", "\"Pa$${ss-w0rd}-Top$$$${x}\"");
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(
            c.oidc.client_secret.unwrap().expose(),
            "Pa${ss-w0rd}-Top$$${x}"
        );
        let text = MINIMAL.replace("\"s3cret\"", "\"Pa${ss-w0rd}-TopSecret\"");
        let errs = errors_of(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("oidc.client_secret: ${...} must name"),
            "{errs:?}"
        );
        assert!(!errs[0].contains("w0rd"), "{errs:?}");
        let errs = errors_of(&MINIMAL.replace("\"s3cret\"", "\"Pa${ss-w0rd\""));
        assert!(!errs.concat().contains("w0rd"), "{errs:?}");
    }

    #[test]
    fn plain_http_issuer_only_on_loopback() {
        let errs = errors_of(&MINIMAL.replace("https://id.example.test", "http://id.example.test"));
        assert!(errs
            .iter()
            .any(|e| e.starts_with("oidc.issuer: must be https")));
        assert!(Config::from_toml(
            &MINIMAL.replace("https://id.example.test", "http://127.0.0.1:9000")
        )
        .is_ok());
    }
}
