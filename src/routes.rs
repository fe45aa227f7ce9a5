//! Route classification: which auth a request needs and which upstream serves it.
//!
//! Matching happens on the *normalized* path only, never on the query or fragment
//! (oauth2-proxy GHSA-7rh7-c77v-6434): the raw path is percent-decoded once, `\` is read as `/`,
//! empty and `.` segments are dropped and `..` pops a segment. A path that cannot be decoded
//! (bad escapes, NUL or control bytes, invalid UTF-8) is refused with 400 rather than guessed at.
//!
//! The upstream must see the path that was authorized, not one it may read differently (an
//! Express router matches `/admin/../public` under `/admin`; nginx reads `%5C` as a file-name
//! byte, not a separator). So a proxied request whose path is not already in normalized form is
//! sent upstream with the normalized path ([`upstream_target`]), as Envoy's and Istio's path
//! normalization do; forward-auth, which cannot change what its proxy sends, refuses such paths
//! ([`is_ambiguous`]). Only origin-form (`/a?b`) and absolute-form (`http://h/a?b`) request targets
//! are accepted ([`target_path`]): pingora reads any other target (`a/b`, `x:/a`) as `/` but
//! would forward it as sent.

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
    /// Methods compare without case: `delete` is not a method a route limited to `DELETE` may
    /// let through to an upstream that reads it as `DELETE` (Flask, Rails, PHP upper-case it).
    fn matches(&self, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
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

    /// [`Self::classify`] for a request whose raw path normalized to `path`, refusing a path with
    /// `;` parameters that servlet containers would route elsewhere: both readings must choose
    /// the same route. (`;jsessionid=` URLs keep working; `/admin;x/y` under a public `/` with a
    /// protected `/admin` does not.)
    pub fn classify_request(
        &self,
        method: &str,
        raw: &str,
        path: &str,
    ) -> Result<Arc<Route>, PathError> {
        let route = self.classify(method, path);
        if path.as_bytes().contains(&b';') {
            let servlet = self.classify(method, &normalize_path_without_params(raw)?);
            if !Arc::ptr_eq(&route, &servlet) {
                return Err(PathError::Ambiguous);
            }
        }
        Ok(route)
    }
}

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    BadEscape,
    ForbiddenByte,
    NotUtf8,
    /// A request target neither origin-form nor absolute-form (`*`, `a/b`, `x:/a`).
    NotOriginForm,
    /// A path an upstream may read differently from the gateway: forward-auth's
    /// ([`is_ambiguous`]), or `;` parameters that change the route ([`RouteTable::classify_request`]).
    Ambiguous,
}

/// The path of a request target to normalize: `uri.path()` for origin-form (`raw_target`
/// starts with `/`) and absolute-form (`http://` or `https://`, any case) targets; any other
/// target is refused.
pub fn target_path<'a>(raw_target: &[u8], uri: &'a http::Uri) -> Result<&'a str, PathError> {
    let absolute = |scheme: &[u8]| {
        raw_target
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    };
    if raw_target.starts_with(b"/") || absolute(b"http://") || absolute(b"https://") {
        Ok(uri.path())
    } else {
        Err(PathError::NotOriginForm)
    }
}

/// The origin-form target to send upstream when the client's differs from the authorized path
/// `normalized`: that path percent-encoded where a path needs it, then the client's query as
/// sent. `None` when the client's target already is the normalized path (the usual case: no
/// allocation).
pub fn upstream_target(raw_target: &[u8], normalized: &str, query: Option<&str>) -> Option<String> {
    let raw_path = raw_target.split(|&b| b == b'?').next().unwrap_or_default();
    if raw_path == normalized.as_bytes() {
        return None;
    }
    let mut target = String::with_capacity(normalized.len() + query.map_or(0, |q| q.len() + 1));
    for &b in normalized.as_bytes() {
        if is_path_byte(b) {
            target.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            target.push('%');
            target.push(HEX[usize::from(b >> 4)] as char);
            target.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    Some(target)
}

/// RFC 3986 `pchar` or `/`: unreserved, sub-delims, `:` and `@`.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// Whether upstreams may split `raw` (a path, no query) into segments other than the normalized
/// ones: a `\`, an encoded `/` or `\`, an empty segment (`//`) or a `.` or `..` segment, in any
/// encoding. A path without any of these has the same segments however it is read.
pub fn is_ambiguous(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    if lower.contains('\\') || lower.contains("%2f") || lower.contains("%5c") {
        return true;
    }
    let segments: Vec<&str> = raw.split('/').skip(1).collect();
    segments.iter().enumerate().any(|(i, segment)| {
        let last = i + 1 == segments.len();
        (segment.is_empty() && !last)
            || matches!(
                percent_decode_strict(segment.as_bytes()).as_deref(),
                Ok(b".") | Ok(b"..")
            )
    })
}

/// Decode once and normalize a raw request path (no query). See the module docs.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    normalize(raw, false)
}

/// [`normalize_path`] as Tomcat, Jetty and other servlet containers read a path: each segment
/// without its `;` parameters (`/admin;x/y` is `/admin/y`, `/public/..;/admin` is `/admin`).
pub fn normalize_path_without_params(raw: &str) -> Result<String, PathError> {
    normalize(raw, true)
}

fn normalize(raw: &str, strip_params: bool) -> Result<String, PathError> {
    let decoded = percent_decode_strict(raw.as_bytes())?;
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::ForbiddenByte);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        let segment = match segment.split_once(';') {
            Some((name, _params)) if strip_params => name,
            _ => segment,
        };
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
    fn only_origin_and_absolute_form_targets_have_a_path() {
        let path = |raw: &str| {
            let uri: http::Uri = raw.parse().unwrap_or_default();
            target_path(raw.as_bytes(), &uri).map(str::to_string)
        };
        assert_eq!(path("/a/b?c").as_deref(), Ok("/a/b"));
        assert_eq!(path("http://h/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(path("HTTPS://h/a").as_deref(), Ok("/a"));
        for raw in ["admin/x", "x:/admin/x", "*", "", "h/a"] {
            assert_eq!(path(raw), Err(PathError::NotOriginForm), "{raw}");
        }
    }

    #[test]
    fn the_upstream_gets_the_authorized_path() {
        // As the proxy does it: the target's path, normalized.
        let target = |raw: &str, query: Option<&str>| {
            let uri: http::Uri = raw.parse().unwrap_or_default();
            let path = normalize_path(target_path(raw.as_bytes(), &uri).unwrap()).unwrap();
            upstream_target(raw.as_bytes(), &path, query)
        };
        // Already normalized: left as the client sent it.
        assert_eq!(target("/public/x", None), None);
        assert_eq!(target("/public/x?a=%2F..", Some("a=%2F..")), None);
        assert_eq!(target("/", None), None);
        // Otherwise the normalized path, re-encoded, and the query as sent.
        for (raw, query, want) in [
            ("/admin/x%5C..%5C..%5Cpublic", None, "/public"),
            (
                "/admin/x%2F..%2F..%2Fpublic/e",
                Some("q=1"),
                "/public/e?q=1",
            ),
            ("/admin/%2e%2e/public", None, "/public"),
            ("/admin/../public/", None, "/public/"),
            ("//public//e", None, "/public/e"),
            ("/a\\..\\public", None, "/public"),
            ("/caf%C3%A9%20x", None, "/caf%C3%A9%20x"),
            ("/a/%252e%252e/b", None, "/a/%252e%252e/b"),
            ("/%41%3B%3F%23", None, "/A;%3F%23"),
            ("http://evil/public", None, "/public"),
        ] {
            assert_eq!(target(raw, query).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_told_apart() {
        for raw in [
            "/a/../b",
            "/a/./b",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/a//b",
            "/a\\b",
            "/a%2fb",
            "/a%5Cb",
            "//a",
        ] {
            assert!(is_ambiguous(raw), "{raw}");
        }
        for raw in ["/", "/a/b", "/a/b/", "/a/..b", "/a/b.", "/a%20b", "/a/b;c"] {
            assert!(!is_ambiguous(raw), "{raw}");
        }
    }

    #[test]
    fn methods_match_whatever_their_case() {
        let t = table();
        assert_eq!(t.classify("get", "/public/x").name, "health");
        assert_eq!(t.classify("Get", "/public/x").name, "health");
        assert_eq!(t.classify("post", "/public/x").name, "default");
    }

    #[test]
    fn path_parameters_may_not_change_the_route() {
        let t = table();
        let route = |raw: &str| {
            t.classify_request("GET", raw, &normalize_path(raw).unwrap())
                .map(|r| r.name.clone())
        };
        // A servlet container reads these as /x, /public/x and /x: other routes than the
        // literal reading's.
        assert_eq!(route("/public/..;/x"), Err(PathError::Ambiguous));
        assert_eq!(route("/public;a/x"), Err(PathError::Ambiguous));
        assert_eq!(route("/public/%2e%2e;/x"), Err(PathError::Ambiguous));
        // Parameters that leave the route alone are fine (`;jsessionid=` URL rewriting).
        assert_eq!(route("/public/x;jsessionid=ABC").as_deref(), Ok("health"));
        assert_eq!(route("/app;jsessionid=ABC").as_deref(), Ok("default"));
        assert_eq!(
            normalize_path_without_params("/public/..;/admin;a=b/x").as_deref(),
            Ok("/admin/x")
        );
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
