//! What a session or a cached bearer token adds to a proxied request (load cases 3 and 4 against
//! case 2), at the CPU's real speed and apart from pingora's I/O: finding who the request is, and
//! the identity headers.
//!
//! `session_lookup`: `auth::from_session_cookie` on a request carrying a live session's cookie,
//! against a `MemoryStore` holding it (cookie scan, base64, SHA-256 of the id, the moka lookup).
//!
//! `bearer_lookup`: `auth::bearer_token` and `Bearer::verify` on a request carrying a token
//! verified before (the header read, SHA-256 of the whole token, the moka lookup), the token as
//! long as the load benchmark's RS256 ones (about 620 characters). It is an HS256 token padded
//! to that length: a cache hit checks no signature, so only the length matters.
//!
//! `upstream_request`: what `upstream_request_filter` does to every proxied request
//! (`proxy::prepare_upstream_request`). The request is built as pingora's HTTP/1 parser builds
//! the client's, with header maps sized for exactly the headers the client sent; pingora's clone
//! of it for the upstream has no more room (a cloned `Vec` holds its length). It is built outside
//! the timed part. Cases, one criterion group:
//! - `public_route`: no identity (load case 2): strip forged headers, strip the gateway's cookie,
//!   set the request id and the three `X-Forwarded-For`/`-Proto`/`-Host` headers;
//! - `session`: the same plus a session's four identity headers (load case 3);
//! - `bearer`: the token's request (`Host` and `Authorization`) with its two identity headers
//!   (load case 4);
//! - `session_with_room`: `session` on a request whose maps already have room for the added
//!   headers. pingora 0.9 offers no way to reserve room in a `RequestHeader`, so the difference
//!   from `session` is what growing its two header maps costs, which only pingora can save.
//!
//! Run: `cargo bench --bench proxy` (results in BENCHMARKS.md).

use authgate::auth::{bearer_token, from_session_cookie, Authenticated};
use authgate::config::Config;
use authgate::forwarded;
use authgate::identity::Identity;
use authgate::jwt::Bearer;
use authgate::oidc::provider::Provider;
use authgate::proxy::prepare_upstream_request;
use authgate::secret::Secret;
use authgate::session::memory::MemoryStore;
use authgate::session::{
    session_claims, unix_now, Session, SessionId, SessionStore, SessionTokens,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pingora::http::RequestHeader;
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;

mod common;
use common::{Quiet, MINIMAL_CONFIG};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The load benchmark's client: wrk on loopback, plain HTTP, not a trusted proxy.
const CLIENT: forwarded::Client = forwarded::Client {
    ip: Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
    trusted_proxy: false,
    tls: false,
};

/// A session like the load benchmark's (alice at the development provider), and its cookie.
fn session() -> (Arc<Session>, String) {
    let id = SessionId::generate();
    let claims = json!({
        "sub": "alice", "email": "alice@example.test", "email_verified": true,
        "name": "alice", "preferred_username": "alice", "groups": ["users", "alice-group"],
    });
    let session = Arc::new(Session {
        key: id.key(),
        identity: Arc::new(Identity::new(
            "alice",
            &session_claims(claims.as_object().unwrap().clone()),
        )),
        tokens: SessionTokens {
            access_token: Secret::new("a".repeat(43)),
            refresh_token: None,
            id_token: None,
        },
        expires_at: unix_now() + 3600,
    });
    (session, id.encode().expose().to_string())
}

const HMAC_SECRET: &str = "a-benchmark-hmac-secret-of-32-bytes-or-more";
const TOKEN_ISSUER: &str = "https://api.example.test";

/// A token shaped like the load benchmark's (`benches/load/tokens.mjs`): the same claims, and a
/// padding claim for an RS256 signature's length (299 characters more than HS256's), so both are
/// about 620 characters.
fn bearer_token_like_the_load_benchmarks() -> String {
    let now = unix_now();
    let claims = json!({
        "iss": TOKEN_ISSUER, "aud": "api", "sub": "load-user", "email": "load@example.test",
        "iat": now, "exp": now + 3600, "scope": "read",
        "jti": "6f1c2a9e-0b7d-4c1e-9a53-2d8f4e6b7c10", "pad": "x".repeat(210),
    });
    let key = jsonwebtoken::EncodingKey::from_secret(HMAC_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// A request as pingora parses it: maps sized for `room` headers (pingora: exactly the
/// client's), then the client's headers: wrk's two, `Host` and the credential.
fn client_request(room: usize, (name, value): (&str, &str)) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/data", Some(room)).unwrap();
    req.append_header("Host", "127.0.0.1:8080").unwrap();
    req.append_header(name.to_string(), value).unwrap();
    req
}

fn bench_proxy(c: &mut Criterion) {
    let config = Config::from_toml(&format!(
        "{MINIMAL_CONFIG}
        [bearer]
        trust_oidc_issuer = false
        [[bearer.issuers]]
        issuer = \"{TOKEN_ISSUER}\"
        audiences = [\"api\"]
        hmac_secret = \"{HMAC_SECRET}\"
        "
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    let (session, cookie) = session();
    let cookie = format!("_authgate={cookie}");
    let cookie = ("Cookie", cookie.as_str());
    let store = MemoryStore::new(
        config.session.max_sessions,
        config.session.idle_timeout,
        Arc::new(Quiet),
    );
    futures::executor::block_on(store.insert(session.clone())).unwrap();
    let cookie_name = &config.session.cookies.session_name;
    let request = client_request(2, cookie);
    c.bench_function("session_lookup", |b| {
        b.iter(|| {
            let found = futures::executor::block_on(from_session_cookie(
                &store,
                cookie_name,
                black_box(&request),
            ));
            assert!(found.is_some());
        })
    });

    let http = reqwest::Client::new();
    let provider = Arc::new(Provider::new(config.oidc.clone(), http.clone()));
    let bearer = Bearer::new(&config.bearer, &config.oidc, provider, http);
    let token = format!("Bearer {}", bearer_token_like_the_load_benchmarks());
    let token = ("Authorization", token.as_str());
    let token_request = client_request(2, token);
    let verified =
        futures::executor::block_on(bearer.verify(bearer_token(&token_request).unwrap()))
            .unwrap_or_else(|e| panic!("{e:?}"));
    c.bench_function("bearer_lookup", |b| {
        b.iter(|| {
            let token = bearer_token(black_box(&token_request)).unwrap();
            let found = futures::executor::block_on(bearer.verify(token));
            assert!(found.is_ok());
        })
    });

    let session = Authenticated::Session(session);
    let bearer = Authenticated::Bearer {
        verified,
        token: None,
    };
    let request_id = "0123456789abcdef012345";
    // Once, so the identities' header values are cached as in a running gateway.
    for (who, credential) in [(&session, cookie), (&bearer, token)] {
        let mut req = client_request(2, credential);
        prepare_upstream_request(&config, &mut req, request_id, Some(who), CLIENT, None).unwrap();
    }

    let mut group = c.benchmark_group("upstream_request");
    let mut case = |name: &str, room: usize, credential, auth: Option<&Authenticated>| {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || client_request(room, credential),
                |req| {
                    prepare_upstream_request(
                        &config,
                        req,
                        black_box(request_id),
                        auth,
                        CLIENT,
                        None,
                    )
                },
                BatchSize::SmallInput,
            )
        });
    };
    case("public_route", 2, cookie, None);
    case("session", 2, cookie, Some(&session));
    case("session_with_room", 16, cookie, Some(&session));
    case("bearer", 2, token, Some(&bearer));
    group.finish();
}

criterion_group!(benches, bench_proxy);
criterion_main!(benches);
