//! What the session benches share: the smallest configuration and a session store listener
//! that does nothing.

use authgate::session::{EndReason, Session, SessionEndListener};

/// The settings a configuration cannot do without; every `[server]`, `[session]` and `[headers]`
/// setting at its default (`max_sessions` is a million: the largest size `benches/sessions.rs`
/// measures fills the store).
pub const MINIMAL_CONFIG: &str = r#"
    [upstream]
    url = "http://127.0.0.1:3000"
    [oidc]
    issuer = "https://id.example.test"
    client_id = "bench"
    client_secret = "bench-secret"
    redirect_url = "https://app.example.test/oauth2/callback"
"#;

/// A store listener for benches: sessions that end need no webhook or index work here.
pub struct Quiet;
impl SessionEndListener for Quiet {
    fn session_ended(&self, _: &Session, _: EndReason) {}
}
