//! The gateway's cookies: reading them from a request, writing `Set-Cookie`, and removing them
//! from what goes upstream.
//!
//! Three cookies:
//! - the session cookie (a [`super::SessionId`]);
//! - the login cookie: the browser's pending logins, sealed ([`super::pending_login`]), newest
//!   first, at most `max_pending_logins`, so parallel XHRs after an expiry replace entries in one
//!   cookie instead of piling up cookies (mod_auth_openidc #331);
//! - the logout cookie: the session's ID token, sealed ([`super::id_token_cookie`]), with the
//!   logout endpoint as its `Path`, so no other request carries it.

use cookie::{Cookie, SameSite};
use pingora::http::RequestHeader;
use std::time::Duration;

/// Cookie attributes from `[session]`.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    pub session_name: String,
    pub login_name: String,
    pub logout_name: String,
    pub domain: Option<String>,
    /// Path of the session and login cookies.
    pub path: String,
    /// Path of the logout cookie: `{server.endpoint_prefix}/logout`.
    pub logout_path: String,
    pub secure: bool,
    pub same_site: SameSite,
    /// Max-Age of the session cookie: the session's absolute lifetime.
    pub session_max_age: Duration,
    /// Max-Age of the login cookie: the login timeout.
    pub login_max_age: Duration,
    pub max_pending_logins: usize,
}

impl CookieSettings {
    /// `Set-Cookie` for a new session.
    pub fn session_cookie(&self, value: &str) -> String {
        self.build(
            &self.session_name,
            value,
            self.session_max_age,
            self.same_site,
        )
    }

    /// `Set-Cookie` removing the session cookie.
    pub fn clear_session_cookie(&self) -> String {
        self.build(&self.session_name, "", Duration::ZERO, self.same_site)
    }

    /// `Set-Cookie` for the logout cookie holding a sealed ID token (removal when empty). It
    /// lives as long as the session it was issued with.
    pub fn logout_cookie(&self, sealed: &str) -> String {
        let max_age = if sealed.is_empty() {
            Duration::ZERO
        } else {
            self.session_max_age
        };
        let mut c = self.cookie(&self.logout_name, sealed, max_age, self.same_site);
        c.set_path(self.logout_path.clone());
        c.to_string()
    }

    /// `Set-Cookie` for the login cookie with `value`, the browser's sealed pending logins
    /// ([`super::pending_login`]); removal when empty.
    ///
    /// The login cookie is `SameSite=Lax` at most: with `Strict` the browser would not send it
    /// on the provider's redirect back, and with `response_mode=form_post` (a cross-site POST)
    /// it must be `None`, which needs `Secure`.
    pub fn login_cookie(&self, value: &str, form_post: bool) -> String {
        let same_site = if form_post {
            SameSite::None
        } else if self.same_site == SameSite::Strict {
            SameSite::Lax
        } else {
            self.same_site
        };
        let max_age = if value.is_empty() {
            Duration::ZERO
        } else {
            self.login_max_age
        };
        self.build(&self.login_name, value, max_age, same_site)
    }

    fn build(&self, name: &str, value: &str, max_age: Duration, same_site: SameSite) -> String {
        self.cookie(name, value, max_age, same_site).to_string()
    }

    fn cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Duration,
        same_site: SameSite,
    ) -> Cookie<'static> {
        let mut c = Cookie::build((name.to_string(), value.to_string()))
            .path(self.path.clone())
            .http_only(true)
            .secure(self.secure || same_site == SameSite::None)
            .same_site(same_site)
            .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64));
        if let Some(domain) = &self.domain {
            c = c.domain(domain.clone());
        }
        c.build()
    }
}

/// The value of the first cookie called `name` in the request's `Cookie` headers.
/// Malformed cookie pairs are skipped, never an error; so is a value that is not UTF-8.
pub fn find<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            // Bytes, not `str`: this runs on every request that has a session, and a
            // byte scan costs a third of validating and splitting text.
            let (n, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
            (n.trim_ascii() == name.as_bytes()).then_some(&v[1..])
        })
        .and_then(|v| std::str::from_utf8(v.trim_ascii()).ok())
        .map(|v| v.trim_matches('"'))
}

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Total bytes of the request's `Cookie` headers.
pub fn header_len(req: &RequestHeader) -> usize {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(|v| v.len())
        .sum()
}

/// Remove the cookies called any of `names` from the request (the upstream never sees the
/// gateway's cookies). Other cookies are kept byte for byte.
pub fn strip(req: &mut RequestHeader, names: &[&str]) {
    // Requests on public routes and bearer requests usually carry none of the gateway's
    // cookies: a cheap scan first keeps them free of allocations.
    let mentions_ours = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .any(|v| names.iter().any(|n| memfind(v.as_bytes(), n.as_bytes())));
    if !mentions_ours {
        return;
    }
    let is_ours = |pair: &[u8]| {
        let name = pair
            .split(|&b| b == b'=')
            .next()
            .unwrap_or(pair)
            .trim_ascii();
        names.iter().any(|n| n.as_bytes() == name)
    };
    // Every non-empty `name=value` pair of every Cookie header, ours left out.
    let kept: Vec<Vec<u8>> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .map(|pair| pair.trim_ascii())
        .filter(|pair| !pair.is_empty() && !is_ours(pair))
        .map(<[u8]>::to_vec)
        .collect();
    req.remove_header(&http::header::COOKIE);
    // A logged-in browser often sends nothing but the session cookie: then nothing is left.
    if !kept.is_empty() {
        if let Ok(v) = http::HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
            let _ = req.insert_header(http::header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CookieSettings {
        CookieSettings {
            session_name: "_authgate".into(),
            login_name: "_authgate_login".into(),
            logout_name: "_authgate_logout".into(),
            domain: None,
            path: "/".into(),
            logout_path: "/oauth2/logout".into(),
            secure: true,
            same_site: SameSite::Lax,
            session_max_age: Duration::from_secs(3600),
            login_max_age: Duration::from_secs(600),
            max_pending_logins: 3,
        }
    }

    fn req(cookies: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for c in cookies {
            r.append_header("Cookie", *c).unwrap();
        }
        r
    }

    #[test]
    fn finds_and_strips_only_our_cookies() {
        let mut r = req(&["a=1; _authgate=xyz", "_authgate_login=s; b=2;;garbage"]);
        assert_eq!(find(&r, "_authgate"), Some("xyz"));
        assert_eq!(find(&r, "_authgate_login"), Some("s"));
        assert_eq!(find(&r, "c"), None);
        assert_eq!(find(&r, "b"), Some("2"));
        let odd = req(&[
            " x = \" q \" ;=v;novalue; _authgate =  id ",
            "_authgate=second",
        ]);
        assert_eq!(find(&odd, "x"), Some(" q "));
        assert_eq!(find(&odd, "_authgate"), Some("id"));
        assert_eq!(find(&odd, "novalue"), None);
        assert_eq!(find(&odd, ""), Some("v"));
        strip(&mut r, &["_authgate", "_authgate_login"]);
        assert_eq!(r.headers.get_all("cookie").iter().count(), 1);
        assert_eq!(r.headers["cookie"], "a=1; b=2; garbage");
        let mut only_ours = req(&["_authgate=1"]);
        strip(&mut only_ours, &["_authgate"]);
        assert!(only_ours.headers.get("cookie").is_none());
    }

    #[test]
    fn set_cookie_attributes() {
        let s = settings();
        let c = s.session_cookie("v");
        for attr in [
            "_authgate=v",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=3600",
        ] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        assert!(s.clear_session_cookie().contains("Max-Age=0"));
        let logout = s.logout_cookie("sealed");
        for attr in [
            "_authgate_logout=sealed",
            "HttpOnly",
            "Secure",
            "Path=/oauth2/logout",
            "Max-Age=3600",
        ] {
            assert!(logout.contains(attr), "{logout} lacks {attr}");
        }
        assert!(!logout.contains("Path=/;"));
        assert!(s.logout_cookie("").contains("Max-Age=0"));
        let form_post = s.login_cookie("sealed", true);
        assert!(form_post.contains("SameSite=None") && form_post.contains("Secure"));
        assert!(form_post.contains("Max-Age=600"));
        assert!(s.login_cookie("", false).contains("Max-Age=0"));
    }
}
