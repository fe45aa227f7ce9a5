//! Bad input through the real binary: each answered with a clear 4xx (never a 5xx or a crash),
//! and no session created.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

/// Assert `r` is a 4xx that created no session.
fn refused(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status.as_u16(), status, "{what}: {}", r.body);
    assert!(
        r.set_cookie("_authgate").is_none(),
        "{what}: a session cookie was set"
    );
}

/// Start a login and stop at the provider's redirect back: (browser, callback URL).
async fn callback_url(env: &Env, user: &str) -> (Browser, url::Url) {
    let mut b = Browser::new();
    let first = b.get(&env.gw.url("/app")).await;
    let step = walk_provider(&mut b, first.location(), user, env.gw.port).await;
    (b, step.url)
}

fn with_param(url: &url::Url, key: &str, value: Option<&str>) -> String {
    let mut u = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != key)
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(key, v);
        }
    }
    u.to_string()
}

/// Tampered, missing and foreign state; replayed callbacks; a replayed code.
#[tokio::test]
async fn state_and_code_attacks_are_refused() {
    let env = Env::start(EnvOptions::default());

    let (mut b, cb) = callback_url(&env, "mallory").await;
    let r = b.get(&with_param(&cb, "state", Some("tampered"))).await;
    refused(&r, 400, "tampered state");
    assert!(r.body.contains("state"), "{}", r.body);
    let r = b.get(&with_param(&cb, "state", None)).await;
    refused(&r, 400, "missing state");
    // Without the login cookie (another browser replaying the URL).
    let mut other = Browser::new();
    let r = other.get(cb.as_str()).await;
    refused(&r, 400, "state cookie missing");
    // The untouched callback still works: the refusals consumed nothing.
    let login_cookie = b.cookie("_authgate_login").expect("the login cookie");
    assert!(
        !login_cookie.contains(&query_map(&cb)["state"]),
        "the pending login is sealed"
    );
    let ok = b.get(cb.as_str()).await;
    assert_eq!(ok.status, 302, "{}", ok.body);
    assert!(ok.set_cookie("_authgate").is_some());
    // The completed login left the cookie: the same callback again is not this browser's.
    let r = b.get(cb.as_str()).await;
    refused(&r, 400, "repeated callback");
    // Replaying it with the old login cookie: the provider refuses the code it already redeemed.
    b.set("_authgate_login", &login_cookie);
    let r = b.get(cb.as_str()).await;
    refused(&r, 400, "replayed callback");
    assert!(r.body.contains("invalid_grant"), "{}", r.body);

    // State cookie from another login: browser A's callback presented with browser B's cookie.
    let (_a, cb_a) = callback_url(&env, "alice").await;
    let (mut bb, _cb_b) = callback_url(&env, "bob").await;
    let r = bb.get(cb_a.as_str()).await;
    refused(&r, 400, "state cookie from another login");

    // A code already redeemed, presented with a fresh valid state: the provider refuses it.
    let (mut c, cb_c) = callback_url(&env, "carol").await;
    let first = c.get(cb_c.as_str()).await;
    assert_eq!(first.status, 302);
    let (mut d, cb_d) = callback_url(&env, "dave").await;
    let replayed = with_param(&cb_d, "code", Some(&query_map(&cb_c)["code"]));
    let r = d.get(&replayed).await;
    refused(&r, 400, "replayed code");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("invalid_grant"), "{}", r.body);

    // The provider's error answer (user cancelled).
    let (mut e, cb_e) = callback_url(&env, "erin").await;
    let denied = with_param(
        &with_param(&cb_e, "code", None).parse().unwrap(),
        "error",
        Some("access_denied"),
    );
    let r = e.get(&denied).await;
    refused(&r, 403, "provider error");

    // A repeated parameter and an iss that is not the issuer.
    let (mut f, cb_f) = callback_url(&env, "frank").await;
    let r = f.get(&format!("{cb_f}&state=again")).await;
    refused(&r, 400, "repeated state");
    let r = f
        .get(&with_param(&cb_f, "iss", Some("http://evil.example")))
        .await;
    refused(&r, 400, "mix-up iss");
    assert!(!env.gw.logs().contains("panicked"));
}

/// A broken provider: every defective ID token is refused with 401 and creates no session.
#[tokio::test]
async fn defective_id_tokens_are_refused() {
    let RogueEnv {
        rogue,
        gw,
        upstream: _upstream,
    } = RogueEnv::start().await;
    let client = reqwest::Client::new();
    let scenario = |kind: &'static str| {
        let client = client.clone();
        let url = format!("{}/__scenario", rogue.issuer());
        async move {
            let r = client
                .post(url)
                .json(&json!({"kind": kind}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{kind}");
        }
    };
    for (kind, reason) in [
        ("wrong_key", "signature"),
        ("unknown_kid", "signature"),
        ("expired", "expired"),
        ("wrong_aud", "audience"),
        ("wrong_iss", "issuer"),
        ("wrong_nonce", "nonce"),
        ("no_nonce", "nonce"),
        ("bad_at_hash", "at_hash"),
        ("future_iat", "invalid"),
        ("alg_none", ""),
        ("multi_aud_no_azp", "audience"),
        ("hs256_with_public_key", ""),
    ] {
        scenario(kind).await;
        let mut b = Browser::new();
        let first = b.get(&gw.url("/app")).await;
        assert_eq!(first.status, 302, "{kind}");
        let to_callback = b.get(first.location().as_str()).await;
        let r = b.get(to_callback.location().as_str()).await;
        refused(&r, 401, kind);
        assert!(
            r.body.contains("ID token was rejected"),
            "{kind}: {}",
            r.body
        );
        assert!(r.body.contains(reason), "{kind}: {}", r.body);
        // The session cookie is not there, so the app is still out of reach.
        let again = b.get_api(&gw.url("/app")).await;
        assert_eq!(again.status, 401, "{kind}");
    }
    // The control: the same provider with a valid token logs in.
    scenario("ok").await;
    let mut b = Browser::new();
    let first = b.get(&gw.url("/app")).await;
    let to_callback = b.get(first.location().as_str()).await;
    let r = b.get(to_callback.location().as_str()).await;
    assert_eq!(r.status, 302, "{}", r.body);
    let page = b.get(&gw.url("/app")).await;
    assert_eq!(page.json()["headers"]["x-forwarded-user"], "rogue-user");
    assert!(!gw.logs().contains("panicked"));
}

/// Forged identity headers, any case or spelling, never reach the upstream, on any route.
#[tokio::test]
async fn forged_identity_headers_are_stripped() {
    let env = Env::start(EnvOptions::default());
    let forged = [
        ("X-Forwarded-User", "admin"),
        ("x_forwarded_user", "admin"),
        ("X-FORWARDED-EMAIL", "admin@evil"),
        ("X_Forwarded_Groups", "admins"),
        ("X-Forwarded-Preferred-Username", "root"),
        ("X-Forwarded-Access-Token", "forged"),
        ("X-Auth-Request-User", "admin"),
        ("X-Forwarded-Name", "Admin"),
    ];
    let mut anon = Browser::new();
    let r = anon
        .request(Method::GET, &env.gw.url("/public/page"), &forged, None)
        .await;
    assert_eq!(r.status, 200);
    let raw = r.json()["rawHeaders"].to_string().to_lowercase();
    for (name, _) in forged {
        assert!(
            !raw.contains(&name.to_lowercase()),
            "{name} reached the upstream: {raw}"
        );
    }

    let mut b = Browser::new();
    login(&mut b, &env, "/app", "alice").await;
    let r = b
        .request(Method::GET, &env.gw.url("/app"), &forged, None)
        .await;
    let echo = r.json();
    assert_eq!(echo["headers"]["x-forwarded-user"], "alice");
    assert_eq!(echo["headers"]["x-forwarded-email"], "alice@example.test");
    assert_eq!(echo["headers"]["x-forwarded-name"], "Alice Test");
    let raw = echo["rawHeaders"].to_string();
    assert!(!raw.contains("admin"), "{raw}");
    assert!(!raw.contains("forged"), "{raw}");
    assert!(env
        .gw
        .logs()
        .contains("removed identity headers sent by the client"));
}

/// A logout cookie that was tampered with, or belongs to another session, is no hint; the
/// logout itself goes through.
#[tokio::test]
async fn forged_logout_cookies_give_no_hint() {
    let env = Env::start(EnvOptions::default());
    let mut other = Browser::new();
    login(&mut other, &env, "/app", "mallory").await;
    let others = other.cookie("_authgate_logout").unwrap();
    for forge in ["flip", "other session's"] {
        let mut b = Browser::new();
        login(&mut b, &env, "/app", "alice").await;
        let mine = b.cookie("_authgate_logout").unwrap();
        let forged = if forge == "flip" {
            let mut bytes = mine.into_bytes();
            bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        } else {
            others.clone()
        };
        let session = b.cookie("_authgate").unwrap();
        let cookie = format!("_authgate={session}; _authgate_logout={forged}");
        // A fresh client: only the forged cookies go.
        let r = Browser::new()
            .request(
                Method::GET,
                &env.gw.url("/oauth2/logout"),
                &[("Cookie", &cookie)],
                None,
            )
            .await;
        assert_eq!(r.status, 302, "{forge}");
        let q = query_map(&r.location());
        assert!(!q.contains_key("id_token_hint"), "{forge}: {q:?}");
        assert!(q.contains_key("client_id"), "{forge}");
        let r = b.get_api(&env.gw.url("/app")).await;
        assert_eq!(r.status, 401, "{forge}: the session ended all the same");
    }
    assert!(
        !env.gw.logs().contains(&others),
        "no cookie value in the log"
    );
}

/// Garbage cookies and paths: never a 5xx, never a session.
#[tokio::test]
async fn garbage_cookies_and_paths_are_4xx() {
    let env = Env::start(EnvOptions::default());
    let mut b = Browser::new();
    // Two copies stay under the 16 KiB cookie limit; the over-long case is below.
    let long = "A".repeat(7_000);
    for garbage in [
        "",
        "x",
        "%00%00",
        "====",
        "\"quoted\"",
        &"A".repeat(43),
        &"A".repeat(44),
        &long,
        "é",
    ] {
        let cookie = format!("_authgate={garbage}; _authgate_login={garbage}");
        let r = b
            .request(
                Method::GET,
                &env.gw.url("/app"),
                &[("Accept", "application/json"), ("Cookie", &cookie)],
                None,
            )
            .await;
        assert_eq!(r.status, 401, "cookie of {} bytes", garbage.len());
        let r = b
            .request(
                Method::GET,
                &env.gw.url("/oauth2/callback?state=x&code=y"),
                &[("Cookie", &cookie)],
                None,
            )
            .await;
        assert_eq!(
            r.status,
            400,
            "callback with a cookie of {} bytes",
            garbage.len()
        );
        let cookie = format!("_authgate={garbage}; _authgate_logout={garbage}");
        let r = b
            .request(
                Method::GET,
                &env.gw.url("/oauth2/logout"),
                &[("Cookie", &cookie)],
                None,
            )
            .await;
        assert_eq!(
            r.status,
            302,
            "logout with a cookie of {} bytes",
            garbage.len()
        );
        assert!(!r.location().as_str().contains("id_token_hint"));
    }
    // Over-long Cookie header: refused before parsing.
    let huge = format!("a={}", "b".repeat(20_000));
    let r = b
        .request(
            Method::GET,
            &env.gw.url("/public/x"),
            &[("Cookie", &huge)],
            None,
        )
        .await;
    assert_eq!(r.status, 431);

    // Paths that cannot be decoded are 400; traversal lands on the protected route.
    for path in ["/a%zz", "/a%", "/a%00b", "/public/%ff"] {
        let r = b.get_api(&env.gw.url(path)).await;
        assert_eq!(r.status, 400, "{path}");
    }
    for path in [
        "/public/../app",
        "/public/%2e%2e/app",
        "/public/..%2fapp",
        "/public%2f..%2fapp",
        "/public/..\\app",
        "//public/../app",
    ] {
        let r = b.get_api(&env.gw.url(path)).await;
        assert_eq!(r.status, 401, "{path} must be judged as /app");
    }
    // The query never decides the route.
    let r = b.get_api(&env.gw.url("/app?/public/x")).await;
    assert_eq!(r.status, 401);
    // An endpoint that does not exist, and a form body that is not one.
    let r = b
        .request(Method::GET, &env.gw.url("/oauth2/nope"), &[], None)
        .await;
    assert_eq!(r.status, 404);
    let r = b
        .request(
            Method::POST,
            &env.gw.url("/oauth2/callback"),
            &[("Content-Type", "text/plain")],
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    let big = vec![("state".to_string(), "x".repeat(100_000))];
    let r = b
        .request(
            Method::POST,
            &env.gw.url("/oauth2/callback"),
            &[],
            Some(&big),
        )
        .await;
    assert_eq!(r.status, 413);
    assert!(!env.gw.logs().contains("panicked"));
    // Still serving.
    let ok = b
        .request(Method::GET, &env.gw.url("/public/x"), &[], None)
        .await;
    assert_eq!(ok.status, 200);
}

/// The upstream gets the path the route was chosen by, whatever the client wrote: an upstream
/// that reads `%5C`, `%2F`, `..` or `;` differently from the gateway cannot be reached outside the
/// route the gateway authorized (raw requests: an HTTP client would normalize these itself).
#[tokio::test]
async fn the_upstream_sees_the_path_that_was_authorized() {
    let env = Env::start(EnvOptions {
        extra_toml: "\n[[routes]]\nname = \"docs-write\"\nprefix = \"/docs\"\nmethods = [\"DELETE\"]\n\
                     auth = \"protected\"\n\n[[routes]]\nname = \"docs\"\nprefix = \"/docs\"\nauth = \"public\"\n"
            .into(),
        ..EnvOptions::default()
    });
    let port = env.gw.port;
    // The echo's JSON (pingora passes the upstream's chunked framing on, even to HTTP/1.0).
    let upstream_url = |body: &str| -> String {
        let json = body
            .find('{')
            .zip(body.rfind('}'))
            .map_or("", |(start, end)| &body[start..=end]);
        let echo: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        echo["url"].as_str().unwrap_or_default().to_string()
    };
    // Judged as a public path, and sent upstream as exactly that path.
    for (target, sent) in [
        ("/app/x%5C..%5C..%5Cpublic/e", "/public/e"),
        ("/app/x%2F..%2F..%2Fpublic/e?q=%2F..", "/public/e?q=%2F.."),
        ("/app/%2e%2e/public/e", "/public/e"),
        ("/app/../public/e", "/public/e"),
        ("//public//e", "/public/e"),
        ("/public/%65", "/public/e"),
        ("http://x/public/e", "/public/e"),
        ("/public/e;jsessionid=AB12", "/public/e;jsessionid=AB12"),
        ("/public/e", "/public/e"),
    ] {
        let (status, body) = raw_request(port, "GET", target, &[]).unwrap();
        assert_eq!(status, 200, "{target}");
        assert_eq!(upstream_url(&body), sent, "{target}: {body}");
    }
    // Judged as the protected path they resolve to.
    for target in ["/public/../app", "/public/%2e%2e/app", "/public\\..\\app"] {
        let (status, _) = raw_request(port, "GET", target, &[]).unwrap();
        assert_eq!(status, 401, "{target}");
    }
    // Targets pingora would judge as `/` but forward as sent, `;` parameters that a servlet
    // container would route elsewhere, and (pingora's check) an absolute-form target naming
    // another host than `Host`: 400.
    for target in [
        "app/x",
        "x:/public/e",
        "*",
        "/public/..;/app",
        "/app;x/..;/public/e",
        "http://elsewhere/public/e",
    ] {
        let (status, _) = raw_request(port, "GET", target, &[]).unwrap();
        assert_eq!(status, 400, "{target}");
    }
    // Methods match routes whatever their case: `delete` is DELETE to Flask or Rails.
    for method in ["DELETE", "delete", "Delete"] {
        let (status, _) = raw_request(port, method, "/docs/page", &[]).unwrap();
        assert_eq!(status, 401, "{method}");
    }
    let (status, _) = raw_request(port, "GET", "/docs/page", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(!env.gw.logs().contains("panicked"));
}

/// Forward-auth cannot change what its proxy forwards, so a path the proxy may split into other
/// segments than the gateway does gets no decision.
#[tokio::test]
async fn forward_auth_refuses_paths_its_proxy_may_read_otherwise() {
    let env = Env::start(EnvOptions::default().trusting_loopback_proxy());
    let port = env.gw.port;
    for uri in [
        "/app/x%5C..%5C..%5Cpublic",
        "/app/x%2F..%2F..%2Fpublic",
        "/app/%2e%2e/public",
        "/app/../public",
        "//public",
        "/public/..;/app",
        "app/public",
    ] {
        let (status, _) =
            raw_request(port, "GET", "/oauth2/auth", &[("X-Original-URI", uri)]).unwrap();
        assert_eq!(status, 400, "{uri}");
    }
    for (uri, status) in [
        ("/public/x?a=/../b", 202),
        ("/app", 401),
        ("/public/x;s=1", 202),
    ] {
        let (got, _) =
            raw_request(port, "GET", "/oauth2/auth", &[("X-Original-URI", uri)]).unwrap();
        assert_eq!(got, status, "{uri}");
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A flood of unauthenticated login starts leaves nothing in the gateway: each pending login is
/// sealed into the answer's cookie. (Kept in a bounded cache, as before, ~100,000 of them within
/// the login timeout pushed out every real user's pending login, and each held its return path.)
#[tokio::test]
async fn a_flood_of_login_starts_leaves_nothing_behind() {
    use futures::StreamExt;
    let env = Env::start(EnvOptions::default());
    let mut alice = Browser::new();
    let first = alice.get(&env.gw.url("/app/before-the-flood")).await;
    assert_eq!(first.status, 302);

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = env
        .gw
        .url(&format!("/oauth2/start?rd=/{}", "a".repeat(4000)));
    let before = rss_kib(env.gw.pid());
    const FLOOD: usize = 10_000;
    let answers: Vec<(u16, bool)> = futures::stream::iter(0..FLOOD)
        .map(|_| {
            let (client, start) = (client.clone(), start.clone());
            async move {
                let r = client.get(&start).send().await.unwrap();
                let sealed = r
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .any(|c| c.to_str().unwrap().starts_with("_authgate_login="));
                (r.status().as_u16(), sealed)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let grown_kib = rss_kib(env.gw.pid()).saturating_sub(before);
    assert!(answers
        .iter()
        .all(|&(status, sealed)| status == 302 && sealed));
    // Kept in the gateway, 10,000 return paths of 4 KB would be 40 MiB and more.
    assert!(
        grown_kib < 12 * 1024,
        "the gateway grew by {grown_kib} KiB over {FLOOD} login starts"
    );

    // The login begun before the flood still completes, and lands where it started.
    let done = provider_login(&mut alice, first.location(), "alice", env.gw.port).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location().path(), "/app/before-the-flood");
}
