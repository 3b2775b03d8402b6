//! The checkers bite: a core (or its driver kit) with a deliberately broken rule is caught.
//! (Built with pala-core's `mutations` feature, which production builds do not enable.)

use pala_core::Mutation;
use pala_sim::{sweep, Sim, SimConfig};

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

/// The simulator's persist-before-send checker reads each node's simulated disk, not the
/// driver kit's gate, so a gate that lets one vote out before its vote guard is synced
/// is caught on the first honest vote.
#[test]
fn a_gate_that_releases_one_vote_before_its_persist_is_caught() {
    let run = |mutation| {
        let mut cfg = SimConfig::new(3, 1, 4);
        cfg.core.mutation = mutation;
        cfg.disk_sync_ms = 2;
        let mut sim = Sim::new(cfg);
        sim.run_until(1_000);
        sim
    };
    let control = run(None);
    assert!(control.violations.is_empty(), "{:?}", control.violations);
    assert!(
        control.min_honest_finalized() >= 5,
        "the control run makes progress"
    );

    let broken = run(Some(Mutation::SendBeforePersist));
    let v = broken.violations.first().expect("the early vote is caught");
    assert_eq!(v.checker, "persist-before-send", "{v:?}");
    assert!(v.detail.contains("vote"), "{v:?}");

    let (seed, f) = first_failure(Mutation::SendBeforePersist, 20)
        .expect("the sweep catches an early vote too");
    println!("caught at seed {seed}: {f}");
    assert!(f.contains("persist-before-send"), "got {f}");
}

/// PV-4 one vote short: the aggregating proposer takes a quorum minus one for a
/// notarization; every other node's verifier refuses it, so the cluster stalls and the
/// swarm sweep's liveness check fires (the core's unit tests do not cover it).
#[test]
fn a_quorum_counted_one_short_is_caught_by_the_swarm_sweep() {
    let (seed, f) = (0..20)
        .find_map(|seed| {
            let r = sweep::run_seed_mode_with(seed, false, |p| {
                p.cfg.core.mutation = Some(Mutation::QuorumOneShort)
            });
            r.failure.map(|f| (seed, f))
        })
        .expect("the swarm sweep must catch PV-4 off by one");
    println!("caught at seed {seed}: {f}");
    assert!(
        f.contains("liveness") || f.contains("finality-conflict"),
        "got {f}"
    );
}
