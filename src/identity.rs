//! Who a request is, and the headers that tell the upstream.
//!
//! "Strip, then set" (linkerd2-proxy's `set_identity_header`): every header the gateway may set
//! is removed from the client's request first — whatever its case and whether the client wrote
//! `_` or `-` (oauth2-proxy GHSA-vjrc-mh2v-45x6) — on every route, public ones included. Only
//! then are the headers of a verified identity added.

use crate::secret::Secret;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Tells header mappings apart, so an identity's cached headers follow a reload.
static MAPPING_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The prefix of identity headers on proxied requests (oauth2-proxy's convention).
pub const FORWARDED_PREFIX: &str = "X-Forwarded-";
/// The prefix of identity headers in forward-auth answers (`/oauth2/auth`).
pub const AUTH_REQUEST_PREFIX: &str = "X-Auth-Request-";

/// The headers under each prefix, by role.
const USER: &str = "User";
const EMAIL: &str = "Email";
const PREFERRED_USERNAME: &str = "Preferred-Username";
const GROUPS: &str = "Groups";
const ACCESS_TOKEN: &str = "Access-Token";

/// A verified identity: the subject and the claims it was verified with.
///
/// The claims are kept as one compact JSON string, not a parsed map: a million sessions must fit
/// in memory (BENCHMARKS.md), and the hot path never reads them (it uses the cached headers).
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    claims_json: Box<str>,
    /// The `X-Forwarded-*` headers of this identity under one header mapping (its generation),
    /// computed on first use: a session or a cached token then costs no claim formatting per
    /// request.
    forwarded: OnceLock<(u64, ForwardedHeaders)>,
}

/// Ready-made identity headers.
pub type ForwardedHeaders = Arc<[(HeaderName, HeaderValue)]>;

impl Identity {
    pub fn new(subject: String, claims: &Map<String, Value>) -> Self {
        Self {
            subject,
            claims_json: serde_json::to_string(claims)
                .unwrap_or_else(|_| "{}".into())
                .into_boxed_str(),
            forwarded: OnceLock::new(),
        }
    }

    /// The claims, parsed (for the rare readers: header computation, userinfo).
    pub fn claims(&self) -> Map<String, Value> {
        serde_json::from_str(&self.claims_json).unwrap_or_default()
    }

    /// One claim as header-ready text (see [`claim_text`]).
    pub fn claim_text(&self, claim: &str) -> Option<String> {
        claim_text(&self.claims(), claim)
    }
}

/// A claim as a header-ready string: strings as they are, numbers and booleans printed,
/// arrays of those comma-joined. Objects and nulls give nothing.
pub fn claim_text(claims: &Map<String, Value>, claim: &str) -> Option<String> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match claims.get(claim)? {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(scalar).collect();
            Some(parts.join(","))
        }
        v => scalar(v),
    }
}

/// Which claim feeds which header, and what else is passed. Built from `[headers]`.
#[derive(Debug, Clone)]
pub struct HeaderMapping {
    pub user_claim: String,
    pub email_claim: String,
    pub preferred_username_claim: String,
    pub groups_claim: String,
    pub pass_access_token: bool,
    pub pass_authorization_header: bool,
    /// Extra `(header, claim)` pairs, set on proxied requests as written.
    pub extra: Vec<(HeaderName, String)>,
    /// Every header name this gateway may set, lower-case with `-`: the strip list.
    managed: Vec<String>,
    /// Distinguishes this mapping from those of other configurations.
    generation: u64,
}

impl HeaderMapping {
    pub fn new(
        user_claim: String,
        email_claim: String,
        preferred_username_claim: String,
        groups_claim: String,
        pass_access_token: bool,
        pass_authorization_header: bool,
        extra: Vec<(HeaderName, String)>,
    ) -> Self {
        let mut managed = Vec::new();
        for prefix in [FORWARDED_PREFIX, AUTH_REQUEST_PREFIX] {
            for role in [USER, EMAIL, PREFERRED_USERNAME, GROUPS, ACCESS_TOKEN] {
                managed.push(canonical(&format!("{prefix}{role}")));
            }
        }
        managed.extend(extra.iter().map(|(h, _)| canonical(h.as_str())));
        if pass_authorization_header {
            managed.push("authorization".into());
        }
        Self {
            user_claim,
            email_claim,
            preferred_username_claim,
            groups_claim,
            pass_access_token,
            pass_authorization_header,
            extra,
            managed,
            generation: MAPPING_GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether `name` (any case, `_` or `-`) is a header this gateway controls. Runs for every
    /// header of every request, so it compares in place rather than building a canonical copy.
    pub fn is_managed(&self, name: &str) -> bool {
        self.managed.iter().any(|m| same_canonical(m, name))
    }

    /// Remove every managed header the client sent. Returns the names removed (for a log line;
    /// names only, never values).
    pub fn strip(&self, req: &mut RequestHeader) -> Vec<String> {
        let forged: Vec<String> = req
            .headers
            .keys()
            .map(|k| k.as_str())
            .filter(|k| self.is_managed(k))
            .map(str::to_string)
            .collect();
        for name in &forged {
            req.remove_header(name.as_str());
        }
        forged
    }

    /// The `(name, value)` identity headers under `prefix`, plus the extra mapping when
    /// `with_extra`. Claims whose value cannot be a header value (control characters) are left out.
    pub fn headers_for(
        &self,
        identity: &Identity,
        access_token: Option<&Secret>,
        prefix: &str,
        with_extra: bool,
    ) -> Vec<(String, HeaderValue)> {
        let claims = identity.claims();
        let text = |claim: &str| claim_text(&claims, claim);
        let mut out = Vec::with_capacity(6);
        let mut push = |name: String, text: Option<String>| {
            if let Some(v) = text.and_then(|t| HeaderValue::from_str(&t).ok()) {
                out.push((name, v));
            }
        };
        // A token without the user claim (a machine's client-credentials token) is still
        // somebody: its subject.
        let user = text(&self.user_claim).unwrap_or_else(|| identity.subject.clone());
        push(format!("{prefix}{USER}"), Some(user));
        push(format!("{prefix}{EMAIL}"), text(&self.email_claim));
        push(
            format!("{prefix}{PREFERRED_USERNAME}"),
            text(&self.preferred_username_claim),
        );
        push(format!("{prefix}{GROUPS}"), text(&self.groups_claim));
        if self.pass_access_token {
            push(
                format!("{prefix}{ACCESS_TOKEN}"),
                access_token.map(|t| t.expose().to_string()),
            );
        }
        if with_extra {
            for (header, claim) in &self.extra {
                push(header.as_str().to_string(), text(claim));
            }
        }
        out
    }

    /// The `X-Forwarded-*` and extra headers of `identity` (without the access token), from
    /// the identity's cache when it was computed under this mapping.
    fn forwarded_headers(&self, identity: &Identity) -> ForwardedHeaders {
        if let Some((generation, headers)) = identity.forwarded.get() {
            if *generation == self.generation {
                return headers.clone();
            }
        }
        let headers: ForwardedHeaders = self
            .headers_for(identity, None, FORWARDED_PREFIX, true)
            .into_iter()
            .filter_map(|(name, value)| Some((HeaderName::try_from(name).ok()?, value)))
            .collect();
        // Only the first mapping an identity meets is cached; after a reload, identities
        // created before it compute their headers per request until they end.
        let _ = identity.forwarded.set((self.generation, headers.clone()));
        headers
    }

    /// The user as the upstream sees it (`X-Forwarded-User`), from the cached headers.
    pub fn user_of(&self, identity: &Identity) -> String {
        self.forwarded_headers(identity)
            .first()
            .and_then(|(_, v)| v.to_str().ok())
            .map_or_else(|| identity.subject.clone(), str::to_string)
    }

    /// Set the identity headers on a request bound upstream (after [`Self::strip`]).
    pub fn inject(
        &self,
        req: &mut RequestHeader,
        identity: &Identity,
        access_token: Option<&Secret>,
    ) -> pingora::Result<()> {
        // Appended, not inserted: `strip` already removed every managed name.
        for (name, value) in self.forwarded_headers(identity).iter() {
            req.append_header(name.clone(), value.clone())?;
        }
        if let Some(token) = access_token {
            if self.pass_access_token {
                if let Ok(v) = HeaderValue::from_str(token.expose()) {
                    req.insert_header(format!("{FORWARDED_PREFIX}{ACCESS_TOKEN}"), v)?;
                }
            }
            if self.pass_authorization_header {
                if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
                    req.insert_header(http::header::AUTHORIZATION, v)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether `name` spells `canonical` (already lower-case with `-`), in any case and with `_`
/// for `-`.
fn same_canonical(canonical: &str, name: &str) -> bool {
    canonical.len() == name.len()
        && canonical.bytes().zip(name.bytes()).all(|(c, n)| {
            let n = match n {
                b'_' => b'-',
                n => n.to_ascii_lowercase(),
            };
            c == n
        })
}

/// Lower-case, `_` read as `-`: the spelling every comparison of header names uses.
fn canonical(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> HeaderMapping {
        HeaderMapping::new(
            "sub".into(),
            "email".into(),
            "preferred_username".into(),
            "groups".into(),
            false,
            false,
            vec![(HeaderName::from_static("x-user-name"), "name".into())],
        )
    }

    fn alice() -> Identity {
        let claims = json!({"sub":"alice","email":"a@example.test","groups":["admins","users"],"name":"Alice\r\nX-Evil: 1"});
        Identity::new("alice".into(), claims.as_object().unwrap())
    }

    #[test]
    fn strips_every_spelling_of_managed_headers() {
        let m = mapping();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for h in [
            "X-Forwarded-User",
            "x_forwarded_user",
            "X_FORWARDED_EMAIL",
            "x-auth-request-user",
            "X-User-Name",
            "X-Forwarded-Access_Token",
        ] {
            req.append_header(h.to_string(), "forged").unwrap();
        }
        req.append_header("X-Forwarded-For", "10.0.0.1").unwrap();
        let removed = m.strip(&mut req);
        assert_eq!(removed.len(), 6, "{removed:?}");
        assert_eq!(req.headers.len(), 1);
        assert!(req.headers.get("x-forwarded-for").is_some());
    }

    #[test]
    fn injects_identity_and_skips_unsafe_values() {
        let m = mapping();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        m.inject(&mut req, &alice(), None).unwrap();
        assert_eq!(req.headers["x-forwarded-user"], "alice");
        assert_eq!(req.headers["x-forwarded-email"], "a@example.test");
        assert_eq!(req.headers["x-forwarded-groups"], "admins,users");
        assert!(req.headers.get("x-forwarded-preferred-username").is_none());
        // The name claim carries CR LF: no header rather than a split header.
        assert!(req.headers.get("x-user-name").is_none());
        assert!(req.headers.get("x-forwarded-access-token").is_none());
    }
}
