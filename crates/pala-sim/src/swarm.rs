//! Swarm testing: each seed switches on a random subset of the sharper fault kinds
//! (targeted withholding, torn crashes, sharper byzantine behaviours, twins) with random
//! intensities, so rare combinations are reached instead of one fixed mix. Drawn from
//! a stream of its own, so a seed's basic plan stays what it was.

use crate::plan::{SeedPlan, FAULT_PHASE_MS};
use crate::sim::{Action, Byzantine, LinkRule, Twin, Withhold, CLOCK_KINDS, SYNC_KINDS};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every kind the network carries.
const ALL_KINDS: [&str; 11] = [
    "proposal",
    "vote",
    "notarization",
    "clock",
    "clock_notarization",
    "unnotarized_proposals",
    "status",
    "get_epoch",
    "epoch",
    "get_fresher_head",
    "fresher_head",
];

/// Adds the swarm's choices to `p`. Under reconfiguration the twin's key is drawn from
/// session 1's voters here; the committee schedule, drawn afterwards, keeps it only if
/// every later session it votes in has room for one more fault, and its second instance
/// gets an index after every node a session names (`SimConfig::twin_index`).
pub fn add_swarm(seed: u64, p: &mut SeedPlan) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5a4a_12a5);
    if rng.gen_bool(0.6) {
        let rules = rng.gen_range(1..=4);
        for _ in 0..rules {
            let r = withhold_rule(&mut rng, p);
            p.cfg.adversary.push(r);
        }
    }
    if rng.gen_bool(0.5) {
        let share = rng.gen_range(0.2..=1.0);
        for (_, a) in p.actions.iter_mut() {
            if let Action::Crash(i) = *a {
                if rng.gen_bool(share) {
                    *a = Action::CrashTorn(i);
                }
            }
        }
    }
    let proposers = p.cfg.proposers;
    if rng.gen_bool(0.5) {
        // Same voters as the basic plan (the fault budget is unchanged), new behaviours.
        for (&i, b) in p.cfg.byzantine.iter_mut() {
            if i >= proposers {
                *b = *[
                    Byzantine::DoubleVoter,
                    Byzantine::ForgedIds,
                    Byzantine::Replayer,
                    Byzantine::Silent,
                    Byzantine::EpochShifter,
                    Byzantine::ClockReplayer,
                ]
                .choose(&mut rng)
                .expect("non-empty");
            }
        }
    }
    if proposers >= 2 && rng.gen_bool(0.5) {
        // At most one byzantine proposer, so an honest one is left to lead.
        p.cfg.byzantine.retain(|&i, _| i >= proposers);
        let b = *[
            Byzantine::EquivocatingProposer,
            Byzantine::StaleView,
            Byzantine::OlderParent,
            Byzantine::BadNotarizer,
            Byzantine::Standby,
        ]
        .choose(&mut rng)
        .expect("non-empty");
        p.cfg.byzantine.insert(rng.gen_range(0..proposers), b);
    }
    if proposers >= 2 && rng.gen_bool(0.3) {
        if let Some(t) = twin(&mut rng, p) {
            p.cfg.twins.push(t);
        }
    }
}

/// A twin of a voter with budget left and no scripted crash of its own, its proposers
/// split into two non-empty sides.
fn twin(rng: &mut ChaCha8Rng, p: &SeedPlan) -> Option<Twin> {
    let cfg = &p.cfg;
    let f = (cfg.voters - 1) / 3;
    let voters = cfg.proposers..cfg.proposers + cfg.voters;
    let touched = |v: usize| {
        p.actions.iter().any(|(_, a)| {
            matches!(a, Action::Crash(i) | Action::CrashTorn(i) if *i == v)
                || matches!(a, Action::Restart { node, .. } if *node == v)
        })
    };
    let wiped = p
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::Restart { node, wipe: true } if voters.contains(node)))
        .count();
    let byz = cfg.byzantine.keys().filter(|i| voters.contains(i)).count();
    if byz + wiped >= f {
        return None;
    }
    let free: Vec<usize> = voters
        .clone()
        .filter(|v| !cfg.byzantine.contains_key(v) && !touched(*v))
        .collect();
    let of = *free.choose(rng)?;
    let mut ps: Vec<usize> = (0..cfg.proposers).collect();
    ps.shuffle(rng);
    let cut = rng.gen_range(1..cfg.proposers);
    let mut sides = ps[..cut].to_vec();
    sides.sort_unstable();
    Some(Twin { of, sides })
}

/// One targeted rule inside the fault phase, from the patterns real networks and
/// attackers produce.
fn withhold_rule(rng: &mut ChaCha8Rng, p: &SeedPlan) -> LinkRule {
    let cfg = &p.cfg;
    let n = cfg.proposers + cfg.voters;
    let start = rng.gen_range(100..FAULT_PHASE_MS - 200);
    let end = (start + rng.gen_range(200..2_500)).min(FAULT_PHASE_MS);
    let proposer = rng.gen_range(0..cfg.proposers);
    let voter = rng.gen_range(cfg.proposers..n);
    let some = |rng: &mut ChaCha8Rng, range: std::ops::Range<usize>| {
        let mut v: Vec<usize> = range.filter(|_| rng.gen_bool(0.5)).collect();
        v.sort_unstable();
        v
    };
    let mut r = match rng.gen_range(0..7) {
        // One proposer's notarizations lost for several epochs, its proposals not.
        0 => LinkRule::drop(
            &["notarization", "clock_notarization"],
            &[proposer],
            &[],
            start,
            end,
        ),
        // An asymmetric link: one direction down, the other up.
        1 => {
            let (a, b) = if rng.gen_bool(0.5) {
                (proposer, voter)
            } else {
                (voter, proposer)
            };
            LinkRule::drop(&[], &[a], &[b], start, end)
        }
        // A lagging node starved of status and sync answers.
        2 => LinkRule::drop(&SYNC_KINDS, &[], &[rng.gen_range(0..n)], start, end),
        // Clock messages late.
        3 => LinkRule {
            effect: Withhold::Delay(rng.gen_range(50..400)),
            ..LinkRule::drop(&CLOCK_KINDS, &some(rng, 0..n), &[], start, end)
        },
        // Some voters' votes late or lost.
        4 => LinkRule {
            effect: if rng.gen_bool(0.5) {
                Withhold::Drop
            } else {
                Withhold::Delay(rng.gen_range(20..300))
            },
            ..LinkRule::drop(&["vote"], &some(rng, cfg.proposers..n), &[], start, end)
        },
        // A proposer's proposals withheld from some voters.
        5 => LinkRule::drop(
            &["proposal", "unnotarized_proposals"],
            &[proposer],
            &some(rng, cfg.proposers..n),
            start,
            end,
        ),
        // Anything: random kinds, senders and receivers.
        _ => {
            let kinds: Vec<&'static str> = ALL_KINDS
                .iter()
                .copied()
                .filter(|_| rng.gen_bool(0.3))
                .collect();
            LinkRule {
                effect: if rng.gen_bool(0.5) {
                    Withhold::Drop
                } else {
                    Withhold::Delay(rng.gen_range(10..500))
                },
                ..LinkRule::drop(&kinds, &some(rng, 0..n), &some(rng, 0..n), start, end)
            }
        }
    };
    if rng.gen_bool(0.4) {
        r.prob = rng.gen_range(0.3..1.0);
    }
    r
}
