//! The ID token kept by the browser rather than by the gateway, for `id_token_hint` at logout
//! (`session.id_token_hint = "cookie"`, the default).
//!
//! An ID token is about 1 KB, as much as the rest of a session: kept in the store, a million
//! sessions take 2 GiB instead of 1 (BENCHMARKS.md). It is read once, at logout. So at login the
//! gateway seals it (AES-256-GCM) into the logout cookie, whose `Path` is the logout endpoint:
//! the browser sends it there and nowhere else, and every other request stays as small as before.
//!
//! - The key is random per process, like the in-process store: a cookie outlives neither the
//!   process nor the sessions it can be used with.
//! - The seal is bound to the session (the [`SessionKey`] is its associated data): a logout
//!   cookie opens only together with the session cookie it was issued with, so one browser's hint
//!   cannot be replayed with another's session.
//! - Whatever fails to open (garbage, another process's key, another session, tampering) is no
//!   hint; logout then goes on with `client_id` alone, as without a cookie.

use super::SessionKey;
use crate::secret::Secret;
use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Longest cookie value sealed: browsers keep at most 4096 bytes of name and value, and a cookie
/// they drop would silently cost the hint. A longer ID token (a provider putting many claims in
/// it) is not sealed: logout sends `client_id` alone.
pub const MAX_VALUE_LEN: usize = 3800;

/// Names what is sealed, so a value sealed for another purpose under the same key never opens.
const PURPOSE: &[u8] = b"authgate id_token_hint v1";

/// Seals ID tokens into logout cookies and opens them again.
pub struct IdTokenSeal {
    key: RandomizedNonceKey,
}

impl IdTokenSeal {
    /// A seal with a fresh random key.
    pub fn generate() -> Self {
        let key = RandomizedNonceKey::new(&AES_256_GCM, &rand::random::<[u8; 32]>())
            .expect("32 bytes is an AES-256 key");
        Self { key }
    }

    /// The logout cookie value holding `id_token` for `session`: base64url of nonce, ciphertext
    /// and tag. `None` when it would exceed [`MAX_VALUE_LEN`].
    pub fn seal(&self, session: &SessionKey, id_token: &Secret) -> Option<String> {
        let mut sealed = id_token.expose().as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(aad(session), &mut sealed)
            .ok()?;
        let mut value = nonce.as_ref().to_vec();
        value.extend_from_slice(&sealed);
        let value = URL_SAFE_NO_PAD.encode(value);
        (value.len() <= MAX_VALUE_LEN).then_some(value)
    }

    /// The ID token in a logout cookie `value` sealed for `session`, or `None`.
    pub fn open(&self, session: &SessionKey, value: &str) -> Option<Secret> {
        if value.len() > MAX_VALUE_LEN {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, aad(session), &mut sealed)
            .ok()?;
        std::str::from_utf8(plain).ok().map(Secret::new)
    }
}

fn aad(session: &SessionKey) -> Aad<[u8; PURPOSE.len() + 16]> {
    let mut aad = [0u8; PURPOSE.len() + 16];
    aad[..PURPOSE.len()].copy_from_slice(PURPOSE);
    aad[PURPOSE.len()..].copy_from_slice(&session.0);
    Aad::from(aad)
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
    fn garbage_and_tampering_open_to_nothing() {
        let seal = IdTokenSeal::generate();
        let key = SessionId::generate().key();
        let value = seal.seal(&key, &token()).unwrap();
        let mut flipped = value.clone().into_bytes();
        let middle = flipped.len() / 2;
        flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for garbage in [
            "",
            "A",
            "%%%",
            "é",
            &value[..value.len() - 1],
            &value[..20],
            &value[16..],
            &flipped,
            &format!("{value}A"),
            &"A".repeat(MAX_VALUE_LEN + 1),
        ] {
            assert!(seal.open(&key, garbage).is_none(), "{garbage}");
        }
    }

    #[test]
    fn a_token_too_large_for_a_cookie_is_not_sealed() {
        let seal = IdTokenSeal::generate();
        let key = SessionId::generate().key();
        assert!(seal.seal(&key, &Secret::new("x".repeat(2900))).is_none());
        assert!(seal.seal(&key, &Secret::new("x".repeat(2700))).is_some());
    }
}
