//! Peer addresses as operators write them: `ip:port`, `[v6]:port` or `host:port`.
//!
//! A name is kept as a name and resolved on every dial attempt, not once at start-up: a
//! Kubernetes pod or a compose container that restarts comes back under the same name
//! with a new IP, and a node that had pinned the old IP would never reach it again.
//!
//! `getaddrinfo` blocks (for seconds when a DNS server does not answer), and the dial loops
//! run on glommio executors that also carry every connection's IO. So a lookup runs on a
//! short-lived helper thread and the dial loop awaits it with the dial timeout; a lookup
//! that outlives the timeout is awaited again by the next attempt instead of starting a
//! second thread, so each dial target has at most one lookup in flight.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

/// A peer-to-peer address: a socket address, or a host name with a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerAddr {
    /// An IP address and port; needs no resolution.
    Ip(SocketAddr),
    /// A DNS name (or an `/etc/hosts` name) and port, resolved at dial time.
    Name {
        /// The host name, as written (lower case).
        host: String,
        /// The port.
        port: u16,
    },
}

/// Why a string is not a [`PeerAddr`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an address; expected \"ip:port\" or \"host:port\", such as \"10.0.0.5:7100\" or \"pala-proposer-0.pala:7100\"")]
pub struct AddrParseError(pub String);

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens (an
/// underscore is tolerated, as resolvers accept it in practice), at most 253 characters.
/// The last label must not be all digits, so a mistyped IPv4 address such as
/// `10.0.0.256` is an error rather than a name that never resolves.
fn valid_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    host.split('.').all(label_ok)
        && !host
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

impl FromStr for PeerAddr {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<PeerAddr, AddrParseError> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(PeerAddr::Ip(a));
        }
        let err = || AddrParseError(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
        // A port must be digits only: `u16::from_str` would also take "+80".
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let port: u16 = port.parse().map_err(|_| err())?;
        if !valid_host(host) {
            return Err(err());
        }
        Ok(PeerAddr::Name {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Ip(a) => write!(f, "{a}"),
            PeerAddr::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> PeerAddr {
        PeerAddr::Ip(a)
    }
}

/// The answer of one lookup.
pub(crate) type Lookup = Result<Vec<SocketAddr>, String>;

impl PeerAddr {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            PeerAddr::Ip(a) => a.port(),
            PeerAddr::Name { port, .. } => *port,
        }
    }

    /// The addresses the name stands for now, blocking the calling thread (use it off the
    /// executors: at start-up, or on a helper thread).
    pub fn resolve_blocking(&self) -> Result<Vec<SocketAddr>, String> {
        match self {
            PeerAddr::Ip(a) => Ok(vec![*a]),
            PeerAddr::Name { host, port } => {
                let found: Vec<SocketAddr> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
                    .collect();
                if found.is_empty() {
                    return Err(format!("`{host}` resolves to no address"));
                }
                Ok(found)
            }
        }
    }

    /// Starts a lookup on a helper thread; the receiver yields its one answer.
    pub(crate) fn start_lookup(&self) -> flume::Receiver<Lookup> {
        let (tx, rx) = flume::bounded(1);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("pala-resolve".into())
            .spawn({
                let tx = tx.clone();
                move || {
                    let _ = tx.send(me.resolve_blocking());
                }
            });
        if let Err(e) = spawned {
            let _ = tx.send(Err(format!("cannot start a resolver thread: {e}")));
        }
        rx
    }
}

/// One dial target's lookup in flight across attempts (see the module docs).
#[derive(Default)]
pub(crate) struct Resolver {
    pending: Option<flume::Receiver<Lookup>>,
}

impl Resolver {
    /// The addresses of `addr` now, or why not; waits at most `timeout` on the executor
    /// without blocking it.
    pub(crate) async fn resolve(&mut self, addr: &PeerAddr, timeout: Duration) -> Lookup {
        if let PeerAddr::Ip(a) = addr {
            return Ok(vec![*a]);
        }
        let rx = self.pending.take().unwrap_or_else(|| addr.start_lookup());
        match crate::deadline::with_deadline(timeout, rx.recv_async()).await {
            Some(Ok(found)) => found,
            Some(Err(_)) => Err(format!(
                "resolver thread for `{addr}` ended without an answer"
            )),
            None => {
                self.pending = Some(rx);
                Err(format!(
                    "resolving `{addr}` took longer than {} ms",
                    timeout.as_millis()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ips_and_names() {
        assert_eq!(
            "10.0.0.5:7100".parse::<PeerAddr>(),
            Ok(PeerAddr::Ip("10.0.0.5:7100".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:7101".parse::<PeerAddr>(),
            Ok(PeerAddr::Ip("[::1]:7101".parse().unwrap()))
        );
        let name = "Pala-Proposer-0.pala.default.svc.cluster.local:7100"
            .parse::<PeerAddr>()
            .unwrap();
        assert_eq!(
            name,
            PeerAddr::Name {
                host: "pala-proposer-0.pala.default.svc.cluster.local".into(),
                port: 7100
            }
        );
        assert_eq!(
            name.to_string(),
            "pala-proposer-0.pala.default.svc.cluster.local:7100"
        );
        assert_eq!("localhost:0".parse::<PeerAddr>().unwrap().port(), 0);
        assert!("voter_1:7100".parse::<PeerAddr>().is_ok());
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "10.0.0.5",
            "localhost",
            "localhost:",
            ":7100",
            "host:+80",
            "host:65536",
            "host:port",
            "10.0.0.256:7100",
            "1.2.3:7100",
            "-lead.example:7100",
            "a..b:7100",
            "ho st:7100",
            "http://host:7100",
            "::1:7100",
            "[::1]:x",
        ] {
            let e = bad.parse::<PeerAddr>().unwrap_err();
            assert!(e.to_string().contains("host:port"), "{bad}: {e}");
        }
        let long = format!("{}.example:1", "a".repeat(64));
        assert!(long.parse::<PeerAddr>().is_err());
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let a: PeerAddr = "localhost:7100".parse().unwrap();
        let found = a.resolve_blocking().unwrap();
        assert!(found
            .iter()
            .all(|s| s.ip().is_loopback() && s.port() == 7100));
        assert!("no-such-host.invalid:1"
            .parse::<PeerAddr>()
            .unwrap()
            .resolve_blocking()
            .is_err());
    }
}
