//! Where requests go once they are allowed: a resolved address plus TLS settings, turned into a
//! pingora [`HttpPeer`] per request.
//!
//! The host name of an upstream URL is resolved when the configuration is loaded,
//! never on the request path, so a slow resolver cannot stall requests.

use pingora::upstreams::peer::HttpPeer;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use url::Url;

/// One upstream application.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The URL as configured, for logs.
    pub url: String,
    pub addr: SocketAddr,
    pub tls: bool,
    /// SNI and certificate name when `tls`.
    pub sni: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl Upstream {
    /// Parse and resolve an `http://` or `https://` URL (path, query and credentials refused).
    pub fn resolve(
        raw: &str,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("scheme must be http or https, not {other}")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        if !(url.path() == "/" || url.path().is_empty()) || url.query().is_some() {
            return Err("must be scheme://host[:port] without a path or query".into());
        }
        let host = url.host_str().ok_or("has no host")?.to_string();
        let port = url.port_or_known_default().ok_or("has no port")?;
        let host_for_lookup = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host_for_lookup, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        Ok(Self {
            url: raw.to_string(),
            addr,
            tls,
            sni: host,
            connect_timeout,
            read_timeout,
        })
    }

    /// The pingora peer for one request.
    pub fn peer(&self) -> Box<HttpPeer> {
        let mut peer = HttpPeer::new(self.addr, self.tls, self.sni.clone());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        Box::new(peer)
    }

    #[cfg(test)]
    pub fn for_tests(addr: &str) -> Self {
        Self {
            url: format!("http://{addr}"),
            addr: addr.parse().unwrap(),
            tls: false,
            sni: String::new(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        }
    }
}
