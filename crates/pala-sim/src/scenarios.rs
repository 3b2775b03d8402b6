//! Named scenarios for `pala sim run --scenario NAME --seed S` (section 10.5).

use crate::sim::{Action, Byzantine, Sim, SimConfig};
use crate::sweep;

/// Every scenario name with a one-line description.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "normal",
        "T-40/T-51: 3 proposers, 7 voters, no faults; everyone finalizes",
    ),
    (
        "delay",
        "T-53: 50 ms links, K = 2, T_VOTER 600 ms, first-proposal delay 100 ms",
    ),
    (
        "partition",
        "T-52: 50/50 split stalls, 1/3-2/3 split lets the majority progress, heal catches up",
    ),
    (
        "proposer-switch",
        "E-13/T-43: the primary crashes; voters time out and the next proposer continues",
    ),
    (
        "crash-restart",
        "crash and restart voters and proposers from their disks",
    ),
    (
        "disaster",
        "T-41/P-5: the only proposer loses its disk and recovers the chain from voters",
    ),
    (
        "byzantine",
        "f byzantine voters (double votes, forged ids, replay, junk) and an equivocating primary",
    ),
    ("random", "the sweep's randomized plan for this seed"),
    (
        "random-reconfig",
        "the reconfiguration sweep's plan for this seed (committee changes)",
    ),
];

/// Outcome of a scenario run.
pub struct Outcome {
    /// The simulator after the run (for inspection and traces).
    pub sim: Sim,
    /// None when every checker (and the scenario's expectations) passed.
    pub failure: Option<String>,
}

fn finish(sim: Sim, expect_min_final: u64) -> Outcome {
    let failure = if let Some(v) = sim.violations.first() {
        Some(format!("{v:?}"))
    } else if sim.min_honest_finalized() < expect_min_final {
        Some(format!(
            "liveness: min honest finalized height {} < expected {expect_min_final}",
            sim.min_honest_finalized()
        ))
    } else {
        None
    };
    Outcome { sim, failure }
}

/// Runs scenario `name` with `seed`.
pub fn run(name: &str, seed: u64, trace: bool) -> Result<Outcome, String> {
    run_with_progress(name, seed, trace, None)
}

/// Builds a simulator and installs the progress callback, if any.
fn new_sim(cfg: SimConfig, progress: &mut Option<crate::sim::ProgressFn>) -> Sim {
    let mut sim = Sim::new(cfg);
    if let Some(f) = progress.take() {
        sim.set_progress(500, f);
    }
    sim
}

/// Runs scenario `name`, reporting progress every 500 simulated ms when `progress` is set.
pub fn run_with_progress(
    name: &str,
    seed: u64,
    trace: bool,
    mut progress: Option<crate::sim::ProgressFn>,
) -> Result<Outcome, String> {
    let mut cfg = SimConfig::new(seed, 1, 3);
    cfg.trace = trace;
    cfg.jitter_ms = 3;
    let out = match name {
        "normal" => {
            cfg.proposers = 3;
            cfg.voters = 7;
            let mut sim = new_sim(cfg, &mut progress);
            sim.run_until(3_000);
            finish(sim, 30)
        }
        "delay" => {
            cfg.delay_ms = 50;
            cfg.jitter_ms = 0;
            cfg.core.voter_timeout_ms = 600;
            cfg.core.first_proposal_delay_ms = 100;
            let mut sim = new_sim(cfg, &mut progress);
            sim.run_until(5_000);
            finish(sim, 10)
        }
        "partition" => {
            cfg.proposers = 2;
            cfg.voters = 6;
            let mut sim = new_sim(cfg, &mut progress);
            // 50/50 split of proposers and voters: no side has a quorum (5 of 6).
            sim.schedule(
                0,
                Action::Partition(vec![vec![0, 2, 3, 4], vec![1, 5, 6, 7]]),
            );
            sim.run_until(1_000);
            if sim.min_honest_finalized() > 0 {
                return Ok(finish(sim, u64::MAX));
            }
            sim.schedule(1_000, Action::Heal);
            sim.run_until(3_000);
            let healed = sim.min_honest_finalized();
            // 1/3 - 2/3 split: the side with 5 voters (quorum 4 of 6) keeps going.
            sim.schedule(
                3_000,
                Action::Partition(vec![vec![0, 2], vec![1, 3, 4, 5, 6, 7]]),
            );
            sim.run_until(5_000);
            sim.schedule(5_000, Action::Heal);
            sim.run_until(8_000);
            finish(sim, healed + 10)
        }
        "proposer-switch" => {
            cfg.proposers = 2;
            cfg.voters = 4;
            let mut sim = new_sim(cfg, &mut progress);
            sim.run_until(500);
            let before = sim.min_honest_finalized();
            sim.schedule(500, Action::Crash(0));
            sim.run_until(3_000);
            finish(sim, before + 10)
        }
        "crash-restart" => {
            cfg.proposers = 2;
            cfg.voters = 4;
            let mut sim = new_sim(cfg, &mut progress);
            for (t, node) in [(300, 2), (600, 0), (900, 3), (1200, 1)] {
                sim.schedule(t, Action::Crash(node));
                sim.schedule(t + 200, Action::Restart { node, wipe: false });
            }
            sim.run_until(4_000);
            finish(sim, 30)
        }
        "disaster" => {
            cfg.voters = 3;
            let mut sim = new_sim(cfg, &mut progress);
            sim.run_until(1_000);
            let before = sim.min_honest_finalized();
            sim.schedule(1_000, Action::Crash(0));
            sim.schedule(
                1_100,
                Action::Restart {
                    node: 0,
                    wipe: true,
                },
            );
            sim.run_until(4_000);
            let restored = sim.finalized_height(0);
            if restored < before {
                let mut o = finish(sim, 0);
                o.failure = Some(format!(
                    "proposer restored only up to height {restored} < {before}"
                ));
                return Ok(o);
            }
            finish(sim, before + 10)
        }
        "byzantine" => {
            cfg.proposers = 2;
            cfg.voters = 7;
            cfg.byzantine.insert(0, Byzantine::EquivocatingProposer);
            cfg.byzantine.insert(2, Byzantine::DoubleVoter);
            cfg.byzantine.insert(3, Byzantine::ForgedIds);
            let mut sim = new_sim(cfg, &mut progress);
            sim.run_until(5_000);
            finish(sim, 10)
        }
        "random" | "random-reconfig" => {
            let (r, sim) =
                sweep::run_plan(sweep::plan_with(seed, name == "random-reconfig"), trace);
            Outcome {
                sim,
                failure: r.failure,
            }
        }
        other => return Err(format!("unknown scenario {other:?}; known: {}", names())),
    };
    Ok(out)
}

fn names() -> String {
    SCENARIOS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}
