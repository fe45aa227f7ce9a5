//! What a session adds to a proxied request (load case 3 against case 2), at the CPU's real
//! speed and apart from pingora's I/O: finding the session, and the identity headers.
//!
//! `session_lookup`: `auth::from_session_cookie` on a request carrying a live session's cookie,
//! against a `MemoryStore` holding it (cookie scan, base64, SHA-256 of the id, the moka lookup).
//!
//! `upstream_request`: what `upstream_request_filter` does to every proxied request
//! (`proxy::prepare_upstream_request`). The request is built as pingora's HTTP/1 parser builds the client's, with header maps sized
//! for exactly the headers the client sent; pingora's clone of it for the upstream has no more
//! room (a cloned `Vec` holds its length). It is built outside the timed part. Cases, one
//! criterion group:
//! - `public_route`: no identity (load case 2): strip forged headers, strip the gateway's cookie,
//!   set the request id;
//! - `session`: the same plus a session's four identity headers (load case 3);
//! - `session_with_room`: `session` on a request whose maps already have room for the added
//!   headers. pingora 0.9 offers no way to reserve room in a `RequestHeader`, so the difference
//!   from `session` is what growing its two header maps costs, which only pingora can save.
//!
//! Run: `cargo bench --bench proxy` (results in BENCHMARKS.md).

use authgate::auth::{from_session_cookie, Authenticated};
use authgate::config::Config;
use authgate::identity::Identity;
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

/// A request as pingora parses it: maps sized for `room` headers (pingora: exactly the
/// client's), then the client's headers, wrk's two for the session case.
fn client_request(room: usize, cookie: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/data", Some(room)).unwrap();
    req.append_header("Host", "127.0.0.1:8080").unwrap();
    req.append_header("Cookie", format!("_authgate={cookie}"))
        .unwrap();
    req
}

fn bench_session(c: &mut Criterion) {
    let config = Config::from_toml(MINIMAL_CONFIG).unwrap_or_else(|e| panic!("{e:?}"));
    let (session, cookie) = session();
    let store = MemoryStore::new(
        config.session.max_sessions,
        config.session.idle_timeout,
        config.session.login_timeout,
        Arc::new(Quiet),
    );
    futures::executor::block_on(store.insert(session.clone())).unwrap();
    let cookie_name = &config.session.cookies.session_name;
    let request = client_request(2, &cookie);
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

    let who = Authenticated::Session(session);
    let request_id = "0123456789abcdef012345";
    // Once, so the identity's header values are cached as in a running gateway.
    prepare_upstream_request(&config, &mut request.clone(), request_id, Some(&who)).unwrap();

    let mut group = c.benchmark_group("upstream_request");
    let mut case = |name: &str, room: usize, auth: Option<&Authenticated>| {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || client_request(room, &cookie),
                |req| prepare_upstream_request(&config, req, black_box(request_id), auth),
                BatchSize::SmallInput,
            )
        });
    };
    case("public_route", 2, None);
    case("session", 2, Some(&who));
    case("session_with_room", 16, Some(&who));
    group.finish();
}

criterion_group!(benches, bench_session);
criterion_main!(benches);
