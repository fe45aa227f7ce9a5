//! Running authgate in production: metrics read as exact lines after real traffic, forward-auth
//! behind a real nginx, spoofed forward-auth headers, SIGHUP reload, operator session ends, and
//! the access log.

mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

async fn scrape(gw: &Gateway) -> String {
    reqwest::get(gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn assert_line(metrics: &str, line: &str) {
    assert!(
        metrics.lines().any(|l| l == line),
        "missing line {line:?} in:\n{}",
        metrics
            .lines()
            .filter(|l| l.starts_with(line.split(['{', ' ']).next().unwrap()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// After a login, proxied requests, a bad bearer token, a back-channel logout and the JWKS
/// loads, the scrape shows exactly those.
#[tokio::test]
async fn metrics_after_real_traffic() {
    let env = Env::start(EnvOptions::default());
    env.gw.wait_ready(Duration::from_secs(10)).await;
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "alice").await;
    for _ in 0..3 {
        assert_eq!(b.get(&env.gw.url("/app")).await.status, 200);
    }
    let bad = reqwest::Client::new()
        .get(env.gw.url("/api/x"))
        .bearer_auth("not.a-valid.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    // The provider ends alice's session and calls the back-channel endpoint.
    let page = b
        .get(&format!(
            "{}/session/end?client_id={BASIC_CLIENT}",
            env.op.issuer()
        ))
        .await;
    let (action, mut fields) = parse_form(&page.body, &page.url);
    fields.push(("logout".into(), "yes".into()));
    b.post_form(action.as_str(), &fields).await;

    let m = scrape(&env.gw).await;
    assert_line(&m, "authgate_logins_total{result=\"success\"} 1");
    assert_line(&m, "authgate_sessions_created_total 1");
    assert_line(
        &m,
        "authgate_sessions_ended_total{reason=\"backchannel\"} 1",
    );
    assert_line(&m, "authgate_backchannel_logouts_total{result=\"ok\"} 1");
    assert_line(&m, "authgate_sessions 0");
    assert_line(
        &m,
        "authgate_requests_total{outcome=\"proxied\",route=\"default\"} 3",
    );
    assert_line(
        &m,
        "authgate_requests_total{outcome=\"redirected_to_login\",route=\"default\"} 1",
    );
    assert_line(
        &m,
        "authgate_requests_total{outcome=\"unauthorized\",route=\"api\"} 1",
    );
    assert_line(
        &m,
        "authgate_auth_decisions_total{method=\"bearer_jwt\",reason=\"malformed\",result=\"denied\"} 1",
    );
    assert_line(
        &m,
        "authgate_auth_decisions_total{method=\"session\",reason=\"ok\",result=\"allowed\"} 3",
    );
    assert_line(&m, "authgate_token_cache_misses_total 1");
    assert_line(&m, "authgate_token_cache_hits_total 0");
    assert_line(
        &m,
        "authgate_idp_requests_total{endpoint=\"discovery\",status=\"2xx\"} 1",
    );
    assert_line(
        &m,
        "authgate_idp_requests_total{endpoint=\"token\",status=\"2xx\"} 1",
    );
    assert_line(&m, "authgate_jwks_keys 3");
    assert!(m.contains("authgate_jwks_refresh_total{result=\"ok\"}"));
    assert!(m.contains("authgate_auth_duration_seconds_bucket{method=\"session\",le="));
    assert!(m.contains("authgate_request_duration_seconds_count{route=\"default\"}"));
    assert_line(
        &m,
        &format!(
            "authgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    );
    assert!(!m.contains("alice"), "no user in any label");
}

/// A real nginx with auth_request in front of the echo upstream.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master then stops its workers, which SIGKILL would orphan.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start_nginx(gw_port: u16, upstream_port: u16) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        r#"
user root;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /oauth2/auth {{
      internal;
      proxy_pass http://127.0.0.1:{gw_port};
      proxy_bind 127.0.0.1;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location / {{
      auth_request /oauth2/auth;
      auth_request_set $user $upstream_http_x_auth_request_user;
      auth_request_set $email $upstream_http_x_auth_request_email;
      auth_request_set $groups $upstream_http_x_auth_request_groups;
      proxy_set_header X-User $user;
      proxy_set_header X-Email $email;
      proxy_set_header X-Groups $groups;
      proxy_pass http://127.0.0.1:{upstream_port};
    }}
  }}
}}
"#
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx must be installed (scripts/install-deps.sh)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        child,
        port,
        _dir: dir,
    }
}

/// nginx auth_request: unauthenticated → 401 from nginx; authenticated → the upstream sees the
/// headers nginx derived from X-Auth-Request-*. Public routes pass without login. A client
/// that is not a trusted proxy cannot name a public path with X-Forwarded-Uri.
#[tokio::test]
async fn forward_auth_behind_nginx() {
    let env = Env::start(EnvOptions::default().trusting_loopback_proxy());
    let nginx = start_nginx(env.gw.port, env.upstream.port());
    let via_nginx = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);

    let mut b = Browser::new();
    let r = b.request(Method::GET, &via_nginx("/app"), &[], None).await;
    assert_eq!(r.status, 401, "nginx answers 401 without a session");
    let r = b
        .request(Method::GET, &via_nginx("/public/page"), &[], None)
        .await;
    assert_eq!(r.status, 200, "public route through nginx");

    login(&mut b, &env, "/app", "alice").await;
    let r = b
        .request(Method::GET, &via_nginx("/app/page"), &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = &r.json()["headers"];
    assert_eq!(h["x-user"], "alice");
    assert_eq!(h["x-email"], "alice@example.test");
    assert_eq!(h["x-groups"], "users,alice-group");

    // Straight to the gateway: 202 with the headers, 401 without a session.
    let r = b
        .request(Method::GET, &env.gw.url("/oauth2/auth"), &[], None)
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.headers["x-auth-request-user"], "alice");
    assert_eq!(r.headers["x-auth-request-preferred-username"], "alice");
    let mut anon = Browser::new();
    let r = anon
        .request(Method::GET, &env.gw.url("/oauth2/auth"), &[], None)
        .await;
    assert_eq!(r.status, 401);

    // A spoofed X-Forwarded-Uri from an untrusted address (127.0.0.2) is ignored.
    let untrusted = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    for header in ["X-Forwarded-Uri", "X-Original-URI"] {
        let r = untrusted
            .get(env.gw.url("/oauth2/auth"))
            .header(header, "/public/anything")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header} from an untrusted address");
    }
    // From the trusted address the same header is believed.
    let trusted = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
        .build()
        .unwrap();
    let r = trusted
        .get(env.gw.url("/oauth2/auth"))
        .header("X-Forwarded-Uri", "/public/anything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // ... but not one with traversal in it: the proxy asking forwards the path as sent, and may
    // read it otherwise than the gateway (tests/bad_input.rs has the other spellings).
    let r = trusted
        .get(env.gw.url("/oauth2/auth"))
        .header("X-Forwarded-Uri", "/public/../admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The upstream learns the client's address: a client's own X-Forwarded-For, -Proto and -Host
/// are replaced (an upstream allow-listing by address cannot be lied to), and a trusted proxy's
/// are kept, its chain extended.
#[tokio::test]
async fn forwarding_headers_are_believed_from_trusted_proxies_only() {
    let env = Env::start(EnvOptions::default().trusting_loopback_proxy());
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let echo = |client: reqwest::Client| {
        let url = env.gw.url("/public/page");
        async move {
            let r = client
                .get(url)
                .header("X-Forwarded-For", "203.0.113.9")
                .header("x-forwarded-for", "198.51.100.1")
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Host", "admin.example.test")
                // Not ours, but `HTTP_X_FORWARDED_FOR` to a CGI, WSGI or PHP upstream.
                .header("X_Forwarded_For", "10.6.6.6")
                .header("x_forwarded_host", "evil.example.test")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.unwrap();
            body["headers"].clone()
        }
    };
    let gateway_host = format!("127.0.0.1:{}", env.gw.port);

    let lookalikes = |h: &serde_json::Value| {
        h.as_object()
            .unwrap()
            .keys()
            .filter(|k| k.contains('_'))
            .cloned()
            .collect::<Vec<_>>()
    };
    let h = echo(from([127, 0, 0, 2])).await;
    assert_eq!(h["x-forwarded-for"], "127.0.0.2", "{h}");
    assert!(lookalikes(&h).is_empty(), "{h}");
    assert_eq!(h["x-forwarded-proto"], "http", "{h}");
    assert_eq!(h["x-forwarded-host"], gateway_host.as_str(), "{h}");

    let h = echo(from([127, 0, 0, 1])).await;
    assert_eq!(
        h["x-forwarded-for"], "203.0.113.9, 198.51.100.1, 127.0.0.1",
        "{h}"
    );
    assert_eq!(h["x-forwarded-proto"], "https", "{h}");
    assert_eq!(h["x-forwarded-host"], "admin.example.test", "{h}");
    assert!(lookalikes(&h).is_empty(), "{h}");

    // Without any, from a trusted proxy: the gateway's own view.
    let r = from([127, 0, 0, 1])
        .get(env.gw.url("/public/page"))
        .send()
        .await
        .unwrap();
    let h = r.json::<serde_json::Value>().await.unwrap()["headers"].clone();
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"], "http", "{h}");
    assert_eq!(h["x-forwarded-host"], gateway_host.as_str(), "{h}");
}

/// SIGHUP with a new public route applies it; SIGHUP with a broken file keeps the running
/// configuration and logs why; the session survives both.
#[tokio::test]
async fn sighup_reload() {
    let env = Env::start(EnvOptions::default());
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "alice").await;
    let anon = reqwest::Client::new();
    let status = |path: &'static str| {
        let anon = anon.clone();
        let url = env.gw.url(path);
        async move { anon.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/status/x").await, 401);

    let original = std::fs::read_to_string(&env.gw.config_path).unwrap();
    let with_route = format!(
        "{original}\n[[routes]]\nname = \"status\"\nprefix = \"/status\"\nauth = \"public\"\n"
    );
    std::fs::write(&env.gw.config_path, &with_route).unwrap();
    env.gw.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            status("/status/x").await == 200
        })
        .await,
        "the new public route applies: {}",
        env.gw.logs()
    );
    assert!(env.gw.logs().contains("configuration reloaded"));
    assert_eq!(
        b.get(&env.gw.url("/app")).await.status,
        200,
        "the session survived"
    );

    std::fs::write(
        &env.gw.config_path,
        format!("{with_route}\n[oidc]\nbogus = 1\n"),
    )
    .unwrap();
    env.gw.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            env.gw.logs().contains("configuration reload refused")
        })
        .await
    );
    assert!(env.gw.logs().contains("TOML syntax error") || env.gw.logs().contains("duplicate"));
    assert_eq!(
        status("/status/x").await,
        200,
        "the running configuration stays"
    );
    assert_eq!(
        b.get(&env.gw.url("/app")).await.status,
        200,
        "the session survived"
    );

    // A valid file with an unknown key is refused too, naming the key.
    std::fs::write(
        &env.gw.config_path,
        format!("{original}\n[bearer]\nmax_tokn_bytes = 1\n"),
    )
    .unwrap();
    env.gw.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            env.gw.logs().contains("bearer.max_tokn_bytes: unknown key")
        })
        .await
    );
    assert_eq!(status("/status/x").await, 200);
    let m = scrape(&env.gw).await;
    assert_line(&m, "authgate_config_reloads_total{result=\"ok\"} 1");
    assert_line(&m, "authgate_config_reloads_total{result=\"failed\"} 2");
}

/// An operator ends a user's sessions on the admin listener.
#[tokio::test]
async fn admin_ends_sessions() {
    let env = Env::start(EnvOptions::default());
    let mut a = Browser::new();
    let mut b = Browser::new();
    login(&mut a, &env, "/app", "alice").await;
    login(&mut b, &env, "/app", "bob").await;
    let client = reqwest::Client::new();
    let r = client
        .post(env.gw.admin_url("/sessions/end"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .post(env.gw.admin_url("/sessions/end?sub=alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["ended"], 1);
    let json = [("Accept", "application/json")];
    assert_eq!(
        a.request(Method::GET, &env.gw.url("/app"), &json, None)
            .await
            .status,
        401
    );
    assert_eq!(
        b.request(Method::GET, &env.gw.url("/app"), &json, None)
            .await
            .status,
        200
    );
    assert_line(
        &scrape(&env.gw).await,
        "authgate_sessions_ended_total{reason=\"admin\"} 1",
    );
}

/// JSON access log: one line per request with the request id, which the upstream and the client
/// also get; no cookie or token in it; the user hashed on request.
#[tokio::test]
async fn access_log_and_request_id() {
    let env = Env::start(
        EnvOptions::default()
            .with_server_lines("log_format = \"json\"\naccess_log_hash_user = true"),
    );
    let mut b = Browser::new();
    login(&mut b, &env, "/app", "alice").await;
    let r = b
        .request(
            Method::GET,
            &env.gw.url("/app?secret=q"),
            &[("X-Request-Id", "req-42")],
            None,
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "req-42");
    assert_eq!(r.json()["headers"]["x-request-id"], "req-42");
    let made = b
        .request(Method::GET, &env.gw.url("/public/x"), &[], None)
        .await;
    let id = made.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 22);
    let refused = Browser::new().get_api(&env.gw.url("/app")).await;
    assert!(refused.headers.contains_key("x-request-id"));

    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = env.gw.logs();
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["request_id"] == "req-42")
        .unwrap_or_else(|| panic!("no JSON access line for req-42:\n{logs}"));
    let f = &line["fields"];
    assert_eq!(line["target"], "access");
    assert_eq!(f["route"], "default");
    assert_eq!(f["status"], 200);
    assert_eq!(f["outcome"], "proxied");
    assert_eq!(f["auth"], "session");
    assert_eq!(f["user"].as_str().unwrap().len(), 16, "hashed user");
    assert_ne!(f["user"], "alice");
    assert!(f["duration_ms"].is_number() && f["auth_us"].is_number());
    let cookie = b.cookie("_authgate").unwrap();
    assert!(!logs.contains(&cookie), "a cookie reached the log");
    assert!(!logs.contains("secret=q"), "the query reached the log");
}
