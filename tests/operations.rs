//! Running the gateway: config checking, a provider that is down at boot, WebSockets, TLS.

mod common;

use common::*;
use reqwest::Method;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

fn check_config(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    check_path(&path)
}

fn check_path(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("-c")
        .arg(path)
        .arg("--test")
        .env("AUTHGATE_CLIENT_SECRET", "from-the-environment")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const VALID: &str = r#"
[upstream]
url = "http://127.0.0.1:3000"
[oidc]
issuer = "https://id.example.test/realms/main"
client_id = "gw"
client_secret = "${AUTHGATE_CLIENT_SECRET}"
redirect_url = "https://app.example.test/oauth2/callback"
"#;

/// `--test` exits 0 on a valid file and 64 with every problem named by key otherwise.
#[test]
fn config_check_names_every_problem() {
    let (code, out, _) = check_config(VALID);
    assert_eq!(code, 0);
    assert!(out.contains("configuration ok"));

    // The shipped reference file is valid.
    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    let (code, _, err) = check_path(&reference);
    assert_eq!(code, 0, "gateway.toml: {err}");

    let (code, _, err) = check_path(std::path::Path::new("/nonexistent/gateway.toml"));
    assert_eq!(code, 64);
    assert!(err.contains("cannot read the file"), "{err}");

    let (code, _, err) = check_config("[server]\nlisten = \"127.0.0.1:1\n[oidc]\n");
    assert_eq!(code, 64);
    assert!(err.contains("TOML syntax error at line 2, column"), "{err}");

    let cases = [
        (
            VALID.replace("[oidc]", "[oidc]\nclient_secrett = \"x\""),
            "oidc.client_secrett: unknown key",
        ),
        (
            VALID.replace("https://id.example.test/realms/main", "not a url"),
            "oidc.issuer:",
        ),
        (
            VALID.replace("client_secret = \"${AUTHGATE_CLIENT_SECRET}\"", ""),
            "oidc.client_secret: is required",
        ),
        (
            VALID.replace("http://127.0.0.1:3000", "127.0.0.1:3000"),
            "upstream.url:",
        ),
        (
            VALID.replace("${AUTHGATE_CLIENT_SECRET}", "${AUTHGATE_UNSET_VARIABLE}"),
            "oidc.client_secret: environment variable AUTHGATE_UNSET_VARIABLE is not set",
        ),
        (
            format!("{VALID}\n[session]\nidle_timeout = \"often\""),
            "session.idle_timeout:",
        ),
        (
            format!("{VALID}\n[[routes]]\nprefix = \"/x\"\nauth = \"sometimes\""),
            "routes[0].auth:",
        ),
        (format!("{VALID}\n[server]\nlisten = 8080"), "server.listen"),
        (
            format!(
                "{VALID}\n[session]\ncookie_name = \"__Host-ag\"\ncookie_domain = \"example.com\""
            ),
            "session.cookie_name: a __Host- name needs cookie_path = \"/\" and no cookie_domain",
        ),
    ];
    for (text, expected) in &cases {
        let (code, _, err) = check_config(text);
        assert_eq!(code, 64, "{expected}");
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !err.contains("from-the-environment"),
            "a secret was printed"
        );
    }

    // Several problems at once, values of the wrong type among them (those once stopped the
    // check at the first), named by key without their value.
    let many = VALID
        .replace("https://id.example.test/realms/main", "nope")
        .replace("[oidc]", "[oidc]\ntypo = 1\nscopes = [\"profile\"]");
    let many = format!("[server]\nthreads = \"four\"\naccess_log = 1\n{many}\n[[routes]]\nprefix = \"/x\"\nauth = [\"public\"]\nlissen = 1");
    let (_, _, err) = check_config(&many);
    for key in [
        "oidc.issuer:",
        "oidc.typo: unknown key",
        "oidc.scopes:",
        "server.threads: invalid type: string, expected",
        "server.access_log: invalid type: integer, expected a boolean",
        "routes[0].auth: invalid type: sequence, expected a string",
        "routes[0].lissen: unknown key",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(!err.contains("four"), "a value was printed:\n{err}");

    // Running (not --test) on a bad file also exits 64 without starting.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[oidc]\n").unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(64));
}

/// The provider is down at boot: the gateway serves, is not ready, answers login with 503;
/// once the provider is up, login works without a restart.
#[tokio::test]
async fn provider_down_at_boot_then_up() {
    let port = free_port();
    let admin = free_port();
    let op_port = free_port();
    let upstream = start_upstream();
    let toml = gateway_toml(
        port,
        admin,
        &format!("http://127.0.0.1:{op_port}"),
        upstream.port(),
        &EnvOptions::default(),
    );
    let gw = Gateway::start_with(toml, port, admin);
    let client = reqwest::Client::new();

    let ready = client.get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["not_ready"][0], "provider_metadata");
    // The proxy listener is up meanwhile, and /readyz knows it is this gateway's.
    assert_eq!(body["checks"]["proxy_listener"], true, "{body}");

    let mut b = Browser::new();
    let login_page = b.get(&gw.url("/app")).await;
    assert_eq!(login_page.status, 503);
    assert!(
        login_page.body.contains("not available yet"),
        "{}",
        login_page.body
    );
    assert!(login_page.set_cookie("_authgate_login").is_none());
    // Public routes are served meanwhile.
    let public = b
        .request(Method::GET, &gw.url("/public/x"), &[], None)
        .await;
    assert_eq!(public.status, 200);

    let (op, _op_dir) = start_op(port, op_port, serde_json::json!({}));
    assert_eq!(op.port(), op_port);
    gw.wait_ready(Duration::from_secs(15)).await;
    let first = b.get(&gw.url("/app")).await;
    assert_eq!(first.status, 302);
    let callback = provider_login(&mut b, first.location(), "alice", port).await;
    assert_eq!(callback.status, 302, "{}", callback.body);
    let page = b.get(&gw.url("/app")).await;
    assert_eq!(page.json()["headers"]["x-forwarded-user"], "alice");
    assert!(gw.logs().contains("loading provider metadata failed"));
}

/// A proxy address another process holds: once pingora's 30 s of bind retries are over, the
/// gateway exits (69, EX_UNAVAILABLE) naming the address, rather than running on without its
/// proxy listener while its admin listener says it is healthy.
#[test]
fn a_listener_that_cannot_open_stops_the_gateway() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let admin = free_port();
    std::fs::write(
        &path,
        VALID.replace(
            "[upstream]",
            &format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             pid_file = \"{dir}/gw.pid\"\nupgrade_sock = \"{dir}/gw.sock\"\n[upstream]",
                dir = dir.path().display()
            ),
        ),
    )
    .unwrap();
    let log = dir.path().join("authgate.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("-c")
        .arg(&path)
        .env("AUTHGATE_CLIENT_SECRET", "from-the-environment")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut readiness_seen = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // Meanwhile the port accepts connections (the held socket's), but the proxy listener is
        // not this gateway's: /readyz must say so.
        if readiness_seen.is_none() && started.elapsed() > Duration::from_secs(2) {
            assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
            readiness_seen = raw_get(&format!("http://127.0.0.1:{admin}/readyz")).ok();
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!(
                "still running after 60 s:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(69), "{logs}");
    assert!(logs.contains("cannot open a listener; exiting"), "{logs}");
    let (ready_status, ready_body) = readiness_seen.expect("/readyz answered while retrying");
    assert_eq!(ready_status, 503, "{ready_body}");
    let ready: serde_json::Value = serde_json::from_str(&ready_body).unwrap();
    assert_eq!(ready["checks"]["proxy_listener"], false, "{ready}");
    assert!(ready["not_ready"]
        .as_array()
        .unwrap()
        .contains(&"proxy_listener".into()));
    assert!(
        logs.contains(&format!("127.0.0.1:{port} still in use")),
        "{logs}"
    );
    drop(taken);
}

/// Open a WebSocket through the gateway with a raw socket; returns the response head and stream.
fn ws_connect(port: u16, cookie: Option<&str>) -> (String, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: _authgate={c}\r\n"));
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         X-Forwarded-User: forged\r\n{cookie}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), s)
}

/// One unmasked server text frame (payloads under 64 KiB).
fn read_frame(s: &mut TcpStream) -> String {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let mut len = (h[1] & 0x7f) as usize;
    if len == 126 {
        let mut l = [0u8; 2];
        s.read_exact(&mut l).unwrap();
        len = u16::from_be_bytes(l) as usize;
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

/// WebSocket upgrades pass through for a logged-in user, with identity headers; not without.
#[tokio::test]
async fn websocket_upgrade_for_authenticated_users() {
    let env = Env::start(EnvOptions::default());
    let (head, _) = ws_connect(env.gw.port, None);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    let mut b = Browser::new();
    login(&mut b, &env, "/app", "alice").await;
    let cookie = b.cookie("_authgate").unwrap();
    let port = env.gw.port;
    let (head, mut s) = tokio::task::spawn_blocking(move || ws_connect(port, Some(&cookie)))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let hello = read_frame(&mut s);
    let hello: serde_json::Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["headers"]["x-forwarded-user"], "alice");
    // A masked client text frame "hi".
    let mask = [1u8, 2, 3, 4];
    let payload: Vec<u8> = b"hi"
        .iter()
        .enumerate()
        .map(|(i, c)| c ^ mask[i % 4])
        .collect();
    let mut frame = vec![0x81, 0x80 | 2];
    frame.extend_from_slice(&mask);
    frame.extend_from_slice(&payload);
    s.write_all(&frame).unwrap();
    assert_eq!(read_frame(&mut s), "echo:hi");
}

/// `--test` loads the TLS certificate and key as the listener will: a key file that holds no
/// usable key is a configuration error (64) before anything starts, not only at startup.
#[test]
fn config_check_loads_the_tls_files() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let cert_file = write("tls.crt", &cert.cert.pem());
    let with_tls = |key_file: &str| {
        format!("{VALID}[server.tls]\ncert_file = \"{cert_file}\"\nkey_file = \"{key_file}\"\n")
    };

    let good = write("tls.key", &cert.signing_key.serialize_pem());
    let (code, stdout, stderr) = check_config(&with_tls(&good));
    assert_eq!(code, 0, "{stdout}{stderr}");

    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    for (name, text) in [
        ("cert-as-key.pem", cert.cert.pem()),
        (
            "another-certificate-s-key.pem",
            other.signing_key.serialize_pem(),
        ),
        (
            "garbage.pem",
            "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n".into(),
        ),
        ("empty.pem", String::new()),
    ] {
        let (code, _, stderr) = check_config(&with_tls(&write(name, &text)));
        assert_eq!(code, 64, "{name}: {stderr}");
        assert!(
            stderr.contains("server.tls: cannot load certificate or key"),
            "{name}: {stderr}"
        );
        assert!(
            !stderr.contains("bm90IGEga2V5"),
            "{name}: the file's content is not echoed"
        );
    }

    // Started for real (not --test) with a key it cannot use: the same error and exit, where
    // pingora alone would panic in the listener's task and leave the process running.
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, with_tls(&cert_file)).unwrap();
    let out = Command::new("timeout")
        .arg("20")
        .arg(env!("CARGO_BIN_EXE_authgate"))
        .arg("-c")
        .arg(&path)
        .env("AUTHGATE_CLIENT_SECRET", "from-the-environment")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("server.tls: cannot load certificate or key"),
        "{stderr}"
    );
}

/// The listener serves HTTPS when given a certificate and key.
#[tokio::test]
async fn tls_listener() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let mut toml = gateway_toml(
        port,
        admin,
        "http://127.0.0.1:1",
        upstream.port(),
        &EnvOptions::default(),
    );
    toml = toml.replace(
        "grace_period = \"0s\"",
        &format!(
            "grace_period = \"0s\"\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"",
            cert_path.display(),
            key_path.display()
        ),
    );
    let gw = Gateway::start_with(toml, port, admin);
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://127.0.0.1:{}/public/tls", gw.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["url"], "/public/tls");
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/public/tls", gw.port))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // /readyz proves the TLS listener too: its probe is taken and dropped before any handshake
    // (the provider is down here, so only that check is true). The harness's port check and the
    // plain request above each logged one; the probe adds none.
    // The server logs the plain request's failure after the client has given up, so wait for
    // that line before counting.
    let handshake_errors = || gw.logs().matches("handshake error").count();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while handshake_errors() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = handshake_errors();
    assert!(before >= 2, "{}", gw.logs());
    let ready: serde_json::Value = client
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["proxy_listener"], true, "{ready}");
    assert_eq!(ready["not_ready"][0], "provider_metadata", "{ready}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handshake_errors(), before, "{}", gw.logs());
}

/// At the most verbose level, pingora's lines that print whole headers stay out of the log: no
/// setting may log a client's `Authorization` or cookies (README, "Security notes").
#[tokio::test]
async fn the_most_verbose_log_holds_no_credential() {
    let port = free_port();
    let admin = free_port();
    let upstream = start_upstream();
    let toml = gateway_toml(
        port,
        admin,
        "http://127.0.0.1:1",
        upstream.port(),
        &EnvOptions::default(),
    );
    let gw = Gateway::start_logging(toml, port, admin, "trace");
    let (status, _) = raw_request(
        port,
        "GET",
        "/public/x",
        &[
            ("Authorization", "Bearer SECRETTOKEN0123456789"),
            ("Cookie", "theirs=SECRETCOOKIE0123456789"),
        ],
    )
    .unwrap();
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = gw.logs();
    // Verbose indeed: the gateway's own debug and trace lines are there.
    assert!(logs.contains("DEBUG") && logs.contains("TRACE"), "{logs}");
    assert!(!logs.contains("SECRETTOKEN"), "{logs}");
    assert!(!logs.contains("SECRETCOOKIE"), "{logs}");
}
