//! A login sent to the provider and not yet back, kept by the browser that started it: sealed
//! ([`super::seal`]) into the login cookie.
//!
//! Why not in the gateway: whatever the gateway keeps for a request nobody has authenticated can
//! be flooded. Pending logins used to sit in a bounded moka cache; about 100,000
//! `/oauth2/start` requests within the login timeout filled it, and from then on no real user's
//! pending login was admitted (moka's admission policy lets a new entry into a full cache only
//! when it is used more often than the one it would evict), so nobody could log in, and each
//! entry held up to 4 KB of return path. Sealed into the browser's cookie, a pending login costs
//! the gateway nothing until it comes back, and a callback can land on any process that holds the
//! key.
//!
//! - The login cookie lists sealed pending logins, newest first, separated by `.`: at most
//!   `session.max_pending_logins` of them and [`MAX_VALUE_LEN`] bytes, so parallel requests after
//!   an expiry replace entries in one cookie instead of piling up cookies (mod_auth_openidc
//!   #331).
//! - Each holds its `state`, nonce, PKCE verifier, return path and expiry
//!   (`session.login_timeout`). The callback's `state` must match one (constant-time), and an
//!   expired one is refused whatever the cookie's `Max-Age` let through.
//! - The entry is removed from the cookie when the login completes. A callback replayed with an
//!   old copy of the cookie carries a code the provider has already redeemed (codes are single
//!   use, RFC 6749 §4.1.2), which the provider refuses: 400 `invalid_grant`, no session.

use super::seal::{sealed_len, Seal, MAX_VALUE_LEN};
use crate::secret::{ct_eq, Secret};

/// Names what is sealed, so a value sealed for another purpose under the same key never opens.
const PURPOSE: &[u8] = b"authgate pending login v1";

/// Separates entries in the login cookie (not in base64url's alphabet).
const SEPARATOR: char = '.';

/// What the callback needs of the login it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: Secret,
    pub pkce_verifier: Secret,
    /// A same-site path, already checked.
    pub return_to: String,
    /// Unix seconds after which the callback is refused.
    pub expires_at: u64,
}

impl PendingLogin {
    fn to_plain(&self) -> String {
        // The return path goes last: it is the one field that may hold a newline.
        format!(
            "{}\n{}\n{}\n{}\n{}",
            self.state,
            self.nonce.expose(),
            self.pkce_verifier.expose(),
            self.expires_at,
            self.return_to
        )
    }

    fn from_plain(plain: &str) -> Option<Self> {
        let mut fields = plain.splitn(5, '\n');
        Some(Self {
            state: fields.next()?.to_string(),
            nonce: Secret::new(fields.next()?),
            pkce_verifier: Secret::new(fields.next()?),
            expires_at: fields.next()?.parse().ok()?,
            return_to: fields.next()?.to_string(),
        })
    }
}

/// Why a callback's `state` has no pending login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPending {
    /// No entry of this browser's login cookie holds it (another browser, tampering, no cookie).
    NotThisBrowser,
    /// It was this browser's, and `session.login_timeout` has passed.
    Expired,
}

/// Seals pending logins into login cookies and takes them out again.
pub struct LoginSeal {
    seal: Seal,
}

impl LoginSeal {
    /// A seal with a fresh random key.
    pub fn generate() -> Self {
        Self {
            seal: Seal::generate(),
        }
    }

    /// The login cookie value once `login` has begun: `login` in front of the entries of
    /// `current` that still open, have not expired and fit, at most `max_entries` in all. A
    /// return path too long for a cookie becomes `/` (logged), rather than losing the login.
    pub fn add(
        &self,
        current: Option<&str>,
        login: &PendingLogin,
        max_entries: usize,
        now: u64,
    ) -> String {
        let short;
        let login = if login.return_to.len() > MAX_RETURN_TO {
            tracing::info!(
                bytes = login.return_to.len(),
                "return path too long for the login cookie: the login will return to /"
            );
            short = PendingLogin {
                return_to: "/".into(),
                ..login.clone()
            };
            &short
        } else {
            login
        };
        let mut value = self
            .seal(login)
            .expect("a pending login within MAX_RETURN_TO fits a cookie");
        let older = entries(current).filter(|e| self.open(e).is_some_and(|p| p.expires_at > now));
        for entry in older.take(max_entries.saturating_sub(1)) {
            if value.len() + 1 + entry.len() > MAX_VALUE_LEN {
                break;
            }
            value.push(SEPARATOR);
            value.push_str(entry);
        }
        value
    }

    /// The pending login for the callback's `state` in this browser's login cookie, and the
    /// cookie value without it (empty when none remains).
    pub fn take(
        &self,
        current: Option<&str>,
        state: &str,
        now: u64,
    ) -> Result<(PendingLogin, String), NotPending> {
        let mut found = None;
        let mut remaining: Vec<&str> = Vec::new();
        for entry in entries(current) {
            match self.open(entry) {
                Some(p) if found.is_none() && ct_eq(p.state.as_bytes(), state.as_bytes()) => {
                    found = Some(p);
                }
                Some(_) => remaining.push(entry),
                None => {}
            }
        }
        let login = found.ok_or(NotPending::NotThisBrowser)?;
        if login.expires_at <= now {
            return Err(NotPending::Expired);
        }
        Ok((login, remaining.join(&SEPARATOR.to_string())))
    }

    fn seal(&self, login: &PendingLogin) -> Option<String> {
        self.seal.seal(PURPOSE, login.to_plain().as_bytes())
    }

    fn open(&self, entry: &str) -> Option<PendingLogin> {
        let plain = self.seal.open(PURPOSE, entry)?;
        PendingLogin::from_plain(std::str::from_utf8(&plain).ok()?)
    }
}

/// The entries of a login cookie value; empty ones skipped.
fn entries(value: Option<&str>) -> impl Iterator<Item = &str> {
    value
        .unwrap_or("")
        .split(SEPARATOR)
        .filter(|e| !e.is_empty())
}

/// The longest return path a pending login keeps (longer ones return to `/`): what fits a
/// cookie beside the rest (2,669 bytes).
pub const MAX_RETURN_TO: usize = {
    // State, nonce and verifier (43 characters each), a 20-digit expiry and four newlines.
    let fixed = 3 * 43 + 20 + 4;
    let mut n = MAX_VALUE_LEN;
    while sealed_len(fixed + n) > MAX_VALUE_LEN {
        n -= 1;
    }
    n
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::random_token;

    const NOW: u64 = 1_700_000_000;

    fn login(return_to: &str) -> PendingLogin {
        PendingLogin {
            state: random_token(),
            nonce: Secret::new(random_token()),
            pkce_verifier: Secret::new(random_token()),
            return_to: return_to.into(),
            expires_at: NOW + 600,
        }
    }

    #[test]
    fn a_login_comes_back_once_from_its_own_cookie() {
        let seal = LoginSeal::generate();
        let a = login("/app/a?x=1\nnot a header");
        let cookie = seal.add(None, &a, 5, NOW);
        assert!(!cookie.contains(&a.state) && !cookie.contains("/app"));
        let (back, rest) = seal.take(Some(&cookie), &a.state, NOW).unwrap();
        assert_eq!(back, a);
        assert_eq!(rest, "");
        assert_eq!(
            seal.take(Some(&rest), &a.state, NOW),
            Err(NotPending::NotThisBrowser)
        );
        // Another process (restart) or another purpose: nothing opens.
        let other = LoginSeal::generate();
        assert_eq!(
            other.take(Some(&cookie), &a.state, NOW),
            Err(NotPending::NotThisBrowser)
        );
        assert_eq!(
            seal.take(Some(&cookie), &a.state, a.expires_at),
            Err(NotPending::Expired)
        );
    }

    #[test]
    fn parallel_logins_share_one_bounded_cookie_newest_first() {
        let seal = LoginSeal::generate();
        let logins: Vec<PendingLogin> = (0..8).map(|i| login(&format!("/tab/{i}"))).collect();
        let mut cookie = String::new();
        for l in &logins {
            cookie = seal.add(Some(&cookie), l, 5, NOW);
        }
        assert_eq!(cookie.split('.').count(), 5);
        for old in &logins[..3] {
            assert!(seal.take(Some(&cookie), &old.state, NOW).is_err());
        }
        let (back, rest) = seal.take(Some(&cookie), &logins[5].state, NOW).unwrap();
        assert_eq!(back.return_to, "/tab/5");
        assert_eq!(rest.split('.').count(), 4);
        // Expired entries are dropped when the next login begins.
        let later = seal.add(Some(&cookie), &login("/"), 5, NOW + 601);
        assert_eq!(later.split('.').count(), 1);
        // Byte-bounded: long return paths leave room for fewer entries.
        let mut cookie = String::new();
        for _ in 0..5 {
            cookie = seal.add(Some(&cookie), &login(&"/x".repeat(600)), 5, NOW);
            assert!(cookie.len() <= MAX_VALUE_LEN);
        }
        assert_eq!(cookie.split('.').count(), 2);
    }

    #[test]
    fn a_return_path_too_long_for_a_cookie_returns_to_the_root() {
        let seal = LoginSeal::generate();
        assert_eq!(MAX_RETURN_TO, 2669);
        let fits = login(&"/".repeat(MAX_RETURN_TO));
        let cookie = seal.add(None, &fits, 5, NOW);
        let (back, _) = seal.take(Some(&cookie), &fits.state, NOW).unwrap();
        assert_eq!(back.return_to.len(), MAX_RETURN_TO);
        let long = login(&"/".repeat(4096));
        let cookie = seal.add(None, &long, 5, NOW);
        let (back, _) = seal.take(Some(&cookie), &long.state, NOW).unwrap();
        assert_eq!(back.return_to, "/");
    }

    fn flipped(value: &str) -> String {
        let mut bytes = value.as_bytes().to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn garbage_cookies_hold_no_login() {
        let seal = LoginSeal::generate();
        let a = login("/");
        let good = seal.add(None, &a, 5, NOW);
        for garbage in [
            "".to_string(),
            ".".repeat(5000),
            "A".repeat(10_000),
            format!("{}{good}", a.state),
            format!("{good}A"),
            flipped(&good),
            "%ff%fe\u{0}".into(),
        ] {
            assert_eq!(
                seal.take(Some(&garbage), &a.state, NOW),
                Err(NotPending::NotThisBrowser),
                "{garbage:.40}"
            );
            assert!(seal.add(Some(&garbage), &a, 5, NOW).len() <= MAX_VALUE_LEN);
        }
        // Garbage around a good entry does not hide it, and is dropped.
        let mixed = format!("junk.{good}..more-junk");
        let (_, rest) = seal.take(Some(&mixed), &a.state, NOW).unwrap();
        assert_eq!(rest, "");
    }
}
