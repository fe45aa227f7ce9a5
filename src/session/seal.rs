//! Values the gateway hands to the browser and must get back unread and unchanged: AES-256-GCM
//! with a random nonce per value, as base64url of nonce, ciphertext and tag.
//!
//! - The key is random per process, like the in-process store: a sealed value outlives neither
//!   the process nor the sessions and logins it belongs to.
//! - The associated data names the purpose (and, where it has one, the session), so a value
//!   sealed for one purpose never opens as another.
//! - Whatever fails to open (garbage, another process's key, another purpose, tampering, too
//!   long) is `None`, never an error the client can tell apart.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Longest sealed cookie value: browsers keep at most 4096 bytes of a cookie's name and value,
/// and a cookie they drop would silently lose what it carries.
pub const MAX_VALUE_LEN: usize = 3800;

/// Bytes a sealed value adds to what it seals, before base64: the nonce and the tag.
pub const OVERHEAD: usize = NONCE_LEN + 16;

/// An AES-256-GCM key for cookie values.
pub struct Seal {
    key: RandomizedNonceKey,
}

impl Seal {
    /// A seal with a fresh random key.
    pub fn generate() -> Self {
        let key = RandomizedNonceKey::new(&AES_256_GCM, &rand::random::<[u8; 32]>())
            .expect("32 bytes is an AES-256 key");
        Self { key }
    }

    /// `plain` sealed with `aad`; `None` when the value would exceed [`MAX_VALUE_LEN`].
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Option<String> {
        let mut sealed = plain.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut sealed)
            .ok()?;
        let mut value = nonce.as_ref().to_vec();
        value.extend_from_slice(&sealed);
        let value = URL_SAFE_NO_PAD.encode(value);
        (value.len() <= MAX_VALUE_LEN).then_some(value)
    }

    /// What `value` holds if this key sealed it with `aad`, or `None`.
    pub fn open(&self, aad: &[u8], value: &str) -> Option<Vec<u8>> {
        if value.len() > MAX_VALUE_LEN {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut sealed)
            .ok()?
            .len();
        sealed.truncate(plain_len);
        Some(sealed)
    }
}

/// The sealed length of `plain_len` bytes, base64 included.
pub const fn sealed_len(plain_len: usize) -> usize {
    (plain_len + OVERHEAD).div_ceil(3) * 4 - (3 - (plain_len + OVERHEAD) % 3) % 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_and_purpose() {
        let seal = Seal::generate();
        let value = seal.seal(b"purpose a", b"secret words").unwrap();
        assert!(!value.contains("secret"));
        assert_eq!(value.len(), sealed_len(12));
        assert_eq!(seal.open(b"purpose a", &value).unwrap(), b"secret words");
        assert!(seal.open(b"purpose b", &value).is_none());
        assert!(Seal::generate().open(b"purpose a", &value).is_none());
        assert_ne!(seal.seal(b"purpose a", b"secret words"), Some(value));
    }

    #[test]
    fn garbage_and_tampering_open_to_nothing() {
        let seal = Seal::generate();
        let value = seal.seal(b"p", &[7u8; 300]).unwrap();
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
            assert!(seal.open(b"p", garbage).is_none(), "{garbage}");
        }
    }

    #[test]
    fn nothing_longer_than_a_cookie_is_sealed() {
        let seal = Seal::generate();
        let fits = MAX_VALUE_LEN / 4 * 3 - OVERHEAD;
        assert!(seal.seal(b"p", &vec![0; fits]).is_some());
        assert!(seal.seal(b"p", &vec![0; fits + 1]).is_none());
        for n in [0, 1, 2, 3, 100, 1000] {
            assert_eq!(seal.seal(b"p", &vec![0; n]).unwrap().len(), sealed_len(n));
        }
    }
}
