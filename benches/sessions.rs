//! Sessions at scale: memory per session and lookup time as the moka store grows.
//!
//! Fills a `MemoryStore` with realistic sessions (opaque access and refresh tokens, the identity
//! claims of a typical login, and an RS256-sized ID token with `session.id_token_hint = "store"`)
//! up to 10 k, 100 k and 1 M, and at each size reports the process's RSS growth per session and
//! the median time of a session lookup (the hot path of every browser request:
//! `SessionStore::get`). Each session has made one request, so its identity headers are cached
//! as in a running gateway. The allocator is the binary's (mimalloc). Run it twice:
//! `cargo bench --bench sessions` (the default: the browser keeps the ID token) and
//! `ID_TOKEN_HINT=store cargo bench --bench sessions`.
//!
//! Run: `cargo bench --bench sessions` (results in BENCHMARKS.md).

use authgate::config::Config;
use authgate::identity::Identity;
use authgate::secret::Secret;
use authgate::session::memory::MemoryStore;
use authgate::session::{
    session_claims, unix_now, Session, SessionId, SessionKey, SessionStore, SessionTokens,
};
use pingora::http::RequestHeader;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

mod common;
use common::{Quiet, MINIMAL_CONFIG};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// A session shaped like one made by logging in at the test provider.
fn session(i: u64) -> Arc<Session> {
    let now = unix_now();
    let user = format!("user-{i:07}");
    let claims: Value = json!({
        "sub": user, "email": format!("{user}@example.test"), "email_verified": true,
        "name": format!("User {i}"), "preferred_username": user,
        "groups": ["users", format!("team-{}", i % 100)],
        "sid": format!("{:043}", i), "iss": "https://sso.example.test/realms/main",
        "aud": "authgate", "exp": now + 3600, "iat": now, "auth_time": now,
        "nonce": "n".repeat(43), "at_hash": "h".repeat(22),
    });
    Arc::new(Session {
        key: SessionId::generate().key(),
        identity: Arc::new(Identity::new(
            &user,
            &session_claims(claims.as_object().unwrap().clone()),
        )),
        tokens: SessionTokens {
            access_token: Secret::new(format!("{:043}", i)),
            refresh_token: Some(Secret::new(format!("r{:042}", i))),
            // An RS256 ID token of this size: about 900 bytes.
            id_token: id_token_in_store().then(|| Secret::new("e".repeat(900))),
        },
        expires_at: now + 12 * 3600,
    })
}

/// `ID_TOKEN_HINT=store`: sessions keep their ID token (by default the browser keeps it).
fn id_token_in_store() -> bool {
    std::env::var("ID_TOKEN_HINT").is_ok_and(|v| v == "store")
}

fn main() {
    let hint = if id_token_in_store() {
        "store"
    } else {
        "cookie"
    };
    println!("session.id_token_hint = {hint}\n");
    // `cargo bench` passes --bench; nothing to parse.
    // The default `[session]` and `[headers]` settings, as the configuration builds them.
    let config = Config::from_toml(MINIMAL_CONFIG).expect("a valid configuration");
    let store = MemoryStore::new(
        config.session.max_sessions,
        config.session.idle_timeout,
        Arc::new(Quiet),
    );
    let headers = config.headers;
    let mut keys: Vec<SessionKey> = Vec::with_capacity(1_000_000);
    let base = rss_kb();
    println!("| sessions | RSS growth | bytes/session | lookup median | lookup p99 |");
    println!("|---:|---:|---:|---:|---:|");
    for target in [10_000u64, 100_000, 1_000_000] {
        for i in keys.len() as u64..target {
            let s = session(i);
            let mut request = RequestHeader::build("GET", b"/", None).unwrap();
            headers.inject(&mut request, &s.identity, None).unwrap();
            keys.push(s.key);
            futures::executor::block_on(store.insert(s)).unwrap();
        }
        store.run_maintenance();
        let grown = rss_kb().saturating_sub(base);
        // Lookups of random live sessions, timed in batches of 1000 (Instant's own cost
        // amortized); median and p99 of the batch means.
        let mut rng = 0x9e3779b97f4a7c15u64;
        let mut batches = Vec::new();
        for _ in 0..300 {
            let started = Instant::now();
            for _ in 0..1000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = &keys[(rng % keys.len() as u64) as usize];
                let found = futures::executor::block_on(store.get(key)).unwrap();
                assert!(found.is_some());
            }
            batches.push(started.elapsed().as_nanos() as f64 / 1000.0);
        }
        batches.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {target} | {:.0} MiB | {:.0} | {:.0} ns | {:.0} ns |",
            grown as f64 / 1024.0,
            grown as f64 * 1024.0 / target as f64,
            batches[batches.len() / 2],
            batches[batches.len() * 99 / 100],
        );
    }
}
