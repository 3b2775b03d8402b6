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
/// notarization. The independent quorum checker recounts every notarization an honest
/// node stores and fires on the first one (before, only the swarm sweep's liveness check
/// noticed, through the stall the other verifiers cause).
#[test]
fn a_quorum_counted_one_short_is_caught_by_the_independent_quorum_checker() {
    let (seed, f) = first_swarm_failure(Mutation::QuorumOneShort, 5)
        .expect("the swarm sweep must catch PV-4 off by one");
    println!("caught at seed {seed}: {f}");
    assert!(f.contains("accepted-quorum"), "got {f}");
    assert!(f.contains("below the quorum"), "got {f}");
}

/// V-5c without its stale-parent drop: a voter whose head is fresher than the parent of
/// an epoch's first block votes for it anyway. The independent vote-window checker
/// bounds the voter's head during the call that recorded the vote and fires (no
/// conflict or stall follows from it in these seeds).
#[test]
fn voting_on_a_first_block_older_than_the_head_is_caught_by_the_vote_window_checker() {
    let r = sweep::run_seed_with(12, |p| {
        p.cfg.core.mutation = Some(Mutation::VoteStaleParent)
    });
    let f = r
        .failure
        .expect("seed 12 of the basic plan catches V-5c without its drop");
    println!("caught at seed 12: {f}");
    assert!(f.contains("vote-window") && f.contains("V-5c"), "got {f}");
    let control = sweep::run_seed(12);
    assert_eq!(control.failure, None, "the real core passes the same seed");
}

/// Runs swarm sweep seeds with `m` switched on until a checker fires.
fn first_swarm_failure(m: Mutation, max_seeds: u64) -> Option<(u64, String)> {
    (0..max_seeds).find_map(|seed| {
        let r = sweep::run_seed_mode_with(seed, false, |p| p.cfg.core.mutation = Some(m));
        r.failure.map(|f| (seed, f))
    })
}
