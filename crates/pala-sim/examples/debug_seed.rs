//! Prints a reconfiguration (or with `--plain` a plain) seed's plan summary and each node's counters, and with
//! `--trace` every simulated event (debugging aid).
use pala_sim::sweep::{plan_with, run_plan};
fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // `--plain`: the plain sweep's plan instead of the reconfiguration sweep's.
    let reconfig = !std::env::args().any(|a| a == "--plain");
    let mut p = plan_with(seed, reconfig);
    p.cfg.log_finalized = true;
    println!(
        "proposers {} voters {} stop_offset {} k {} byz {:?} twins {}",
        p.cfg.proposers,
        p.cfg.voters,
        p.cfg.core.stop_offset,
        p.cfg.core.k,
        p.cfg.byzantine,
        p.cfg.twins.len()
    );
    let trace = std::env::args().any(|a| a == "--trace");
    let (r, sim) = run_plan(p, trace);
    for line in &sim.trace {
        println!("{line}");
    }
    println!("{:?}", r.failure);
    for (n, b, _) in sim
        .finalized_log
        .iter()
        .filter(|(n, _, _)| *n == 1)
        .take(12)
    {
        println!(
            "n{n} {:?} h={} off={} txs={}",
            b.sn(),
            b.height(),
            b.header.session_offset,
            b.txs.len()
        );
    }
    for i in 0..sim.len() {
        if let Some(n) = sim.node(i) {
            println!(
                "node {i}: {:?} head {:?} offset {} txs {}",
                n.counters(),
                n.head(),
                n.head_block().header.session_offset,
                n.head_block().txs.len()
            );
        }
    }
}
