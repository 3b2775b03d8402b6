//! What strangers can make a hub hold: sockets in the handshake (issue 13 row 2) and
//! log lines about their failures (row 11).

mod common;

use common::*;
use pala_net::{AdmitAll, HandshakeFailure, NetMetrics};
use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// True when the server closed `s` within `t` (end of file or reset); data it sends
/// first (a TLS alert) is skipped.
fn closed_by_server(s: &mut TcpStream, t: Duration) -> bool {
    let end = std::time::Instant::now() + t;
    let mut b = [0u8; 256];
    loop {
        let Some(left) = end.checked_duration_since(std::time::Instant::now()) else {
            return false;
        };
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_sockets_beyond_the_handshake_caps_are_closed_at_once_and_counted() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.handshake_timeout = Duration::from_secs(2);
    pc.max_handshakes_per_source = 4;
    pc.max_handshakes = 16;
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let m = p.metrics().clone();
    assert!(wait_until(T, || NetMetrics::get(&m.refused_per_source) >= 196));
    assert_eq!(
        m.handshakes_in_progress
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    // The refused ones were closed right away, long before the handshake deadline.
    let refused_closed = idle[150..]
        .iter_mut()
        .map(|s| closed_by_server(s, Duration::from_millis(500)))
        .filter(|closed| *closed)
        .count();
    assert_eq!(refused_closed, 50);
    // The admitted ones run into the deadline and free their slots ...
    assert!(wait_until(T, || m
        .handshake_failures(HandshakeFailure::Timeout)
        >= 4));
    assert!(wait_until(T, || m
        .handshakes_in_progress
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0));
    // ... after which an honest peer from the same address completes its handshake.
    let v = k.start(2, cfg(false), Arc::new(AdmitAll));
    v.dial(addr, Some(p.id())).unwrap();
    assert!(wait_up(&p, v.id(), T));
    drop(idle);
}

#[test]
fn inbound_connections_beyond_the_total_cap_are_refused() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.max_inbound = 2;
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    let v2 = k.start(2, cfg(false), Arc::new(AdmitAll));
    let v3 = k.start(3, cfg(false), Arc::new(AdmitAll));
    v2.dial(addr, Some(p.id())).unwrap();
    v3.dial(addr, Some(p.id())).unwrap();
    assert!(wait_up(&p, v2.id(), T) || p.is_connected(&v2.id()));
    assert!(wait_until(T, || p.is_connected(&v3.id())));
    let mut third = TcpStream::connect(addr).unwrap();
    assert!(closed_by_server(&mut third, Duration::from_secs(1)));
    assert!(NetMetrics::get(&p.metrics().refused_connections) >= 1);
    // Established peers are untouched.
    assert!(p.is_connected(&v2.id()) && p.is_connected(&v3.id()));
}

#[test]
fn failed_handshakes_are_all_counted_but_logged_once_per_source_and_period() {
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.handshake_log_period = Duration::from_secs(60);
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    // Garbage instead of a TLS client hello: each connection fails its handshake.
    for _ in 0..30 {
        let mut s = TcpStream::connect(addr).unwrap();
        use std::io::Write;
        let _ = s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x01, 0xff, 0xff, 0xff]);
        let _ = closed_by_server(&mut s, T);
    }
    let m = p.metrics().clone();
    assert!(wait_until(T, || m.handshake_failures_total() >= 30));
    assert!(wait_until(T, || NetMetrics::get(
        &m.handshake_logs_suppressed
    ) >= 29));
}

/// Issue 13 row 7: peers that announce large frames and stall held max_payload each.
/// Now the bytes of partly received frames share one budget: the peer whose frame does not
/// fit is dropped and counted, the others keep theirs.
#[test]
fn stalled_large_frames_share_one_budget_and_the_peer_beyond_it_is_dropped() {
    use futures_lite::io::AsyncWriteExt;
    use pala_net::frame::encode_raw_frame;
    use pala_net::handshake::client_handshake;
    use pala_net::CloseReason;
    init_tracing();
    let k = Keys::new();
    let mut pc = cfg(true);
    pc.max_payload = 4 << 20;
    pc.max_inflight_frame_bytes = 4 << 20;
    let p = k.start(1, pc, Arc::new(AdmitAll));
    let addr = p.local_addr().unwrap();
    let ctxs: Vec<_> = (10..13)
        .map(|s| k.ctx(s, pala_net::PROTOCOL_VERSION, NET))
        .collect();
    let m = p.metrics().clone();
    let closed = on_glommio(move || async move {
        let mut streams = Vec::new();
        let mut closed = Vec::new();
        for ctx in &ctxs {
            let mut s = tls_connect(addr).await;
            client_handshake(&mut s, ctx, None).await.unwrap();
            // A 4 MiB frame stalled after 3 MiB: 2 MiB of it count against the budget.
            let frame = encode_raw_frame(0x7f, 0, &vec![0u8; 4 << 20]);
            // The server may reset the connection while the write is still going.
            let written = async {
                s.write_all(&frame[..3 << 20]).await?;
                s.flush().await
            }
            .await;
            glommio::timer::sleep(Duration::from_millis(300)).await;
            streams.push((s, written.is_err()));
        }
        for (s, failed) in streams.iter_mut() {
            closed.push(*failed || closed_within(s, Duration::from_millis(500)).await);
        }
        closed
    });
    assert_eq!(closed, vec![false, false, true], "the third does not fit");
    assert_eq!(m.closes(CloseReason::FrameBudget), 1);
}
