//! A real browser: headless Chromium (Debian's package, driven by playwright-core from
//! tests/support/browser.mjs) logs in through the gateway at the provider's own pages, sees the
//! upstream's page with its identity, logs out through the provider's confirmation page (with
//! the `id_token_hint` the browser's logout cookie kept), and is sent to login again.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

#[tokio::test]
async fn browser_login_and_logout() {
    let env = Env::start(EnvOptions {
        extra_toml: LOGGED_OUT_TOML.to_string(),
        ..Default::default()
    });
    env.gw.wait_ready(std::time::Duration::from_secs(10)).await;
    let shots = tempfile::tempdir().unwrap();
    let gateway = env.gw.url("");
    let issuer = env.op.issuer();
    let dir = shots.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("browser.mjs")
            .arg(&gateway)
            .arg(&issuer)
            .arg(&dir)
            .current_dir(support_dir())
            .output()
            .expect("node must be installed")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "browser.mjs printed {stdout:?}, stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{seen}\n{}", env.gw.logs());
    assert_eq!(seen["loginPage"], true, "{seen}");
    assert_eq!(seen["backAt"], "/", "{seen}");
    assert_eq!(seen["heading"], "Hello alice", "{seen}");
    let body = seen["body"].as_str().unwrap();
    assert!(
        body.contains("x-forwarded-email") && body.contains("alice@example.test"),
        "{body}"
    );
    assert!(
        !body.contains("_authgate"),
        "the gateway's cookies reached the upstream: {body}"
    );
    assert_eq!(seen["logoutCookiePath"], "/oauth2/logout", "{seen}");
    assert_eq!(seen["endSessionPage"], true, "{seen}");
    assert_eq!(
        seen["endSessionHint"], true,
        "the ID token went from the logout cookie to the provider: {seen}"
    );
    assert_eq!(seen["loggedOutAt"], "/logged-out", "{seen}");
    assert_eq!(seen["afterLogout"], "login page", "{seen}");
    assert!(shots.path().join("logged-in.png").exists());
}
