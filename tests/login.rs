//! End-to-end login through the real binary, a real OpenID provider and an echo upstream.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

/// The whole authorization-code flow, hop by hop, then identity headers at the upstream.
#[tokio::test]
async fn login_hop_by_hop_then_upstream_sees_identity() {
    let env = Env::start(EnvOptions {
        scopes: vec!["openid", "profile", "email", "groups", "offline_access"],
        ..Default::default()
    });
    let mut b = Browser::new();

    // 1. A browser request to a protected path is sent to the provider with every parameter.
    let first = b.get(&env.gw.url("/app/page?x=1")).await;
    assert_eq!(first.status, 302);
    let authorize = first.location();
    assert!(authorize
        .as_str()
        .starts_with(&format!("{}/auth?", env.op.issuer())));
    let q = query_map(&authorize);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], BASIC_CLIENT);
    assert_eq!(q["redirect_uri"], env.gw.url("/oauth2/callback"));
    assert_eq!(q["scope"], "openid profile email groups offline_access");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["prompt"], "consent", "offline_access asks for consent");
    assert_eq!(q["state"].len(), 43);
    assert_eq!(q["nonce"].len(), 43);
    assert_eq!(q["code_challenge"].len(), 43);
    assert_ne!(q["state"], q["nonce"]);
    let login_cookie = first.set_cookie("_authgate_login").expect("login cookie");
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("Max-Age=600"));
    // The pending login is sealed in it, unreadable: not even the state shows.
    assert!(login_cookie.starts_with("_authgate_login=") && !login_cookie.contains(&q["state"]));

    // 2. The provider's login and consent forms, then back to the gateway's callback.
    let callback = provider_login(&mut b, authorize, "alice", env.gw.port).await;
    assert!(callback.url.path().ends_with("/oauth2/callback"));
    assert_eq!(query_map(&callback.url)["state"], q["state"]);

    // 3. The callback sets the session cookie and returns to the original URL.
    assert_eq!(callback.status, 302, "{}", callback.body);
    assert_eq!(callback.location().as_str(), env.gw.url("/app/page?x=1"));
    let session_cookie = callback.set_cookie("_authgate").expect("session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
    let session_value = b.cookie("_authgate").unwrap();
    assert_eq!(
        session_value.len(),
        43,
        "the cookie is a 256-bit id, no tokens"
    );
    assert!(
        b.cookie("_authgate_login").is_none(),
        "the used state is cleared"
    );

    // 4. The upstream sees who the user is, and none of the gateway's cookies.
    b.set("app_cookie", "kept");
    let page = b.get(&env.gw.url("/app/page?x=1")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let echo = page.json();
    let h = &echo["headers"];
    assert_eq!(h["x-forwarded-user"], "alice");
    assert_eq!(h["x-forwarded-email"], "alice@example.test");
    assert_eq!(h["x-forwarded-preferred-username"], "alice");
    assert_eq!(h["x-forwarded-groups"], "users,alice-group");
    assert_eq!(h["x-forwarded-name"], "Alice Test");
    assert!(
        h.get("x-forwarded-access-token").is_none(),
        "off by default"
    );
    let forwarded_cookies = h["cookie"].as_str().unwrap();
    assert!(forwarded_cookies.contains("app_cookie=kept"));
    assert!(
        !forwarded_cookies.contains("_authgate"),
        "{forwarded_cookies}"
    );
    assert_eq!(echo["url"], "/app/page?x=1");

    // 5. userinfo shows the identity.
    let me = b
        .request(Method::GET, &env.gw.url("/oauth2/userinfo"), &[], None)
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["email"], "alice@example.test");
    assert_eq!(me.json()["groups"], json!(["users", "alice-group"]));

    // 6. No secret reached the log.
    let logs = env.gw.logs();
    assert!(logs.contains("login completed"), "{logs}");
    for secret in [
        session_value.as_str(),
        CLIENT_SECRET,
        &q["state"],
        &q["nonce"],
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the log");
    }
    let code = query_map(&callback.url)["code"].clone();
    assert!(!logs.contains(&code), "the code leaked into the log");
}

/// response_mode=form_post with client_secret_post: the provider POSTs the code back.
#[tokio::test]
async fn form_post_with_client_secret_post() {
    let env = Env::start(EnvOptions {
        client_id: POST_CLIENT,
        auth_method: "client_secret_post",
        response_mode: "form_post",
        ..Default::default()
    });
    let mut b = Browser::new();
    let first = b.get(&env.gw.url("/dashboard")).await;
    let q = query_map(&first.location());
    assert_eq!(q["response_mode"], "form_post");
    assert!(
        !q.contains_key("prompt"),
        "no offline_access, no forced consent"
    );
    let login_cookie = first.set_cookie("_authgate_login").unwrap();
    assert!(login_cookie.contains("SameSite=None") && login_cookie.contains("Secure"));

    let callback = provider_login(&mut b, first.location(), "bob", env.gw.port).await;
    assert_eq!(callback.url.path(), "/oauth2/callback");
    assert_eq!(callback.status, 302, "{}", callback.body);
    assert_eq!(callback.location().path(), "/dashboard");
    let page = b.get(&env.gw.url("/dashboard")).await;
    assert_eq!(page.json()["headers"]["x-forwarded-user"], "bob");
}

/// A public client (token_endpoint_auth_method = none) relies on PKCE alone.
#[tokio::test]
async fn public_client_with_pkce_only() {
    let env = Env::start(EnvOptions {
        client_id: PUBLIC_CLIENT,
        auth_method: "none",
        ..Default::default()
    });
    let mut b = Browser::new();
    let callback = login(&mut b, &env, "/home", "carol").await;
    assert_eq!(callback.status, 302, "{}", callback.body);
    let page = b.get(&env.gw.url("/home")).await;
    assert_eq!(page.json()["headers"]["x-forwarded-user"], "carol");
}

/// /oauth2/start?rd= goes back to a same-site path only; every open-redirect trick lands on /.
#[tokio::test]
async fn start_honours_safe_rd_and_refuses_open_redirects() {
    let env = Env::start(EnvOptions::default());
    let mut b = Browser::new();
    let first = b
        .get(&env.gw.url("/oauth2/start?rd=%2Freports%3Fy%3D2"))
        .await;
    assert_eq!(first.status, 302);
    let callback = provider_login(&mut b, first.location(), "dave", env.gw.port).await;
    assert_eq!(callback.location().as_str(), env.gw.url("/reports?y=2"));

    for evil in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "%2F%2Fevil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%09/evil.example",
        "javascript:alert(1)",
        "%0d%0aLocation:%20https://evil.example",
    ] {
        let mut b = Browser::new();
        let first = b
            .get(&env.gw.url(&format!("/oauth2/start?rd={}", urlencode(evil))))
            .await;
        assert_eq!(first.status, 302, "{evil}");
        let callback = provider_login(&mut b, first.location(), "dave", env.gw.port).await;
        assert_eq!(callback.status, 302);
        assert_eq!(
            callback.location().as_str(),
            env.gw.url("/"),
            "rd={evil:?} must land on /"
        );
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Non-browser clients and API routes get 401 JSON with WWW-Authenticate, never a redirect.
#[tokio::test]
async fn non_browsers_and_api_routes_get_401() {
    let env = Env::start(EnvOptions::default());
    let mut b = Browser::new();
    for (path, accept) in [
        ("/app", "application/json"),
        ("/app", "*/*"),
        ("/api/things", "text/html"),
    ] {
        let r = b
            .request(Method::GET, &env.gw.url(path), &[("Accept", accept)], None)
            .await;
        assert_eq!(r.status, 401, "{path} {accept}");
        assert!(r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"authgate\""));
        assert_eq!(r.json()["error"], "unauthorized");
    }
    let xhr = b
        .request(
            Method::GET,
            &env.gw.url("/app"),
            &[
                ("Accept", "text/html"),
                ("X-Requested-With", "XMLHttpRequest"),
            ],
            None,
        )
        .await;
    assert_eq!(xhr.status, 401);
}

/// Parallel unauthenticated requests never pile up login cookies: one cookie, capped states.
#[tokio::test]
async fn pending_logins_are_capped_in_one_cookie() {
    let env = Env::start(EnvOptions::default());
    let mut b = Browser::new();
    let first = b.get(&env.gw.url("/app")).await;
    let oldest_state = query_map(&first.location())["state"].clone();
    for _ in 0..11 {
        let r = b.get(&env.gw.url("/app")).await;
        assert_eq!(r.status, 302);
    }
    let value = b.cookie("_authgate_login").unwrap();
    assert_eq!(value.split('.').count(), 5, "default max_pending_logins");
    assert_eq!(
        b.cookies
            .iter()
            .filter(|c| c.name.starts_with("_authgate"))
            .count(),
        1
    );
    // An evicted pending login is no longer bound to this browser.
    let r = b
        .get(
            &env.gw
                .url(&format!("/oauth2/callback?code=x&state={oldest_state}")),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("state"), "{}", r.body);
    // The newest one completes.
    let r = b.get(&env.gw.url("/app")).await;
    let callback = provider_login(&mut b, r.location(), "erin", env.gw.port).await;
    assert_eq!(callback.status, 302, "{}", callback.body);
}

/// The provider rotates its signing key between two logins: the next ID token names a key the
/// gateway has not loaded, and the gateway reloads the keys instead of refusing the login.
#[tokio::test]
async fn login_after_key_rotation() {
    let env = Env::start(EnvOptions::default());
    let mut b = Browser::new();
    assert_eq!(login(&mut b, &env, "/app", "alice").await.status, 302);
    rotate_provider_keys(&env).await;
    let mut next = Browser::new();
    let callback = login(&mut next, &env, "/app", "bob").await;
    assert_eq!(callback.status, 302, "{}", callback.body);
    let page = next.get(&env.gw.url("/app")).await;
    assert_eq!(page.json()["headers"]["x-forwarded-user"], "bob");
    let loads = env
        .gw
        .logs()
        .matches("provider metadata and keys loaded")
        .count();
    assert_eq!(loads, 2, "one load at start, one for the new kid");
}
