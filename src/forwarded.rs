//! `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` on proxied requests: who the
//! client is and what it asked for, as far as the gateway can tell.
//!
//! The upstream sees the gateway's address as its peer, so without these every request of a
//! legacy app's log comes from the gateway. What a client writes in them is believed only from
//! a `server.trusted_proxies` address (a load balancer in front of the gateway): from anyone
//! else the values are replaced, since an upstream that reads `X-Forwarded-For` for an address
//! allow-list or a rate limit would otherwise take the client's word for its address. From a
//! trusted proxy, the gateway appends its peer to `X-Forwarded-For` and keeps the proxy's
//! `-Proto` and `-Host`, as nginx's `$proxy_add_x_forwarded_for` and Go's `ReverseProxy` do.
//!
//! Set on every proxied request unless `server.forwarded_headers = false`.

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::prelude::Result;
use std::net::IpAddr;

const FOR: &str = "X-Forwarded-For";
const PROTO: &str = "X-Forwarded-Proto";
const HOST: &str = "X-Forwarded-Host";

/// Whether `name` (any case, `_` as `-`) is one of the three headers set here, which no other
/// configured header may take.
pub fn is_forwarding_header(name: &str) -> bool {
    [FOR, PROTO, HOST]
        .iter()
        .any(|ours| crate::identity::same_canonical(&ours.to_ascii_lowercase(), name))
}

/// The request's client as the gateway's listener saw it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The peer's address (`None` on a Unix socket).
    pub ip: Option<IpAddr>,
    /// Whether the peer is in `server.trusted_proxies`.
    pub trusted_proxy: bool,
    /// Whether it connected over TLS.
    pub tls: bool,
}

/// Set the three headers on `req` for `client`.
pub fn set(req: &mut RequestHeader, client: Client) -> Result<()> {
    // `X_Forwarded_For` and the like are not ours, but servers that read `_` as `-` (CGI, WSGI,
    // PHP: both are `HTTP_X_FORWARDED_FOR`) would take them for ours: the client's go.
    let has_underscore = |name: &http::HeaderName| name.as_str().as_bytes().contains(&b'_');
    if req.headers.keys().any(has_underscore) {
        let lookalikes: Vec<http::HeaderName> = req
            .headers
            .keys()
            .filter(|name| has_underscore(name) && is_forwarding_header(name.as_str()))
            .cloned()
            .collect();
        for name in &lookalikes {
            req.remove_header(name);
        }
    }
    let earlier = client.trusted_proxy.then(|| joined(req, FOR)).flatten();
    let chain = match (earlier, client.ip) {
        (Some(mut earlier), Some(ip)) => {
            earlier.push_str(", ");
            push_ip(&mut earlier, ip);
            Some(earlier)
        }
        (None, Some(ip)) => {
            let mut text = String::with_capacity(15);
            push_ip(&mut text, ip);
            Some(text)
        }
        (earlier, None) => earlier,
    };
    match chain {
        Some(chain) => req.insert_header(FOR, chain)?,
        None => {
            req.remove_header(FOR);
        }
    }

    let believed = |req: &RequestHeader, name: &str| {
        client.trusted_proxy && req.headers.get(name).is_some_and(|v| !v.is_empty())
    };
    if !believed(req, PROTO) {
        let proto = if client.tls { "https" } else { "http" };
        req.insert_header(PROTO, HeaderValue::from_static(proto))?;
    }
    if !believed(req, HOST) {
        // HTTP/1.1 requests carry Host; HTTP/2 ones the URI's authority.
        let host = req
            .headers
            .get(http::header::HOST)
            .cloned()
            .or_else(|| req.uri.authority().and_then(|a| a.as_str().parse().ok()));
        match host {
            Some(host) => req.insert_header(HOST, host)?,
            None => {
                req.remove_header(HOST);
            }
        }
    }
    Ok(())
}

/// Write `ip` to `out`, an IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4
/// client) as the IPv4 address it is. IPv4 digits are written by hand: `Display` goes through
/// the formatting machinery, a tenth of this module's instructions per request (callgrind).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        v6 => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Every value of `name`, joined with `, ` (a header repeated is one list), if any.
fn joined(req: &RequestHeader, name: &str) -> Option<String> {
    let values: Vec<&str> = req
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        for (name, value) in headers {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    fn values(req: &RequestHeader, name: &str) -> Vec<String> {
        req.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    const SPOOFED: [(&str, &str); 5] = [
        ("Host", "app.example.test"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("x-forwarded-for", "10.0.0.2"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "admin.example.test"),
    ];

    #[test]
    fn a_client_cannot_choose_what_the_upstream_believes_about_it() {
        let mut req = request(&SPOOFED);
        let client = Client {
            ip: Some("192.0.2.7".parse().unwrap()),
            trusted_proxy: false,
            tls: false,
        };
        set(&mut req, client).unwrap();
        assert_eq!(values(&req, FOR), ["192.0.2.7"]);
        assert_eq!(values(&req, PROTO), ["http"]);
        assert_eq!(values(&req, HOST), ["app.example.test"]);
    }

    #[test]
    fn a_trusted_proxy_s_chain_is_extended() {
        let mut req = request(&SPOOFED);
        let client = Client {
            ip: Some("::1".parse().unwrap()),
            trusted_proxy: true,
            tls: false,
        };
        set(&mut req, client).unwrap();
        assert_eq!(values(&req, FOR), ["10.0.0.1, 10.0.0.2, ::1"]);
        assert_eq!(values(&req, PROTO), ["https"]);
        assert_eq!(values(&req, HOST), ["admin.example.test"]);

        // A trusted proxy that sent none: the gateway's own view.
        let mut req = request(&[("Host", "app.example.test")]);
        set(
            &mut req,
            Client {
                tls: true,
                ..client
            },
        )
        .unwrap();
        assert_eq!(values(&req, FOR), ["::1"]);
        assert_eq!(values(&req, PROTO), ["https"]);
        assert_eq!(values(&req, HOST), ["app.example.test"]);
    }

    #[test]
    fn addresses_are_written_as_std_writes_them_and_mapped_ones_as_ipv4() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "127.0.0.1",
            "::1",
            "2001:db8::7",
        ] {
            let mut text = String::new();
            push_ip(&mut text, ip.parse().unwrap());
            assert_eq!(text, ip);
        }
        let mut text = String::new();
        push_ip(&mut text, "::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(text, "192.0.2.7");
    }

    #[test]
    fn the_three_names_are_recognized_in_any_spelling() {
        for name in ["x-forwarded-for", "X_Forwarded_Proto", "X-FORWARDED-HOST"] {
            assert!(is_forwarding_header(name), "{name}");
        }
        assert!(!is_forwarding_header("X-Forwarded-User"));
    }

    #[test]
    fn no_host_and_no_address_leave_nothing_behind() {
        let mut req = request(&[("X-Forwarded-Host", "evil"), ("X-Forwarded-For", "1.2.3.4")]);
        let client = Client {
            ip: None,
            trusted_proxy: false,
            tls: true,
        };
        set(&mut req, client).unwrap();
        assert!(values(&req, FOR).is_empty());
        assert!(values(&req, HOST).is_empty());
        assert_eq!(values(&req, PROTO), ["https"]);
    }
}
