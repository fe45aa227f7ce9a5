//! One access-log line and the request metrics per request, written in the `logging` phase.
//!
//! The line (target `access`, JSON with `server.log_format = "json"`) carries the request id,
//! method, route, status, outcome, auth method, user (the configured user claim, or its
//! SHA-256 prefix with `server.access_log_hash_user`), and the total and auth durations. Never
//! the path's query, a token, a cookie or a secret.

use crate::metrics::{Outcome, HOT, METRICS};
use crate::proxy::RequestCtx;
use http::HeaderName;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

/// A client's request id is kept when it is 1 to 128 characters of `[A-Za-z0-9._-]`;
/// otherwise (or without one) the gateway makes one: a random per-process prefix and a counter,
/// unique without a random draw per request (ids correlate log lines; they guard nothing).
pub fn request_id(req: &RequestHeader, header: &HeaderName) -> String {
    req.headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| {
            let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            hex_id((u128::from(*PROCESS_PREFIX) << 56) | u128::from(n & ((1 << 56) - 1)))
        })
}

/// The 22 low hex digits of `id`. Written by hand: `format!` cost some 1,900 instructions per
/// request, a fifth of authgate's own share of a proxied request (measured under callgrind).
fn hex_id(id: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..22)
        .rev()
        .map(|i| char::from(DIGITS[((id >> (4 * i)) & 0xf) as usize]))
        .collect()
}

static PROCESS_PREFIX: LazyLock<u32> = LazyLock::new(rand::random);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Record the finished request: metrics, then the access-log line.
pub fn record(ctx: &RequestCtx, method: &str, status: u16, failed: bool) {
    let route = ctx.route.as_ref().map_or("gateway", |r| r.name.as_str());
    let outcome = if failed && ctx.outcome == Outcome::Proxied {
        METRICS.upstream_errors.inc();
        Outcome::Error
    } else {
        ctx.outcome
    };
    let total = ctx.started.elapsed();
    ctx.route
        .as_ref()
        .map_or(&HOT.gateway_route, |r| &r.metrics)
        .record(outcome, total);
    if !ctx.config.server.access_log {
        return;
    }
    let user = ctx.auth.as_ref().map(|a| {
        let name = ctx.config.headers.user_of(a.identity());
        if ctx.config.server.access_log_hash_user {
            Sha256::digest(name.as_bytes())[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        } else {
            name
        }
    });
    tracing::info!(
        target: "access",
        request_id = %ctx.request_id,
        method,
        route,
        status,
        outcome = outcome.as_str(),
        auth = ctx.auth.as_ref().map_or("none", |a| a.method()),
        user = user.as_deref().unwrap_or("-"),
        duration_ms = total.as_secs_f64() * 1000.0,
        auth_us = ctx.auth_time.as_secs_f64() * 1e6,
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_safe_and_made_otherwise() {
        assert_eq!(hex_id(0xabc << 56 | 0x12), "00000abc00000000000012");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("X-Request-Id", "abc-123.x_y").unwrap();
        assert_eq!(
            request_id(&req, &HeaderName::from_static("x-request-id")),
            "abc-123.x_y"
        );
        for bad in ["", "a b", "<script>", &"x".repeat(129)] {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            let _ = req.insert_header("X-Request-Id", bad);
            let id = request_id(&req, &HeaderName::from_static("x-request-id"));
            assert_eq!(id.len(), 22, "{bad:?}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }
}
