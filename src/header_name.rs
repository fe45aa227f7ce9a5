//! Names of the headers the gateway writes on every proxied request (the request id, the
//! identity headers), prepared once per configuration.
//!
//! pingora's `append_header` and `insert_header` take the name as it goes on the wire. Given a
//! [`HeaderName`], they first spell it out again into a fresh buffer, on every call; given
//! [`Bytes`], they take it as it is, and a clone of prepared `Bytes` is a reference count.
//! Measured under callgrind, that is about 170 instructions and an allocation per header per
//! request (BENCHMARKS.md). The spelling is also what the upstream sees: the name as configured
//! (`X-Forwarded-User`), not pingora's lower-case rendering of a parsed name.

use bytes::Bytes;
use http::header::InvalidHeaderName;
use http::HeaderName;

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
            spelling: Bytes::copy_from_slice(spelling.as_bytes()),
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

    /// The spelling as text (for replies the gateway writes itself).
    pub fn as_str(&self) -> &str {
        // Valid header names are ASCII.
        std::str::from_utf8(&self.spelling).unwrap_or_default()
    }
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
}
