//! The spec's cluster scenarios (PROTOCOL.md section 10.5) on the simulator, under
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
