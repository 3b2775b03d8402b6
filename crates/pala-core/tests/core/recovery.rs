//! P-3 recovery: a node restarted from its persisted records rebuilds a consistent tree and
//! an epoch no older than its head's.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

fn recovered(f: &Fixture, rec: RecoveredState) -> Node {
    Node::recover(f.params(1, Arc::new(NoArchive)), rec)
}

/// Stored blocks are taken only where they hang off the tree with the right parent hash:
/// a block whose parent record was lost, or one naming a stored sn with another hash,
/// stays out (it would otherwise sit in the tree without its ancestors).
#[test]
fn recovery_keeps_only_blocks_whose_parent_is_in_the_tree() {
    let f = Fixture::new(1, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 3);
    let other = f.block_with(&f.genesis, BlockSn::new(1, 1, 1), vec![], None, b"other");
    let wrong_parent = f.block_with(&other, BlockSn::new(1, 1, 2), vec![], None, b"x");
    let node = recovered(
        &f,
        RecoveredState {
            blocks: vec![c[0].clone(), c[2].clone(), wrong_parent.clone()],
            notarizations: vec![f.nota(&c[0])],
            ..RecoveredState::default()
        },
    );
    assert_eq!(node.id(), f.id(1), "the signer's identity");
    assert_eq!(node.config().voter_timeout_ms, f.cfg.voter_timeout_ms);
    let chain = node.chain();
    assert!(chain.get(c[0].sn()).is_some());
    assert!(
        chain.get(c[2].sn()).is_none(),
        "its parent (1,1,2) was lost"
    );
    assert!(
        chain.get(wrong_parent.sn()).is_none(),
        "its parent hash is not the stored (1,1,1)'s"
    );
    assert_eq!(node.head(), c[0].sn());
}

/// Section 0.1 item 8 and E-9: the persisted epoch is kept with its proof, but a head of
/// a fresher epoch (its blocks persisted after the epoch record) raises it.
#[test]
fn recovery_keeps_the_persisted_epoch_unless_the_head_is_fresher() {
    let f = Fixture::new(1, 3, 2);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 3);
    let c2 = f.chain(&c1, Epoch::new(1, 2), 1);
    let blocks: Vec<Arc<Block>> = c1.iter().chain(&c2).cloned().collect();
    let notarizations: Vec<Notarization> = blocks.iter().map(|b| f.nota(b)).collect();
    let state = |epoch| RecoveredState {
        blocks: blocks.clone(),
        notarizations: notarizations.clone(),
        epoch,
        ..RecoveredState::default()
    };
    let behind = recovered(&f, state(Some((Epoch::new(1, 1), None))));
    assert_eq!(behind.head(), c2[0].sn());
    assert_eq!(
        behind.epoch(),
        Epoch::new(1, 2),
        "raised to the head's epoch"
    );
    let proof = f.cnota(Epoch::new(1, 2));
    let same = recovered(&f, state(Some((Epoch::new(1, 2), Some(proof.clone())))));
    assert_eq!(same.epoch(), Epoch::new(1, 2));
    assert_eq!(
        same.epoch_proof(),
        Some(&proof),
        "the persisted proof is kept"
    );
}

/// The recovered clock guard (the newest epoch a clock message was signed for) spares a
/// restarted voter a second durable write before its clock message goes out (E-3).
#[test]
fn recovery_keeps_the_clock_guard() {
    let f = Fixture::new(1, 3, 2);
    let timeout = |guard: Option<Epoch>| {
        let mut v = recovered(
            &f,
            RecoveredState {
                clock_guard: guard,
                ..RecoveredState::default()
            },
        );
        v.handle(0, Input::Start);
        let outs = v.handle(f.cfg.voter_timeout_ms, Input::Timer(TimerKind::Voter));
        let clock_sent = outs.iter().any(|o| {
            matches!(o, Output::Send { msg: Message::Clock(c), .. } if c.epoch == Epoch::new(1, 2))
        });
        let guard_persisted = outs
            .iter()
            .any(|o| matches!(o, Output::Persist(StateChange::ClockGuard(_))));
        (clock_sent, guard_persisted)
    };
    assert_eq!(timeout(None), (true, true));
    assert_eq!(timeout(Some(Epoch::new(1, 2))), (true, false));
}
