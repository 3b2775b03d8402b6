//! A bounded sweep as a test: the swarm sweep `pala sim sweep` runs, over the first seeds,
//! plain and with committee changes, with every checker on.
//!
//! `cargo test` runs a few seeds of each (`PALA_BOUNDED_SWEEP_SEEDS`, default 8; the
//! reconfiguration part runs a quarter as many, at least 2). Mutation testing
//! (`tools/mutants.sh --sim`) raises the count so that a core mutant that the core's own
//! tests miss still has to survive a sweep; the full 10k sweeps stay in `pala sim sweep`.

use pala_sim::sweep;

fn seeds() -> u64 {
    std::env::var("PALA_BOUNDED_SWEEP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// Runs `count` seeds on two threads and panics with every failure found.
fn sweep_of(count: u64, reconfig: bool) {
    let threads = 2;
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (0..count)
                        .filter(|seed| seed % threads == t)
                        .filter_map(|seed| {
                            let r = sweep::run_seed_mode(seed, reconfig);
                            r.failure.map(|f| format!("seed {seed}: {f}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("sweep worker panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed (reconfig {reconfig}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_first_seeds_of_the_plain_sweep_pass() {
    sweep_of(seeds(), false);
}

#[test]
fn the_first_seeds_of_the_reconfiguration_sweep_pass() {
    sweep_of((seeds() / 4).max(2), true);
}
