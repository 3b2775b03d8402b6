//! The randomized sweep: each seed draws a cluster, a network and a fault plan, runs it
//! with every checker on, then heals everything and requires finality to resume (checker e).

pub use crate::plan::{SeedPlan, FAULT_PHASE_MS};
use crate::sim::{Action, Byzantine, Sim, SimConfig};
use pala_core::CoreConfig;
use pala_types::Epoch;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Liveness bound after healing (simulated ms): finality must advance within it.
pub const LIVENESS_BOUND_MS: u64 = 6_000;
/// Blocks every honest node must finalize beyond the best pre-heal height.
pub const LIVENESS_BLOCKS: u64 = 3;
/// Resolution of the recovery time measured after healing (simulated ms).
const RECOVERY_STEP_MS: u64 = 50;

/// Draws the plan of `seed` with the swarm's sharper faults on top, and committee
/// changes every few dozen blocks when `reconfig` is set.
pub fn plan_with(seed: u64, reconfig: bool) -> SeedPlan {
    let mut p = plan(seed);
    crate::swarm::add_swarm(seed, &mut p);
    if reconfig {
        add_reconfigurations(seed, &mut p);
    }
    p
}

/// Number of sessions a reconfiguration plan schedules.
pub const RECONFIG_SESSIONS: usize = 30;

/// Adds a committee schedule: sessions 2.. draw their voters from a larger pool (some
/// changes replace more than a third of the voters) and reorder the proposers; the
/// byzantine voters of the plan and the keys that run twice (twins) stay within each
/// session's fault budget, and voter wipes are turned into plain restarts (a wiped voter
/// would count against every session it serves in).
fn add_reconfigurations(seed: u64, p: &mut SeedPlan) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7ec0_4f19);
    let cfg = &mut p.cfg;
    let first_pool = cfg.proposers + cfg.voters;
    let extra = rng.gen_range(2..=4);
    let pool: Vec<usize> = (cfg.proposers..first_pool + extra).collect();
    let byz: Vec<usize> = cfg
        .byzantine
        .keys()
        .copied()
        .filter(|i| *i >= cfg.proposers)
        .collect();
    cfg.core.stop_offset = rng.gen_range(5..=12);
    for _ in 0..RECONFIG_SESSIONS {
        let n = *[4usize, 4, 5, 7].choose(&mut rng).expect("non-empty");
        let f = (n - 1) / 3;
        let mut voters: Vec<usize> = Vec::new();
        let mut shuffled = pool.clone();
        shuffled.shuffle(&mut rng);
        let mut byz_in = 0;
        for v in shuffled {
            if voters.len() == n {
                break;
            }
            if byz.contains(&v) {
                if byz_in == f {
                    continue;
                }
                byz_in += 1;
            }
            voters.push(v);
        }
        voters.sort_unstable();
        let mut proposers: Vec<usize> = (0..cfg.proposers).collect();
        proposers.shuffle(&mut rng);
        cfg.sessions.push((proposers, voters));
    }
    // A twin's key is one more fault of every session it votes in; drawn before the
    // schedule (by the swarm), it stays only where every such session has room for it,
    // so the schedule is the same with or without twins (a seed's regression test can
    // drop them and keep the plan it was found with).
    let mut faulty: Vec<usize> = byz;
    cfg.twins.retain(|t| {
        let fits = cfg.sessions.iter().all(|(_, vs)| {
            !vs.contains(&t.of)
                || vs.iter().filter(|v| faulty.contains(v)).count() < (vs.len() - 1) / 3
        });
        if fits {
            faulty.push(t.of);
        }
        fits
    });
    for (_, a) in p.actions.iter_mut() {
        if let Action::Restart { node, wipe } = a {
            if *node >= cfg.proposers {
                *wipe = false;
            }
        }
    }
}

/// Draws the plan of `seed`.
pub fn plan(seed: u64) -> SeedPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed);
    let proposers = rng.gen_range(1..=3);
    let voters = *[4usize, 4, 5, 7].choose(&mut rng).expect("non-empty");
    let f = (voters - 1) / 3;
    let mut cfg = SimConfig::new(seed, proposers, voters);
    cfg.core = CoreConfig {
        k: rng.gen_range(1..=4),
        voter_timeout_ms: 150,
        first_proposal_delay_ms: 20,
        heartbeat_ms: 100,
        sync_period_ms: 30,
        unnotarized_resend_ms: 100,
        ..CoreConfig::default()
    };
    cfg.delay_ms = rng.gen_range(1..=15);
    cfg.block_time_ms = rng.gen_range(5..=25);
    cfg.jitter_ms = rng.gen_range(0..=cfg.delay_ms);
    cfg.loss = if rng.gen_bool(0.3) {
        rng.gen_range(0.0..0.03)
    } else {
        0.0
    };
    // Up to f voters are byzantine or wiped in total (the fault budget of N = 3f+1).
    let n = proposers + voters;
    let mut budget = f;
    let mut voter_ids: Vec<usize> = (proposers..n).collect();
    voter_ids.shuffle(&mut rng);
    let byz_voters = rng.gen_range(0..=budget);
    for &v in voter_ids.iter().take(byz_voters) {
        let b = *[
            Byzantine::DoubleVoter,
            Byzantine::ForgedIds,
            Byzantine::Replayer,
            Byzantine::Junk,
            Byzantine::Silent,
        ]
        .choose(&mut rng)
        .expect("non-empty");
        cfg.byzantine.insert(v, b);
    }
    budget -= byz_voters;
    if proposers >= 2 && rng.gen_bool(0.4) {
        let b = if rng.gen_bool(0.5) {
            Byzantine::EquivocatingProposer
        } else {
            Byzantine::StaleView
        };
        cfg.byzantine.insert(rng.gen_range(0..proposers), b);
    }
    let mut actions = Vec::new();
    let mut t = rng.gen_range(100..400);
    let mut crashed: Vec<usize> = Vec::new();
    let wipe_candidates: Vec<usize> = voter_ids[byz_voters..].to_vec();
    while t < FAULT_PHASE_MS {
        match rng.gen_range(0..6) {
            0 => {
                let mut all: Vec<usize> = (0..n).collect();
                all.shuffle(&mut rng);
                let cut = rng.gen_range(1..n);
                actions.push((
                    t,
                    Action::Partition(vec![all[..cut].to_vec(), all[cut..].to_vec()]),
                ));
            }
            1 => actions.push((t, Action::Heal)),
            2 | 3 => {
                let i = rng.gen_range(0..n);
                if !crashed.contains(&i) {
                    crashed.push(i);
                    actions.push((t, Action::Crash(i)));
                }
            }
            4 => {
                if let Some(i) = crashed.pop() {
                    // Proposers may lose their disk any time (P-5); a voter only within
                    // the fault budget, since it forgets what it signed.
                    let wipe = if i < proposers {
                        rng.gen_bool(0.3)
                    } else if budget > 0 && wipe_candidates.contains(&i) && rng.gen_bool(0.3) {
                        budget -= 1;
                        true
                    } else {
                        false
                    };
                    actions.push((t, Action::Restart { node: i, wipe }));
                }
            }
            _ => {
                if cfg.loss == 0.0 && rng.gen_bool(0.5) {
                    actions.push((t, Action::SetLoss(0.05)));
                    actions.push((t + rng.gen_range(100..500), Action::SetLoss(0.0)));
                }
            }
        }
        t += rng.gen_range(150..700);
    }
    actions.push((FAULT_PHASE_MS, Action::Heal));
    actions.push((FAULT_PHASE_MS, Action::SetLoss(0.0)));
    for i in crashed {
        actions.push((
            FAULT_PHASE_MS,
            Action::Restart {
                node: i,
                wipe: false,
            },
        ));
    }
    // Drawn last, so the rest of the plan is what it was before disks took time.
    cfg.disk_sync_ms = rng.gen_range(0..=3);
    SeedPlan { cfg, actions }
}

/// Outcome of one seed.
#[derive(Clone, Debug)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// None when every checker passed.
    pub failure: Option<String>,
    /// Smallest honest finalized height at the end.
    pub finalized: u64,
    /// Events simulated.
    pub events: u64,
    /// Committee changes every honest node went through (smallest over nodes).
    pub sessions_changed: u32,
    /// Simulated ms from healing until an honest node finalized past the best pre-heal
    /// height (`None`: not within the liveness bound, or the run failed).
    pub recovery_ms: Option<u64>,
    /// The same until every honest node did (catching up included).
    pub caught_up_ms: Option<u64>,
    /// Epochs the honest nodes' freshest epoch advanced after healing (within a session;
    /// across a session change, the epochs of the new one after its first): the epochs
    /// wasted before finality resumed and after.
    pub epochs_after_heal: u32,
}

/// Runs a plan: faults, then healing, then the liveness check (checker e).
pub fn run_plan(p: SeedPlan, trace: bool) -> (SeedResult, Sim) {
    let seed = p.cfg.seed;
    let mut cfg = p.cfg;
    cfg.trace = trace;
    let mut sim = Sim::new(cfg);
    for (t, a) in p.actions {
        sim.schedule(t, a);
    }
    let (failure, recovery) = if sim.run_until(FAULT_PHASE_MS) {
        heal_phase(&mut sim)
    } else {
        (
            Some(format!("{:?}", sim.violations[0])),
            Recovery::default(),
        )
    };
    let sessions_changed = (0..sim.len())
        .filter(|&i| sim.is_honest(i))
        .filter_map(|i| sim.node(i).map(|n| n.epoch().session.saturating_sub(1)))
        .min()
        .unwrap_or(0);
    let ok_run = failure.is_none();
    let r = SeedResult {
        seed,
        failure,
        finalized: sim.min_honest_finalized(),
        events: sim.events_processed,
        sessions_changed,
        recovery_ms: recovery.ms.filter(|_| ok_run),
        caught_up_ms: recovery.caught_up_ms.filter(|_| ok_run),
        epochs_after_heal: recovery.epochs,
    };
    (r, sim)
}

/// How long recovery after healing may take (the spec's mechanism, not a measured
/// figure): in the worst case the epoch in progress times out, each proposer in turn
/// gets one epoch (E-1..E-6: a voter timeout, the clock messages to the proposers and
/// the clock notarization back, the statuses of N-2), and one more epoch goes to a
/// primary restarted from an empty disk at healing, whose first `(e,1)` cannot match the
/// voters' heads before it has synced (V-5c, W-8); then the honest primary's chain needs
/// K + 2 blocks to finalize past the old head (F-B), each a block time, a round trip and
/// a disk sync.
#[derive(Clone, Copy, Debug)]
pub struct RecoveryBudget {
    /// Epochs the honest frontier may advance after healing.
    pub epochs: u32,
    /// Simulated ms until an honest node finalizes past the best pre-heal height.
    pub ms: u64,
}

impl RecoveryBudget {
    /// The budget of a configuration.
    pub fn of(cfg: &SimConfig) -> RecoveryBudget {
        let proposers = cfg.proposers as u64;
        let one_way = cfg.delay_ms + cfg.jitter_ms;
        let epoch = cfg.core.voter_timeout_ms + 4 * one_way;
        let block = cfg.block_time_ms + 2 * one_way + cfg.disk_sync_ms;
        RecoveryBudget {
            epochs: cfg.proposers as u32 + 2,
            ms: (proposers + 2) * epoch + (cfg.core.k as u64 + 2) * block,
        }
    }
}

/// What the liveness phase measured.
#[derive(Default)]
struct Recovery {
    /// Simulated ms from healing until some honest node finalized past the best
    /// pre-heal height (the cluster's finality resumed).
    ms: Option<u64>,
    /// The same until every honest node did (restarted nodes caught up).
    caught_up_ms: Option<u64>,
    /// Epochs the honest frontier advanced over the whole liveness phase.
    epochs: u32,
}

/// The freshest epoch of the honest nodes that are up.
fn frontier(sim: &Sim) -> Epoch {
    (0..sim.len())
        .filter(|&i| sim.is_honest(i))
        .filter_map(|i| sim.node(i).map(|n| n.epoch()))
        .max()
        .unwrap_or(Epoch::NIL)
}

/// After healing: finality must pass the best pre-heal height by [`LIVENESS_BLOCKS`]
/// within [`LIVENESS_BOUND_MS`] (checker e), and a reconfiguration begun before healing
/// must be over; measures the time to the first finality and the epochs spent.
fn heal_phase(sim: &mut Sim) -> (Option<String>, Recovery) {
    let violation = |sim: &Sim| Some(format!("{:?}", sim.violations[0]));
    let best = |sim: &Sim| {
        (0..sim.len())
            .filter(|&i| sim.is_honest(i))
            .map(|i| sim.finalized_height(i))
            .max()
            .unwrap_or(0)
    };
    let base = best(sim);
    let at_heal = frontier(sim);
    let mut rec = Recovery::default();
    let end = FAULT_PHASE_MS + LIVENESS_BOUND_MS;
    let mut t = FAULT_PHASE_MS;
    while rec.caught_up_ms.is_none() && t < end {
        t += RECOVERY_STEP_MS;
        if !sim.run_until(t) {
            return (violation(sim), rec);
        }
        if rec.ms.is_none() && best(sim) > base {
            rec.ms = Some(t - FAULT_PHASE_MS);
        }
        if sim.min_honest_finalized() > base {
            rec.caught_up_ms = Some(t - FAULT_PHASE_MS);
        }
    }
    if !sim.run_until(end) {
        return (violation(sim), rec);
    }
    let at_end = frontier(sim);
    rec.epochs = if at_end.session == at_heal.session {
        at_end.e - at_heal.e
    } else {
        at_end.e - 1
    };
    let budget = RecoveryBudget::of(&sim.cfg);
    let failure = if rec.epochs > budget.epochs {
        Some(format!(
            "liveness: the honest frontier advanced {} epochs after healing, budget {} (the epoch in progress, a full rotation of the proposers and one for a primary that lost its disk)",
            rec.epochs, budget.epochs
        ))
    } else if rec.ms.is_none_or(|ms| ms > budget.ms) {
        Some(format!(
            "liveness: finality resumed {} after healing, budget {} ms",
            rec.ms.map_or("not".to_string(), |ms| format!("{ms} ms")),
            budget.ms
        ))
    } else if sim.min_honest_finalized() < base + LIVENESS_BLOCKS {
        let heights: Vec<u64> = (0..sim.len()).map(|i| sim.finalized_height(i)).collect();
        Some(format!(
            "liveness: finalized heights {heights:?} did not all pass {} within {LIVENESS_BOUND_MS} ms after healing (best before: {base})",
            base + LIVENESS_BLOCKS
        ))
    } else {
        sim.stop_block_final_by(FAULT_PHASE_MS)
            .and_then(|s| reconfiguration_unfinished(sim, s))
    };
    (failure, rec)
}

/// The reconfiguration budget: a session whose stop block some honest node had
/// finalized before healing must be over everywhere once the liveness bound has passed,
/// that is, every honest node has finalized a block of a later session (C-5). Finality
/// alone does not show it: the empty blocks after a stop block keep finalizing in the
/// old session (C-7d) while the new one never starts.
fn reconfiguration_unfinished(sim: &Sim, session: u32) -> Option<String> {
    let behind: Vec<(usize, u32)> = (0..sim.len())
        .filter(|&i| sim.is_honest(i))
        .filter_map(|i| sim.node(i).map(|n| (i, n.finalized().epoch.session)))
        .filter(|&(_, s)| s <= session)
        .collect();
    (!behind.is_empty()).then(|| {
        format!(
            "reconfiguration: session {session}'s stop block was final before healing, but (node, session of its finalized head) {behind:?} had not finalized a later session {LIVENESS_BOUND_MS} ms after healing"
        )
    })
}

/// Runs one seed of the sweep with a change to its plan (for tests).
pub fn run_seed_with(seed: u64, tweak: impl FnOnce(&mut SeedPlan)) -> SeedResult {
    let mut p = plan(seed);
    tweak(&mut p);
    run_plan(p, false).0
}

/// Runs one seed of the swarm sweep (what `pala sim sweep` runs) with a change to its
/// plan (for tests).
pub fn run_seed_mode_with(
    seed: u64,
    reconfig: bool,
    tweak: impl FnOnce(&mut SeedPlan),
) -> SeedResult {
    let mut p = plan_with(seed, reconfig);
    tweak(&mut p);
    run_plan(p, false).0
}

/// Runs one seed of the sweep; a panic anywhere in the run is reported as a failure.
pub fn run_seed(seed: u64) -> SeedResult {
    run_seed_mode(seed, false)
}

/// Runs one seed, with committee changes when `reconfig` is set; a panic is reported
/// as a failure of the seed.
pub fn run_seed_mode(seed: u64, reconfig: bool) -> SeedResult {
    match std::panic::catch_unwind(|| run_plan(plan_with(seed, reconfig), false).0) {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            SeedResult {
                seed,
                failure: Some(format!("panic: {msg}")),
                finalized: 0,
                events: 0,
                sessions_changed: 0,
                recovery_ms: None,
                caught_up_ms: None,
                epochs_after_heal: 0,
            }
        }
    }
}
