//! Dialing by host name: the name is resolved on every attempt, on a helper thread, so a
//! peer that comes back at another address under the same name is reached again and a
//! name that does not resolve does not stall the executor's other connections.

mod common;

use common::*;
use pala_net::{AdmitAll, Direction, NetEvent, PeerAddr};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn free_port(ip: &str) -> Option<u16> {
    let l = std::net::TcpListener::bind(format!("{ip}:0")).ok()?;
    Some(l.local_addr().ok()?.port())
}

#[test]
fn dial_by_localhost_and_redial_after_restart() {
    init_tracing();
    let k = Keys::new();
    let port = free_port("127.0.0.1").unwrap();
    let mut pc = cfg(true);
    pc.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let p = k.start(1, pc.clone(), k.admission(&[1], &[2]));
    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    let name: PeerAddr = format!("localhost:{port}").parse().unwrap();
    assert!(matches!(name, PeerAddr::Name { .. }));
    v.dial(name.clone(), Some(p.id())).unwrap();
    match wait_event(&v, T, |e| matches!(e, NetEvent::PeerUp { .. })) {
        Some(NetEvent::PeerUp {
            peer,
            addr,
            direction,
            dialed,
            ..
        }) => {
            assert_eq!(peer, p.id());
            assert_eq!(direction, Direction::Outbound);
            assert!(addr.ip().is_loopback() && addr.port() == port, "{addr}");
            assert_eq!(
                dialed,
                Some(name.clone()),
                "the event names the dialed entry"
            );
        }
        other => panic!("no PeerUp by name: {other:?}"),
    }
    v.send(p.id(), status(3)).unwrap();
    assert_eq!(wait_message(&p, v.id(), T), Some(status(3)));

    // The peer restarts under the same name: the dial loop resolves again and reconnects.
    let pid = p.id();
    p.shutdown();
    assert!(wait_event(&v, T, |e| matches!(e, NetEvent::PeerDown { .. })).is_some());
    let p2 = k.start(1, pc, k.admission(&[1], &[2]));
    assert!(wait_up(&v, pid, T), "reconnects by name after a restart");
    v.send(pid, status(4)).unwrap();
    assert_eq!(wait_message(&p2, v.id(), T), Some(status(4)));
}

/// A name that stands for both loopback families: the peer first listens on [::1] and
/// then, restarted, on 127.0.0.1 only; the name reaches it both times (a pod back at a
/// new IP). Needs `localhost` to resolve to both, which not every sandbox's hosts file
/// does.
#[test]
fn peer_moved_to_another_address_under_the_same_name() {
    init_tracing();
    let found = "localhost:1"
        .parse::<PeerAddr>()
        .unwrap()
        .resolve_blocking()
        .unwrap_or_default();
    let both = found.iter().any(|a| a.is_ipv4()) && found.iter().any(|a| a.is_ipv6());
    let Some(port) = free_port("[::1]").filter(|_| both) else {
        eprintln!(
            "skipped: `localhost` does not resolve to both 127.0.0.1 and ::1 here \
             ({found:?}), or [::1] cannot be bound"
        );
        return;
    };
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.listen = Some(format!("[::1]:{port}").parse().unwrap());
    let p = k.start(1, pc.clone(), k.admission(&[1], &[2]));
    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    v.dial(
        format!("localhost:{port}").parse::<PeerAddr>().unwrap(),
        Some(p.id()),
    )
    .unwrap();
    let first = wait_event(&v, T, |e| matches!(e, NetEvent::PeerUp { .. }));
    assert!(
        matches!(first, Some(NetEvent::PeerUp { addr, .. }) if addr.is_ipv6()),
        "{first:?}"
    );
    let pid = p.id();
    p.shutdown();
    assert!(wait_event(&v, T, |e| matches!(e, NetEvent::PeerDown { .. })).is_some());
    pc.listen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    let _p2 = k.start(1, pc, k.admission(&[1], &[2]));
    let again = wait_event(
        &v,
        T,
        |e| matches!(e, NetEvent::PeerUp { peer, .. } if *peer == pid),
    );
    assert!(
        matches!(again, Some(NetEvent::PeerUp { addr, .. }) if addr.is_ipv4()),
        "{again:?}"
    );
}

/// A name that does not resolve is a failed dial, retried on the usual back-off, while a
/// dial on the same (single) executor still connects.
#[test]
fn unresolvable_name_fails_without_stalling_other_dials() {
    init_tracing();
    let k = Keys::new();
    let p = k.start(1, cfg(true), k.admission(&[1], &[2]));
    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    v.dial(
        "no-such-host.invalid:7100".parse::<PeerAddr>().unwrap(),
        Some(k.id(3)),
    )
    .unwrap();
    v.dial(p.local_addr().unwrap(), Some(p.id())).unwrap();
    assert!(wait_up(&v, p.id(), T), "the other dial connects");
    assert!(
        wait_until(T, || v.metrics().dial_failures.load(Ordering::Relaxed) >= 2),
        "the unresolvable name is retried"
    );
}

/// `source_address`: the dialer's connections leave from the configured local address
/// (what the proposer's side sees as the peer's address), and a source it cannot bind
/// fails the attempt instead of dialing from elsewhere.
#[test]
fn outbound_connections_leave_from_the_source_address() {
    init_tracing();
    let k = Keys::new();
    let port = free_port("127.0.0.1").unwrap();
    let mut pc = cfg(true);
    pc.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let p = k.start(1, pc, k.admission(&[1], &[2, 3]));
    let mut vc = cfg(false);
    vc.source_address = Some("127.0.0.7".parse().unwrap());
    let v = k.start(2, vc, Arc::new(AdmitAll));
    let target: PeerAddr = format!("127.0.0.1:{port}").parse().unwrap();
    v.dial(target.clone(), Some(p.id())).unwrap();
    match wait_event(&p, T, |e| matches!(e, NetEvent::PeerUp { .. })) {
        Some(NetEvent::PeerUp { peer, addr, .. }) => {
            assert_eq!(peer, v.id());
            assert_eq!(addr.ip().to_string(), "127.0.0.7", "{addr}");
        }
        other => panic!("no PeerUp from the source address: {other:?}"),
    }
    // 192.0.2.1 (TEST-NET-1) is no address of this host: every attempt fails to bind.
    let mut bad = cfg(false);
    bad.source_address = Some("192.0.2.1".parse().unwrap());
    let w = k.start(3, bad, Arc::new(AdmitAll));
    w.dial(target, Some(p.id())).unwrap();
    assert!(
        wait_event(&w, Duration::from_secs(2), |e| matches!(
            e,
            NetEvent::PeerUp { .. }
        ))
        .is_none(),
        "a source address the host does not have never connects"
    );
}
