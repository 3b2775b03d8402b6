//! What the link emulator itself adds: round trips of small messages through a relay
//! with a given one-way delay, against the same round trips direct; and the relay's CPU
//! time per message. `cargo run --release -p pala-bench --example link_overhead -- 10 2000`
//! (delay in ms, round trips).
use pala_bench::link::{LinkProfile, Relay};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                s.set_nodelay(true).unwrap();
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    a
}

fn rtts(addr: SocketAddr, n: usize, len: usize) -> Vec<f64> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let msg = vec![3u8; len];
    let mut back = vec![0u8; len];
    (0..n)
        .map(|_| {
            let t = Instant::now();
            s.write_all(&msg).unwrap();
            s.read_exact(&mut back).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p) as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let delay_ms: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let len = 1024;
    let target = echo();
    let mut direct = rtts(target, n, len);
    let relay = Relay::start(
        "127.0.0.1:0".parse().unwrap(),
        target,
        LinkProfile::delay(Duration::from_millis(delay_ms)),
    )
    .unwrap();
    let mut via = rtts(relay.addr(), n, len);
    let expected = 2.0 * delay_ms as f64;
    let mut extra: Vec<f64> = via.iter().map(|r| r - expected).collect();
    let st = relay.stats();
    let chunks = st.chunks.load(Ordering::Relaxed);
    let lateness = st.lateness_ns.load(Ordering::Relaxed) as f64 / chunks.max(1) as f64 / 1e3;
    drop(relay); // joins the acceptor; connection threads add their CPU as they end
    std::thread::sleep(Duration::from_millis(100));
    println!("{n} round trips of {len} B, one-way delay {delay_ms} ms");
    println!(
        "  direct RTT      p50 {:.3} ms  p99 {:.3} ms",
        pct(&mut direct, 0.5),
        pct(&mut direct, 0.99)
    );
    println!(
        "  via relay RTT   p50 {:.3} ms  p99 {:.3} ms (2 x delay = {expected} ms)",
        pct(&mut via, 0.5),
        pct(&mut via, 0.99)
    );
    println!(
        "  added by relay  p50 {:.3} ms  p99 {:.3} ms; mean release lateness {lateness:.1} us per chunk",
        pct(&mut extra, 0.5),
        pct(&mut extra, 0.99)
    );
}
