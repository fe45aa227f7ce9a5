//! Route classification: which auth a request needs and which upstream serves it.
//!
//! Matching happens on the *normalized* path only, never on the query or fragment
//! (oauth2-proxy GHSA-7rh7-c77v-6434): the raw path is percent-decoded once, `\` is read as `/`,
//! empty and `.` segments are dropped and `..` pops a segment. A path that cannot be decoded
//! (bad escapes, NUL or control bytes, invalid UTF-8) is refused with 400 rather than guessed at.
//! The request is forwarded upstream with its original path; normalization only decides auth, so
//! every ambiguity resolves towards the stricter route.

use crate::metrics::RouteMetrics;
use crate::upstream::Upstream;
use regex::Regex;
use std::sync::Arc;

/// What a route demands of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthPolicy {
    /// No credential needed; identity headers are still stripped.
    Public,
    /// Browser route: a session or bearer token; without one, browsers are sent to login.
    #[default]
    Protected,
    /// API route: a session or bearer token; without one, always 401 (never a redirect).
    Api,
}

impl AuthPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "protected" => Some(Self::Protected),
            "api" => Some(Self::Api),
            _ => None,
        }
    }
}

/// How a route recognizes its paths.
#[derive(Debug, Clone)]
pub enum PathMatcher {
    /// Segment-aware prefix: `/app` matches `/app` and `/app/x`, not `/apple`.
    /// A prefix ending in `/` matches anything below it.
    Prefix(String),
    /// A regular expression over the normalized path (anchor it yourself).
    Pattern(Regex),
}

impl Default for PathMatcher {
    fn default() -> Self {
        PathMatcher::Prefix("/".into())
    }
}

impl PathMatcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatcher::Prefix(prefix) => {
                if prefix.ends_with('/') {
                    path.starts_with(prefix.as_str())
                } else {
                    path.strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                }
            }
            PathMatcher::Pattern(re) => re.is_match(path),
        }
    }
}

/// One configured route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Bounded label for logs and metrics.
    pub name: String,
    pub matcher: PathMatcher,
    /// Upper-case methods; empty means every method.
    pub methods: Vec<String>,
    pub auth: AuthPolicy,
    pub upstream: Arc<Upstream>,
    /// Scopes a bearer token must carry here (403 `insufficient_scope` otherwise).
    pub scopes: Vec<String>,
    /// This route's request metrics, resolved once.
    pub metrics: RouteMetrics,
}

impl Route {
    fn matches(&self, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self.matcher.matches(path)
    }
}

/// The ordered routes plus the fallback (protected, default upstream).
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    fallback: Arc<Route>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>, default_upstream: Arc<Upstream>) -> Self {
        Self {
            routes: routes.into_iter().map(Arc::new).collect(),
            fallback: Arc::new(Route {
                name: "default".into(),
                matcher: PathMatcher::Prefix("/".into()),
                methods: Vec::new(),
                auth: AuthPolicy::Protected,
                upstream: default_upstream,
                scopes: Vec::new(),
                metrics: RouteMetrics::new("default"),
            }),
        }
    }

    /// The first route matching `method` and the normalized `path`, else the fallback.
    pub fn classify(&self, method: &str, path: &str) -> Arc<Route> {
        self.routes
            .iter()
            .find(|r| r.matches(method, path))
            .unwrap_or(&self.fallback)
            .clone()
    }
}

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    BadEscape,
    ForbiddenByte,
    NotUtf8,
}

/// Decode once and normalize a raw request path (no query). See the module docs.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    let decoded = percent_decode_strict(raw.as_bytes())?;
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::ForbiddenByte);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with('\\');
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

/// Percent-decoding that refuses malformed escapes instead of passing them through.
fn percent_decode_strict(input: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = input.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let hi = (hex[0] as char).to_digit(16).ok_or(PathError::BadEscape)?;
            let lo = (hex[1] as char).to_digit(16).ok_or(PathError::BadEscape)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_resolves_every_trick_once() {
        let cases = [
            ("/", "/"),
            ("", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E%2Fadmin", "/admin"),
            ("/public/..%2fadmin", "/admin"),
            ("/public\\..\\admin", "/admin"),
            ("/public/%5c..%5cadmin", "/admin"),
            ("/./a/./b", "/a/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/%252e%252e/b", "/a/%2e%2e/b"),
            ("/caf%C3%A9", "/café"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "raw={raw}");
        }
    }

    #[test]
    fn garbage_paths_are_refused_not_guessed() {
        assert_eq!(normalize_path("/a%"), Err(PathError::BadEscape));
        assert_eq!(normalize_path("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize_path("/a%2"), Err(PathError::BadEscape));
        assert_eq!(normalize_path("/a%00b"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize_path("/a%0d%0a"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize_path("/a%ff"), Err(PathError::NotUtf8));
    }

    fn table() -> RouteTable {
        let up = Arc::new(Upstream::for_tests("127.0.0.1:1"));
        let route = |name: &str, m: PathMatcher, methods: &[&str], auth| Route {
            name: name.into(),
            matcher: m,
            methods: methods.iter().map(|s| s.to_string()).collect(),
            auth,
            upstream: up.clone(),
            scopes: Vec::new(),
            metrics: RouteMetrics::new(name),
        };
        RouteTable::new(
            vec![
                route(
                    "health",
                    PathMatcher::Prefix("/public".into()),
                    &["GET"],
                    AuthPolicy::Public,
                ),
                route(
                    "api",
                    PathMatcher::Pattern(Regex::new("^/api/v[0-9]+/").unwrap()),
                    &[],
                    AuthPolicy::Api,
                ),
            ],
            up.clone(),
        )
    }

    #[test]
    fn routes_match_by_method_and_segment_prefix() {
        let t = table();
        assert_eq!(t.classify("GET", "/public").name, "health");
        assert_eq!(t.classify("GET", "/public/x").name, "health");
        assert_eq!(t.classify("GET", "/publicity").name, "default");
        assert_eq!(t.classify("POST", "/public/x").name, "default");
        assert_eq!(t.classify("GET", "/api/v1/users").auth, AuthPolicy::Api);
        assert_eq!(
            t.classify("GET", "/api/vx/users").auth,
            AuthPolicy::Protected
        );
    }
}
