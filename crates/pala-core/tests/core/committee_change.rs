//! C-1 / section 0.1 item 11 in the running core: the committee of session S+1 is the
//! newest valid committee-change transaction finalized at or before S's stop block
//! (the rule itself, `pala_core::committee_rule`, is unit-tested there).

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

/// Session 1 with stop block (1,1,5) whose block `at` carries `txs`; K = 2, so the
/// notarization of (1,1,7) finalizes the stop block.
fn session_with(f: &Fixture, at: u32, txs: &[u8]) -> Vec<Arc<Block>> {
    let mut out: Vec<Arc<Block>> = Vec::new();
    for s in 1..=7u32 {
        let parent = out.last().cloned().unwrap_or_else(|| f.genesis.clone());
        let notas = if s > 2 {
            vec![f.nota(&out[s as usize - 3])]
        } else {
            vec![]
        };
        let b = if s == at {
            f.block_with(&parent, sn(1, 1, s), notas, None, txs)
        } else {
            f.block(&parent, sn(1, 1, s), notas, None)
        };
        out.push(b);
    }
    out
}

fn installed(f: &Fixture, blocks: &[Arc<Block>]) -> Vec<Committee> {
    let mut n = f.node(2);
    let refs: Vec<&Arc<Block>> = blocks.iter().collect();
    let outs = f.deliver(&mut n, 0, 0, fresher(&refs, f));
    assert_eq!(n.epoch(), Epoch::new(2, 1), "C-3 ran");
    outs.iter()
        .filter_map(|o| match o {
            Output::CommitteeInstalled(c) => Some((**c).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn c1_a_finalized_committee_change_before_the_stop_block_names_the_next_committee() {
    let mut f = Fixture::new(2, 3, 2);
    f.cfg.stop_offset = 5;
    let mut next = f.committee.clone();
    next.voters.truncate(2);
    let tx = pala_types::committee::committee_change_tx(&next);
    let got = installed(&f, &session_with(&f, 2, &tx));
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].session, &got[0].voters), (2, &next.voters));
    // Without it the members stay (no schedule here).
    let got = installed(&f, &session_with(&f, 2, b"plain"));
    assert_eq!(got[0].voters, f.committee.voters);
    // One with a broken proof of possession is counted and ignored.
    let mut broken = next.clone();
    broken.voters[1].proof_of_possession = broken.voters[0].proof_of_possession.clone();
    let tx = pala_types::committee::committee_change_tx(&broken);
    let mut n = f.node(2);
    let blocks = session_with(&f, 3, &tx);
    let refs: Vec<&Arc<Block>> = blocks.iter().collect();
    f.deliver(&mut n, 0, 0, fresher(&refs, &f));
    assert_eq!(n.counters().get(CoreEvent::CommitteeChangeInvalid), 1);
    assert_eq!(
        n.committees().get(2).map(|c| c.voters.clone()),
        Some(f.committee.voters.clone())
    );
}

/// C-1 across a restart: a committee change finalized before the node restarts, and
/// before the stop block, still names the next committee when the stop block becomes
/// final after the restart (the change is in the archive, not in memory).
#[test]
fn c1_a_committee_change_finalized_before_a_restart_still_counts() {
    let mut f = Fixture::new(2, 3, 2);
    f.cfg.stop_offset = 5;
    let mut next = f.committee.clone();
    next.voters.truncate(2);
    let tx = pala_types::committee::committee_change_tx(&next);
    let blocks = session_with(&f, 2, &tx);
    let mut n = f.node(2);
    let refs: Vec<&Arc<Block>> = blocks[..5].iter().collect();
    let outs = f.deliver(&mut n, 0, 0, fresher(&refs, &f));
    assert_eq!(
        n.finalized(),
        sn(1, 1, 3),
        "the change in (1,1,2) is below it"
    );
    let mut n = f.recovered(2, &outs);
    n.handle(0, Input::Start);
    let refs: Vec<&Arc<Block>> = blocks[5..].iter().collect();
    f.deliver(&mut n, 0, 0, fresher(&refs, &f));
    assert_eq!(n.epoch(), Epoch::new(2, 1), "C-3 ran");
    assert_eq!(
        n.committees().get(2).map(|c| c.voters.clone()),
        Some(next.voters)
    );
}

/// The same in a later session, whose blocks' heights are not their session offsets:
/// the change in (2,1,2) at height 9 names session 3's committee after a restart.
#[test]
fn c1_a_committee_change_of_a_later_session_survives_a_restart() {
    let mut f = Fixture::new(2, 3, 2);
    f.cfg.stop_offset = 5;
    f.schedule_same_members(2, true);
    let mut next = f.committee.clone();
    next.voters.truncate(2);
    let tx = pala_types::committee::committee_change_tx(&next);
    let s1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let mut s2: Vec<Arc<Block>> = Vec::new();
    for s in 1..=7u32 {
        let parent = s2.last().unwrap_or(&s1[6]).clone();
        let notas = match s {
            1 => vec![f.nota(&s1[5]), f.nota(&s1[6])],
            2 => vec![],
            _ => vec![f.nota(&s2[s as usize - 3])],
        };
        s2.push(if s == 2 {
            f.block_with(&parent, sn(2, 1, s), notas, None, &tx)
        } else {
            f.block(&parent, sn(2, 1, s), notas, None)
        });
    }
    assert_eq!((s2[1].height(), s2[1].header.session_offset), (9, 2));
    let mut n = f.node(2);
    let refs: Vec<&Arc<Block>> = s1.iter().chain(&s2[..4]).collect();
    let outs = f.deliver(&mut n, 0, 0, fresher(&refs, &f));
    assert_eq!(n.finalized(), sn(2, 1, 2));
    let mut n = f.recovered(2, &outs);
    n.handle(0, Input::Start);
    let refs: Vec<&Arc<Block>> = s2[4..].iter().collect();
    f.deliver(&mut n, 0, 0, fresher(&refs, &f));
    assert_eq!(n.epoch(), Epoch::new(3, 1), "C-3 ran for session 2");
    assert_eq!(
        n.committees().get(3).map(|c| c.voters.clone()),
        Some(next.voters)
    );
}
