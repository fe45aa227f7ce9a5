//! A wrapper for values that must never reach a log line: client secrets, tokens, PKCE
//! verifiers, session ids.
//!
//! `Debug` and `Display` print `[redacted]`; the value is read only through [`Secret::expose`],
//! which makes every use greppable. Comparison is constant-time ([`Secret::ct_eq`]).

use std::fmt;
use subtle::ConstantTimeEq;

/// A string that prints as `[redacted]`. Boxed rather than a `String`: sessions hold several,
/// and never grow them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: impl AsRef<str>) -> Self {
        Self(exact_box(value.as_ref()))
    }

    /// The secret value itself. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with another value, for anything an attacker may guess.
    pub fn ct_eq(&self, other: &str) -> bool {
        ct_eq(self.0.as_bytes(), other.as_bytes())
    }
}

/// A copy of `text` in an allocation of its own size. `String::into_boxed_str` may keep the
/// string's spare capacity (mimalloc does not move a block that shrinks by less than half), and
/// a million sessions hold several strings each.
pub fn exact_box(text: &str) -> Box<str> {
    Box::from(text)
}

/// Constant-time comparison of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert!(s.ct_eq("hunter2"));
        assert!(!s.ct_eq("hunter3"));
        assert!(!s.ct_eq("hunter"));
    }
}
