//! The sharper adversary of issue 17 as scenarios, each under many seeds: twins with
//! split views, correlated withholding, forged consensus objects and torn crashes.
//! Every safety checker runs after every event; after healing, finality must resume
//! within the recovery budget and open session changes must complete (sweep::run_plan).

use pala_sim::sweep::{run_plan, SeedPlan, FAULT_PHASE_MS};
use pala_sim::{
    Action, Byzantine, LinkRule, Sim, SimConfig, Twin, Withhold, CLOCK_KINDS, SYNC_KINDS,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn base(seed: u64, proposers: usize, voters: usize) -> SimConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cfg = SimConfig::new(seed, proposers, voters);
    cfg.core.k = rng.gen_range(1..=4);
    cfg.core.voter_timeout_ms = 150;
    cfg.core.heartbeat_ms = 100;
    cfg.core.sync_period_ms = 30;
    cfg.core.unnotarized_resend_ms = 100;
    cfg.delay_ms = rng.gen_range(1..=10);
    cfg.jitter_ms = rng.gen_range(0..=cfg.delay_ms);
    cfg.disk_sync_ms = rng.gen_range(0..=3);
    cfg
}

fn run(p: SeedPlan) -> Sim {
    let seed = p.cfg.seed;
    let (r, sim) = run_plan(p, false);
    if let Some(f) = r.failure {
        panic!("seed {seed} failed: {f}");
    }
    sim
}

/// Twins: voter 2's key runs twice; proposer 0 (and maybe 2) see one instance,
/// proposer 1 the other. Partitions then cut the cluster so that each instance votes
/// with a different group; with N = 3f+1 two quorums still share an honest voter, so
/// no two honest nodes may finalize different blocks.
#[test]
fn twins_with_split_views_stay_safe_and_live() {
    for seed in 0..30 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7771);
        let proposers = rng.gen_range(2..=3);
        let voters = *[4usize, 5, 7].choose(&mut rng).unwrap();
        let mut cfg = base(seed, proposers, voters);
        let of = rng.gen_range(proposers..proposers + voters);
        let sides = if proposers == 3 && rng.gen_bool(0.5) {
            vec![1, 2]
        } else {
            vec![1]
        };
        cfg.twins.push(Twin {
            of,
            sides: sides.clone(),
        });
        let twin = proposers + voters;
        let mut actions = Vec::new();
        let mut t = rng.gen_range(100..400);
        while t < FAULT_PHASE_MS - 300 {
            // Each side's proposers with its instance and a random half of the others.
            let mut a: Vec<usize> = (0..proposers).filter(|p| !sides.contains(p)).collect();
            let mut b: Vec<usize> = sides.clone();
            a.push(of);
            b.push(twin);
            for v in proposers..proposers + voters {
                if v != of {
                    if rng.gen_bool(0.5) {
                        a.push(v)
                    } else {
                        b.push(v)
                    }
                }
            }
            actions.push((t, Action::Partition(vec![a, b])));
            t += rng.gen_range(200..600);
            actions.push((t, Action::Heal));
            t += rng.gen_range(100..400);
        }
        actions.push((FAULT_PHASE_MS, Action::Heal));
        let sim = run(SeedPlan { cfg, actions });
        assert!(sim.is_twin(twin) && sim.is_twin(of) && !sim.is_honest(of));
    }
}

/// Correlated withholding: one proposer's notarizations are lost for many epochs while
/// its proposals get through, one voter→proposer link is down while the reverse is up,
/// a node is starved of sync answers and clock messages are late, all at once.
#[test]
fn correlated_withholding_stays_safe_and_heals() {
    let mut hits = 0;
    for seed in 0..30 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0de);
        let proposers = rng.gen_range(1..=3);
        let voters = *[4usize, 5, 7].choose(&mut rng).unwrap();
        let n = proposers + voters;
        let mut cfg = base(seed, proposers, voters);
        let muted = rng.gen_range(0..proposers);
        let voter = rng.gen_range(proposers..n);
        let end = FAULT_PHASE_MS;
        cfg.adversary = vec![
            LinkRule::drop(
                &["notarization", "clock_notarization"],
                &[muted],
                &[],
                100,
                end,
            ),
            LinkRule::drop(
                &[],
                &[voter],
                &[rng.gen_range(0..proposers)],
                200,
                end - 500,
            ),
            LinkRule::drop(&SYNC_KINDS, &[], &[rng.gen_range(0..n)], 300, end - 300),
            LinkRule {
                effect: Withhold::Delay(rng.gen_range(50..300)),
                ..LinkRule::drop(&CLOCK_KINDS, &[], &[], 0, end)
            },
        ];
        let sim = run(SeedPlan {
            cfg,
            actions: vec![(FAULT_PHASE_MS, Action::Heal)],
        });
        hits += sim.adversary_hits;
    }
    assert!(hits > 1000, "the adversary must bite: {hits}");
}

fn rejected_containing(sim: &Sim, what: &str) -> u64 {
    sim.rejected
        .iter()
        .filter(|(k, _)| k.contains(what))
        .map(|(_, v)| v)
        .sum()
}

/// Notarizations one vote short of a quorum, or carrying another block's votes, reach
/// honest nodes and are refused by the verifier; safety and liveness hold.
#[test]
fn forged_notarizations_are_refused_and_counted() {
    let (mut short, mut wrong) = (0, 0);
    for seed in 0..6 {
        let mut cfg = base(seed, 2, 4);
        cfg.byzantine.insert(0, Byzantine::BadNotarizer);
        let sim = run(SeedPlan {
            cfg,
            actions: vec![],
        });
        short += rejected_containing(&sim, "below the quorum");
        wrong += rejected_containing(&sim, "bad notarization signature");
    }
    assert!(short > 0 && wrong > 0, "short {short}, wrong block {wrong}");
}

/// A standby proposer proposing out of turn is refused (P-2); a primary building on an
/// older parent and voters signing for other epochs or replaying clock messages do not
/// break safety or liveness.
#[test]
fn out_of_turn_older_parent_and_epoch_shifting_nodes() {
    let mut out_of_turn = 0;
    for seed in 0..12 {
        let mut cfg = base(seed, 3, 4);
        let kind = [Byzantine::Standby, Byzantine::OlderParent][seed as usize % 2];
        cfg.byzantine.insert(seed as usize % 3, kind);
        let v = [Byzantine::EpochShifter, Byzantine::ClockReplayer][(seed as usize / 2) % 2];
        cfg.byzantine.insert(3 + seed as usize % 4, v);
        let sim = run(SeedPlan {
            cfg,
            actions: vec![],
        });
        out_of_turn += rejected_containing(&sim, "not signed by the primary");
    }
    assert!(out_of_turn > 0);
}

/// Crashes inside a group commit (a random prefix of the unsynced records survives),
/// again and again, with slow disks.
#[test]
fn torn_crashes_keep_safety() {
    for seed in 0..15 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7042);
        let mut cfg = base(seed, 2, 4);
        cfg.disk_sync_ms = rng.gen_range(1..=4);
        let mut actions = Vec::new();
        let mut t = rng.gen_range(50..200);
        while t < FAULT_PHASE_MS - 200 {
            let i = rng.gen_range(0..6);
            actions.push((t, Action::CrashTorn(i)));
            t += rng.gen_range(20..200);
            actions.push((
                t,
                Action::Restart {
                    node: i,
                    wipe: false,
                },
            ));
            t += rng.gen_range(20..200);
        }
        run(SeedPlan { cfg, actions });
    }
}

/// The swarm keeps the sweep reproducible: a seed with twins, withholding rules and a
/// torn crash gives the same trace twice, with and without committee changes.
#[test]
fn swarm_seed_with_twins_rules_and_torn_crash_is_deterministic() {
    use pala_sim::sweep::plan_with;
    for reconfig in [false, true] {
        let seed = (0..500)
            .find(|&s| {
                let p = plan_with(s, reconfig);
                !p.cfg.twins.is_empty()
                    && !p.cfg.adversary.is_empty()
                    && p.actions
                        .iter()
                        .any(|(_, a)| matches!(a, Action::CrashTorn(_)))
            })
            .expect("the swarm draws such a seed");
        let (a, sa) = run_plan(plan_with(seed, reconfig), true);
        let (b, sb) = run_plan(plan_with(seed, reconfig), true);
        assert_eq!(a.failure, None, "seed {seed} (reconfig {reconfig})");
        assert_eq!(a.events, b.events);
        assert_eq!(sa.adversary_hits, sb.adversary_hits);
        assert!(sa.trace == sb.trace, "seed {seed}: traces differ");
    }
}

/// Found by the swarm's torn crashes (reconfiguration sweep, seeds 1243 and 1393): a
/// crash keeps a prefix of the batch that finalizes a stop block (Notarization,
/// Finalized, StopBlock | Committee, Epoch), and the restarted node stays in the old
/// session for good (docs/protocol.md section 13, "P-3 (resuming a reconfiguration)").
/// Ignored until the core resumes C-3 on start-up or the contract makes batches atomic.
#[test]
#[ignore = "core: start-up does not resume a reconfiguration cut inside its batch (P-3 deviation)"]
fn seeds_1243_and_1393_torn_inside_the_stop_block_batch() {
    for seed in [1243, 1393] {
        let mut p = pala_sim::sweep::plan_with(seed, true);
        p.cfg.twins.clear(); // the plan as found, before reconfiguration plans drew twins
        p.cfg.torn_at_batch_ends = false;
        let (r, _) = run_plan(p, false);
        assert_eq!(r.failure, None, "seed {seed}");
    }
}

/// The same seeds pass when a torn crash cuts only between output batches (the default),
/// which is what the node's storage guarantees in production.
#[test]
fn seeds_1243_and_1393_pass_when_torn_crashes_respect_batches() {
    for seed in [1243, 1393] {
        let mut p = pala_sim::sweep::plan_with(seed, true);
        p.cfg.twins.clear(); // the plan as found, before reconfiguration plans drew twins
        p.cfg.torn_at_batch_ends = true;
        let (r, _) = run_plan(p, false);
        assert_eq!(r.failure, None, "seed {seed}");
    }
}

/// Found by the independent block checker (D-4) at seed 3432 of the plain sweep: the only
/// proposer, restarted from an empty disk, began production of (1,1) on genesis; before
/// the payload came back, chain sync brought the notarized blocks it had made of (1,1)
/// before losing its disk, and it sealed an (1,1,1) on (1,1,10). It now gives the epoch
/// up instead (N-1(b) checked again at sealing).
#[test]
fn seed_3432_a_primary_that_lost_its_disk_never_builds_an_e1_on_a_head_of_its_own_epoch() {
    let r = pala_sim::sweep::run_seed(3432);
    assert_eq!(r.failure, None);
}

/// Found by the independent block checker (C-2) at seed 1449 of the reconfiguration
/// sweep: a primary asked for the payload of a timeout block while its head was before
/// the stop block, the head reached the stop block before the payload came back, and it
/// sealed transactions after the stop block (the voters refused the block). Sealing now
/// leaves them out.
#[test]
fn seed_1449_a_timeout_block_sealed_after_the_stop_block_carries_no_transactions() {
    let r = pala_sim::sweep::run_seed_mode(1449, true);
    assert_eq!(r.failure, None);
}

/// Found by the recovery budget at seed 5030 of the reconfiguration sweep: proposer n1
/// saw the stop block of session 1 finalized, entered session 2 and crashed; the others
/// had missed the notarization that finalized it. Restarted, n1 answered their epoch
/// requests with an empty stop block proof (C-9 kept it in memory only), and the ten
/// others stayed in session 1 for over 5 s after healing, timing out epoch after epoch.
/// A node restarted inside the window now rebuilds the proof from its store (C-9d).
#[test]
fn seed_5030_a_proposer_restarted_inside_the_reconfiguration_window_still_proves_the_stop_block() {
    let (r, sim) = run_plan(pala_sim::sweep::plan_with(5030, true), false);
    assert_eq!(r.failure, None);
    let applied: u64 = (0..sim.len())
        .filter_map(|i| sim.node(i))
        .map(|n| n.counters().get(pala_core::CoreEvent::StopProofApplied))
        .sum();
    assert!(
        applied > 0,
        "the laggards finalized the stop block from the proof"
    );
}

/// Twins across committee changes: one key runs twice with split views (its proposers
/// split into two sides) while the committee changes every few blocks; the key is drawn
/// from the whole pool, so its instances may vote in session 1, only in later sessions,
/// or in some and not others. Partitions cut the cluster so that each instance votes with
/// a different group. The key is the one fault of every session it serves in, so two
/// quorums still share an honest voter: no two honest nodes may finalize different
/// blocks, every stop block is the same everywhere (C-7d), and finality and the session
/// changes resume after healing within the recovery and reconfiguration budgets.
#[test]
fn twins_across_a_committee_change_stay_safe_and_live() {
    let seeds = 24;
    let mut changes = Vec::new();
    let mut split_votes = 0u64;
    for seed in 0..seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e1c);
        let proposers = rng.gen_range(2..=3);
        let voters = *[4usize, 5, 7].choose(&mut rng).unwrap();
        let mut cfg = base(seed, proposers, voters);
        cfg.core.stop_offset = rng.gen_range(4..=8);
        let pool: Vec<usize> = (proposers..proposers + voters + rng.gen_range(1..=3)).collect();
        let of = *pool.choose(&mut rng).unwrap();
        for _ in 0..pala_sim::sweep::RECONFIG_SESSIONS {
            let n = *[4usize, 5, 7].choose(&mut rng).unwrap();
            let mut vs: Vec<usize> = pool.choose_multiple(&mut rng, n).copied().collect();
            vs.sort_unstable();
            let mut ps: Vec<usize> = (0..proposers).collect();
            ps.shuffle(&mut rng);
            cfg.sessions.push((ps, vs));
        }
        let sides = if proposers == 3 && rng.gen_bool(0.5) {
            vec![1, 2]
        } else {
            vec![rng.gen_range(0..proposers)]
        };
        cfg.twins.push(Twin {
            of,
            sides: sides.clone(),
        });
        let twin = cfg.twin_index(0);
        let mut actions = Vec::new();
        let mut t = rng.gen_range(100..400);
        while t < FAULT_PHASE_MS - 300 {
            // Each side's proposers with its instance and a random half of the others.
            let mut a: Vec<usize> = (0..proposers).filter(|p| !sides.contains(p)).collect();
            let mut b: Vec<usize> = sides.clone();
            a.push(of);
            b.push(twin);
            for &v in pool.iter().filter(|&&v| v != of) {
                if rng.gen_bool(0.5) {
                    a.push(v)
                } else {
                    b.push(v)
                }
            }
            actions.push((t, Action::Partition(vec![a, b])));
            t += rng.gen_range(200..600);
            actions.push((t, Action::Heal));
            t += rng.gen_range(100..400);
        }
        actions.push((FAULT_PHASE_MS, Action::Heal));
        let (r, sim) = run_plan(SeedPlan { cfg, actions }, false);
        assert_eq!(r.failure, None, "seed {seed}");
        assert!(sim.is_twin(twin) && sim.is_twin(of) && !sim.is_honest(of));
        let votes = |i: usize| {
            sim.node(i)
                .map_or(0, |n| n.counters().get(pala_core::CoreEvent::VotesSent))
        };
        split_votes += u64::from(votes(of) > 0 && votes(twin) > 0);
        changes.push(r.sessions_changed);
    }
    assert!(
        changes.iter().all(|&c| c >= 2),
        "every seed crosses committee changes with the twins running: {changes:?}"
    );
    assert!(
        split_votes * 4 >= seeds * 3,
        "both instances of the key vote in most seeds ({split_votes} of {seeds})"
    );
}
