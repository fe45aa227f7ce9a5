//! Logout end to end against the real provider (rpInitiatedLogout, revocation and
//! backchannelLogout enabled): RP-initiated, the logout API, back-channel (sid and sub-only),
//! front-channel, bad logout tokens, open redirects, and the logged-out webhooks.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `[logout]` with a public landing page, and the access token visible to the upstream.
fn logout_toml() -> String {
    format!("\n[headers]\npass_access_token = true\n{LOGGED_OUT_TOML}")
}

fn logout_env(client_id: &'static str, scopes: Vec<&'static str>, more_toml: &str) -> Env {
    Env::start(EnvOptions {
        client_id,
        scopes,
        extra_toml: logout_toml().replace("[logout]\n", &format!("[logout]\n{more_toml}")),
        ..Default::default()
    })
}

/// The provider's opaque tokens of `model` issued to `account`.
async fn provider_tokens(env: &Env, account: &str, model: &str) -> Vec<String> {
    let v: Value = reqwest::get(format!(
        "{}/__test/tokens?account={account}&model={model}",
        env.op.issuer()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    serde_json::from_value(v["tokens"].clone()).unwrap()
}

/// Is `token` active, says the provider's introspection?
async fn active_at_provider(env: &Env, client_id: &str, token: &str) -> bool {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/token/introspection", env.op.issuer()))
        .basic_auth(client_id, Some(CLIENT_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["active"] == json!(true)
}

/// Does this browser's session still get through?
async fn logged_in(b: &mut Browser, env: &Env) -> bool {
    let r = b.get_api(&env.gw.url("/app")).await;
    r.status == 200
}

/// Submit the provider's end-session confirmation ("Yes, sign me out").
async fn confirm_provider_logout(b: &mut Browser, page: Resp) -> Resp {
    assert_eq!(page.status, 200, "{}", page.body);
    let (action, mut fields) = parse_form(&page.body, &page.url);
    fields.push(("logout".into(), "yes".into()));
    b.post_form(action.as_str(), &fields).await
}

/// The end-session URL of a logout API answer (`{"redirect": "..."}`).
fn api_redirect(answer: &Value) -> url::Url {
    let redirect = answer["redirect"].as_str();
    url::Url::parse(redirect.unwrap_or_else(|| panic!("no redirect in {answer}"))).unwrap()
}

/// The user ends their session at the provider itself (its end-session page, confirmed); the
/// provider then calls the gateway's back-channel logout before answering.
async fn end_provider_session(b: &mut Browser, env: &Env, client_id: &str) -> Resp {
    let page = b
        .get(&format!(
            "{}/session/end?client_id={client_id}",
            env.op.issuer()
        ))
        .await;
    confirm_provider_logout(b, page).await
}

/// Logged in → /oauth2/logout → provider's end-session page → back at the post-logout URI; the
/// old cookie no longer works and the provider reports the refresh token revoked.
#[tokio::test]
async fn rp_initiated_logout_round_trip() {
    let env = logout_env(
        BASIC_CLIENT,
        vec!["openid", "profile", "email", "offline_access"],
        "",
    );
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "alice").await;
    assert!(logged_in(&mut b, &env).await);
    let old_cookie = b.cookie("_authgate").unwrap();
    // The ID token waits for logout in the browser, sealed, sent to the logout endpoint only.
    let logout_cookie = b
        .cookies
        .iter()
        .find(|c| c.name == "_authgate_logout")
        .expect("a logout cookie");
    assert_eq!(logout_cookie.path, "/oauth2/logout");
    assert!(!logout_cookie.value.contains("eyJ"), "not readable");
    assert!(logout_cookie.raw.contains("HttpOnly"));
    let refresh = provider_tokens(&env, "alice", "RefreshToken").await;
    assert_eq!(refresh.len(), 1, "offline_access gave a refresh token");
    assert!(active_at_provider(&env, BASIC_CLIENT, &refresh[0]).await);

    let out = b.get(&env.gw.url("/oauth2/logout")).await;
    assert_eq!(out.status, 302, "{}", out.body);
    let end_session = out.location();
    assert_eq!(end_session.path(), "/session/end");
    let q = query_map(&end_session);
    assert!(q["id_token_hint"].split('.').count() == 3);
    assert_eq!(q["post_logout_redirect_uri"], env.gw.url("/logged-out"));
    assert_eq!(q["client_id"], BASIC_CLIENT);
    assert!(q["state"].len() >= 32);
    assert!(out.set_cookie("_authgate").unwrap().contains("Max-Age=0"));
    assert!(b.cookie("_authgate").is_none());
    assert!(b.cookie("_authgate_logout").is_none());

    let page = b.get(end_session.as_str()).await;
    let back = confirm_provider_logout(&mut b, page).await;
    assert!(back.status.is_redirection());
    let landing = back.location();
    assert_eq!(landing.path(), "/logged-out");
    assert_eq!(query_map(&landing)["state"], q["state"]);
    let landed = b.get(landing.as_str()).await;
    assert_eq!(landed.status, 200);

    b.set("_authgate", &old_cookie);
    assert!(!logged_in(&mut b, &env).await, "the old cookie is dead");
    assert!(
        !active_at_provider(&env, BASIC_CLIENT, &refresh[0]).await,
        "the refresh token was revoked"
    );
    // Logging out again without a session still clears cookies and redirects. sign_out
    // (oauth2-proxy's name) sends the browser on to logout, query and all.
    let mut nobody = Browser::new();
    let alias = nobody
        .get(&env.gw.url("/oauth2/sign_out?rd=%2Flogged-out"))
        .await;
    assert_eq!(alias.status, 303);
    assert_eq!(
        alias.location().as_str(),
        env.gw.url("/oauth2/logout?rd=%2Flogged-out")
    );
    let again = nobody.get(alias.location().as_str()).await;
    assert_eq!(again.status, 302);
    assert!(!query_map(&again.location()).contains_key("id_token_hint"));
    assert!(again.set_cookie("_authgate").unwrap().contains("Max-Age=0"));
    let metrics = reqwest::get(env.gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("authgate_sessions_ended_total{reason=\"logout\"} 1"),
        "{metrics}"
    );
}

/// POST /oauth2/logout with the session's tokens: 200 with the end-session URL; the access
/// token no longer passes; the refresh token is inactive at the provider.
#[tokio::test]
async fn logout_api() {
    let env = logout_env(
        BASIC_CLIENT,
        vec!["openid", "profile", "offline_access"],
        "",
    );
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "bob").await;
    let access = forwarded_access_token(&mut b, &env, "/app").await;
    let refresh = provider_tokens(&env, "bob", "RefreshToken").await.remove(0);
    let client = reqwest::Client::new();
    let bearer = |token: String| {
        let client = client.clone();
        let url = env.gw.url("/api/x");
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        bearer(access.clone()).await,
        200,
        "the access token works as a bearer token"
    );
    let api_with_cookie = |body: String, content_type: &'static str, cookie: Option<String>| {
        let client = client.clone();
        let url = env.gw.url("/oauth2/logout");
        async move {
            let mut r = client.post(url).header("Content-Type", content_type);
            if let Some(cookie) = cookie {
                r = r.header("Cookie", cookie);
            }
            let r = r.body(body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let api = |body: String, content_type: &'static str| api_with_cookie(body, content_type, None);

    // Bad requests end nothing.
    for (body, status) in [
        ("not json".to_string(), 400),
        ("{}".to_string(), 400),
        ("[]".to_string(), 400),
        (json!({"token": 1}).to_string(), 400),
        (json!({"token": "a", "access_token": "b"}).to_string(), 400),
        (json!({"token": "a", "surprise": true}).to_string(), 400),
        (json!({"access_token": "unknown-token"}).to_string(), 401),
        (json!({"refresh_token": "unknown-refresh"}).to_string(), 401),
        // The session's own refresh token alone names nothing: the gateway never hands it out,
        // and sessions are indexed by access token only.
        (json!({"refresh_token": refresh}).to_string(), 401),
        ("x".repeat(100_000), 413),
    ] {
        let (got, v) = api(body.clone(), "application/json").await;
        assert_eq!(got, status, "{}: {v}", &body[..body.len().min(40)]);
    }
    // A POST that is not JSON is a browser's RP-initiated logout (a redirect); without a
    // session cookie it ends nothing.
    let r = Browser::new()
        .request(
            Method::POST,
            &env.gw.url("/oauth2/logout"),
            &[("Content-Type", "text/plain")],
            None,
        )
        .await;
    assert_eq!(r.status, 302);
    assert!(logged_in(&mut b, &env).await, "nothing ended so far");

    // Called from the page itself, the request carries the browser's logout cookie: the
    // end-session URL gets the ID token sealed in it.
    let sealed = b.cookie("_authgate_logout").expect("a logout cookie");
    let (status, v) = api_with_cookie(
        json!({"access_token": access, "refresh_token": refresh}).to_string(),
        "application/json",
        Some(format!("_authgate_logout={sealed}")),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let redirect = api_redirect(&v);
    let q = query_map(&redirect);
    assert_eq!(redirect.path(), "/session/end");
    assert!(q["id_token_hint"].split('.').count() == 3, "{q:?}");
    assert!(q.contains_key("state"));
    assert_eq!(q["post_logout_redirect_uri"], env.gw.url("/logged-out"));
    assert_eq!(
        bearer(access.clone()).await,
        401,
        "the access token no longer passes"
    );
    assert!(!active_at_provider(&env, BASIC_CLIENT, &refresh).await);
    assert!(!logged_in(&mut b, &env).await);
    let (again, _) = api(
        json!({"access_token": access}).to_string(),
        "application/json",
    )
    .await;
    assert_eq!(again, 401, "already logged out");

    // A server calling without the browser's cookies: the session still ends, and the
    // end-session URL names the client instead. The first session's logout cookie does not
    // open for the second session.
    let mut b2 = Browser::new();
    login(&mut b2, &env, "/app", "bob").await;
    let access = forwarded_access_token(&mut b2, &env, "/app").await;
    let (status, v) = api_with_cookie(
        json!({"access_token": access}).to_string(),
        "application/json",
        Some(format!("_authgate_logout={sealed}")),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let q = query_map(&api_redirect(&v));
    assert!(!q.contains_key("id_token_hint"), "{q:?}");
    assert_eq!(q["client_id"], BASIC_CLIENT);
    assert!(!logged_in(&mut b2, &env).await);
}

/// `session.id_token_hint = "store"`: the session keeps its ID token, so the logout API sends it
/// without the browser's cookie, and no logout cookie is set.
#[tokio::test]
async fn id_token_hint_kept_in_the_store() {
    let env = Env::start(EnvOptions {
        client_id: BASIC_CLIENT,
        scopes: vec!["openid", "profile"],
        extra_toml: logout_toml(),
        session_extra: "id_token_hint = \"store\"",
        ..Default::default()
    });
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "carol").await;
    assert!(b.cookie("_authgate_logout").is_none());
    let access = forwarded_access_token(&mut b, &env, "/app").await;
    let r = reqwest::Client::new()
        .post(env.gw.url("/oauth2/logout"))
        .json(&json!({ "access_token": access }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let q = query_map(&api_redirect(&v));
    assert!(q["id_token_hint"].split('.').count() == 3, "{q:?}");
}

/// The provider ends its session → it calls the gateway's back-channel endpoint → the old
/// cookie gets a login redirect. Another user's session is untouched.
#[tokio::test]
async fn backchannel_logout_by_sid() {
    let env = logout_env(BASIC_CLIENT, vec!["openid", "profile"], "");
    let mut a = Browser::new();
    let mut other = Browser::new();
    login(&mut a, &env, "/app", "alice").await;
    login(&mut other, &env, "/app", "alice").await;
    let sid_a = a.get(&env.gw.url("/app")).await.json()["headers"]["x-sid"].clone();
    let sid_other = other.get(&env.gw.url("/app")).await.json()["headers"]["x-sid"].clone();
    assert!(
        sid_a.is_string() && sid_a != sid_other,
        "two provider sessions"
    );

    // Alice ends her provider session in browser A, at the provider itself.
    end_provider_session(&mut a, &env, BASIC_CLIENT).await;
    // The provider called the gateway before answering the confirmation: the old cookie now
    // gets a login redirect.
    let r = a.get(&env.gw.url("/app")).await;
    assert_eq!(r.status, 302, "{}", env.gw.logs());
    assert!(r
        .location()
        .as_str()
        .starts_with(&format!("{}/auth?", env.op.issuer())));
    assert!(
        logged_in(&mut other, &env).await,
        "the other session (other sid) lives"
    );
    let logs = env.gw.logs();
    assert!(logs.contains("back-channel logout"), "{logs}");
}

/// The provider rotates its signing key, then sends a logout token signed with the new key:
/// the gateway reloads the keys for the unknown kid and ends the session.
#[tokio::test]
async fn backchannel_logout_after_key_rotation() {
    let env = logout_env(BASIC_CLIENT, vec!["openid"], "");
    let mut a = Browser::new();
    login(&mut a, &env, "/app", "alice").await;
    rotate_provider_keys(&env).await;
    end_provider_session(&mut a, &env, BASIC_CLIENT).await;
    assert!(!logged_in(&mut a, &env).await, "{}", env.gw.logs());
    assert!(env.gw.logs().contains("provider metadata and keys loaded"));
}

/// With a client whose logout tokens carry only `sub`, one logout ends both of the user's
/// sessions.
#[tokio::test]
async fn backchannel_logout_sub_only_ends_every_session_of_the_user() {
    let env = logout_env(SUB_ONLY_CLIENT, vec!["openid", "profile"], "");
    let mut a = Browser::new();
    let mut b = Browser::new();
    let mut carol = Browser::new();
    login(&mut a, &env, "/app", "alice").await;
    login(&mut b, &env, "/app", "alice").await;
    login(&mut carol, &env, "/app", "carol").await;
    end_provider_session(&mut a, &env, SUB_ONLY_CLIENT).await;
    let mut ended = false;
    for _ in 0..50 {
        if !logged_in(&mut a, &env).await && !logged_in(&mut b, &env).await {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ended, "both of alice's sessions ended");
    assert!(logged_in(&mut carol, &env).await, "carol is untouched");
}

/// Bad logout tokens, validly signed where it matters (the rogue provider signs on demand):
/// each 400 with nothing ended. Then a good one ends the session; its replay is refused.
#[tokio::test]
async fn bad_logout_tokens_are_400_and_end_nothing() {
    let RogueEnv {
        rogue,
        gw,
        upstream: _upstream,
    } = RogueEnv::start().await;
    let port = gw.port;
    let mut b = Browser::new();
    let first = b.get(&gw.url("/app")).await;
    let back = b.get(first.location().as_str()).await;
    assert_eq!(b.get(back.location().as_str()).await.status, 302);
    let still_in = |b: &Browser| {
        let cookie = b.cookie("_authgate").unwrap();
        let url = gw.url("/app");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("Cookie", format!("_authgate={cookie}"))
                .send()
                .await
                .unwrap()
                .status()
                == 200
        }
    };
    assert!(still_in(&b).await);

    let client = reqwest::Client::new();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let good = |jti: &str| {
        json!({"iss": rogue.issuer(), "aud": "gw", "iat": now(), "jti": jti, "sid": "rogue-sid",
               "events": {"http://schemas.openid.net/event/backchannel-logout": {}}})
    };
    let sign = |claims: Value, header: Value| {
        let client = client.clone();
        let url = format!("{}/__test/sign", rogue.issuer());
        async move {
            let v: Value = client
                .post(url)
                .json(&json!({"claims": claims, "header": header}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["token"].as_str().unwrap().to_string()
        }
    };
    let post = |body: String| {
        let client = client.clone();
        let url = gw.url("/oauth2/backchannel-logout");
        async move {
            let r = client
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let cache = r
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_string());
            (status, cache, r.text().await.unwrap())
        }
    };
    let form = |token: &str| format!("logout_token={token}");
    let with = |k: &str, v: Value| {
        let mut c = good("j-x");
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good("j-y");
        c.as_object_mut().unwrap().remove(k);
        c
    };
    // Signed by another key: forge locally with a fresh key, claiming kid "a".
    let forged = {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap();
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("a".into());
        jsonwebtoken::encode(&h, &good("j-forged"), &key).unwrap()
    };
    let cases: Vec<(&str, String)> = vec![
        ("signed by another key", form(&forged)),
        (
            "wrong aud",
            form(&sign(with("aud", json!("someone-else")), json!({})).await),
        ),
        (
            "missing events",
            form(&sign(without("events"), json!({})).await),
        ),
        (
            "events without the member",
            form(&sign(with("events", json!({"x": {}})), json!({})).await),
        ),
        (
            "with nonce",
            form(&sign(with("nonce", json!("n")), json!({})).await),
        ),
        (
            "expired iat",
            form(&sign(with("iat", json!(now() - 3600)), json!({})).await),
        ),
        (
            "iat in the future",
            form(&sign(with("iat", json!(now() + 3600)), json!({})).await),
        ),
        ("missing jti", form(&sign(without("jti"), json!({})).await)),
        (
            "neither sid nor sub",
            form(&sign(without("sid"), json!({})).await),
        ),
        (
            "wrong typ",
            form(&sign(good("j-typ"), json!({"typ": "JWT"})).await),
        ),
        (
            "wrong iss",
            form(&sign(with("iss", json!("http://evil.example")), json!({})).await),
        ),
        ("not a JWT", form("not-a-jwt")),
        (
            "alg none",
            form(&format!("eyJhbGciOiJub25lIn0.{}.", {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good("j-none").to_string())
            })),
        ),
        ("empty body", String::new()),
        ("no logout_token field", "token=abc".into()),
        ("1 MiB body", form(&"a".repeat(1024 * 1024))),
    ];
    for (name, body) in &cases {
        let (status, _, text) = post(body.clone()).await;
        assert_eq!(status, 400, "{name}: {text}");
        if status == 400 && !text.is_empty() {
            let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
            assert_eq!(v["error"], "invalid_request", "{name}: {text}");
        }
        assert!(still_in(&b).await, "{name} ended the session");
    }

    // A valid token for another sid: 200, nothing of ours ended; its replay: 400.
    let other = sign(json!({"iss": rogue.issuer(), "aud": "gw", "iat": now(), "jti": "j-other",
        "sid": "another-sid", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
        json!({"typ": "logout+jwt"})).await;
    let (status, cache, _) = post(form(&other)).await;
    assert_eq!(status, 200);
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert!(still_in(&b).await);
    let (status, _, text) = post(form(&other)).await;
    assert_eq!(status, 400, "replayed jti: {text}");
    assert!(text.contains("already used"), "{text}");

    // The real thing: a sub-only token for rogue-user ends the session.
    let mut sub_only = good("j-sub");
    sub_only.as_object_mut().unwrap().remove("sid");
    sub_only["sub"] = json!("rogue-user");
    let (status, _, text) = post(form(&sign(sub_only, json!({})).await)).await;
    assert_eq!(status, 200, "{text}");
    assert!(!still_in(&b).await, "the session ended");

    // This provider has no end_session_endpoint: logout goes straight to the target, and an
    // evil rd falls back to the default.
    let mut nobody = Browser::new();
    for rd in ["https%3A%2F%2Fevil.example", "%2F%2Fevil.example", "%2Fbye"] {
        let r = nobody
            .get(&gw.url(&format!("/oauth2/logout?rd={rd}")))
            .await;
        assert_eq!(r.status, 302);
        let landing = r.location();
        assert_eq!(landing.host_str(), Some("127.0.0.1"), "{rd}");
        assert_eq!(landing.port(), Some(port), "{rd}");
    }
    assert!(!gw.logs().contains("panicked"));
}

/// Front-channel logout: the provider's iframe names iss and sid.
#[tokio::test]
async fn frontchannel_logout() {
    let env = logout_env(BASIC_CLIENT, vec!["openid", "profile"], "");
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "dora").await;
    let sid = b.get(&env.gw.url("/app")).await.json()["headers"]["x-sid"]
        .as_str()
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    let url = |iss: &str, sid: &str| {
        let mut u = url::Url::parse(&env.gw.url("/oauth2/frontchannel-logout")).unwrap();
        u.query_pairs_mut()
            .append_pair("iss", iss)
            .append_pair("sid", sid);
        u.to_string()
    };
    let r = client
        .get(url("http://evil.example", &sid))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "wrong iss");
    let r = client
        .get(env.gw.url("/oauth2/frontchannel-logout?sid=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "sid without iss");
    assert!(logged_in(&mut b, &env).await);
    let r = client
        .get(url(&env.op.issuer(), &sid))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    assert!(!logged_in(&mut b, &env).await);
}

/// Logout CSRF: a link on another site (a cross-site top-level navigation, which carries the
/// `SameSite=Lax` session cookie) ends nothing by itself. Logout asks first, and the page's
/// button, posted from the gateway's origin, logs out with the link's `rd`; front-channel
/// logout without `iss` and `sid` ignores the cookie of such a navigation.
#[tokio::test]
async fn a_logout_link_on_another_site_asks_first() {
    let env = logout_env(BASIC_CLIENT, vec!["openid", "profile"], "");
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "carl").await;
    let from_elsewhere = [
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-Dest", "document"),
        ("Referer", "https://evil.example/"),
    ];
    for path in [
        "/oauth2/logout?rd=%2Flogged-out",
        "/oauth2/sign_out?rd=%2Flogged-out",
    ] {
        let mut r = b
            .request(Method::GET, &env.gw.url(path), &from_elsewhere, None)
            .await;
        if r.status == 303 {
            // sign_out forwards to logout; the browser keeps the chain's cross-site marking.
            let next = env.gw.url(r.headers["location"].to_str().unwrap());
            r = b.request(Method::GET, &next, &from_elsewhere, None).await;
        }
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r
            .body
            .contains("<form method=post action=\"/oauth2/logout?rd=%2Flogged-out\">"));
        assert!(r.set_cookies().is_empty(), "{path}: nothing cleared");
        assert!(logged_in(&mut b, &env).await, "{path}: still logged in");
    }
    // Garbage in the query is escaped into the page, never markup.
    let r = b
        .request(
            Method::GET,
            &env.gw.url("/oauth2/logout?rd=%22%3E%3Cscript%3E&x=\"><b>"),
            &from_elsewhere,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        !r.body.contains("<script>") && !r.body.contains("<b>"),
        "{}",
        r.body
    );

    // Front-channel logout with neither iss nor sid, as such a link: the session stays.
    let r = b
        .request(
            Method::GET,
            &env.gw.url("/oauth2/frontchannel-logout"),
            &from_elsewhere,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(logged_in(&mut b, &env).await, "front-channel link");

    // The page's button: the same logout, posted from the gateway's origin.
    let origin = format!("http://127.0.0.1:{}", env.gw.port);
    let same_origin = [
        ("Sec-Fetch-Site", "same-origin"),
        ("Sec-Fetch-Mode", "navigate"),
        ("Origin", origin.as_str()),
    ];
    let r = b
        .request(
            Method::POST,
            &env.gw.url("/oauth2/logout?rd=%2Flogged-out"),
            &same_origin,
            Some(&[]),
        )
        .await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(!logged_in(&mut b, &env).await, "logged out by the button");
}

/// Post-logout targets off the allow-list fall back to the default, with and without an
/// end-session endpoint at the provider.
#[tokio::test]
async fn post_logout_open_redirects_never_leave_the_allow_list() {
    let env = logout_env(
        BASIC_CLIENT,
        vec!["openid"],
        "allowed_redirects = [\"http://127.0.0.1:{GW_PORT}/goodbye\"]\n",
    );
    let mut b = Browser::new();
    let target = |r: &Resp| query_map(&r.location())["post_logout_redirect_uri"].clone();
    let r = b.get(&env.gw.url("/oauth2/logout?rd=%2Fgoodbye")).await;
    assert_eq!(target(&r), env.gw.url("/goodbye"));
    for evil in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "%2F%2Fevil.example",
        "http://127.0.0.1:{GW_PORT}@evil.example/",
        "/%5Cevil.example",
        "http://127.0.0.1:{GW_PORT}/goodbye/../../evil",
    ] {
        let evil = evil.replace("{GW_PORT}", &env.gw.port.to_string());
        let encoded: String = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect();
        let r = b
            .get(&env.gw.url(&format!("/oauth2/logout?rd={encoded}")))
            .await;
        assert_eq!(r.status, 302);
        let landing = url::Url::parse(&target(&r)).unwrap();
        assert_eq!(landing.host_str(), Some("127.0.0.1"), "{evil}");
        assert_eq!(landing.port(), Some(env.gw.port), "{evil}");
        assert!(
            landing.path() == "/logged-out" || landing.path() == "/goodbye",
            "{evil} → {landing}"
        );
    }
}

/// A webhook receiver that records bodies; with `hang`, it accepts and never answers.
async fn webhook_receiver(hang: bool) -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                if hang {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            record
                                .lock()
                                .unwrap()
                                .push(serde_json::from_str(body).unwrap());
                            let _ = s
                                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, seen)
}

/// Webhooks: called once per ended session with its reason; a dead or hanging webhook does not
/// delay logout.
#[tokio::test]
async fn logged_out_webhooks() {
    let (live, seen) = webhook_receiver(false).await;
    let (hanging, _) = webhook_receiver(true).await;
    let dead = free_port();
    let hooks = format!(
        r#"
[[logout.webhooks]]
url = "http://127.0.0.1:{live}/hook"

[[logout.webhooks]]
url = "http://127.0.0.1:{hanging}/hook"
timeout = "2s"
retries = 3

[[logout.webhooks]]
url = "http://127.0.0.1:{dead}/hook"
retries = 3
"#
    );
    let env = Env::start(EnvOptions {
        extra_toml: format!("{}{hooks}", logout_toml()),
        session_extra: "idle_timeout = \"2s\"",
        ..Default::default()
    });
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "erin").await;
    let started = Instant::now();
    let out = b.get(&env.gw.url("/oauth2/logout")).await;
    assert_eq!(out.status, 302);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "logout took {:?}",
        started.elapsed()
    );

    // A second session simply expires (idle 2 s; the sweeper runs every 5 s).
    let mut idle = Browser::new();
    login(&mut idle, &env, "/app", "frank").await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            seen.lock().unwrap().len() >= 2
        })
        .await,
        "webhooks: {:?}",
        seen.lock().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "once per ended session: {calls:?}");
    assert_eq!(calls[0]["user"], "erin");
    assert_eq!(calls[0]["reason"], "logout");
    assert_eq!(calls[0]["session_id_hash"].as_str().unwrap().len(), 32);
    assert!(calls[0]["sid"].is_string());
    assert_eq!(calls[1]["user"], "frank");
    assert_eq!(calls[1]["reason"], "expired");
}
