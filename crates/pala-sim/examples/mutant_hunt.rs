//! How many seeds of the basic plan and of the swarm plan catch each hand-written
//! mutant: `cargo run --release -p pala-sim --example mutant_hunt -- <seeds>`.
use pala_core::Mutation;
use pala_sim::sweep::{plan, plan_with, run_plan};
fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let only = std::env::args().nth(2);
    for m in [
        Mutation::QuorumOneShort,
        Mutation::VoteOutsideKWindow,
        Mutation::VoteStaleParent,
        Mutation::FinalizeOneEarly,
        Mutation::IgnoreConflicts,
    ] {
        if only.as_ref().is_some_and(|o| *o != format!("{m:?}")) {
            continue;
        }
        for (name, swarm) in [("basic", false), ("swarm", true)] {
            let mut caught = Vec::new();
            for seed in 0..seeds {
                let mut p = if swarm {
                    plan_with(seed, false)
                } else {
                    plan(seed)
                };
                p.cfg.core.mutation = Some(m);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_plan(p, false).0.failure
                }))
                .unwrap_or_else(|_| Some("panic".into()));
                if let Some(f) = r {
                    caught.push((seed, f));
                }
            }
            let first = caught
                .first()
                .map(|(s, f)| format!("seed {s}: {}", &f[..f.len().min(160)]));
            println!(
                "{m:?} {name}: caught by {}/{seeds} seeds; first {first:?}",
                caught.len()
            );
        }
    }
}
