//! A wide-area link emulator for real processes: a TCP relay that delays every byte it
//! carries by a one-way delay with jitter, limits the bandwidth, and turns loss into delay
//! spikes, the way TCP experiences loss (a retransmission after a timeout).
//!
//! The kernel of the bench machines has no netem, so the emulation happens in user space:
//! a node listens on its real address, the cluster configuration names the relay's address
//! instead, and the relay forwards each accepted connection to the real one. Bytes are
//! relayed as they are (TLS passes through untouched), in order: a chunk is never released
//! before the one read before it, so jitter delays the stream but never reorders it, as on
//! a real TCP path.
//!
//! Each relay has one [`LinkProfile`] for every connection it accepts, or one per dialer
//! when connections come from distinct loopback source addresses ([`Relay::per_source`]),
//! which is how a region matrix gives each pair of nodes its own delay.
//!
//! The relay's own cost is measured: the CPU time of its threads and the number of bytes
//! and chunks it carried ([`RelayStats`]); `perf/cluster.md` reports both next to the
//! figures of the runs that used it.

use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What one direction of a link does to the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkProfile {
    /// One-way delay added to every byte.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` for each chunk (never reordering).
    pub jitter: Duration,
    /// Bandwidth in bits per second; `None` is unlimited.
    pub bandwidth_bps: Option<u64>,
    /// Probability that a chunk meets a loss, which TCP repairs by retransmission: the
    /// chunk (and everything behind it) is held for `loss_spike` more.
    pub loss: f64,
    /// The extra delay of a loss (TCP's minimum retransmission timeout is 200 ms).
    pub loss_spike: Duration,
}

impl LinkProfile {
    /// A link with only a one-way delay.
    pub fn delay(delay: Duration) -> LinkProfile {
        LinkProfile {
            delay,
            jitter: Duration::ZERO,
            bandwidth_bps: None,
            loss: 0.0,
            loss_spike: Duration::from_millis(200),
        }
    }

    /// The time a chunk of `len` bytes occupies the link at its bandwidth.
    fn serialization(&self, len: usize) -> Duration {
        match self.bandwidth_bps {
            Some(bps) if bps > 0 => Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / bps),
            _ => Duration::ZERO,
        }
    }
}

/// What a relay carried and what it cost.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Bytes relayed (both directions).
    pub bytes: AtomicU64,
    /// Chunks relayed (one `read` each).
    pub chunks: AtomicU64,
    /// CPU time of the relay's threads that have ended, in nanoseconds.
    pub cpu_ns: AtomicU64,
    /// Sum over chunks of (release time - due time) in nanoseconds: how late the relay
    /// itself was, beyond the emulated delay.
    pub lateness_ns: AtomicU64,
}

/// How a relay chooses the profile of a connection.
#[derive(Clone, Debug)]
enum Profiles {
    All(LinkProfile),
    /// By the dialer's source address; connections from other sources get the default.
    BySource {
        by_ip: HashMap<IpAddr, LinkProfile>,
        default: LinkProfile,
    },
}

impl Profiles {
    fn for_peer(&self, peer: IpAddr) -> LinkProfile {
        match self {
            Profiles::All(p) => *p,
            Profiles::BySource { by_ip, default } => by_ip.get(&peer).copied().unwrap_or(*default),
        }
    }
}

/// A running relay from `listen` to `target`. Dropping it stops accepting; connections in
/// flight end when either side closes.
pub struct Relay {
    listen: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<RelayStats>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Relay {
    /// Relays every connection to `listen` to `target` with one profile per direction.
    pub fn start(
        listen: SocketAddr,
        target: SocketAddr,
        profile: LinkProfile,
    ) -> io::Result<Relay> {
        Self::spawn(listen, target, Profiles::All(profile))
    }

    /// Relays with a profile chosen by the dialer's source address (a region matrix on
    /// loopback: each node dials from its own 127.0.0.x address).
    pub fn per_source(
        listen: SocketAddr,
        target: SocketAddr,
        by_ip: HashMap<IpAddr, LinkProfile>,
        default: LinkProfile,
    ) -> io::Result<Relay> {
        Self::spawn(listen, target, Profiles::BySource { by_ip, default })
    }

    fn spawn(listen: SocketAddr, target: SocketAddr, profiles: Profiles) -> io::Result<Relay> {
        let listener = TcpListener::bind(listen)?;
        let listen = listener.local_addr()?;
        // Non-blocking accept with a short poll, so that dropping the relay stops it.
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(RelayStats::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let acceptor = thread::Builder::new()
            .name(format!("link-{}", listen.port()))
            .spawn(move || accept_loop(listener, target, profiles, stop2, stats2))?;
        Ok(Relay {
            listen,
            stop,
            stats,
            acceptor: Some(acceptor),
        })
    }

    /// The address dialers use.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// What it carried so far.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// The counters, to read after the relay is gone (its connection threads add their
    /// CPU time as they end).
    pub fn stats_handle(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    profiles: Profiles,
    stop: Arc<AtomicBool>,
    stats: Arc<RelayStats>,
) {
    let started = thread_cpu();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((inbound, peer)) => {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let profile = profiles.for_peer(peer.ip());
                let stats = stats.clone();
                let _ = thread::Builder::new()
                    .name("link-conn".into())
                    .spawn(move || relay_connection(inbound, target, profile, stats));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            // EMFILE and friends: back off, never end the relay.
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
    stats
        .cpu_ns
        .fetch_add(thread_cpu().saturating_sub(started), Ordering::Relaxed);
}

fn relay_connection(
    inbound: TcpStream,
    target: SocketAddr,
    profile: LinkProfile,
    stats: Arc<RelayStats>,
) {
    let Ok(outbound) = TcpStream::connect(target) else {
        let _ = inbound.shutdown(Shutdown::Both);
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (Ok(in2), Ok(out2)) = (inbound.try_clone(), outbound.try_clone()) else {
        return;
    };
    let seed = rand::random::<u64>();
    let s2 = stats.clone();
    let up = thread::Builder::new()
        .name("link-up".into())
        .spawn(move || direction(inbound, outbound, profile, seed, s2));
    direction(out2, in2, profile, seed ^ 0x5a5a, stats);
    if let Ok(h) = up {
        let _ = h.join();
    }
}

/// One direction: a reader stamps each chunk with its release time, a writer releases it
/// then. The writer lives on its own thread so that a slow release never stalls reading
/// (the sender's TCP window stays the kernel's, not the emulator's).
fn direction(
    mut from: TcpStream,
    to: TcpStream,
    profile: LinkProfile,
    seed: u64,
    stats: Arc<RelayStats>,
) {
    let cpu0 = thread_cpu();
    let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Vec<u8>)>();
    let wstats = stats.clone();
    let writer = thread::Builder::new()
        .name("link-write".into())
        .spawn(move || release(to, rx, wstats));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut link_free_at = Instant::now();
    let mut last_due = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        link_free_at = link_free_at.max(now) + profile.serialization(n);
        let mut extra = Duration::ZERO;
        if !profile.jitter.is_zero() {
            extra += profile.jitter.mul_f64(rng.gen::<f64>());
        }
        if profile.loss > 0.0 && rng.gen_bool(profile.loss.min(1.0)) {
            extra += profile.loss_spike;
        }
        let due = (link_free_at + profile.delay + extra).max(last_due);
        last_due = due;
        stats.chunks.fetch_add(1, Ordering::Relaxed);
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if tx.send((due, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    if let Ok(w) = writer {
        let _ = w.join();
    }
    let _ = from.shutdown(Shutdown::Read);
    stats
        .cpu_ns
        .fetch_add(thread_cpu().saturating_sub(cpu0), Ordering::Relaxed);
}

fn release(
    mut to: TcpStream,
    rx: crossbeam_channel::Receiver<(Instant, Vec<u8>)>,
    stats: Arc<RelayStats>,
) {
    let cpu0 = thread_cpu();
    for (due, bytes) in rx {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let late = Instant::now().saturating_duration_since(due);
        stats
            .lateness_ns
            .fetch_add(late.as_nanos() as u64, Ordering::Relaxed);
        if to.write_all(&bytes).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    stats
        .cpu_ns
        .fetch_add(thread_cpu().saturating_sub(cpu0), Ordering::Relaxed);
}

/// CPU time of the calling thread in nanoseconds.
fn thread_cpu() -> u64 {
    crate::stats::thread_cpu().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    fn round_trip(s: &mut TcpStream, len: usize) -> Duration {
        let msg = vec![7u8; len];
        let t = Instant::now();
        s.write_all(&msg).unwrap();
        let mut back = vec![0u8; len];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
        t.elapsed()
    }

    #[test]
    fn a_round_trip_through_the_relay_takes_two_delays() {
        let echo = echo_server();
        let d = Duration::from_millis(20);
        let relay =
            Relay::start("127.0.0.1:0".parse().unwrap(), echo, LinkProfile::delay(d)).unwrap();
        let mut s = TcpStream::connect(relay.addr()).unwrap();
        s.set_nodelay(true).unwrap();
        let rtt = round_trip(&mut s, 100);
        assert!(rtt >= 2 * d, "{rtt:?}");
        assert_eq!(relay.stats().connections.load(Ordering::Relaxed), 1);
        assert!(relay.stats().bytes.load(Ordering::Relaxed) >= 200);
    }

    #[test]
    fn jitter_never_reorders_bytes() {
        let echo = echo_server();
        let p = LinkProfile {
            jitter: Duration::from_millis(5),
            ..LinkProfile::delay(Duration::from_millis(1))
        };
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo, p).unwrap();
        let mut s = TcpStream::connect(relay.addr()).unwrap();
        let sent: Vec<u8> = (0..200u32).flat_map(|i| i.to_le_bytes()).collect();
        for c in sent.chunks(8) {
            s.write_all(c).unwrap();
        }
        let mut back = vec![0u8; sent.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, sent);
    }

    #[test]
    fn bandwidth_limits_a_bulk_transfer() {
        let echo = echo_server();
        // 8 Mbit/s each way: 256 KiB takes at least 256 ms to cross one direction.
        let p = LinkProfile {
            bandwidth_bps: Some(8_000_000),
            ..LinkProfile::delay(Duration::ZERO)
        };
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo, p).unwrap();
        let mut s = TcpStream::connect(relay.addr()).unwrap();
        let mut r = s.try_clone().unwrap();
        let len = 256 * 1024;
        let reader = thread::spawn(move || {
            let mut back = vec![0u8; len];
            r.read_exact(&mut back).unwrap();
        });
        let t = Instant::now();
        s.write_all(&vec![1u8; len]).unwrap();
        reader.join().unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(256),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn the_profile_follows_the_dialers_source_address() {
        let echo = echo_server();
        let mut by_ip = HashMap::new();
        by_ip.insert(
            "127.0.0.2".parse().unwrap(),
            LinkProfile::delay(Duration::from_millis(40)),
        );
        let relay = Relay::per_source(
            "127.0.0.1:0".parse().unwrap(),
            echo,
            by_ip,
            LinkProfile::delay(Duration::ZERO),
        )
        .unwrap();
        let near = {
            let mut s = TcpStream::connect(relay.addr()).unwrap();
            round_trip(&mut s, 10)
        };
        let far = {
            let mut s = connect_from("127.0.0.2:0".parse().unwrap(), relay.addr());
            round_trip(&mut s, 10)
        };
        assert!(far >= Duration::from_millis(80), "{far:?}");
        assert!(near < Duration::from_millis(40), "{near:?}");
    }

    /// Dials `to` from the loopback address `from` (std cannot bind before connecting,
    /// so this goes through libc).
    fn connect_from(from: SocketAddr, to: SocketAddr) -> TcpStream {
        use std::os::fd::FromRawFd;
        let (SocketAddr::V4(f), SocketAddr::V4(t)) = (from, to) else {
            panic!("IPv4 only")
        };
        let sockaddr = |a: std::net::SocketAddrV4| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: plain socket calls on a descriptor this function owns; the sockaddr
        // structs live for the duration of each call.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let l = sockaddr(f);
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            assert_eq!(
                libc::bind(fd, &l as *const _ as *const libc::sockaddr, len),
                0
            );
            let r = sockaddr(t);
            assert_eq!(
                libc::connect(fd, &r as *const _ as *const libc::sockaddr, len),
                0
            );
            TcpStream::from_raw_fd(fd)
        }
    }
}
