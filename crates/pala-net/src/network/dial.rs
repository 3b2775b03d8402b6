//! Accepting and dialing: the listener, the dial loop with back-off, and the TLS and
//! role handshake of both sides before a connection is handed to the coordinator.

use super::*;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};

pub(super) async fn accept_loop(
    shared: Arc<Layer>,
    listener: TcpListener,
    executors: Vec<flume::Sender<Job>>,
    off: flume::Receiver<()>,
) {
    let mut next = 0usize;
    loop {
        let accepted = async { Some(listener.shared_accept().await) }
            .or(async {
                let _ = off.recv_async().await;
                None
            })
            .await;
        let Some(accepted) = accepted else {
            return;
        };
        match accepted {
            Ok(s) => {
                shared.metrics.accepted.fetch_add(1, Ordering::Relaxed);
                let Some(permit) = admit(&shared, &s) else {
                    // An AcceptedTcpStream is a bare fd that is not closed on drop; a bound
                    // stream is. The stranger got an accept and a close.
                    drop(s.bind_to_executor());
                    continue;
                };
                let _ = executors[next % executors.len()].send(Job::Accepted(s, permit));
                next = next.wrapping_add(1);
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A permit for an accepted socket, or `None` (counted) when a cap is reached.
fn admit(shared: &Layer, s: &AcceptedTcpStream) -> Option<InboundPermit> {
    let ip = s.peer_addr().ok()?.ip();
    let refused = match shared.gate.admit(ip) {
        Ok(p) => {
            publish_gate(shared);
            return Some(p);
        }
        Err(r) => r,
    };
    let m = &shared.metrics;
    let counter = match refused {
        Refused::Handshakes => &m.refused_handshakes,
        Refused::Source => &m.refused_per_source,
        Refused::Connections => &m.refused_connections,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    debug!(%ip, ?refused, "accepted socket closed: cap reached");
    None
}

/// Mirrors the gate's occupancy into the gauges.
fn publish_gate(shared: &Layer) {
    let (handshakes, inbound) = shared.gate.load();
    let m = &shared.metrics;
    m.handshakes_in_progress
        .store(handshakes as i64, Ordering::Relaxed);
    m.inbound.store(inbound as i64, Ordering::Relaxed);
}

fn tune_socket(shared: &Layer, s: &TcpStream) {
    let _ = s.set_nodelay(true);
    if let Some(idle) = shared.cfg.tcp_keepalive {
        // SAFETY: the descriptor is owned by `s`, which outlives the borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) };
        let sock = socket2::SockRef::from(&fd);
        let _ = sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle));
    }
}

pub(super) async fn inbound(shared: Arc<Layer>, stream: TcpStream, mut permit: InboundPermit) {
    let Ok(addr) = stream.peer_addr() else {
        return;
    };
    tune_socket(&shared, &stream);
    let acceptor = futures_rustls::TlsAcceptor::from(shared.tls.server.clone());
    let ctx = &shared.ctx;
    let z = &shared.tls.spki;
    let result = with_deadline(shared.cfg.handshake_timeout, async {
        let mut tls = acceptor.accept(stream).await.map_err(|e| {
            debug!(%addr, "tls accept: {e}");
            HandshakeFailure::Tls
        })?;
        let v = server_handshake(&mut tls, ctx, z).await?;
        Ok::<_, HandshakeFailure>((tls, v))
    })
    .await
    .unwrap_or(Err(HandshakeFailure::Timeout));
    permit.handshake_done();
    publish_gate(&shared);
    match result {
        Ok((tls, v)) => {
            shared.metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
            run_established(
                &shared,
                tls,
                v.peer,
                addr,
                Direction::Inbound,
                None,
                v.hello,
            )
            .await;
        }
        Err(r) => shared.handshake_failed(addr, Direction::Inbound, r),
    }
    drop(permit);
    publish_gate(&shared);
}

/// Connects to the first of `addrs` that answers within the dial timeout.
async fn connect_any(shared: &Layer, target: &PeerAddr, addrs: &[SocketAddr]) -> Option<TcpStream> {
    for &addr in addrs {
        let connect = async {
            match shared.cfg.source_address {
                None => TcpStream::connect(addr).await.map_err(io::Error::from),
                Some(source) => connect_from(source, addr, shared.cfg.dial_timeout).await,
            }
        };
        match with_deadline(shared.cfg.dial_timeout, connect).await {
            Some(Ok(s)) => return Some(s),
            Some(Err(e)) => debug!(%target, %addr, "connect failed: {e}"),
            None => debug!(%target, %addr, "connect timed out"),
        }
    }
    None
}

/// Connects to `addr` from the local address `source`. glommio's connect cannot bind
/// first, so the bind and connect run on a short-lived thread (as name lookups do, see
/// `addr.rs`) and the connected socket moves to the executor.
async fn connect_from(
    source: IpAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let (tx, rx) = flume::bounded(1);
    std::thread::Builder::new()
        .name("pala-connect".into())
        .spawn(move || {
            let connected = (|| {
                let domain = socket2::Domain::for_address(addr);
                let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
                s.bind(&SocketAddr::new(source, 0).into()).map_err(|e| {
                    io::Error::new(e.kind(), format!("binding to source address {source}: {e}"))
                })?;
                s.connect_timeout(&addr.into(), timeout)?;
                Ok::<_, io::Error>(s)
            })();
            let _ = tx.send(connected);
        })?;
    let socket = rx
        .recv_async()
        .await
        .map_err(|_| io::Error::other("the connect thread ended without an answer"))??;
    // SAFETY: the descriptor comes from `into_raw_fd`, so nothing else owns it.
    Ok(unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) })
}

async fn dial_once(
    shared: &Arc<Layer>,
    target: &PeerAddr,
    resolver: &mut Resolver,
    expected: Option<NodeId>,
) -> Attempt {
    // Resolved on every attempt: the name may point to a new IP since the last one.
    let addrs = match resolver.resolve(target, shared.cfg.dial_timeout).await {
        Ok(a) => a,
        Err(e) => {
            debug!(%target, "{e}");
            shared.metrics.dial_failures.fetch_add(1, Ordering::Relaxed);
            return Attempt::ConnectFailed;
        }
    };
    let Some(stream) = connect_any(shared, target, &addrs).await else {
        shared.metrics.dial_failures.fetch_add(1, Ordering::Relaxed);
        return Attempt::ConnectFailed;
    };
    let addr = stream.peer_addr().unwrap_or(addrs[0]);
    tune_socket(shared, &stream);
    let local = stream.local_addr().ok();
    let own_dials = || shared.own_dials.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = local {
        own_dials().insert(l);
    }
    let connector = futures_rustls::TlsConnector::from(shared.tls.client.clone());
    let ctx = &shared.ctx;
    let result = with_deadline(shared.cfg.handshake_timeout, async {
        let mut tls = connector
            .connect(server_name(), stream)
            .await
            .map_err(|e| {
                debug!(%addr, "tls connect: {e}");
                HandshakeFailure::Tls
            })?;
        let v = client_handshake(&mut tls, ctx, expected).await?;
        Ok::<_, HandshakeFailure>((tls, v))
    })
    .await
    .unwrap_or(Err(HandshakeFailure::Timeout));
    if result.is_err() {
        // Our own server side may close the socket before it reports why: give it time to
        // find this address in the set.
        glommio::timer::sleep(Duration::from_millis(500)).await;
    }
    if let Some(l) = local {
        own_dials().remove(&l);
    }
    match result {
        Ok((tls, v)) => {
            shared.metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
            run_established(
                shared,
                tls,
                v.peer,
                addr,
                Direction::Outbound,
                Some(target.clone()),
                v.hello,
            )
            .await;
            Attempt::Ran
        }
        Err(r) => {
            shared.handshake_failed(addr, Direction::Outbound, r);
            Attempt::HandshakeFailed(r)
        }
    }
}

pub(super) async fn dial_loop(shared: Arc<Layer>, t: DialTarget) {
    let cfg = &shared.cfg;
    let mut schedule = Schedule::new(
        Timings {
            step: cfg.dial_backoff_step,
            backoff_max: cfg.dial_backoff_max,
            burst: cfg.dial_burst,
            period: cfg.reconnect_period,
            proposer_max: cfg.proposer_redial_max,
        },
        Instant::now(),
    );
    let mut resolver = Resolver::default();
    loop {
        if t.cancel.load(Ordering::Relaxed) || shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        // Already connected to the expected peer (it dialed us): nothing to do until it drops.
        if let Some(id) = t.expected {
            if shared.is_connected(&id) {
                glommio::timer::sleep(cfg.reconnect_period.min(Duration::from_secs(1))).await;
                continue;
            }
        }
        debug!(addr = %t.addr, expected = ?t.expected, "dialing");
        let attempt = dial_once(&shared, &t.addr, &mut resolver, t.expected).await;
        let wait = schedule.after(t.policy(), attempt, Instant::now());
        glommio::timer::sleep(wait).await;
    }
}
