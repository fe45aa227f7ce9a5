//! Names of the headers the gateway writes on every proxied request (the request id, the
//! identity headers), prepared once per configuration.
//!
//! pingora's `append_header` and `insert_header` take the name as it goes on the wire. Given a
//! [`HeaderName`], they first spell it out again into a fresh buffer, on every call; given
//! [`Bytes`], they take it as it is. Measured under callgrind, that is about 170 instructions
//! and an allocation per header per request (BENCHMARKS.md). The spelling is also what the
//! upstream sees: the name as configured (`X-Forwarded-User`), not pingora's lower-case
//! rendering of a parsed name.
//!
//! Spellings are interned as `'static` text: a clone of static `Bytes` is free, where a clone of
//! shared `Bytes` is an atomic increment, and its drop an atomic decrement, for each header on
//! each request.

use bytes::Bytes;
use http::header::InvalidHeaderName;
use http::HeaderName;
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// A header name as written on the wire, and parsed for lookups.
#[derive(Debug, Clone)]
pub struct WrittenHeader {
    name: HeaderName,
    spelling: Bytes,
}

impl WrittenHeader {
    /// `spelling` is kept as given (its case goes on the wire); it must be a valid header name.
    pub fn new(spelling: &str) -> Result<Self, InvalidHeaderName> {
        Ok(Self {
            name: HeaderName::try_from(spelling)?,
            spelling: Bytes::from_static(interned(spelling).as_bytes()),
        })
    }

    /// The parsed name (lower-case), for reading a request's headers.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The spelling to hand to pingora's `append_header` / `insert_header`.
    pub fn spelling(&self) -> Bytes {
        self.spelling.clone()
    }

    /// Whether this names a header that frames, routes or upgrades the message, or carries the
    /// client's own credentials ([`RESERVED`]), read as every comparison of names in the gateway
    /// reads them: any case, `_` as `-`.
    pub fn is_reserved(&self) -> bool {
        RESERVED
            .iter()
            .any(|reserved| crate::identity::same_canonical(reserved, self.name.as_str()))
    }

    /// The spelling as text (for replies the gateway writes itself).
    pub fn as_str(&self) -> &str {
        // Valid header names are ASCII.
        std::str::from_utf8(&self.spelling).unwrap_or_default()
    }
}

/// Names no configured header may take (`[headers.extra]`, `server.request_id_header`). The
/// gateway strips every header it sets from client requests before setting its own, so an
/// identity header named `Content-Length` or `Transfer-Encoding` would rewrite the framing of
/// every proxied request (request smuggling by configuration), one named `Host` its routing, and
/// one named `Cookie` or `Authorization` would replace the client's credentials.
const RESERVED: [&str; 13] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "cookie",
    "authorization",
    "proxy-authorization",
];

/// The `'static` copy of `spelling`: made once per distinct spelling and kept for the life of
/// the process. Header names come from the configuration, so the set is as small as the names
/// ever configured; a reload that keeps its names adds nothing.
fn interned(spelling: &str) -> &'static str {
    static SPELLINGS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut spellings = SPELLINGS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = spellings.get(spelling) {
        return known;
    }
    let new: &'static str = Box::leak(spelling.into());
    spellings.insert(new);
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::RequestHeader;

    #[test]
    fn keeps_the_configured_spelling_on_the_wire() {
        let header = WrittenHeader::new("X-Request-Id").unwrap();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header(header.spelling(), "abc").unwrap();
        assert_eq!(req.headers[header.name()], "abc");
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        assert_eq!(wire, b"X-Request-Id: abc\r\n");
        assert!(WrittenHeader::new("bad header").is_err());
    }

    #[test]
    fn framing_routing_and_credential_headers_are_reserved() {
        for name in [
            "Content-Length",
            "transfer_encoding",
            "HOST",
            "Cookie",
            "TE",
            "Upgrade",
        ] {
            assert!(WrittenHeader::new(name).unwrap().is_reserved(), "{name}");
        }
        for name in [
            "X-Forwarded-Name",
            "X-Request-Id",
            "Content-Type",
            "Hosts",
            "T",
        ] {
            assert!(!WrittenHeader::new(name).unwrap().is_reserved(), "{name}");
        }
    }

    #[test]
    fn one_static_copy_per_spelling() {
        let a = WrittenHeader::new("X-Interned-Once").unwrap();
        let b = WrittenHeader::new("X-Interned-Once").unwrap();
        assert_eq!(a.spelling().as_ptr(), b.spelling().as_ptr());
        let other = WrittenHeader::new("x-interned-once").unwrap();
        assert_eq!(other.as_str(), "x-interned-once");
        assert_ne!(other.spelling().as_ptr(), a.spelling().as_ptr());
    }
}
