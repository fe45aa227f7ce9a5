//! Whether the proxy listener is this process's and accepts connections: a check of `/readyz`.
//!
//! pingora binds the proxy listener in its own service, apart from the admin listener, and
//! retries a busy port for 30 s before the gateway exits (69). Until the listener accepts, a
//! load balancer or Kubernetes must not send traffic, yet the admin listener already answers.
//! A TCP connect alone would not tell: while another process holds the port, its connects succeed
//! too. So the probe connects from an address it chose beforehand, and the proxy listener's
//! connection filter ([`ListenerProbe`], run by pingora on every accepted connection before any
//! TLS) recognizes that address, reports it, and drops the connection. Once one probe has been
//! seen, the listener stays ready for the life of the process and no more probes are sent.

use async_trait::async_trait;
use pingora::listeners::ConnectionFilter;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::sync::Notify;

/// How long a probe waits for the listener to take its connection. Well under the 1 s that
/// Kubernetes gives a readiness probe by default.
const PROBE_WAIT: Duration = Duration::from_millis(300);

/// The proxy listener's readiness, shared by its connection filter and `/readyz`.
#[derive(Debug)]
pub struct ListenerProbe {
    /// The proxy listener's address, as configured (`server.listen`).
    listen: SocketAddr,
    /// Set once the listener has taken one of our probes.
    accepting: AtomicBool,
    /// Whether a probe is in flight: the only thing every accepted connection reads.
    probing: AtomicBool,
    /// The address the probe in flight connects from.
    probe_from: Mutex<Option<SocketAddr>>,
    /// Wakes the probe when the filter has seen it.
    seen: Notify,
    /// One probe at a time.
    one_probe: tokio::sync::Mutex<()>,
}

impl ListenerProbe {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            accepting: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            probe_from: Mutex::new(None),
            seen: Notify::new(),
            one_probe: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether the proxy listener is ours and accepts; probes it until it has once.
    pub async fn accepting(&self) -> bool {
        if self.accepting.load(Ordering::Acquire) {
            return true;
        }
        let _one = self.one_probe.lock().await;
        if !self.accepting.load(Ordering::Acquire) {
            // Any failure (refused, nothing seen in time) is simply "not yet".
            let _ = self.probe().await;
        }
        self.accepting.load(Ordering::Acquire)
    }

    async fn probe(&self) -> std::io::Result<()> {
        let target = probe_target(self.listen);
        let socket = match target {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(target.ip(), 0))?;
        let from = socket.local_addr()?;
        *self.probe_from.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
        self.probing.store(true, Ordering::Release);
        let seen = self.seen.notified();
        let result = tokio::time::timeout(PROBE_WAIT, async {
            let _stream = socket.connect(target).await?;
            seen.await;
            Ok::<_, std::io::Error>(())
        })
        .await;
        self.probing.store(false, Ordering::Release);
        *self.probe_from.lock().unwrap_or_else(|e| e.into_inner()) = None;
        result.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// Whether `peer` is the probe in flight; if so, the listener is ready.
    fn is_probe(&self, peer: &SocketAddr) -> bool {
        if !self.probing.load(Ordering::Acquire) {
            return false;
        }
        let ours = *self.probe_from.lock().unwrap_or_else(|e| e.into_inner()) == Some(*peer);
        if ours {
            self.accepting.store(true, Ordering::Release);
            self.seen.notify_one();
        }
        ours
    }
}

/// Where a probe connects: the listener's address, or loopback for an unspecified one.
fn probe_target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The proxy listener's connection filter: every connection but the probe's is accepted.
#[async_trait]
impl ConnectionFilter for ListenerProbe {
    async fn should_accept(&self, peer: Option<&SocketAddr>) -> bool {
        !peer.is_some_and(|peer| self.is_probe(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listeners_are_probed_on_loopback() {
        let at = |s: &str| probe_target(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(at("[::]:8443"), "[::1]:8443");
        assert_eq!(at("127.0.0.2:80"), "127.0.0.2:80");
        assert_eq!(at("[::1]:80"), "[::1]:80");
    }

    /// A port held by someone else accepts the connect, but is not ready; a listener whose
    /// filter sees the probe is.
    #[tokio::test]
    async fn only_our_own_listener_is_ready() {
        let held = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let probe = ListenerProbe::new(held.local_addr().unwrap());
        assert!(!probe.accepting().await);

        let probe = std::sync::Arc::new(ListenerProbe::new(held.local_addr().unwrap()));
        let filter = probe.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (_conn, peer) = held.accept().await.unwrap();
                let someone_else = SocketAddr::new(peer.ip(), peer.port().wrapping_add(1));
                assert!(filter.should_accept(Some(&someone_else)).await);
                if !filter.should_accept(Some(&peer)).await {
                    return;
                }
            }
        });
        assert!(probe.accepting().await);
        accept.await.unwrap();
        // Settled: no more probes.
        assert!(probe.accepting().await);
        assert!(probe.should_accept(None).await);
    }
}
