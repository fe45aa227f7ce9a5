//! The ID token kept by the browser rather than by the gateway, for `id_token_hint` at logout
//! (`session.id_token_hint = "cookie"`, the default).
//!
//! An ID token is about 1 KB, as much as the rest of a session: kept in the store, a million
//! sessions take 2 GiB instead of 1 (BENCHMARKS.md). It is read once, at logout. So at login the
//! gateway seals it (AES-256-GCM) into the logout cookie, whose `Path` is the logout endpoint:
//! the browser sends it there and nowhere else, and every other request stays as small as before.
//!
//! - The seal ([`super::seal`]) is bound to the session (the [`SessionKey`] is part of its
//!   associated data): a logout cookie opens only together with the session cookie it was issued
//!   with, so one browser's hint cannot be replayed with another's session.
//! - Whatever fails to open (garbage, another process's key, another session, tampering) is no
//!   hint; logout then goes on with `client_id` alone, as without a cookie.

use super::seal::Seal;
use super::SessionKey;
use crate::secret::Secret;

/// Names what is sealed, so a value sealed for another purpose under the same key never opens.
const PURPOSE: &[u8] = b"authgate id_token_hint v1";

/// Seals ID tokens into logout cookies and opens them again.
pub struct IdTokenSeal {
    seal: Seal,
}

impl IdTokenSeal {
    /// A seal with a fresh random key.
    pub fn generate() -> Self {
        Self {
            seal: Seal::generate(),
        }
    }

    /// The logout cookie value holding `id_token` for `session`. `None` when it would exceed
    /// [`super::seal::MAX_VALUE_LEN`] (a provider putting many claims in its ID tokens): logout then sends
    /// `client_id` alone.
    pub fn seal(&self, session: &SessionKey, id_token: &Secret) -> Option<String> {
        self.seal.seal(&aad(session), id_token.expose().as_bytes())
    }

    /// The ID token in a logout cookie `value` sealed for `session`, or `None`.
    pub fn open(&self, session: &SessionKey, value: &str) -> Option<Secret> {
        let plain = self.seal.open(&aad(session), value)?;
        String::from_utf8(plain).ok().map(Secret::new)
    }
}

fn aad(session: &SessionKey) -> [u8; PURPOSE.len() + 16] {
    let mut aad = [0u8; PURPOSE.len() + 16];
    aad[..PURPOSE.len()].copy_from_slice(PURPOSE);
    aad[PURPOSE.len()..].copy_from_slice(&session.0);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

    fn token() -> Secret {
        Secret::new(format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.{}",
            "p".repeat(500),
            "s".repeat(342)
        ))
    }

    #[test]
    fn opens_only_for_its_session_and_key() {
        let seal = IdTokenSeal::generate();
        let (mine, other) = (SessionId::generate().key(), SessionId::generate().key());
        let value = seal.seal(&mine, &token()).unwrap();
        assert!(
            !value.contains("eyJ"),
            "the token is not readable in the cookie"
        );
        assert_eq!(seal.open(&mine, &value).unwrap(), token());
        assert!(
            seal.open(&other, &value).is_none(),
            "another session's cookie"
        );
        let restarted = IdTokenSeal::generate();
        assert!(restarted.open(&mine, &value).is_none(), "another key");
        assert_ne!(
            seal.seal(&mine, &token()),
            Some(value),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn a_token_too_large_for_a_cookie_is_not_sealed() {
        let seal = IdTokenSeal::generate();
        let key = SessionId::generate().key();
        assert!(seal.seal(&key, &Secret::new("x".repeat(2900))).is_none());
        assert!(seal.seal(&key, &Secret::new("x".repeat(2700))).is_some());
    }
}
