//! Bearer tokens end to end: keys generated here for every algorithm, the attacks a pentester
//! tries, scopes, cache expiry, and tokens from the real provider (JWT access tokens,
//! client credentials, opaque tokens through introspection, key rotation).

mod common;

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::Duration;

const HMAC_SECRET: &str = "an-hmac-secret-of-at-least-32-bytes!!";

/// A generated key pair: the signing key and the public key PEM.
struct TestKey {
    alg: Algorithm,
    signing: EncodingKey,
    public_pem: String,
    /// For RSA: the PKCS#1 RSAPublicKey DER (n, e).
    public_raw: Vec<u8>,
}

fn generate(alg: Algorithm) -> TestKey {
    let rc_alg = match alg {
        Algorithm::RS256 | Algorithm::PS256 => &rcgen::PKCS_RSA_SHA256,
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Algorithm::EdDSA => &rcgen::PKCS_ED25519,
        _ => unreachable!(),
    };
    let pair = rcgen::KeyPair::generate_for(rc_alg).unwrap();
    let private = pair.serialize_pem();
    let signing = match alg {
        Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(private.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private.as_bytes()),
        _ => EncodingKey::from_ed_pem(private.as_bytes()),
    }
    .unwrap();
    TestKey {
        alg,
        signing,
        public_pem: pair.public_key_pem(),
        public_raw: pair.public_key_raw().to_vec(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "svc-1", "aud": "api", "iat": now(), "exp": now() + 300,
           "email": "svc@example.test", "scope": "read write"})
}

fn sign(key: &TestKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &key.signing).unwrap()
}

fn b64(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A token with an arbitrary header, signed with `key` (for crit, jku, kid tricks).
fn sign_with_header(key: &TestKey, header: Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key.signing, key.alg).unwrap();
    format!("{message}.{sig}")
}

async fn call(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    accept: &str,
) -> (u16, String, Value) {
    let r = client
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, www, body)
}

fn pem_file(dir: &std::path::Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path.display().to_string()
}

/// Static-key issuers for every algorithm, and every attack answered 401 (never 5xx).
#[tokio::test]
async fn every_algorithm_verifies_and_every_attack_is_401() {
    let rsa = generate(Algorithm::RS256);
    let rsa_ps = TestKey {
        alg: Algorithm::PS256,
        signing: rsa.signing.clone(),
        public_pem: rsa.public_pem.clone(),
        public_raw: rsa.public_raw.clone(),
    };
    let other_rsa = generate(Algorithm::RS256);
    let es256 = generate(Algorithm::ES256);
    let es384 = generate(Algorithm::ES384);
    let ed = generate(Algorithm::EdDSA);
    let hs = TestKey {
        alg: Algorithm::HS256,
        signing: EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
        public_pem: String::new(),
        public_raw: Vec::new(),
    };
    let keys = tempfile::tempdir().unwrap();
    let d = keys.path();
    let (n, e) = rsa_components(&rsa.public_raw);
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": n, "e": e}]});
    let jwks_path = pem_file(d, "jwks.json", &jwks.to_string());
    let extra = format!(
        r#"
[bearer]
leeway = "0s"
trust_oidc_issuer = false

[[bearer.issuers]]
issuer = "https://rsa.test"
audiences = ["api"]
algorithms = ["RS256", "PS256"]
pem_files = ["{rsa}"]

[[bearer.issuers]]
issuer = "https://ec.test"
audiences = ["api"]
pem_files = ["{es256}", "{es384}"]

[[bearer.issuers]]
issuer = "https://ed.test"
audiences = ["api"]
pem_files = ["{ed}"]

[[bearer.issuers]]
issuer = "https://hs.test"
audiences = ["api"]
hmac_secret = "{HMAC_SECRET}"
hmac_algorithm = "HS256"

[[bearer.issuers]]
issuer = "https://kid.test"
audiences = ["api"]
jwks_file = "{jwks_path}"

[[bearer.issuers]]
issuer = "https://noaud.test"
pem_files = ["{rsa}"]
subject_claim = "client_id"

[[routes]]
name = "admin"
prefix = "/admin"
auth = "api"
scopes = ["admin"]
"#,
        rsa = pem_file(d, "rsa.pem", &rsa.public_pem),
        es256 = pem_file(d, "es256.pem", &es256.public_pem),
        es384 = pem_file(d, "es384.pem", &es384.public_pem),
        ed = pem_file(d, "ed.pem", &ed.public_pem),
    );
    let env = Env::start(EnvOptions {
        extra_toml: extra,
        ..Default::default()
    });
    let client = reqwest::Client::new();
    let url = env.gw.url("/api/data");

    // Every algorithm with its own key.
    for (key, iss) in [
        (&rsa, "https://rsa.test"),
        (&rsa_ps, "https://rsa.test"),
        (&es256, "https://ec.test"),
        (&es384, "https://ec.test"),
        (&ed, "https://ed.test"),
        (&hs, "https://hs.test"),
    ] {
        let token = sign(key, None, &claims(iss));
        let (status, _, body) = call(&client, &url, &token, "application/json").await;
        assert_eq!(status, 200, "{:?} {iss}: {body}", key.alg);
        assert_eq!(body["headers"]["x-forwarded-user"], "svc-1");
        assert_eq!(body["headers"]["x-forwarded-email"], "svc@example.test");
        // The verified token was the gateway's credential: by default the upstream never sees it.
        assert!(body["headers"]["authorization"].is_null(), "{body}");
        // The second time comes from the cache: same answer.
        let (status, _, _) = call(&client, &url, &token, "application/json").await;
        assert_eq!(status, 200);
    }
    let with_kid = sign(&rsa, Some("k1"), &claims("https://kid.test"));
    assert_eq!(call(&client, &url, &with_kid, "*/*").await.0, 200);
    let mut noaud = claims("https://noaud.test");
    noaud.as_object_mut().unwrap().remove("aud");
    noaud["client_id"] = json!("machine-7");
    let noaud_token = sign(&rsa, None, &noaud);
    let (status, _, body) = call(&client, &url, &noaud_token, "*/*").await;
    assert_eq!(status, 200, "{body}");
    // The subject is the configured claim; the headers follow [headers].
    let (status, _, me) = call(
        &client,
        &env.gw.url("/oauth2/userinfo"),
        &noaud_token,
        "*/*",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["sub"], "machine-7");
    assert_eq!(me["user"], "svc-1");

    // The attacks.
    let good = claims("https://rsa.test");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let valid = sign(&rsa, None, &good);
    let (h, p, s) = {
        let mut it = valid.split('.');
        (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        )
    };
    let hs_with_rsa_public = {
        let key = TestKey {
            alg: Algorithm::HS256,
            signing: EncodingKey::from_secret(rsa.public_pem.as_bytes()),
            public_pem: String::new(),
            public_raw: Vec::new(),
        };
        sign(&key, None, &good)
    };
    let attacker = generate(Algorithm::RS256);
    let attacks: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!("{}.{p}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
            "algorithm",
        ),
        (
            "alg None signed",
            format!("{}.{p}.{s}", b64(br#"{"alg":"None"}"#)),
            "algorithm",
        ),
        (
            "HS256 with the RSA public key",
            hs_with_rsa_public,
            "algorithm",
        ),
        (
            "unknown kid",
            sign(&rsa, Some("nope"), &claims("https://kid.test")),
            "kid",
        ),
        (
            "kid path traversal",
            sign(
                &rsa,
                Some("../../../../etc/passwd"),
                &claims("https://kid.test"),
            ),
            "kid",
        ),
        (
            "kid SQL",
            sign(
                &rsa,
                Some("' OR 1=1; DROP TABLE keys; --"),
                &claims("https://kid.test"),
            ),
            "kid",
        ),
        (
            "expired",
            sign(&rsa, None, &with("exp", json!(now() - 10))),
            "expired",
        ),
        (
            "nbf in the future",
            sign(&rsa, None, &with("nbf", json!(now() + 3600))),
            "not valid yet",
        ),
        (
            "iat in the future",
            sign(&rsa, None, &with("iat", json!(now() + 3600))),
            "future",
        ),
        ("missing exp", sign(&rsa, None, &without("exp")), "exp"),
        (
            "wrong iss",
            sign(&rsa, None, &with("iss", json!("https://evil.test"))),
            "issuer",
        ),
        (
            "wrong aud",
            sign(&rsa, None, &with("aud", json!("other-api"))),
            "audience",
        ),
        ("missing aud", sign(&rsa, None, &without("aud")), "audience"),
        (
            "aud neither a string nor strings",
            sign(&rsa, None, &with("aud", json!(["other-api", 7]))),
            "audience",
        ),
        (
            "aud when none configured",
            sign(&rsa, None, &claims("https://noaud.test")),
            "audience",
        ),
        (
            "missing subject",
            sign(&rsa, None, &without("sub")),
            "subject",
        ),
        (
            "another key's signature",
            sign(&other_rsa, None, &good),
            "signature",
        ),
        (
            "ES256 key for an RS issuer",
            sign(&es256, None, &good),
            "algorithm",
        ),
        ("truncated", valid[..valid.len() - 6].to_string(), ""),
        ("re-padded base64", format!("{h}==.{p}.{s}"), "malformed"),
        ("re-padded signature", format!("{valid}=="), ""),
        (
            "non-JSON payload",
            format!("{h}.{}.{s}", b64(b"this is not json")),
            "malformed",
        ),
        (
            "JSON array payload",
            format!("{h}.{}.{s}", b64(b"[1,2,3]")),
            "malformed",
        ),
        // Not JWT-shaped (not exactly three parts): treated as opaque, so introspected.
        ("duplicated dots", format!("{h}..{p}.{s}"), "not active"),
        ("four parts", format!("{valid}.{s}"), "not active"),
        (
            "crit header",
            sign_with_header(
                &rsa,
                json!({"alg":"RS256","crit":["b64"],"b64":false}),
                &good,
            ),
            "critical",
        ),
        (
            "jku elsewhere",
            sign_with_header(
                &attacker,
                json!({"alg":"RS256","jku":"http://127.0.0.1:1/jwks.json","kid":"k1"}),
                &claims("https://kid.test"),
            ),
            "signature",
        ),
        (
            "embedded jwk",
            sign_with_header(
                &attacker,
                json!({"alg":"RS256","jwk":{"kty":"RSA","n":"x","e":"AQAB"}}),
                &good,
            ),
            "signature",
        ),
        ("garbage", "%%%%".to_string(), ""),
    ];
    for (name, token, hint) in &attacks {
        let (status, www, body) = call(&client, &url, token, "application/json").await;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(www.contains(r#"error="invalid_token""#), "{name}: {www}");
        assert!(
            www.starts_with(r#"Bearer realm="authgate""#),
            "{name}: {www}"
        );
        assert_eq!(body["error"], "invalid_token", "{name}");
        let description = body["error_description"].as_str().unwrap().to_lowercase();
        assert!(
            description.contains(hint),
            "{name}: {description:?} lacks {hint:?}"
        );
        assert!(
            !description.contains("begin public key"),
            "{name}: key material in the answer"
        );
    }

    // A token over the size limit is refused before decoding; a 1 MiB one too.
    let (status, _, body) = call(&client, &url, &"a".repeat(17 * 1024), "*/*").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("larger"));
    let huge = client
        .get(&url)
        .header(
            "Authorization",
            format!("Bearer {}", "a".repeat(1024 * 1024)),
        )
        .send()
        .await;
    if let Ok(r) = huge {
        assert!(r.status().is_client_error(), "1 MiB token: {}", r.status());
    }

    // A browser route with a bad bearer token answers 401, never a login redirect.
    let (status, _, _) = call(&client, &env.gw.url("/app"), "bad.token.here", "text/html").await;
    assert_eq!(status, 401);

    // Scopes: read/write tokens may not use /admin; an admin token may.
    let (status, www, body) = call(&client, &env.gw.url("/admin/x"), &valid, "*/*").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        www.contains(r#"error="insufficient_scope""#) && www.contains(r#"scope="admin""#),
        "{www}"
    );
    let mut admin_claims = without("scope");
    admin_claims["scp"] = json!(["admin"]);
    let admin = sign(&rsa, None, &admin_claims);
    assert_eq!(
        call(&client, &env.gw.url("/admin/x"), &admin, "*/*")
            .await
            .0,
        200
    );

    // A cached token stops being accepted at its exp.
    let short = sign(&rsa, None, &with("exp", json!(now() + 2)));
    assert_eq!(call(&client, &url, &short, "*/*").await.0, 200);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, _, body) = call(&client, &url, &short, "*/*").await;
    assert_eq!(status, 401, "{body}");

    // Identity headers forged next to a valid token are stripped.
    let r = client
        .get(&url)
        .header("Authorization", format!("Bearer {valid}"))
        .header("X-Forwarded-User", "admin")
        .send()
        .await
        .unwrap();
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-user"], "svc-1");
    assert!(echo["headers"]["authorization"].is_null(), "{echo}");

    // On a public route no token is checked, so none is consumed: Authorization goes on as sent,
    // whatever it holds.
    for sent in [format!("Bearer {valid}"), "Basic dXNlcjpwYXNz".to_string()] {
        let r = client
            .get(env.gw.url("/public/echo"))
            .header("Authorization", &sent)
            .send()
            .await
            .unwrap();
        let echo: Value = r.json().await.unwrap();
        assert_eq!(echo["headers"]["authorization"], sent.as_str());
        assert!(echo["headers"]["x-forwarded-user"].is_null(), "{echo}");
    }

    let logs = env.gw.logs();
    assert!(!logs.contains("panicked"));
    assert!(!logs.contains(&valid), "a token reached the log");
    assert!(
        !logs.contains(HMAC_SECRET),
        "the HMAC secret reached the log"
    );
}

/// (n, e) of a PKCS#1 RSAPublicKey (`SEQUENCE { n INTEGER, e INTEGER }`), base64url.
fn rsa_components(der: &[u8]) -> (String, String) {
    let (seq, _) = der_value(der);
    let (n, rest) = der_value(seq);
    let (e, _) = der_value(rest);
    let unsigned = |v: &[u8]| {
        v.iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<_>>()
    };
    (b64(&unsigned(n)), b64(&unsigned(e)))
}

/// The value of the first DER element and the bytes after it.
fn der_value(der: &[u8]) -> (&[u8], &[u8]) {
    let (len, header) = match der[1] {
        l if l < 0x80 => (l as usize, 2),
        0x81 => (der[2] as usize, 3),
        0x82 => (((der[2] as usize) << 8) | der[3] as usize, 4),
        _ => panic!("unsupported DER length"),
    };
    (&der[header..header + len], &der[header + len..])
}

/// Tokens from the real provider: client credentials and auth-code JWT access tokens, opaque
/// tokens through introspection, then key rotation and a flood of unknown kids.
#[tokio::test]
async fn provider_tokens_introspection_and_rotation() {
    let mut env = Env::start(EnvOptions {
        extra_toml: r#"
[bearer]
oidc_audiences = ["http://api.example.test"]
unknown_kid_min_interval = "5s"
"#
        .to_string(),
        op_extra: json!({"accessTokenFormat": "jwt"}),
        ..Default::default()
    });
    let client = reqwest::Client::new();
    let url = env.gw.url("/api/items");
    env.gw.wait_ready(Duration::from_secs(10)).await;

    // An access token from the provider's token endpoint for the basic client.
    let token_for = |form: &'static [(&'static str, &'static str)]| {
        let request = client
            .post(format!("{}/token", env.op.issuer()))
            .basic_auth(BASIC_CLIENT, Some(CLIENT_SECRET))
            .form(form);
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"))
                .to_string()
        }
    };
    let client_credentials = || {
        token_for(&[
            ("grant_type", "client_credentials"),
            ("resource", "http://api.example.test"),
            ("scope", "api:read"),
        ])
    };
    // Without a resource the provider issues opaque tokens.
    let opaque_token = || token_for(&[("grant_type", "client_credentials"), ("scope", "openid")]);

    // A client-credentials JWT access token for the resource.
    let cc = client_credentials().await;
    assert_eq!(cc.split('.').count(), 3, "a JWT access token");
    let (status, _, body) = call(&client, &url, &cc, "*/*").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-forwarded-user"], BASIC_CLIENT);

    // An opaque token (no resource): introspected at the provider, then served from the cache.
    let opaque = opaque_token().await;
    assert_ne!(opaque.split('.').count(), 3, "an opaque token: {opaque}");
    // Another, not shown to the gateway until the provider is down (below).
    let unseen = opaque_token().await;
    for _ in 0..2 {
        let (status, _, body) = call(&client, &url, &opaque, "*/*").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["headers"]["x-forwarded-user"], BASIC_CLIENT, "{body}");
    }
    let (status, _, body) = call(&client, &url, "not-a-real-opaque-token", "*/*").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("not active"));

    // Rotation: the provider signs with a new key; the gateway refetches on the unknown kid.
    let new_kid = rotate_provider_keys(&env).await;
    let new_token = client_credentials().await;
    let header: Value = serde_json::from_slice(&{
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(new_token.split('.').next().unwrap())
            .unwrap()
    })
    .unwrap();
    assert_eq!(header["kid"], new_kid.as_str());
    let (status, _, body) = call(&client, &url, &new_token, "*/*").await;
    assert_eq!(status, 200, "{body}");
    // The old key still verifies tokens signed before the rotation.
    assert_eq!(call(&client, &url, &cc, "*/*").await.0, 200);

    // A flood of random kids: all 401, and at most the configured refetch rate.
    let attacker = generate(Algorithm::RS256);
    let before = env
        .gw
        .logs()
        .matches("JWKS refetched for an unknown kid")
        .count();
    let flood_started = std::time::Instant::now();
    for i in 0..40 {
        let mut c = claims(&env.op.issuer());
        c["aud"] = json!("http://api.example.test");
        let token = sign(&attacker, Some(&format!("random-kid-{i}")), &c);
        assert_eq!(call(&client, &url, &token, "*/*").await.0, 401);
    }
    let elapsed = flood_started.elapsed().as_secs();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refetches = env
        .gw
        .logs()
        .matches("JWKS refetched for an unknown kid")
        .count()
        - before;
    let allowed = 1 + (elapsed / 5) as usize;
    assert!(
        refetches <= allowed,
        "{refetches} refetches in {elapsed}s (allowed {allowed})"
    );

    // The provider goes down. Tokens judged before are served from the cache; a token the
    // gateway cannot judge is refused as the provider's failure (502), not as a bad token (401,
    // which tells a client to throw its token away), and its failure is not remembered.
    env.op.stop();
    assert_eq!(call(&client, &url, &opaque, "*/*").await.0, 200);
    assert_eq!(call(&client, &url, &cc, "*/*").await.0, 200);
    for _ in 0..2 {
        let (status, www_authenticate, body) = call(&client, &url, &unseen, "*/*").await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["error"], "provider_unavailable", "{body}");
        assert_eq!(www_authenticate, "");
    }
    assert!(env.gw.logs().contains("introspection request failed"));
    assert!(!env.gw.logs().contains(&unseen));
    assert!(!env.gw.logs().contains("panicked"));
}

/// A user's access token from the authorization-code flow (JWT for the resource) works as a
/// bearer token for API clients; the same user's opaque token works through introspection.
#[tokio::test]
async fn access_tokens_from_the_login_work_as_bearer_tokens() {
    // With a JWT access token, `pass_access_token` alone; with an opaque one, also
    // `pass_authorization_header`: each passes the verified token on in its own header.
    for (jwt, op_extra) in [
        (
            true,
            json!({"defaultResource": true, "accessTokenFormat": "jwt"}),
        ),
        (false, json!({})),
    ] {
        let pass_authorization_header = !jwt;
        let env = Env::start(EnvOptions {
            extra_toml: format!(
                r#"
[headers]
pass_access_token = true
pass_authorization_header = {pass_authorization_header}

[bearer]
oidc_audiences = ["http://api.example.test"]
"#
            ),
            op_extra,
            ..Default::default()
        });
        let mut b = Browser::new();
        login(&mut b, &env, "/app", "alice").await;
        let token = forwarded_access_token(&mut b, &env, "/app").await;
        assert_eq!(token.split('.').count() == 3, jwt, "{token}");
        let client = reqwest::Client::new();
        let (status, _, body) = call(&client, &env.gw.url("/api/me"), &token, "*/*").await;
        assert_eq!(status, 200, "jwt={jwt}: {body}");
        assert_eq!(body["headers"]["x-forwarded-user"], "alice");
        assert_eq!(body["headers"]["x-forwarded-access-token"], token.as_str());
        let authorization = &body["headers"]["authorization"];
        if pass_authorization_header {
            assert_eq!(*authorization, format!("Bearer {token}"), "{body}");
        } else {
            assert!(authorization.is_null(), "{body}");
        }
    }
}
