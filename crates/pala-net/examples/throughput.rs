//! Loopback throughput: the same framed transfer over TLS 1.3 and over plain TCP, then the
//! full layer (handshake, coordinator, channels) over TLS.
//!
//! `cargo run --release -p pala-net --example throughput [-- --quick]`

use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use pala_net::frame::{encode_frame, read_frame, Incoming, HEADER_LEN};
use pala_net::tls::{server_name, TlsIdentity};
use pala_net::{AdmitAll, NetConfig, NetEvent, Network, RateLimits};
use pala_types::insecure::InsecureTestScheme;
use pala_types::{
    Block, BlockHeader, BlockSn, ConsensusInfo, Hash, Message, NodeId, Proposal, Signature,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A proposal whose frame is `size` bytes (within a few bytes).
fn sized_message(size: usize) -> Message {
    let header = BlockHeader {
        sn: BlockSn::new(1, 1, 1),
        parent_sn: BlockSn::GENESIS,
        parent_hash: Hash::ZERO,
        height: 1,
        session_offset: 1,
        timestamp_ms: 0,
        state: pala_types::StateCommitment::NONE,
    };
    let make = |n: usize| {
        Message::Proposal(Proposal {
            proposer: NodeId([1; 20]),
            signature: Signature(vec![0; 48]),
            block: Arc::new(Block::new(
                header.clone(),
                vec![vec![0xab; n]],
                ConsensusInfo::default(),
            )),
        })
    };
    let frame_len = |m: &Message| {
        let mut out = Vec::new();
        m.encode_payload(&mut out);
        out.len() + HEADER_LEN
    };
    // Length prefixes grow with the payload, so correct once after a first guess.
    let guess = size.saturating_sub(frame_len(&make(0)));
    let actual = frame_len(&make(guess));
    make((guess + size).saturating_sub(actual))
}

async fn receive<R: AsyncRead + Unpin>(r: R, count: usize) -> Instant {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut buf = Vec::new();
    for _ in 0..count {
        match read_frame(&mut r, 1 << 26, &mut buf).await.expect("frame") {
            Incoming::Message { .. } => {}
            Incoming::Unknown { .. } | Incoming::Extension { .. } => panic!("unexpected frame"),
        }
    }
    Instant::now()
}

async fn send<W: AsyncWrite + Unpin>(w: W, frame: &[u8], count: usize) {
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    for _ in 0..count {
        w.write_all(frame).await.expect("write");
    }
    w.flush().await.expect("flush");
}

/// One transfer of `count` copies of `frame` between two executors; returns the time from
/// the first write to the last decoded frame.
fn transfer(tls: bool, frame: Arc<Vec<u8>>, count: usize) -> Duration {
    let identity = Arc::new(TlsIdentity::generate().expect("tls identity"));
    let (addr_tx, addr_rx) = flume::bounded(1);
    let id = identity.clone();
    let server = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            let s = l.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            if tls {
                let t = futures_rustls::TlsAcceptor::from(id.server.clone())
                    .accept(s)
                    .await
                    .unwrap();
                receive(t, count).await
            } else {
                receive(s, count).await
            }
        })
        .unwrap();
    let addr = addr_rx.recv().unwrap();
    let client = LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            if tls {
                let mut t = futures_rustls::TlsConnector::from(identity.client.clone())
                    .connect(server_name(), s)
                    .await
                    .unwrap();
                // Complete the handshake before the clock starts.
                t.flush().await.unwrap();
                let start = Instant::now();
                send(t, &frame, count).await;
                start
            } else {
                let start = Instant::now();
                send(s, &frame, count).await;
                start
            }
        })
        .unwrap();
    let start = client.join().unwrap();
    let end = server.join().unwrap();
    end - start
}

/// The whole layer: `count` messages from node A to node B through `Network` over TLS. The
/// sender keeps at most `window` messages in flight so the bounded queues never overflow.
fn through_layer(message: &Message, count: usize, window: u64) -> Duration {
    let scheme = InsecureTestScheme::new();
    let cfg = |listen: bool| NetConfig {
        network_id: 1,
        listen: listen.then(|| "127.0.0.1:0".parse().unwrap()),
        rate_limits: RateLimits::unlimited(),
        outbound_queue: 4096,
        ..NetConfig::default()
    };
    let a = Network::start(
        cfg(true),
        Arc::new(scheme.keypair(1)),
        Arc::new(scheme.clone()),
        Arc::new(AdmitAll),
    )
    .unwrap();
    let b = Network::start(
        cfg(false),
        Arc::new(scheme.keypair(2)),
        Arc::new(scheme.clone()),
        Arc::new(AdmitAll),
    )
    .unwrap();
    b.dial(a.local_addr().unwrap(), Some(a.id())).unwrap();
    for n in [&a, &b] {
        loop {
            if let NetEvent::PeerUp { .. } = n
                .events()
                .recv_timeout(Duration::from_secs(10))
                .expect("peer up")
            {
                break;
            }
        }
    }
    let received = Arc::new(AtomicU64::new(0));
    let r = received.clone();
    let events = b.events().clone();
    let counter = std::thread::spawn(move || {
        let mut n = 0;
        while n < count {
            if let Ok(NetEvent::Message { .. }) = events.recv() {
                n += 1;
                r.store(n as u64, Ordering::Relaxed);
            }
        }
        Instant::now()
    });
    let start = Instant::now();
    let to = b.id();
    for i in 0..count as u64 {
        while i >= received.load(Ordering::Relaxed) + window {
            std::thread::yield_now();
        }
        a.send(to, message.clone()).unwrap();
    }
    let end = counter.join().unwrap();
    assert_eq!(a.metrics().closes(pala_net::CloseReason::QueueFull), 0);
    end - start
}

struct Row {
    what: &'static str,
    size: usize,
    count: usize,
    elapsed: Duration,
}

impl Row {
    fn print(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "| {} | {} B | {} | {:.3} | {:.0} | {:.1} |",
            self.what,
            self.size,
            self.count,
            secs,
            self.count as f64 / secs,
            (self.count * self.size) as f64 / secs / 1e6
        )
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let cases = [(200usize, 1_000_000 / scale), (64 * 1024, 20_000 / scale)];
    let mut rows = Vec::new();
    for (size, count) in cases {
        let message = sized_message(size);
        let frame = Arc::new(encode_frame(&message, 1 << 26).unwrap());
        let size = frame.len();
        // Warm-up, then the measured runs, alternating so that drift hits both alike.
        transfer(true, frame.clone(), count / 10);
        transfer(false, frame.clone(), count / 10);
        let mut tls = Duration::MAX;
        let mut tcp = Duration::MAX;
        for _ in 0..3 {
            tls = tls.min(transfer(true, frame.clone(), count));
            tcp = tcp.min(transfer(false, frame.clone(), count));
        }
        rows.push(Row {
            what: "framing over TLS 1.3",
            size,
            count,
            elapsed: tls,
        });
        rows.push(Row {
            what: "framing over plain TCP",
            size,
            count,
            elapsed: tcp,
        });
        let layer_count = count / 4;
        let layer = through_layer(&message, layer_count, 1024);
        rows.push(Row {
            what: "Network (TLS, queues, channels)",
            size,
            count: layer_count,
            elapsed: layer,
        });
        println!(
            "{size} B frames: TLS/TCP time ratio {:.2}",
            tls.as_secs_f64() / tcp.as_secs_f64()
        );
    }
    println!("| path | frame | messages | seconds | messages/s | MB/s |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!("{}", r.print());
    }
}
