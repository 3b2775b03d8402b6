//! The checkers bite: a core with a deliberately broken rule is caught by the sweep.
//! (Built with pala-core's `mutations` feature, which production builds do not enable.)

use pala_core::Mutation;
use pala_sim::sweep;

/// Runs sweep seeds with `m` switched on until a checker fires; returns the failure.
fn first_failure(m: Mutation, max_seeds: u64) -> Option<(u64, String)> {
    (0..max_seeds).find_map(|seed| {
        let r = sweep::run_seed_with(seed, |p| p.cfg.core.mutation = Some(m));
        r.failure.map(|f| (seed, f))
    })
}

#[test]
fn finalizing_one_block_too_early_is_caught() {
    let (seed, f) = first_failure(Mutation::FinalizeOneEarly, 400)
        .expect("the sweep must catch F-B off by one");
    println!("caught at seed {seed}: {f}");
    assert!(
        f.contains("finality-conflict"),
        "expected a safety violation, got {f}"
    );
}

#[test]
fn voting_conflicting_blocks_is_caught() {
    let (seed, f) = first_failure(Mutation::IgnoreConflicts, 400)
        .expect("the sweep must catch missing V-1/V-4");
    println!("caught at seed {seed}: {f}");
    assert!(
        f.contains("double-vote") || f.contains("finality-conflict"),
        "got {f}"
    );
}
