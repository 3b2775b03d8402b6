//! Which of the swarm's additions a failing seed needs: runs the seed with each one
//! taken away in turn. `cargo run --release -p pala-sim --example swarm_bisect -- <seed> [--reconfig]`.
use pala_sim::sweep::{plan, plan_with, run_plan};
use pala_sim::Action;
fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let reconfig = std::env::args().any(|a| a == "--reconfig");
    let full = plan_with(seed, reconfig);
    let basic = plan(seed);
    println!(
        "byzantine basic {:?} swarm {:?}",
        basic.cfg.byzantine, full.cfg.byzantine
    );
    println!("twins {:?}", full.cfg.twins);
    for r in &full.cfg.adversary {
        println!("rule {r:?}");
    }
    for (t, a) in &full.actions {
        println!("  {t:>5} {a:?}");
    }
    let outcome = |name: &str, p| {
        let (r, sim) = run_plan(p, false);
        println!(
            "{name}: {:?} (adversary hits {})",
            r.failure, sim.adversary_hits
        );
    };
    outcome("full", full.clone());
    let mut p = full.clone();
    p.cfg.adversary.clear();
    outcome("without rules", p);
    let mut p = full.clone();
    for (_, a) in p.actions.iter_mut() {
        if let Action::CrashTorn(i) = *a {
            *a = Action::Crash(i);
        }
    }
    outcome("without torn crashes", p);
    let mut p = full.clone();
    p.cfg.torn_at_batch_ends = true;
    outcome("torn crashes cut at batch ends only", p);
    let mut p = full.clone();
    p.cfg.byzantine = basic.cfg.byzantine.clone();
    outcome("with the basic byzantine nodes", p);
}
