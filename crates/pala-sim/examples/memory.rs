//! Long-run memory check: `cargo run --release -p pala-sim --example memory -- SECONDS`
//! runs 1 proposer + 3 voters (a 4-node cluster), K = 10, 10 ms delay, and prints the
//! resident size as finalized blocks accumulate.
use pala_sim::bench::{run, BenchParams};

fn main() {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let r = run(&BenchParams {
        voters: 3,
        delay_ms: 10,
        k: 10,
        seconds,
    })
    .expect("no violation");
    println!(
        "finalized {} blocks at the proposer ({:.1}/s simulated)",
        r.finalized, r.blocks_per_sec
    );
    for (blocks, kib) in &r.rss_samples {
        println!(
            "  after {blocks:>7} finalized blocks: resident {:>6} KiB",
            kib
        );
    }
    println!("proposer core buffers at the end: {:?}", r.core_buffers);
}
