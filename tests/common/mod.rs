//! Test harness: the real `authgate` binary, a real OpenID provider (npm `oidc-provider`, in
//! `tests/support/op.mjs`), the echo upstream (`tests/support/upstream.mjs`) and, for negative
//! cases, a deliberately broken provider (`tests/support/rogue-op.mjs`). Everything listens on
//! 127.0.0.1 with ports picked per test, and every process is killed when its handle drops.
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use url::Url;

pub const BASIC_CLIENT: &str = "gw-basic";
pub const POST_CLIENT: &str = "gw-post";
pub const PUBLIC_CLIENT: &str = "gw-public";
/// A client whose back-channel logout tokens carry `sub` only (no session required).
pub const SUB_ONLY_CLIENT: &str = "gw-subonly";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";

pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support")
}

/// Install the pinned npm packages once (the CI script does it first; this covers `cargo test`
/// run by hand on a fresh checkout).
pub fn ensure_node_deps() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let dir = support_dir();
    if !dir.join("node_modules/oidc-provider").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm must be installed");
        assert!(status.success(), "npm ci in tests/support failed");
    }
    *done = true;
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
pub struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Node server from tests/support, with its ready line.
pub struct NodeServer {
    _proc: Proc,
    pub ready: Value,
}

impl NodeServer {
    pub fn start(script: &str, args: &[&str]) -> NodeServer {
        ensure_node_deps();
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(support_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be installed");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{script} did not become ready"));
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("{script} printed {line:?} instead of its ready line"));
        NodeServer {
            _proc: Proc { child },
            ready,
        }
    }

    pub fn port(&self) -> u16 {
        self.ready["port"].as_u64().unwrap() as u16
    }

    /// Kill the server now (an outage), rather than when the handle drops.
    pub fn stop(&mut self) {
        let _ = self._proc.child.kill();
        let _ = self._proc.child.wait();
    }

    pub fn issuer(&self) -> String {
        self.ready["issuer"].as_str().unwrap().to_string()
    }
}

/// The three clients the OP knows, all redirecting to the gateway on `gw_port`.
pub fn op_clients(gw_port: u16) -> Value {
    let base = format!("http://127.0.0.1:{gw_port}");
    let common = |id: &str, method: &str| {
        let mut c = json!({
            "client_id": id,
            "token_endpoint_auth_method": method,
            "redirect_uris": [format!("{base}/oauth2/callback")],
            "post_logout_redirect_uris": [format!("{base}/logged-out")],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "backchannel_logout_uri": format!("{base}/oauth2/backchannel-logout"),
            "backchannel_logout_session_required": true,
        });
        if method != "none" {
            c["client_secret"] = json!(CLIENT_SECRET);
        }
        c
    };
    let mut sub_only = common(SUB_ONLY_CLIENT, "client_secret_basic");
    sub_only["backchannel_logout_session_required"] = json!(false);
    json!([
        common(BASIC_CLIENT, "client_secret_basic"),
        common(POST_CLIENT, "client_secret_post"),
        common(PUBLIC_CLIENT, "none"),
        sub_only,
    ])
}

/// Start the real OpenID provider; `port` 0 for any.
pub fn start_op(gw_port: u16, port: u16, extra: Value) -> (NodeServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = json!({"port": port, "clients": op_clients(gw_port)});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    let path = dir.path().join("op.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let op = NodeServer::start("op.mjs", &[path.to_str().unwrap()]);
    (op, dir)
}

pub fn start_upstream() -> NodeServer {
    NodeServer::start("upstream.mjs", &["0"])
}

/// The real authgate binary with a generated configuration.
pub struct Gateway {
    _proc: Proc,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub config_path: PathBuf,
}

impl Gateway {
    /// Start authgate with `toml` (which must use `port` and `admin_port`), wait for /healthz
    /// and for the proxy port to accept.
    pub fn start_with(toml: String, port: u16, admin_port: u16) -> Gateway {
        Self::start_logging(
            toml,
            port,
            admin_port,
            "debug,pingora_core=warn,pingora_proxy=warn",
        )
    }

    /// [`Self::start_with`], logging what `AUTHGATE_LOG=log_filter` lets through.
    pub fn start_logging(toml: String, port: u16, admin_port: u16, log_filter: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, toml).unwrap();
        let log = dir.path().join("authgate.log");
        let child = Command::new(env!("CARGO_BIN_EXE_authgate"))
            .arg("-c")
            .arg(&config_path)
            .env("AUTHGATE_LOG", log_filter)
            .env("AUTHGATE_TEST_CLIENT_SECRET", CLIENT_SECRET)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let gw = Gateway {
            _proc: Proc { child },
            port,
            admin_port,
            dir,
            log,
            config_path,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The admin and proxy listeners are separate pingora services that bind
            // independently: /healthz can answer before the proxy port accepts.
            let healthy = raw_get_status(&gw.admin_url("/healthz")).is_ok_and(|s| s == 200);
            if healthy && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "authgate did not start:\n{}",
                gw.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (to send signals).
    pub fn pid(&self) -> u32 {
        self._proc.child.id()
    }

    /// Send a signal to the gateway process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait until /readyz answers 200.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(self.admin_url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "authgate never became ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The status of a plain HTTP/1.0 GET (blocking; used while waiting for startup).
pub fn raw_get_status(url: &str) -> std::io::Result<u16> {
    raw_get(url).map(|(status, _)| status)
}

/// A plain HTTP/1.0 GET (blocking): the status and the body.
pub fn raw_get(url: &str) -> std::io::Result<(u16, String)> {
    let u = Url::parse(url).unwrap();
    raw_request(u.port().unwrap(), "GET", u.path(), &[])
}

/// An HTTP/1.0 request to 127.0.0.1:`port` written byte for byte as given (blocking), where an
/// HTTP client would normalize the target or the method: the status and the body.
pub fn raw_request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("{method} {target} HTTP/1.0\r\nHost: x\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes())?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

/// Settings of one test environment.
pub struct EnvOptions {
    pub client_id: &'static str,
    pub auth_method: &'static str,
    pub response_mode: &'static str,
    pub scopes: Vec<&'static str>,
    /// Appended to the generated gateway.toml.
    pub extra_toml: String,
    /// Extra keys of the OP's config.
    pub op_extra: Value,
    /// Extra lines of the `[session]` table.
    pub session_extra: &'static str,
    /// Extra lines of the `[server]` table.
    pub server_extra: String,
}

impl EnvOptions {
    /// Forward-auth tests: 127.0.0.1 is a trusted proxy (other loopback addresses are not).
    pub fn trusting_loopback_proxy(self) -> Self {
        self.with_server_lines("trusted_proxies = [\"127.0.0.1/32\"]")
    }

    /// Extra lines of the `[server]` table.
    pub fn with_server_lines(mut self, lines: &str) -> Self {
        self.server_extra.push_str(lines);
        self.server_extra.push('\n');
        self
    }
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            client_id: BASIC_CLIENT,
            auth_method: "client_secret_basic",
            response_mode: "query",
            scopes: vec!["openid", "profile", "email", "groups"],
            extra_toml: String::new(),
            op_extra: json!({}),
            session_extra: "",
            server_extra: String::new(),
        }
    }
}

/// An OP, an upstream and a gateway wired together.
pub struct Env {
    pub op: NodeServer,
    pub upstream: NodeServer,
    pub gw: Gateway,
    _op_dir: tempfile::TempDir,
}

pub fn gateway_toml(
    port: u16,
    admin_port: u16,
    issuer: &str,
    upstream_port: u16,
    opts: &EnvOptions,
) -> String {
    let secret = if opts.auth_method == "none" {
        String::new()
    } else {
        "client_secret = \"${AUTHGATE_TEST_CLIENT_SECRET}\"".to_string()
    };
    let scopes: Vec<String> = opts.scopes.iter().map(|s| format!("{s:?}")).collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
threads = 1
pid_file = "/tmp/authgate-test-{port}.pid"
upgrade_sock = "/tmp/authgate-test-{port}.sock"
grace_period = "0s"
{server}
[upstream]
url = "http://127.0.0.1:{upstream_port}"

[oidc]
issuer = "{issuer}"
client_id = "{client}"
{secret}
redirect_url = "http://127.0.0.1:{port}/oauth2/callback"
scopes = [{scopes}]
token_endpoint_auth_method = "{method}"
response_mode = "{mode}"
retry_max_backoff = "1s"

[session]
cookie_secure = false
{session}

[headers.extra]
"X-Forwarded-Name" = "name"
"X-Sid" = "sid"

[[routes]]
name = "public"
prefix = "/public"
auth = "public"

[[routes]]
name = "api"
prefix = "/api"
auth = "api"
{extra}
"#,
        client = opts.client_id,
        method = opts.auth_method,
        mode = opts.response_mode,
        scopes = scopes.join(", "),
        extra = opts.extra_toml.replace("{GW_PORT}", &port.to_string()),
        session = opts.session_extra,
        server = opts.server_extra,
    )
}

/// `[logout]` landing on a public `/logged-out` route of the gateway (for `extra_toml`).
pub const LOGGED_OUT_TOML: &str = r#"
[logout]
post_logout_redirect_url = "http://127.0.0.1:{GW_PORT}/logged-out"

[[routes]]
name = "logged-out"
prefix = "/logged-out"
auth = "public"
"#;

/// Make the test provider sign with a new key (`POST /__test/rotate`); returns the new kid.
pub async fn rotate_provider_keys(env: &Env) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/__test/rotate", env.op.issuer()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["kid"].as_str().unwrap().to_string()
}

/// A gateway in front of the deliberately broken provider (`rogue-op.mjs`), client `gw`.
pub struct RogueEnv {
    pub rogue: NodeServer,
    pub upstream: NodeServer,
    pub gw: Gateway,
}

impl RogueEnv {
    pub async fn start() -> RogueEnv {
        let rogue = NodeServer::start("rogue-op.mjs", &["0"]);
        let port = free_port();
        let admin = free_port();
        let upstream = start_upstream();
        let opts = EnvOptions {
            client_id: "gw",
            ..Default::default()
        };
        let toml = gateway_toml(port, admin, &rogue.issuer(), upstream.port(), &opts);
        let gw = Gateway::start_with(toml, port, admin);
        gw.wait_ready(Duration::from_secs(10)).await;
        RogueEnv {
            rogue,
            upstream,
            gw,
        }
    }
}

impl Env {
    pub fn start(opts: EnvOptions) -> Env {
        let port = free_port();
        let admin_port = free_port();
        let (op, op_dir) = start_op(port, 0, opts.op_extra.clone());
        let upstream = start_upstream();
        let toml = gateway_toml(port, admin_port, &op.issuer(), upstream.port(), &opts);
        let gw = Gateway::start_with(toml, port, admin_port);
        Env {
            op,
            upstream,
            gw,
            _op_dir: op_dir,
        }
    }
}

/// One stored cookie.
#[derive(Debug, Clone)]
pub struct StoredCookie {
    pub name: String,
    pub value: String,
    pub path: String,
    /// The full Set-Cookie line, for attribute assertions.
    pub raw: String,
}

/// An HTTP client that behaves like a browser for cookies (name + path; like browsers, not by
/// port) but never follows redirects, so each hop can be asserted.
pub struct Browser {
    pub client: reqwest::Client,
    pub cookies: Vec<StoredCookie>,
}

/// A response with its body read.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub url: Url,
}

impl Resp {
    pub fn location(&self) -> Url {
        let loc = self
            .headers
            .get("location")
            .unwrap_or_else(|| panic!("no Location in {} {}", self.status, self.body))
            .to_str()
            .unwrap();
        self.url.join(loc).unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.clone())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.cookies.retain(|c| c.name != name);
        self.cookies.push(StoredCookie {
            name: name.into(),
            value: value.into(),
            path: "/".into(),
            raw: String::new(),
        });
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let path = url.path();
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|c| path.starts_with(&c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store(&mut self, url: &Url, headers: &HeaderMap) {
        for raw in headers.get_all("set-cookie").iter() {
            let raw = raw.to_str().unwrap().to_string();
            let mut parts = raw.split(';');
            let (name, value) = parts.next().unwrap().trim().split_once('=').unwrap();
            let mut path = url
                .path()
                .rsplit_once('/')
                .map_or("/", |(p, _)| p)
                .to_string();
            if path.is_empty() {
                path = "/".into();
            }
            let mut delete = value.is_empty();
            for attr in parts {
                let attr = attr.trim();
                let lower = attr.to_ascii_lowercase();
                if let Some(p) = lower.strip_prefix("path=") {
                    path = attr[5..5 + p.len()].to_string();
                }
                if lower == "max-age=0" || lower.starts_with("expires=thu, 01 jan 1970") {
                    delete = true;
                }
            }
            self.cookies.retain(|c| !(c.name == name && c.path == path));
            if !delete {
                self.cookies.push(StoredCookie {
                    name: name.into(),
                    value: value.into(),
                    path,
                    raw: raw.clone(),
                });
            }
        }
    }

    pub async fn request(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<&[(String, String)]>,
    ) -> Resp {
        let url = Url::parse(url).unwrap();
        let mut req = self.client.request(method, url.clone());
        if let Some(c) = self.cookie_header(&url) {
            req = req.header("Cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(form) = form {
            req = req.form(form);
        }
        let resp = req
            .send()
            .await
            // The whole error chain: "error sending request" alone does not say whether the
            // connection was refused, reset, or closed by the server mid-exchange.
            .unwrap_or_else(|e| panic!("request to {url} failed: {e:?}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        self.store(&url, &headers);
        let body = resp.text().await.unwrap_or_default();
        Resp {
            status,
            headers,
            body,
            url,
        }
    }

    /// GET as a program (Accept: application/json): 401 rather than a login redirect.
    pub async fn get_api(&mut self, url: &str) -> Resp {
        self.request(Method::GET, url, &[("Accept", "application/json")], None)
            .await
    }

    /// GET as a browser (Accept: text/html).
    pub async fn get(&mut self, url: &str) -> Resp {
        self.request(Method::GET, url, &[("Accept", "text/html,*/*")], None)
            .await
    }

    pub async fn post_form(&mut self, url: &str, form: &[(String, String)]) -> Resp {
        self.request(Method::POST, url, &[("Accept", "text/html")], Some(form))
            .await
    }
}

/// The first form of an HTML page: its action and fields (hidden ones with their values).
pub fn parse_form(html: &str, base: &Url) -> (Url, Vec<(String, String)>) {
    let doc = scraper::Html::parse_document(html);
    let form_sel = scraper::Selector::parse("form").unwrap();
    let input_sel = scraper::Selector::parse("input").unwrap();
    let form = doc
        .select(&form_sel)
        .next()
        .unwrap_or_else(|| panic!("no form in page: {html}"));
    let action = base
        .join(form.value().attr("action").unwrap_or(""))
        .unwrap();
    let fields = form
        .select(&input_sel)
        .filter_map(|i| {
            let name = i.value().attr("name")?;
            Some((
                name.to_string(),
                i.value().attr("value").unwrap_or("").to_string(),
            ))
        })
        .collect();
    (action, fields)
}

/// One browser navigation: a GET, or a form POST.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: Method,
    pub url: Url,
    pub form: Option<Vec<(String, String)>>,
}

/// Walk the provider's pages from `authorize_url` (login as `user`, consent) and stop at the
/// first navigation that goes back to the gateway (GET callback, or the form_post POST).
pub async fn walk_provider(b: &mut Browser, authorize_url: Url, user: &str, gw_port: u16) -> Step {
    let mut step = Step {
        method: Method::GET,
        url: authorize_url,
        form: None,
    };
    for _ in 0..20 {
        if step.url.port() == Some(gw_port) {
            return step;
        }
        let resp = b
            .request(
                step.method.clone(),
                step.url.as_str(),
                &[("Accept", "text/html")],
                step.form.as_deref(),
            )
            .await;
        if resp.status.is_redirection() {
            step = Step {
                method: Method::GET,
                url: resp.location(),
                form: None,
            };
            continue;
        }
        assert_eq!(
            resp.status, 200,
            "provider page {}: {}",
            step.url, resp.body
        );
        let (action, mut fields) = parse_form(&resp.body, &resp.url);
        for (k, v) in fields.iter_mut() {
            match k.as_str() {
                "login" => *v = user.to_string(),
                "password" => *v = "any-password".to_string(),
                _ => {}
            }
        }
        step = Step {
            method: Method::POST,
            url: action,
            form: Some(fields),
        };
    }
    panic!("the provider never sent the browser back");
}

/// [`walk_provider`], then the gateway's callback: returns the callback's response.
pub async fn provider_login(b: &mut Browser, authorize_url: Url, user: &str, gw_port: u16) -> Resp {
    let step = walk_provider(b, authorize_url, user, gw_port).await;
    let resp = b
        .request(
            step.method,
            step.url.as_str(),
            &[("Accept", "text/html")],
            step.form.as_deref(),
        )
        .await;
    Resp {
        url: step.url,
        ..resp
    }
}

/// The access token the upstream received as `X-Forwarded-Access-Token` (with
/// `headers.pass_access_token`) when `b` fetches `path`: the echo upstream answers with the
/// headers it saw.
pub async fn forwarded_access_token(b: &mut Browser, env: &Env, path: &str) -> String {
    let page = b.get(&env.gw.url(path)).await;
    page.json()["headers"]["x-forwarded-access-token"]
        .as_str()
        .unwrap_or_else(|| panic!("no X-Forwarded-Access-Token upstream: {}", page.body))
        .to_string()
}

/// Log in through the gateway starting at `path`; returns the callback response (302 to `path`).
pub async fn login(b: &mut Browser, env: &Env, path: &str, user: &str) -> Resp {
    let first = b.get(&env.gw.url(path)).await;
    assert_eq!(first.status, 302, "{}", first.body);
    provider_login(b, first.location(), user, env.gw.port).await
}

/// Query parameters of a URL as a map (last one wins).
pub fn query_map(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// Wait for a condition with a deadline.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
