//! What the swarm switched on over a range of seeds and what it made the verifier
//! refuse: `cargo run --release --example swarm_stats -- <seeds> [--reconfig]`.
use pala_core::CoreEvent;
use pala_sim::sweep::{plan_with, run_plan};
use pala_sim::Action;
use std::collections::BTreeMap;
fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let reconfig = std::env::args().any(|a| a == "--reconfig");
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut hits, mut failed) = (0u64, 0u64);
    let mut core: BTreeMap<&str, u64> = BTreeMap::new();
    for seed in 0..seeds {
        let p = plan_with(seed, reconfig);
        for b in p.cfg.byzantine.values() {
            *kinds.entry(format!("{b:?}")).or_default() += 1;
        }
        *kinds.entry("seeds with rules".into()).or_default() +=
            u64::from(!p.cfg.adversary.is_empty());
        *kinds.entry("rules".into()).or_default() += p.cfg.adversary.len() as u64;
        *kinds.entry("twins".into()).or_default() += p.cfg.twins.len() as u64;
        let torn = p
            .actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::CrashTorn(_)))
            .count();
        *kinds.entry("torn crashes".into()).or_default() += torn as u64;
        let (r, sim) = run_plan(p, false);
        if let Some(f) = r.failure {
            failed += 1;
            println!("seed {seed} FAILED: {f}");
        }
        hits += sim.adversary_hits;
        // How often the window rules that two surviving mutants weaken were exercised.
        for i in (0..sim.len()).filter(|&i| sim.is_honest(i)) {
            if let Some(n) = sim.node(i) {
                for e in [
                    CoreEvent::ProposalBeyondWindow,
                    CoreEvent::ProposalStaleParent,
                ] {
                    *core.entry(e.as_str()).or_default() += n.counters().get(e);
                }
            }
        }
        for (k, v) in &sim.rejected {
            // Group by the reason, not the numbers inside it.
            let key: String = k.chars().filter(|c| !c.is_ascii_digit()).take(70).collect();
            *rejected.entry(key).or_default() += v;
        }
    }
    println!(
        "{seeds} seeds, {failed} failed, {hits} messages withheld or delayed by the adversary"
    );
    for (k, v) in kinds {
        println!("  {v:>7}  {k}");
    }
    println!("core events on honest nodes (at the end of each run):");
    for (k, v) in core {
        println!("  {v:>9}  {k}");
    }
    println!("rejected:");
    for (k, v) in rejected {
        println!("  {v:>9}  {k}");
    }
}
