//! The spec's cluster scenarios (docs/protocol.md section 10.5) on the simulator, under
//! several seeds each, with every safety checker running after every event.

use pala_sim::scenarios;
use pala_sim::sweep;

fn check(name: &str, seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let out = scenarios::run(name, seed, false).expect("known scenario");
        if let Some(f) = out.failure {
            panic!(
                "scenario {name} seed {seed} failed: {f}\n  replay: {}",
                out.sim.replay_hint(name)
            );
        }
    }
}

#[test]
fn t40_t51_normal_cluster_finalizes() {
    check("normal", 0..5);
}

#[test]
fn t53_network_delay() {
    check("delay", 0..5);
}

#[test]
fn t52_partitions_stall_minorities_and_heal() {
    check("partition", 0..5);
}

#[test]
fn e13_t43_proposer_switch_after_primary_crash() {
    check("proposer-switch", 0..5);
}

#[test]
fn crash_and_restart_from_disk() {
    check("crash-restart", 0..5);
}

#[test]
fn t41_disaster_recovery_plan_b() {
    check("disaster", 0..5);
}

#[test]
fn byzantine_voters_and_equivocating_proposer() {
    check("byzantine", 0..5);
}

/// The randomized sweep: partitions, loss, crashes, wipes, up to f byzantine voters and
/// one byzantine proposer; safety on every event, liveness after healing.
#[test]
fn sweep_300_seeds() {
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|part| {
                s.spawn(move || {
                    (0..300u64)
                        .filter(|seed| seed % 2 == part)
                        .filter_map(|seed| {
                            sweep::run_seed(seed)
                                .failure
                                .map(|f| format!("seed {seed}: {f}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("sweep thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

use pala_sim::{Action, Sim, SimConfig};
use pala_types::{BlockSn, Epoch};

#[test]
fn t20_one_proposer_one_voter() {
    let mut sim = Sim::new(SimConfig::new(20, 1, 1));
    assert!(sim.run_until(500), "{:?}", sim.violations);
    for i in 0..2 {
        assert!(sim.node(i).unwrap().head() >= BlockSn::new(1, 1, 10));
    }
}

#[test]
fn t27_voter_timeout_advances_the_epoch_then_liveness() {
    // The proposer's proposals are dropped at first: the voter times out, sends
    // clock(1,2), the proposer forms cnota(1,2), both enter (1,2) and (1,2,1) is built on
    // genesis and notarized.
    let mut cfg = SimConfig::new(27, 1, 1);
    cfg.log_finalized = true;
    let mut sim = Sim::new(cfg);
    sim.schedule(
        0,
        Action::Block {
            from: 0,
            kind: "proposal",
        },
    );
    sim.schedule(62, Action::Allow(0)); // after the voter timer fired (60 ms)
    assert!(sim.run_until(400), "{:?}", sim.violations);
    for i in 0..2 {
        let n = sim.node(i).unwrap();
        assert_eq!(n.epoch(), Epoch::new(1, 2), "node {i}");
        assert!(n.head() >= BlockSn::new(1, 2, 1));
    }
    let first = sim
        .finalized_log
        .iter()
        .find(|(_, b, _)| b.sn() == BlockSn::new(1, 2, 1))
        .expect("(1,2,1) final");
    assert_eq!(
        first.1.parent_sn(),
        BlockSn::GENESIS,
        "(1,2,1) is built on genesis"
    );
}

#[test]
fn t42_a_fresh_voter_catches_up_and_votes() {
    // Voter 3 is down from the start; 2 of 3 voters keep going (quorum 2), then voter 3
    // joins with an empty disk, syncs, and the cluster continues with it.
    let mut cfg = SimConfig::new(42, 1, 3);
    cfg.block_time_ms = 5;
    let mut sim = Sim::new(cfg);
    sim.schedule(0, Action::Crash(3));
    sim.schedule(
        300,
        Action::Restart {
            node: 3,
            wipe: false,
        },
    );
    assert!(sim.run_until(300), "{:?}", sim.violations);
    let before = sim.finalized_height(0);
    assert!(before >= 9, "progress without voter 3: {before}");
    // Stop voter 1: from now on a quorum needs voter 3.
    sim.schedule(600, Action::Crash(1));
    assert!(sim.run_until(2_000), "{:?}", sim.violations);
    assert!(
        sim.finalized_height(3) >= before + 30,
        "voter 3 caught up and votes: {}",
        sim.finalized_height(3)
    );
}

#[test]
fn t44_proposer_switch_and_back() {
    // p1 stops; voters time out to epoch 2 and p2 continues; p1 comes back, p2 stops, and
    // epoch 3 belongs to p1 again.
    let mut cfg = SimConfig::new(44, 2, 3);
    cfg.block_time_ms = 5;
    let mut sim = Sim::new(cfg);
    sim.schedule(200, Action::Crash(0));
    sim.schedule(
        800,
        Action::Restart {
            node: 0,
            wipe: false,
        },
    );
    sim.schedule(1_000, Action::Crash(1));
    assert!(sim.run_until(2_500), "{:?}", sim.violations);
    let n = sim.node(2).unwrap();
    assert!(
        n.finalized().epoch >= Epoch::new(1, 3),
        "finalized {:?}",
        n.finalized()
    );
    let f = n.finalized_block().height();
    assert!(f >= 60, "{f}");
}

#[test]
fn t54_disaster_recovery_wiping_voters() {
    // P-6 with 10 voters (quorum 7): wiping 2/3 - 1 = 4 of them leaves 6 < 7: no progress
    // until they are back and re-synced.
    let mut cfg = SimConfig::new(54, 1, 10);
    cfg.block_time_ms = 5;
    let mut sim = Sim::new(cfg);
    assert!(sim.run_until(300), "{:?}", sim.violations);
    for v in 1..=4 {
        sim.schedule(300, Action::Crash(v));
    }
    assert!(sim.run_until(500), "{:?}", sim.violations);
    let stalled = sim.finalized_height(0);
    assert!(sim.run_until(1_000), "{:?}", sim.violations);
    assert_eq!(sim.finalized_height(0), stalled, "no quorum, no progress");
    for v in 1..=4 {
        sim.schedule(
            1_000,
            Action::Restart {
                node: v,
                wipe: true,
            },
        );
    }
    assert!(sim.run_until(3_000), "{:?}", sim.violations);
    assert!(sim.finalized_height(0) >= stalled + 20, "progress resumed");
    assert!(
        sim.finalized_height(1) >= stalled + 20,
        "a wiped voter re-synced"
    );
}
