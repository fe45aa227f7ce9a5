//! Who a request is, and the headers that tell the upstream.
//!
//! "Strip, then set" (linkerd2-proxy's `set_identity_header`): every header the gateway may set
//! is removed from the client's request first — whatever its case and whether the client wrote
//! `_` or `-` (oauth2-proxy GHSA-vjrc-mh2v-45x6) — on every route, public ones included. Only
//! then are the headers of a verified identity added.

use crate::header_name::WrittenHeader;
use crate::secret::{exact_box, Secret};
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::RequestHeader;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

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
/// in memory (BENCHMARKS.md), and the hot path never reads them (it uses the cached values).
/// `sub` and `sid` are kept once, in their fields, not again in the JSON.
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: Box<str>,
    /// The provider's session id (the `sid` claim, when a string): back-channel and front-channel
    /// logout find sessions by it.
    pub sid: Option<Box<str>>,
    /// The other claims, and `sub` when it is not the subject (a bearer issuer may take the
    /// subject from another claim).
    claims_json: Box<str>,
    /// The values of this identity's `X-Forwarded-*` and extra headers under one header mapping
    /// (its generation), computed on first use: a session or a cached token then costs no claim
    /// parsing per request.
    forwarded: OnceLock<(u64, ForwardedValues)>,
}

/// An identity's forwarded header values, one line per slot of
/// [`HeaderMapping::forwarded_names`], in one buffer: a slot without a valid header value holds
/// `"\0"` (never a valid value, so it is skipped like one). One allocation per identity rather
/// than a header map (a million of them must fit in memory), and each request gets its values as
/// slices of the buffer, without copying.
type ForwardedValues = Bytes;

impl Identity {
    pub fn new(subject: &str, claims: &Map<String, Value>) -> Self {
        let sid = claims.get("sid").and_then(Value::as_str);
        let kept: BTreeMap<&str, &Value> = claims
            .iter()
            .filter(|(name, value)| match name.as_str() {
                "sub" => value.as_str() != Some(subject),
                "sid" => sid.is_none(),
                _ => true,
            })
            .map(|(name, value)| (name.as_str(), value))
            .collect();
        Self {
            subject: exact_box(subject),
            sid: sid.map(exact_box),
            claims_json: exact_box(&serde_json::to_string(&kept).unwrap_or_else(|_| "{}".into())),
            forwarded: OnceLock::new(),
        }
    }

    /// The claims, parsed (for the rare readers: header computation, userinfo). `sub` is the
    /// subject unless the claims named another, and `sid` is there when the identity has one.
    pub fn claims(&self) -> Map<String, Value> {
        let mut claims: Map<String, Value> =
            serde_json::from_str(&self.claims_json).unwrap_or_default();
        if !claims.contains_key("sub") {
            claims.insert("sub".into(), self.subject.to_string().into());
        }
        if let Some(sid) = &self.sid {
            claims.insert("sid".into(), sid.to_string().into());
        }
        claims
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
    pub extra: Vec<(WrittenHeader, String)>,
    /// Every header name this gateway may set, lower-case with `-`: the strip list.
    managed: Vec<String>,
    /// The headers set on proxied requests from claims: `X-Forwarded-User`, `-Email`,
    /// `-Preferred-Username`, `-Groups`, then the extra headers. The slots of
    /// [`ForwardedValues`].
    forwarded_names: Vec<WrittenHeader>,
    /// `X-Forwarded-Access-Token`, set with `pass_access_token`.
    access_token_name: WrittenHeader,
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
        extra: Vec<(WrittenHeader, String)>,
    ) -> Self {
        let mut managed: Vec<String> = own_header_names().collect();
        managed.extend(extra.iter().map(|(h, _)| canonical(h.as_str())));
        if pass_authorization_header {
            managed.push("authorization".into());
        }
        let forwarded = |role: &str| {
            WrittenHeader::new(&format!("{FORWARDED_PREFIX}{role}")).expect("a valid header name")
        };
        let forwarded_names = [USER, EMAIL, PREFERRED_USERNAME, GROUPS]
            .into_iter()
            .map(forwarded)
            .chain(extra.iter().map(|(h, _)| h.clone()))
            .collect();
        Self {
            user_claim,
            email_claim,
            preferred_username_claim,
            groups_claim,
            pass_access_token,
            pass_authorization_header,
            extra,
            managed,
            forwarded_names,
            access_token_name: forwarded(ACCESS_TOKEN),
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

    /// The text of each claim-fed header, in slot order: user, email, preferred username,
    /// groups, then the extra headers when `with_extra`.
    fn claim_texts(&self, identity: &Identity, with_extra: bool) -> Vec<Option<String>> {
        let claims = identity.claims();
        let text = |claim: &str| claim_text(&claims, claim);
        // A token without the user claim (a machine's client-credentials token) is still
        // somebody: its subject.
        let user = text(&self.user_claim).unwrap_or_else(|| identity.subject.to_string());
        let mut texts = vec![
            Some(user),
            text(&self.email_claim),
            text(&self.preferred_username_claim),
            text(&self.groups_claim),
        ];
        if with_extra {
            texts.extend(self.extra.iter().map(|(_, claim)| text(claim)));
        }
        texts
    }

    /// The `X-Auth-Request-*` headers of a forward-auth answer (`/oauth2/auth`). Claims whose
    /// value cannot be a header value (control characters) are left out.
    pub fn auth_request_headers(
        &self,
        identity: &Identity,
        access_token: Option<&Secret>,
    ) -> Vec<(String, HeaderValue)> {
        let token = access_token
            .filter(|_| self.pass_access_token)
            .map(|t| t.expose().to_string());
        [USER, EMAIL, PREFERRED_USERNAME, GROUPS, ACCESS_TOKEN]
            .iter()
            .zip(self.claim_texts(identity, false).into_iter().chain([token]))
            .filter_map(|(role, text)| {
                let value = HeaderValue::from_str(&text?).ok()?;
                Some((format!("{AUTH_REQUEST_PREFIX}{role}"), value))
            })
            .collect()
    }

    /// The `X-Forwarded-*` and extra header values of `identity` (see [`ForwardedValues`]),
    /// from the identity's cache when they were computed under this mapping.
    fn forwarded_values<'a>(&self, identity: &'a Identity) -> Cow<'a, ForwardedValues> {
        if let Some((generation, values)) = identity.forwarded.get() {
            if *generation == self.generation {
                return Cow::Borrowed(values);
            }
        }
        let mut lines = Vec::new();
        for text in self.claim_texts(identity, true) {
            // Claims that cannot be a header value (control characters, a line break) are
            // left out rather than split.
            match text.filter(|t| HeaderValue::from_str(t).is_ok()) {
                Some(t) => lines.extend_from_slice(t.as_bytes()),
                None => lines.push(0),
            }
            lines.push(b'\n');
        }
        // Copied into a buffer of its own size (see `exact_box`).
        let values = Bytes::copy_from_slice(&lines);
        // Only the first mapping an identity meets is cached; after a reload, identities
        // created before it compute their values per request until they end.
        let _ = identity.forwarded.set((self.generation, values.clone()));
        Cow::Owned(values)
    }

    /// The `X-Forwarded-*` and extra headers of `identity` that have a value, each value a
    /// slice of its cached [`ForwardedValues`].
    fn forwarded_headers<'a>(
        &'a self,
        identity: &'a Identity,
    ) -> impl Iterator<Item = (&'a WrittenHeader, HeaderValue)> + 'a {
        let values = self.forwarded_values(identity);
        let mut start = 0;
        // One slice (one reference count) per header: under load each clone and drop of shared
        // `Bytes` is an atomic operation.
        self.forwarded_names.iter().filter_map(move |name| {
            let len = values[start..].iter().position(|b| *b == b'\n')?;
            let value = values.slice(start..start + len);
            start += len + 1;
            Some((name, HeaderValue::from_maybe_shared(value).ok()?))
        })
    }

    /// The user as the upstream sees it (`X-Forwarded-User`), from the cached values.
    pub fn user_of(&self, identity: &Identity) -> String {
        self.forwarded_headers(identity)
            .next()
            .filter(|(name, _)| name.name() == self.forwarded_names[0].name())
            .and_then(|(_, v)| v.to_str().ok().map(str::to_string))
            .unwrap_or_else(|| identity.subject.to_string())
    }

    /// Set the identity headers on a request bound upstream (after [`Self::strip`]).
    pub fn inject(
        &self,
        req: &mut RequestHeader,
        identity: &Identity,
        access_token: Option<&Secret>,
    ) -> pingora::Result<()> {
        // Appended, not inserted: `strip` already removed every managed name.
        for (name, value) in self.forwarded_headers(identity) {
            req.append_header(name.spelling(), value)?;
        }
        if let Some(token) = access_token {
            if self.pass_access_token {
                if let Ok(v) = HeaderValue::from_str(token.expose()) {
                    req.insert_header(self.access_token_name.spelling(), v)?;
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

/// The gateway's own identity headers, `X-Forwarded-*` and `X-Auth-Request-*` for every role,
/// canonical.
fn own_header_names() -> impl Iterator<Item = String> {
    [FORWARDED_PREFIX, AUTH_REQUEST_PREFIX]
        .into_iter()
        .flat_map(|prefix| {
            [USER, EMAIL, PREFERRED_USERNAME, GROUPS, ACCESS_TOKEN]
                .into_iter()
                .map(move |role| canonical(&format!("{prefix}{role}")))
        })
}

/// Whether `name` (any case, `_` or `-`) is one of the gateway's own identity headers, which
/// `[headers.extra]` may not name again.
pub fn is_own_identity_header(name: &str) -> bool {
    own_header_names().any(|own| same_canonical(&own, name))
}

/// Whether `name` spells `canonical` (already lower-case with `-`), in any case and with `_`
/// for `-`.
pub fn same_canonical(canonical: &str, name: &str) -> bool {
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
pub fn canonical(name: &str) -> String {
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
            vec![(WrittenHeader::new("X-User-Name").unwrap(), "name".into())],
        )
    }

    fn alice() -> Identity {
        let claims = json!({"sub":"alice","email":"a@example.test","groups":["admins","users"],"name":"Alice\r\nX-Evil: 1"});
        Identity::new("alice", claims.as_object().unwrap())
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
        // Sent spelled as configured (the constants, and extra headers as written).
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.contains("X-Forwarded-User: alice\r\n"), "{wire}");
        assert!(
            wire.contains("X-Forwarded-Groups: admins,users\r\n"),
            "{wire}"
        );
    }
}
