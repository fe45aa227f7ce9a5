//! The relying-party side of OpenID Connect.
//!
//! - [`provider`]: discovery and keys, loaded and refreshed in the background;
//! - [`login`]: the authorization request (state, nonce, PKCE) and the pending login;
//! - [`callback`]: code exchange, ID-token verification, session creation;
//! - [`redirect`]: the same-site check on where a browser returns to.

pub mod callback;
pub mod login;
pub mod provider;
pub mod redirect;
