//! Real sockets on 127.0.0.1: handshake rules (T-45, T-58), framing abuse, slow readers,
//! duplicate connections (T-55), reconnection (T-56) and throttling (T-59).

mod common;

use common::*;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use pala_net::frame::{encode_frame, encode_raw_frame};
use pala_net::handshake::{
    challenge_message, client_handshake, exchange_hello, exporter_of, read_challenge, server_spki,
    sign_challenge, write_challenge, Side,
};
use pala_net::metrics::CloseReason;
use pala_net::tls::TlsIdentity;
use pala_net::{AdmitAll, Direction, HandshakeFailure, NetEvent, RateLimits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

#[test]
fn handshake_success_and_messages_both_ways() {
    init_tracing();
    let k = Keys::new();
    let p = k.start(1, cfg(true), k.admission(&[1], &[2]));
    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    v.dial(p.local_addr().unwrap(), Some(p.id())).unwrap();
    match wait_event(&p, T, |e| matches!(e, NetEvent::PeerUp { .. })) {
        Some(NetEvent::PeerUp {
            peer, direction, ..
        }) => {
            assert_eq!(peer, v.id());
            assert_eq!(direction, Direction::Inbound);
        }
        other => panic!("no PeerUp at the proposer: {other:?}"),
    }
    match wait_event(&v, T, |e| matches!(e, NetEvent::PeerUp { .. })) {
        Some(NetEvent::PeerUp {
            peer,
            direction,
            hello,
            ..
        }) => {
            assert_eq!(peer, p.id());
            assert_eq!(direction, Direction::Outbound);
            assert_ne!(
                hello.capabilities & pala_net::handshake::caps::HUB,
                0,
                "the proposer announces hub"
            );
        }
        other => panic!("no PeerUp at the voter: {other:?}"),
    }
    v.send(p.id(), status(5)).unwrap();
    assert_eq!(wait_message(&p, v.id(), T), Some(status(5)));
    p.broadcast(status(6)).unwrap();
    assert_eq!(wait_message(&v, p.id(), T), Some(status(6)));
    let big = sized_message(3 << 20);
    p.send(v.id(), big.clone()).unwrap();
    assert_eq!(wait_message(&v, p.id(), T), Some(big));
    assert_eq!(p.metrics().handshake_failures_total(), 0);
    assert_eq!(v.metrics().handshake_failures_total(), 0);
}

#[test]
fn version_within_one_accepted_two_apart_rejected_on_both_sides() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.protocol_version = 3;
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();

    let mut c = cfg(false);
    c.protocol_version = 2;
    let v_ok = k.start(2, c, Arc::new(AdmitAll));
    v_ok.dial(addr, Some(p.id())).unwrap();
    assert!(wait_up(&v_ok, p.id(), T), "n vs n-1 accepted");

    let mut c = cfg(false);
    c.protocol_version = 1;
    let v_old = k.start(3, c, Arc::new(AdmitAll));
    v_old.dial(addr, Some(p.id())).unwrap();
    assert!(wait_until(T, || v_old
        .metrics()
        .handshake_failures(HandshakeFailure::Version)
        >= 1
        && p.metrics().handshake_failures(HandshakeFailure::Version)
            >= 1));
    assert!(!v_old.is_connected(&p.id()));
    assert!(!p.is_connected(&v_old.id()));
}

#[test]
fn different_network_id_rejected() {
    init_tracing();
    let k = Keys::new();
    let p = k.start(1, cfg(true), Arc::new(AdmitAll));
    let mut c = cfg(false);
    c.network_id = NET + 1;
    let v = k.start(2, c, Arc::new(AdmitAll));
    v.dial(p.local_addr().unwrap(), Some(p.id())).unwrap();
    assert!(wait_until(T, || v
        .metrics()
        .handshake_failures(HandshakeFailure::NetworkId)
        >= 1
        && p.metrics().handshake_failures(HandshakeFailure::NetworkId)
            >= 1));
    let failed = wait_event(&v, T, |e| matches!(e, NetEvent::HandshakeFailed { .. }));
    assert!(matches!(
        failed,
        Some(NetEvent::HandshakeFailed {
            reason: HandshakeFailure::NetworkId,
            direction: Direction::Outbound,
            ..
        })
    ));
    assert!(!p.is_connected(&v.id()));
}

#[test]
fn t45_proposer_rejects_keys_outside_its_committee() {
    init_tracing();
    let k = Keys::new();
    let p = k.start(1, cfg(true), k.admission(&[1], &[2]));
    let addr = p.local_addr().unwrap();
    let member = k.start(2, cfg(false), Arc::new(AdmitAll));
    let outsider = k.start(3, cfg(false), Arc::new(AdmitAll));
    member.dial(addr, Some(p.id())).unwrap();
    outsider.dial(addr, Some(p.id())).unwrap();
    assert!(wait_up(&member, p.id(), T));
    assert!(wait_until(T, || p
        .metrics()
        .handshake_failures(HandshakeFailure::NotAdmitted)
        >= 1));
    // The outsider never got the proposer's signature, so its handshake failed too.
    assert!(wait_until(T, || outsider
        .metrics()
        .handshake_failures_total()
        >= 1));
    assert!(!p.is_connected(&outsider.id()));
    assert!(wait_until(T, || p.is_connected(&member.id())));
}

#[test]
fn client_rejects_unexpected_server_and_self_connection() {
    init_tracing();
    let k = Keys::new();
    let p = k.start(1, cfg(true), Arc::new(AdmitAll));
    let v = k.start(2, cfg(true), Arc::new(AdmitAll));
    // The voter expects proposer 9 at this address, but proposer 1 answers.
    v.dial(p.local_addr().unwrap(), Some(k.id(9))).unwrap();
    assert!(wait_until(T, || v
        .metrics()
        .handshake_failures(HandshakeFailure::UnexpectedPeer)
        >= 1));
    assert!(!v.is_connected(&p.id()));
    // Dialing our own listener.
    p.dial(p.local_addr().unwrap(), None).unwrap();
    assert!(wait_until(T, || p
        .metrics()
        .handshake_failures(HandshakeFailure::SelfConnection)
        >= 1));
}

/// A proxy on its own executor: `terminate_tls` decides whether it re-terminates TLS with
/// its own certificate (a person in the middle) or relays bytes (a plain TCP relay).
fn start_proxy(target: SocketAddr, terminate_tls: bool, lifetime: Duration) -> SocketAddr {
    let (tx, rx) = flume::bounded(1);
    let _ = spawn_glommio(move || async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        let identity = Arc::new(TlsIdentity::generate().unwrap());
        let serve = async {
            loop {
                let Ok(inbound) = listener.accept().await else {
                    return;
                };
                let identity = identity.clone();
                glommio::spawn_local(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    if terminate_tls {
                        let acceptor = futures_rustls::TlsAcceptor::from(identity.server.clone());
                        let Ok(client_side) = acceptor.accept(inbound).await else {
                            return;
                        };
                        let server_side =
                            futures_rustls::TlsConnector::from(identity.client.clone())
                                .connect(pala_net::tls::server_name(), outbound)
                                .await;
                        let Ok(server_side) = server_side else { return };
                        pump(client_side, server_side).await;
                    } else {
                        pump(inbound, outbound).await;
                    }
                })
                .detach();
            }
        };
        futures_lite::future::or(serve, glommio::timer::sleep(lifetime)).await;
    });
    rx.recv().unwrap()
}

async fn pump<A, B>(a: A, b: B)
where
    A: futures_lite::io::AsyncRead + futures_lite::io::AsyncWrite + Unpin,
    B: futures_lite::io::AsyncRead + futures_lite::io::AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = futures_lite::io::split(a);
    let (mut br, mut bw) = futures_lite::io::split(b);
    let one = async {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = ar.read(&mut buf).await {
            if n == 0 || write_all(&mut bw, &buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let other = async {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = br.read(&mut buf).await {
            if n == 0 || write_all(&mut aw, &buf[..n]).await.is_err() {
                break;
            }
        }
    };
    futures_lite::future::or(one, other).await;
}

#[test]
fn t58_person_in_the_middle_fails_on_both_sides_plain_relay_succeeds() {
    init_tracing();
    let k = Keys::new();
    let p = k.start(1, cfg(true), Arc::new(AdmitAll));
    let mitm = start_proxy(p.local_addr().unwrap(), true, Duration::from_secs(20));
    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    v.dial(mitm, Some(p.id())).unwrap();
    // The server sees a client signature over the proxy's key, not its own.
    assert!(wait_until(T, || p
        .metrics()
        .handshake_failures(HandshakeFailure::BadSignature)
        >= 1));
    assert!(wait_until(T, || v.metrics().handshake_failures_total() >= 1));
    assert!(!v.is_connected(&p.id()));
    assert!(!p.is_connected(&v.id()));
    assert_eq!(
        p.metrics()
            .handshakes_ok
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    let relay = start_proxy(p.local_addr().unwrap(), false, Duration::from_secs(20));
    let v2 = k.start(3, cfg(false), Arc::new(AdmitAll));
    v2.dial(relay, Some(p.id())).unwrap();
    assert!(
        wait_up(&v2, p.id(), T),
        "a transparent relay cannot read or alter anything"
    );
    v2.send(p.id(), status(1)).unwrap();
    assert!(wait_until(T, || p.is_connected(&v2.id())));
}

#[test]
fn replayed_challenge_from_another_connection_is_rejected() {
    init_tracing();
    let k = Keys::new();
    let p = k.start(1, cfg(true), Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    let ctx = k.ctx(2, pala_net::PROTOCOL_VERSION, NET);
    let first_ok = on_glommio(move || async move {
        // Connection 1: an honest client; keep its signature.
        let mut tls = tls_connect(addr).await;
        let (z, exporter) = {
            let c = tls.get_ref().1;
            (server_spki(c).unwrap(), exporter_of(c).unwrap())
        };
        exchange_hello(&mut tls, &ctx.hello).await.unwrap();
        let blob = sign_challenge(
            ctx.signer.as_ref(),
            NET,
            &challenge_message(&z, &exporter, Side::Client, NET),
        );
        write_challenge(&mut tls, &blob).await.unwrap();
        let first_ok = read_challenge(&mut tls).await.is_ok();
        // Connection 2: replay the captured signature.
        let mut tls2 = tls_connect(addr).await;
        exchange_hello(&mut tls2, &ctx.hello).await.unwrap();
        write_challenge(&mut tls2, &blob).await.unwrap();
        assert!(
            read_challenge(&mut tls2).await.is_err(),
            "the server must not answer a replay"
        );
        first_ok
    });
    assert!(first_ok);
    assert!(wait_until(T, || p
        .metrics()
        .handshake_failures(HandshakeFailure::BadSignature)
        == 1));
}

#[test]
fn oversize_and_garbage_close_only_the_offending_connection() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.max_payload = 1 << 20;
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    let good = k.start(2, cfg(false), Arc::new(AdmitAll));
    good.dial(addr, Some(p.id())).unwrap();
    assert!(wait_up(&good, p.id(), T));

    let attackers: Vec<_> = (10..14)
        .map(|s| k.ctx(s, pala_net::PROTOCOL_VERSION, NET))
        .collect();
    let unknown_ok = on_glommio(move || async move {
        let mut results = Vec::new();
        // Frame announcing 2 MiB against a 1 MiB limit.
        let mut s = tls_connect(addr).await;
        client_handshake(&mut s, &attackers[0], None).await.unwrap();
        let mut header = encode_raw_frame(0x21, 0, &[]);
        header[..4].copy_from_slice(&((2u32 << 20) + 7).to_le_bytes());
        write_all(&mut s, &header).await.unwrap();
        results.push(closed_within(&mut s, T).await);
        // A known type with an undecodable payload.
        let mut s = tls_connect(addr).await;
        client_handshake(&mut s, &attackers[1], None).await.unwrap();
        write_all(&mut s, &encode_raw_frame(0x21, 0, b"garbage"))
            .await
            .unwrap();
        results.push(closed_within(&mut s, T).await);
        // Bytes that are not even TLS.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\n\r\n not tls at all")
            .await
            .unwrap();
        results.push(closed_within(&mut raw, T).await);
        // An unknown type is skipped; the connection stays and the next frame arrives.
        let mut s = tls_connect(addr).await;
        client_handshake(&mut s, &attackers[3], None).await.unwrap();
        write_all(&mut s, &encode_raw_frame(0x7e, 0, b"from the future"))
            .await
            .unwrap();
        write_all(&mut s, &encode_frame(&status(77), 1 << 20).unwrap())
            .await
            .unwrap();
        results.push(!closed_within(&mut s, Duration::from_millis(300)).await);
        results
    });
    assert_eq!(unknown_ok, vec![true, true, true, true]);
    assert_eq!(wait_message(&p, k.id(13), T), Some(status(77)));
    assert!(p.metrics().closes(CloseReason::Oversize) >= 1);
    assert!(p.metrics().closes(CloseReason::Malformed) >= 1);
    assert!(p.metrics().handshake_failures(HandshakeFailure::Tls) >= 1);
    assert_eq!(
        p.metrics()
            .unknown_types
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The honest peer is untouched.
    assert!(wait_until(T, || p.is_connected(&good.id())));
    good.send(p.id(), status(3)).unwrap();
    assert_eq!(wait_message(&p, good.id(), T), Some(status(3)));
    p.send(good.id(), status(4)).unwrap();
    assert_eq!(wait_message(&good, p.id(), T), Some(status(4)));
}

#[test]
fn slow_reader_is_disconnected_when_its_queue_fills() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.outbound_queue = 8;
    pc.write_timeout = Duration::from_secs(20);
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    let ctx = k.ctx(2, pala_net::PROTOCOL_VERSION, NET);
    let slow_id = k.id(2);
    let (ready_tx, ready_rx) = flume::bounded(1);
    let reader = spawn_glommio(move || async move {
        let mut s = tls_connect(addr).await;
        client_handshake(&mut s, &ctx, None).await.unwrap();
        ready_tx.send(()).unwrap();
        // Never read: the server's socket buffers fill, then its queue.
        glommio::timer::sleep(Duration::from_secs(6)).await;
        drop(s);
    });
    ready_rx.recv_timeout(T).unwrap();
    assert!(wait_up(&p, slow_id, T));
    let msg = sized_message(64 << 10);
    let start = Instant::now();
    let mut sent = 0;
    while p.is_connected(&slow_id) && start.elapsed() < T {
        p.send(slow_id, msg.clone()).unwrap();
        sent += 1;
    }
    assert!(
        !p.is_connected(&slow_id),
        "still connected after {sent} messages"
    );
    let down = wait_event(&p, T, |e| matches!(e, NetEvent::PeerDown { .. }));
    assert!(
        matches!(
            down,
            Some(NetEvent::PeerDown {
                reason: CloseReason::QueueFull,
                ..
            })
        ),
        "{down:?}"
    );
    assert_eq!(p.metrics().closes(CloseReason::QueueFull), 1);
    reader.join().unwrap();
}

#[test]
fn t55_duplicate_connections_collapse_to_one() {
    init_tracing();
    let k = Keys::new();
    let a = k.start(1, cfg(true), Arc::new(AdmitAll));
    let b = k.start(2, cfg(true), Arc::new(AdmitAll));
    a.dial(b.local_addr().unwrap(), Some(b.id())).unwrap();
    b.dial(a.local_addr().unwrap(), Some(a.id())).unwrap();
    assert!(wait_until(T, || a.is_connected(&b.id()) && b.is_connected(&a.id())));
    std::thread::sleep(Duration::from_millis(800));
    let ups_minus_downs = |n: &pala_net::Network| {
        let mut balance = 0i64;
        while let Ok(e) = n.events().try_recv() {
            match e {
                NetEvent::PeerUp { .. } => balance += 1,
                NetEvent::PeerDown { .. } => balance -= 1,
                _ => {}
            }
        }
        balance
    };
    assert_eq!(ups_minus_downs(&a), 1);
    assert_eq!(ups_minus_downs(&b), 1);
    assert_eq!(
        a.metrics().peers.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        b.metrics().peers.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The surviving connection is the same one on both ends: traffic flows both ways.
    a.send(b.id(), status(1)).unwrap();
    assert_eq!(wait_message(&b, a.id(), T), Some(status(1)));
    b.send(a.id(), status(2)).unwrap();
    assert_eq!(wait_message(&a, b.id(), T), Some(status(2)));
    // Re-dialing the same address is a no-op.
    let opened = a
        .metrics()
        .connections_opened
        .load(std::sync::atomic::Ordering::Relaxed);
    a.dial(b.local_addr().unwrap(), Some(b.id())).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        a.metrics()
            .connections_opened
            .load(std::sync::atomic::Ordering::Relaxed),
        opened
    );
    assert!(a.is_connected(&b.id()));
}

#[test]
fn t56_voter_started_first_connects_and_reconnects() {
    init_tracing();
    let k = Keys::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    v.dial(addr, Some(k.id(1))).unwrap();
    assert!(wait_until(T, || v
        .metrics()
        .dial_failures
        .load(std::sync::atomic::Ordering::Relaxed)
        >= 2));

    let mut pc = cfg(true);
    pc.listen = Some(addr);
    let p = k.start(1, pc.clone(), k.admission(&[1], &[2]));
    assert!(wait_up(&v, p.id(), T), "connects once the proposer listens");

    // The proposer drops the connection: the voter comes back. (The voter may see the
    // connection up before the proposer has registered it; a disconnect before that
    // would find nothing to drop.)
    assert!(wait_until(T, || p.is_connected(&v.id())));
    p.disconnect(v.id()).unwrap();
    let down = wait_event(&v, T, |e| matches!(e, NetEvent::PeerDown { .. }));
    assert!(matches!(down, Some(NetEvent::PeerDown { .. })));
    assert!(wait_up(&v, p.id(), T), "reconnects after a drop");

    // The proposer restarts on the same address: the voter comes back again.
    let pid = p.id();
    p.shutdown();
    assert!(wait_event(&v, T, |e| matches!(e, NetEvent::PeerDown { .. })).is_some());
    let p2 = k.start(1, pc, k.admission(&[1], &[2]));
    assert!(wait_up(&v, pid, T), "reconnects after a restart");
    v.send(pid, status(9)).unwrap();
    assert_eq!(wait_message(&p2, v.id(), T), Some(status(9)));
}

#[test]
fn t59_rate_limit_delays_reads_and_silent_peer_times_out() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.rate_limits = RateLimits {
        messages_per_sec: 50,
        ..RateLimits::unlimited()
    };
    pc.read_timeout = Duration::from_millis(600);
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    v.dial(addr, Some(p.id())).unwrap();
    assert!(wait_up(&p, v.id(), T));
    assert!(wait_up(&v, p.id(), T));
    let start = Instant::now();
    for i in 0..100 {
        v.send(p.id(), status(i)).unwrap();
    }
    let mut got = 0;
    while got < 100 && start.elapsed() < T {
        if let Ok(NetEvent::Message { .. }) = p.events().recv_timeout(T) {
            got += 1;
        }
    }
    assert_eq!(got, 100);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800),
        "100 messages at 50/s with a burst of 50 took {took:?}"
    );
    assert!(
        p.metrics()
            .rate_limited_delays
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    // The voter stays silent (the layer sends nothing of its own): the read deadline closes it.
    let down = wait_event(&p, T, |e| matches!(e, NetEvent::PeerDown { .. }));
    assert!(
        matches!(
            down,
            Some(NetEvent::PeerDown {
                reason: CloseReason::ReadTimeout,
                ..
            })
        ),
        "{down:?}"
    );
}

#[test]
fn t58_blocked_handshakes_are_cancelled_on_both_sides() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.handshake_timeout = Duration::from_millis(400);
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    // A client that connects and says nothing.
    let closed = on_glommio(move || async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        closed_within(&mut s, T).await
    });
    assert!(closed, "the server cancels a silent client");
    assert!(wait_until(T, || p
        .metrics()
        .handshake_failures(HandshakeFailure::Timeout)
        >= 1));

    // A server that accepts and says nothing.
    let (tx, rx) = flume::bounded(1);
    let silent = spawn_glommio(move || async move {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(l.local_addr().unwrap()).unwrap();
        let held = l.accept().await;
        glommio::timer::sleep(Duration::from_secs(2)).await;
        drop(held);
    });
    let mut vc = cfg(false);
    vc.handshake_timeout = Duration::from_millis(400);
    let v = k.start(2, vc, Arc::new(AdmitAll));
    v.dial(rx.recv().unwrap(), Some(k.id(1))).unwrap();
    assert!(wait_until(T, || v
        .metrics()
        .handshake_failures(HandshakeFailure::Timeout)
        >= 1));
    silent.join().unwrap();
}

#[test]
fn hub_on_several_executors_serves_many_spokes() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.executors = 3;
    let voters: Vec<u64> = (2..8).collect();
    let p = k.start(1, pc, k.admission(&[1], &voters));
    let vs: Vec<_> = voters
        .iter()
        .map(|&s| k.start(s, cfg(false), Arc::new(AdmitAll)))
        .collect();
    for v in &vs {
        v.dial(p.local_addr().unwrap(), Some(p.id())).unwrap();
    }
    for v in &vs {
        assert!(wait_up(v, p.id(), T));
    }
    assert!(wait_until(T, || p.connected_peers().len() == vs.len()));
    for (i, v) in vs.iter().enumerate() {
        v.send(p.id(), status(i as u64)).unwrap();
    }
    let mut from = std::collections::HashSet::new();
    while from.len() < vs.len() {
        match wait_event(&p, T, |e| matches!(e, NetEvent::Message { .. })) {
            Some(NetEvent::Message { peer, .. }) => {
                from.insert(peer);
            }
            other => panic!("missing messages: {other:?}"),
        }
    }
    p.broadcast(status(99)).unwrap();
    for v in &vs {
        assert_eq!(wait_message(v, p.id(), T), Some(status(99)));
    }
}

#[test]
fn t59_write_deadline_closes_a_peer_that_stops_reading() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.outbound_queue = 100_000;
    pc.write_timeout = Duration::from_millis(300);
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    let ctx = k.ctx(2, pala_net::PROTOCOL_VERSION, NET);
    let (ready_tx, ready_rx) = flume::bounded(1);
    let reader = spawn_glommio(move || async move {
        let mut s = tls_connect(addr).await;
        client_handshake(&mut s, &ctx, None).await.unwrap();
        ready_tx.send(()).unwrap();
        glommio::timer::sleep(Duration::from_secs(3)).await;
        drop(s);
    });
    ready_rx.recv_timeout(T).unwrap();
    assert!(wait_up(&p, k.id(2), T));
    let msg = sized_message(64 << 10);
    for _ in 0..600 {
        p.send(k.id(2), msg.clone()).unwrap();
    }
    let down = wait_event(&p, T, |e| matches!(e, NetEvent::PeerDown { .. }));
    assert!(
        matches!(
            down,
            Some(NetEvent::PeerDown {
                reason: CloseReason::WriteTimeout,
                ..
            })
        ),
        "{down:?}"
    );
    reader.join().unwrap();
}

/// C-3: a node that becomes a proposer at a reconfiguration starts listening then; a node
/// that stops serving closes its listener without dropping established connections.
#[test]
fn listener_opened_and_closed_on_command() {
    init_tracing();
    let k = Keys::new();
    let p = k.start(1, cfg(false), k.admission(&[1], &[2, 3]));
    assert_eq!(p.local_addr(), None);
    let addr = p.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_ne!(addr.port(), 0, "the real port is reported");
    assert_eq!(p.local_addr(), Some(addr));
    // Listening again keeps the listener that is open.
    assert_eq!(p.listen("127.0.0.1:0".parse().unwrap()).unwrap(), addr);

    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    v.dial(addr, Some(p.id())).unwrap();
    assert!(wait_up(&v, p.id(), T), "the handshake completes");
    assert!(wait_up(&p, v.id(), T));
    v.send(p.id(), status(3)).unwrap();
    assert_eq!(wait_message(&p, v.id(), T), Some(status(3)));

    p.unlisten().unwrap();
    assert!(wait_until(T, || p.local_addr().is_none()));
    let w = k.start(3, cfg(false), Arc::new(AdmitAll));
    w.dial(addr, Some(p.id())).unwrap();
    assert!(wait_until(T, || w
        .metrics()
        .dial_failures
        .load(std::sync::atomic::Ordering::Relaxed)
        >= 2));
    assert!(!w.is_connected(&p.id()));
    assert!(v.is_connected(&p.id()), "established connections stay");

    // A bind failure is reported, not fatal.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = p.listen(taken.local_addr().unwrap()).unwrap_err();
    assert!(matches!(e, pala_net::NetError::Bind { .. }), "{e}");
    assert!(p.listen(addr).is_ok(), "the node can listen again");
    assert!(wait_up(&w, p.id(), T), "the waiting dialer connects");
}
